"""Separation that holds (docs/separation_stability.md): the default schedule keeps slices clean where the paper's
recipe does not, on the same small case.

Case: au-nio phantom 96x96 (seed 0), blend G1 (Gaussian sigma 2 low-pass ghost on slice 1, DoG 0.7-3 high-pass ghost
on slice 2, alpha 0.7/0.3), kernel filters, gamma_excl 0.5, seed 0, 1500 epochs. Measured on the project's CPU
machines (ghost-to-signal ratio of slice 1; input 0.627): default ('balanced', with the input-anchored exclusion of
docs/separation_stability.md section 9, which cleans slice 1 more slowly on this blend) 0.36 at 1000, 0.20 at 1400,
0.17 at 1500 and falling; paper 0.61 at 1000, 0.52 at 1500. The bound, 0.5 x the input's ratio (0.31), sits between
them with a margin of more than 1.5x on both sides from epoch 1400. Slice 2 must stay clean for both
(<= 0.3 x input; measured 0.018 and 0.021 at 1500).
"""
import numpy as np
import pytest

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.metrics import separation_metrics
from ptycho_ddip.separation.separate import separate


@pytest.fixture(scope="module")
def case():
    return blend(make_phantom("au-nio", (96, 96), seed=0).normalized(), alpha=(0.7, 0.3),
                 filters=("gauss:2", "dog:0.7,3"))


def _run(b, schedule):
    return separate(b.inputs, schedule=schedule, filters="kernel", epochs=1500, seed=0, progress=False,
                    truth=b.truth, ghosts=b.ghosts, monitor_every=100)


@pytest.mark.timeout(1800)
def test_default_schedule_holds_where_paper_schedule_breaks(case):
    m_in = separation_metrics(case.inputs, case.truth, case.ghosts)
    bound1 = 0.5 * m_in[0]["ghost_to_signal"]
    bound2 = 0.3 * m_in[1]["ghost_to_signal"]
    results = {s: _run(case, s) for s in ("balanced", "paper")}
    for schedule, res in results.items():
        cols = list(res.monitor_columns)
        late = res.monitor[res.monitor[:, 0] >= 1400]
        g1 = late[:, cols.index("ghost_to_signal_1")]
        g2 = late[:, cols.index("ghost_to_signal_2")]
        assert np.all(g2 <= bound2), (schedule, g2)  # slice 2 clean in both
        if schedule == "balanced":
            assert np.all(g1 <= bound1), (schedule, g1, bound1)  # slice 1 cleaned and stays so
        else:
            assert np.all(g1 > bound1), (schedule, g1, bound1)  # the paper's recipe leaves slice 1's ghost
    final = separation_metrics(results["balanced"].separated, case.truth, case.ghosts)
    assert final[0]["correlation"] > m_in[0]["correlation"] + 0.05
