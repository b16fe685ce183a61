"""The crosstalk benchmark's measurement tools: transfer functions recover known leaks, the regime labels, the
matrix's cases, and one tiny case end to end (resumable)."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage

torch.set_num_threads(1)

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "crosstalk_matrix.py")
_spec = importlib.util.spec_from_file_location("crosstalk_matrix", _PATH)
cm = importlib.util.module_from_spec(_spec)
sys.modules["crosstalk_matrix"] = cm
_spec.loader.exec_module(cm)


def _truth(seed=0, n=2, size=96):
    from ptycho_ddip.phantoms import make_phantom

    ph = make_phantom("litho-cell-nio" if n == 3 else "litho-cell", (size, size), seed=seed)
    return ph.thickness_m / ph.thickness_m.max(axis=(1, 2), keepdims=True)


def test_transfer_functions_recover_known_leaks():
    """Output 1 = truth 1 + 0.3 truth 2 (all-pass leak); output 2 = 0.8 truth 2 + a Gaussian low-pass of truth 1."""
    t = _truth()
    sigma = 2.0
    out = np.stack([t[0] + 0.3 * t[1], 0.8 * t[1] + 0.5 * ndimage.gaussian_filter(t[0], sigma, mode="wrap")])
    tf = cm.transfer_functions(out, t, n_bands=8)
    k = tf["k"]
    np.testing.assert_allclose(tf["T"][0, 0].real, 1.0, atol=0.02)
    np.testing.assert_allclose(tf["T"][0, 1].real, 0.3, atol=0.02)
    np.testing.assert_allclose(tf["T"][1, 1].real, 0.8, atol=0.05)  # the window does not commute with the blur
    expect = 0.5 * np.exp(-2 * (np.pi * sigma * k) ** 2)  # the Gaussian's transfer function at the ring centres
    np.testing.assert_allclose(tf["T"][1, 0].real, expect, atol=0.06)
    assert np.all(np.abs(tf["T"].imag) < 0.02)
    assert tf["anisotropy"][0, 1] < 0.05 and tf["anisotropy"][1, 0] < 0.3
    assert cm.leak_regime(k, tf["T"][0, 1], tf["power"][1])["shape"] == "all-pass"
    assert cm.leak_regime(k, tf["T"][1, 0], tf["power"][0])["shape"] == "low-pass"


def test_anisotropic_leak_has_a_large_anisotropy_index():
    t = _truth(1)
    out = np.stack([t[0], t[1] + 0.5 * np.gradient(ndimage.gaussian_filter(t[0], 1.0), axis=1)])
    tf = cm.transfer_functions(out, t, n_bands=8)
    assert tf["anisotropy"][1, 0] > 0.4, tf["anisotropy"]


@pytest.mark.parametrize("curve, shape", [
    (0.5 * np.ones(10), "all-pass"), (np.linspace(0.6, 0.05, 10), "low-pass"), (np.linspace(0.05, 0.6, 10), "high-pass"),
    (np.array([0.05, 0.1, 0.3, 0.5, 0.5, 0.4, 0.3, 0.1, 0.05, 0.02]), "band-pass"),
    (0.4 * np.cos(np.linspace(0, 3 * np.pi, 10)), "oscillating"), (0.01 * np.ones(10), "none")])
def test_leak_regime_labels(curve, shape):
    assert cm.leak_regime(np.arange(10.0), curve.astype(complex), np.ones(10))["shape"] == shape


def test_matrices():
    full, small = cm.full_matrix(), cm.small_matrix()
    assert len(full) == 120 and len({c.name for c in full}) == 120
    assert len(small) == 12 and all(c in full for c in small)
    assert {c.probe for c in small} == set(cm.PROBES) and {c.pair for c in small} == set(cm.PAIRS)
    assert {c.dose for c in small} == set(cm.DOSES) and {c.spacing_dof for c in small} == set(cm.SPACINGS_DOF)


def test_one_tiny_case_end_to_end_and_resume(tmp_path):
    case = cm.Case("gaussian", "strong-weak", 2.0, 1e5, size=48, probe_px=32, step_px=8.0)
    fast = {"pass1": {"epochs": 2, "batch_size": 8}, "pass2": {"epochs": 2, "batch_size": 8},
            "checkpoint_every": 0}
    lines = []
    rows = ("pass1", "equal", "kz", "zcorr")  # the pipeline row is the pipeline's own business (tests/test_pipeline.py)
    res = cm.run_case(case, str(tmp_path), rows=rows, overrides=fast, log=lines.append)
    assert set(res["rows"]) == set(rows)
    for name in rows:
        row = res["rows"][name]
        assert len(row["slices"]) == 2 and row["data_loss_ratio"] > 0 and "transfer" in row
    assert res["rows"]["equal"]["epochs"] == 4 and res["rows"]["kz"]["depth_reg_weight"] == 0.1
    # a rerun does nothing: every row is in case.json
    again = []
    cm.run_case(case, str(tmp_path), rows=rows, overrides=fast, log=again.append)
    assert again == [] and len(lines) == 4
    cm.run_case(case, str(tmp_path), rows=rows, overrides=fast, log=again.append, redo=("equal",))
    assert len(again) == 1 and "equal" in again[0]  # --redo reruns a recorded row
    assert res["rows"]["equal"]["commit"] is None or len(res["rows"]["equal"]["commit"]) >= 4
    head = cm.summary([res])
    assert head["cases"] == 1
    table = cm.markdown_table([res])
    assert table.count("\n") == 1 + 4 and case.name in table
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- matrix:start -->\nold\n<!-- matrix:end -->\noutro\n")
    cm.write_doc_table(str(doc), [res], head)
    text = doc.read_text()
    assert text.startswith("intro") and text.rstrip().endswith("outro") and "old" not in text and case.name in text
    json.loads(json.dumps(res))
