"""Separation that holds (docs/separation_stability.md): the default keeps both slices clean over the whole fit,
on the same small case where the paper's recipe leaves a ghost.

Case: au-nio phantom 96x96 (seed 0), blend G1 (Gaussian sigma 2 low-pass ghost on slice 1, DoG 0.7-3 high-pass ghost
on slice 2, alpha 0.7/0.3), seed 0, 1500 epochs, monitored every 100. Inputs: slice 1 ghost-to-signal ratio 0.627,
slice 2 0.293.

Default (estimated mixing held fixed, section 14), measured on the project's CPU machines: slice 2 at most 0.006
from epoch 500 on (0.004 at 1500), slice 1 at most 0.046 from epoch 300 on and 0.013 at 1400-1500. Bounds: slice 2
<= 0.05 x its input's ratio (0.0147) at every monitored epoch from 500, slice 1 <= 0.2 x its input's (0.125) from
500 and <= 0.1 x (0.063) from 1400: margins of 2.4x or more.

Paper recipe (learnable mixing, kernel filters, gamma 0.5): slice 1 0.61 at 1000, 0.52 at 1500, never cleaned; the
test requires slice 1 > 0.5 x its input's ratio (0.31) from epoch 1400, a margin of 1.7x, and the same slice-2
bound as before the estimated mixing (<= 0.3 x input; measured 0.021 at 1500).
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


def _trajectory(res, slice_no, from_epoch):
    cols = list(res.monitor_columns)
    rows = res.monitor[res.monitor[:, 0] >= from_epoch]
    return rows[:, cols.index(f"ghost_to_signal_{slice_no}")]


@pytest.mark.timeout(1800)
def test_default_holds_over_the_whole_fit_where_the_paper_recipe_leaves_a_ghost(case):
    m_in = separation_metrics(case.inputs, case.truth, case.ghosts)
    g1_in, g2_in = m_in[0]["ghost_to_signal"], m_in[1]["ghost_to_signal"]
    kw = dict(epochs=1500, seed=0, progress=False, truth=case.truth, ghosts=case.ghosts, monitor_every=100)
    default = separate(case.inputs, **kw)
    paper = separate(case.inputs, schedule="paper", filters="kernel", **kw)
    assert default.config["mixing"] == "estimate" and paper.config["mixing"] == "learn"
    g2 = _trajectory(default, 2, 500)
    assert len(g2) == 10 and np.all(g2 <= 0.05 * g2_in), g2
    assert np.all(_trajectory(default, 1, 500) <= 0.2 * g1_in)
    assert np.all(_trajectory(default, 1, 1400) <= 0.1 * g1_in)
    assert np.all(_trajectory(paper, 2, 1400) <= 0.3 * g2_in)
    assert np.all(_trajectory(paper, 1, 1400) > 0.5 * g1_in)  # the paper's recipe leaves slice 1's ghost
    final = separation_metrics(default.separated, case.truth, case.ghosts)
    for i in range(2):
        assert final[i]["correlation"] > m_in[i]["correlation"] + 0.02
