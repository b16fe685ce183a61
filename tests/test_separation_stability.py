"""Separation that holds (docs/method.md): the default keeps both slices clean over the whole fit,
on the same small case where the paper's recipe leaves a ghost.

Case: au-nio phantom 64x64 (seed 0), blend G1 (Gaussian sigma 2 low-pass ghost on slice 1, DoG 0.7-3 high-pass ghost
on slice 2, alpha 0.7/0.3), seed 0, 400 epochs, monitored every 100. Inputs: slice 1 ghost-to-signal ratio 0.573,
slice 2 0.320.

Default (estimated mixing held fixed, each slice fitting its own unmixed slice, section 14), measured on the
project's CPU machines: slice 2 at most 0.0045 at every monitored epoch (0.0004 at 400; 0.0002 at 1000), slice 1
0.11 at epoch 100, 0.017 at 300, 0.013 at 400 and at most 0.0055 from 500 to 1000. Bounds: slice 2 <= 0.05 x its
input's ratio (0.016) at every monitored epoch, slice 1 <= 0.1 x its input's (0.057) from epoch 300: margins of
3.3x or more.

Paper recipe (learnable mixing, kernel filters, gamma 0.5): slice 1 0.54 at 200, 0.52-0.58 up to 400 and 0.48-0.56
up to 1000, never cleaned; the test requires slice 1 > 0.5 x its input's ratio (0.29) from epoch 200, a margin of 1.7x.
"""
import numpy as np
import pytest

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.metrics import separation_metrics
from ptycho_ddip.separation.separate import separate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def case():
    return blend(make_phantom("au-nio", (64, 64), seed=0).normalized(), alpha=(0.7, 0.3),
                 filters=("gauss:2", "dog:0.7,3"))


def _trajectory(res, slice_no, from_epoch):
    cols = list(res.monitor_columns)
    rows = res.monitor[res.monitor[:, 0] >= from_epoch]
    return rows[:, cols.index(f"ghost_to_signal_{slice_no}")]


@pytest.mark.timeout(1800)
def test_default_holds_over_the_whole_fit_where_the_paper_recipe_leaves_a_ghost(case):
    m_in = separation_metrics(case.inputs, case.truth, case.ghosts)
    g1_in, g2_in = m_in[0]["ghost_to_signal"], m_in[1]["ghost_to_signal"]
    kw = dict(epochs=400, seed=0, progress=False, truth=case.truth, ghosts=case.ghosts, monitor_every=100)
    default = separate(case.inputs, **kw)
    paper = separate(case.inputs, method="paper", **kw)
    assert default.config["method"] == "estimate" and paper.config["method"] == "paper"
    g2 = _trajectory(default, 2, 100)
    assert len(g2) == 4 and np.all(g2 <= 0.05 * g2_in), g2  # epochs 100, 200, 300, 400
    assert np.all(_trajectory(default, 1, 300) <= 0.1 * g1_in), _trajectory(default, 1, 100)
    assert np.all(_trajectory(paper, 1, 200) > 0.5 * g1_in), _trajectory(paper, 1, 100)  # slice 1 never cleaned
    final = separation_metrics(default.separated, case.truth, case.ghosts)
    assert final[0]["correlation"] > m_in[0]["correlation"] + 0.05
    assert final[1]["correlation"] > m_in[1]["correlation"] + 0.02
