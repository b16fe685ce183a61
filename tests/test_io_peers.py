"""Peers' reconstructions in, seeds for them out (ptycho_ddip.io.peers): for every peer layout a file is written
here in that layout (no peer package is needed), ``ptycho-ddip separate FILE`` reads it without a dataset path, and
``--seed-for PEER`` writes a file that the same reader reads back with the separated phase inside the scanned box and
everything else unchanged."""
from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest
import tifffile

from ptycho_ddip.cli import main
from ptycho_ddip.io import InputError, read_object_guess, read_separation_result, write_reconstruction
from ptycho_ddip.io.peers import PEERS, detect_peer, read_peer, seed_paths

H = W = 64
N_SLICES = 2
PROBE = 16
PIXEL_M = 1e-8
FAST = ["--epochs", "0", "--mixing-iters", "20", "--threads", "1", "--device", "cpu", "--no-progress"]


# ----------------------------------------------------------------------------------------------------------------------
# A two-slice object with crosstalk, a probe and a raster scan that covers the middle of the object
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def truth():
    """(object complex128 (2, 64, 64), top-left positions (N, 2) (y, x), probe complex (16, 16))."""
    from ptycho_ddip.phantoms import blend, make_phantom

    mixed = blend(make_phantom("au-nio", (H, W), seed=2).normalized()).inputs  # two crosstalk-laden slices
    phase = 1.2 * (mixed - mixed.mean(axis=(1, 2), keepdims=True))
    magnitude = 0.9 - 0.05 * (mixed - mixed.min())
    obj = magnitude * np.exp(1j * phase)
    grid = np.arange(12, 37, 4, dtype=np.float64)
    positions = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    y, x = np.mgrid[:PROBE, :PROBE] - (PROBE - 1) / 2
    probe = np.exp(-(x ** 2 + y ** 2) / (2 * 3.0 ** 2)).astype(np.complex64)
    return obj, positions, probe


def matlab_h5(h5, name, array):
    """A MATLAB v7.3 variable: axes reversed, complex as a {real, imag} compound, MATLAB_class attribute."""
    array = np.asarray(array)
    if np.iscomplexobj(array):
        data = np.empty(array.shape[::-1], dtype=[("real", "<f4"), ("imag", "<f4")])
        data["real"], data["imag"] = array.real.T, array.imag.T
        dset = h5.create_dataset(name, data=data)
        dset.attrs["MATLAB_class"] = np.bytes_("single")
    else:
        dset = h5.create_dataset(name, data=np.asarray(array, dtype=np.float64).T)
        dset.attrs["MATLAB_class"] = np.bytes_("double")
    return dset


def write_ptyrad(path, obj, positions, probe):
    """PtyRAD model_iterNNNN.hdf5 (ptyrad src/ptyrad/io/save.py make_save_dict): dx in Angstrom for electrons."""
    with h5py.File(path, "w") as h5:
        h5["optimizable_tensors/obja"] = np.abs(obj)[None].astype(np.float32)
        h5["optimizable_tensors/objp"] = np.angle(obj)[None].astype(np.float32)
        h5["optimizable_tensors/probe"] = probe[None]
        h5["optimizable_tensors/probe_pos_shifts"] = np.full(positions.shape, 0.25, dtype=np.float32)
        h5["model_attributes/crop_pos"] = positions.astype(np.int32)
        h5["model_attributes/dx"] = np.float32(0.5)
        h5["model_attributes/slice_thickness"] = np.float32(20.0)
        h5["params/init_params/probe_illum_type"] = "electron"
        h5["ptyrad_version"] = "0.1.0b13"
    return path


def write_foldslice73(path, obj, positions, probe):
    """fold_slice Niter*.mat (-v7.3): object (Ny, Nx, Nl), outputs.probe_positions (x, y) from the centre."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        matlab_h5(h5, "object", np.moveaxis(obj, 0, 2))
        matlab_h5(h5, "probe", probe[:, :, None])
        p = h5.create_group("p")
        p.attrs["MATLAB_class"] = np.bytes_("struct")
        matlab_h5(p, "dx_spec", np.array([[PIXEL_M, PIXEL_M]]))
        matlab_h5(p, "lambda", np.array([[1e-10]]))
        outputs = h5.create_group("outputs")
        outputs.attrs["MATLAB_class"] = np.bytes_("struct")
        offset = np.ceil(np.array([H, W]) / 2 - PROBE / 2) - 1
        matlab_h5(outputs, "probe_positions", (positions - offset)[:, ::-1])
    with open(path, "r+b") as fh:  # the MAT 7.3 header in the userblock
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    return path


def write_foldslice5(path, obj, positions, probe):
    """PSI/fold_slice *_recons.mat (-v6): object (Ny, Nx, 1, Nl), p.positions (y, x) top-left, p.dx_spec."""
    from scipy.io import savemat

    savemat(path, {"object": np.moveaxis(obj, 0, 2)[:, :, None, :].astype(np.complex64), "probe": probe,
                   "p": {"dx_spec": np.array([[PIXEL_M, PIXEL_M]]), "positions": positions}})
    return path


def _ptychodus_arrays(obj, positions, probe):
    centre = positions + PROBE / 2 - np.array([H, W]) / 2  # probe centres from the object's centre, px
    return {"probe_position_indexes": np.arange(len(positions)), "probe_position_x_m": centre[:, 1] * PIXEL_M,
            "probe_position_y_m": centre[:, 0] * PIXEL_M, "probe": probe[None, None],
            "object": obj.astype(np.complex64), "object_layer_spacing_m": np.array([2e-6]),
            "loss_epochs": np.arange(3), "loss_values": np.array([3.0, 2.0, 1.0])}


def write_ptychodus_h5(path, obj, positions, probe):
    """ptychodus product .h5 (src/ptychodus/plugins/h5_product_file.py)."""
    with h5py.File(path, "w") as h5:
        for key, value in {"name": "scan", "comments": "", "detector_object_distance_m": 2.0,
                           "photon_energy_eV": 10000.0, "probe_photon_count": 0.0, "exposure_time_s": 0.1,
                           "mass_attenuation_m2_per_kg": 0.0}.items():
            h5.attrs[key] = value
        for key, value in _ptychodus_arrays(obj, positions, probe).items():
            h5[key] = value
        h5["object"].attrs.update({"center_x_m": 0.0, "center_y_m": 0.0, "pixel_width_m": PIXEL_M,
                                   "pixel_height_m": PIXEL_M})
        h5["probe"].attrs.update({"pixel_width_m": PIXEL_M, "pixel_height_m": PIXEL_M})
    return path


def write_ptychodus_npz(path, obj, positions, probe):
    """ptychodus product .npz (src/ptychodus/plugins/npz_product_file.py)."""
    arrays = _ptychodus_arrays(obj, positions, probe)
    arrays.update({"name": np.array("scan"), "comments": np.array(""), "detector_object_distance_m": 2.0,
                   "photon_energy_eV": 10000.0, "exposure_time_s": 0.1, "object_center_x_m": 0.0,
                   "object_center_y_m": 0.0, "object_pixel_width_m": PIXEL_M, "object_pixel_height_m": PIXEL_M,
                   "probe_pixel_width_m": PIXEL_M, "probe_pixel_height_m": PIXEL_M})
    np.savez(path, **arrays)
    return path


def _ptypy_storage(group, data):
    group.attrs["type"] = "dict"
    dset = group.create_dataset("data", data=data, compression="gzip")
    dset.attrs["type"] = "array"
    group["_psize"] = np.array([PIXEL_M, PIXEL_M])
    group["_origin"] = -np.array([H, W]) / 2 * PIXEL_M


def write_ptyr(path, obj, positions, probe):
    """PtyPy .ptyr (ptypy/core/ptycho.py save_run, ptypy/io/h5rw.py): content/obj/<ID>/data (layers, H, W)."""
    with h5py.File(path, "w") as h5:
        h5.create_group("header").attrs["type"] = "dict"
        h5["header/kind"] = "dump"
        h5["header/kind"].attrs["type"] = "string"
        h5["header/description"] = "Ptypy .h5 compatible storage format"
        h5["header/description"].attrs["type"] = "string"
        _ptypy_storage(h5.create_group("content/obj/S00G00"), obj.astype(np.complex64))
        h5.create_group("content/probe/S00G00")["data"] = probe[None]
        origin = -np.array([H, W]) / 2 * PIXEL_M
        h5["content/positions/S00G00"] = (positions + PROBE // 2) * PIXEL_M + origin  # view centres, m
    return path


def write_threepie(path, obj, positions, probe):
    """PtyPy ThreePIE slices file (ptypy/custom/threepie.py engine_finalize)."""
    with h5py.File(path, "w") as h5:
        h5["header/description"] = "multi-slices result details."
        h5["content/number_of_slices"] = N_SLICES
        h5["content/slice_thickness"] = 2e-6
        for i in range(N_SLICES):
            _ptypy_storage(h5.create_group(f"content/objects/Cobj_o_{i}/S00G00"), obj[i:i + 1].astype(np.complex64))
    return path


def write_adorym(path, obj, positions, probe):
    """Adorym output (adorym/util.py output_object, unknown_type='real_imag'): (y, x, z) float32 TIFF pair."""
    folder = os.path.dirname(path)
    for name, values in (("obj_mag_ds_1.tiff", np.abs(obj)), ("obj_phase_ds_1.tiff", np.angle(obj))):
        tifffile.imwrite(os.path.join(folder, name), np.moveaxis(values, 0, 2).astype(np.float32),
                         photometric="minisblack")
    return os.path.join(folder, "obj_phase_ds_1.tiff")


def write_ptycho_ddip(path, obj, positions, probe):
    write_reconstruction(path, {"object": obj.astype(np.complex64), "probe": probe, "positions": positions,
                                "loss": np.ones(2), "config": {}})
    return path


# (writer, file name, detected format, seed format, the scan is recorded)
LAYOUTS = {
    "ptyrad": (write_ptyrad, "model_iter0200.hdf5", "ptyrad", "ptyrad", True),
    "foldslice-v7.3": (write_foldslice73, "Niter200.mat", "foldslice", "foldslice", True),
    "foldslice-v5": (write_foldslice5, "scan_recons.mat", "foldslice", "foldslice", True),
    "ptychodus-h5": (write_ptychodus_h5, "product.h5", "ptychodus", "ptychodus", True),
    "ptychodus-npz": (write_ptychodus_npz, "product.npz", "ptychodus", "ptychodus", True),
    "ptypy": (write_ptyr, "scan_ML_0100.ptyr", "ptypy", "ptypy", True),
    "ptypy-threepie": (write_threepie, "slices.h5", "ptypy", "ptypy", False),
    "adorym": (write_adorym, "obj_phase_ds_1.tiff", "adorym", "adorym", False),
    "ptycho_ddip": (write_ptycho_ddip, "rec.h5", "ptycho_ddip", "npy", True),
}


def float32_phase(obj):
    """The phase as a format that stores float32 phases keeps it."""
    return np.angle(obj).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_reader_gives_the_object_and_the_scanned_box(tmp_path, truth, layout):
    obj, positions, probe = truth
    writer, name, fmt, _, scanned = LAYOUTS[layout]
    path = writer(str(tmp_path / name), obj, positions, probe)
    assert detect_peer(path) == fmt
    peer = read_peer(path)
    assert peer.format == fmt and peer.shape == (N_SLICES, H, W)
    np.testing.assert_allclose(peer.transmission(), obj, atol=2e-6)
    y0, y1, x0, x1 = peer.box()
    if scanned:  # the scan (positions + probe) gives a box inside the object, as the pipeline's rule does
        from ptycho_ddip.pipeline import scan_box

        expected = scan_box(np.round(positions), np.abs(probe), (H, W))
        assert np.max(np.abs(np.subtract((y0, y1, x0, x1), expected))) <= 1, ((y0, y1, x0, x1), expected)
        assert 0 < y0 and y1 < H and 0 < x0 and x1 < W
    else:
        assert (y0, y1, x0, x1) == (0, H, 0, W)
    if peer.pixel_size_m is not None:
        assert math.isclose(peer.pixel_size_m, 0.5e-10 if fmt == "ptyrad" else PIXEL_M, rel_tol=1e-6)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_separate_reads_the_peer_file_and_seeds_it_back(tmp_path, truth, layout, capsys):
    obj, positions, probe = truth
    writer, name, fmt, seed_for, _ = LAYOUTS[layout]
    path = writer(str(tmp_path / name), obj, positions, probe)
    out = str(tmp_path / "out.h5")
    assert main(["separate", path, "-o", out, "--seed-for", seed_for] + FAST) == 0
    printed = capsys.readouterr().out
    peer = read_peer(path)
    y0, y1, x0, x1 = peer.box()
    res = read_separation_result(out)
    separated = res["separated"]
    assert separated.shape == (N_SLICES, y1 - y0, x1 - x0)
    np.testing.assert_allclose(res["inputs"], peer.images("phase"))
    assert res["config"]["part"] == "phase"
    (seed,) = [p for p in seed_paths(seed_for, out, peer) if "obj_mag" not in p]
    assert os.path.isfile(seed) and seed in printed and "seed for" in printed
    back = read_peer(seed) if seed_for != "npy" else None
    new = np.load(seed) if seed_for == "npy" else back.transmission()
    inside = np.s_[:, y0:y1, x0:x1]
    np.testing.assert_allclose(np.exp(1j * np.angle(new[inside])), np.exp(1j * separated), atol=2e-5)
    np.testing.assert_allclose(np.abs(new), np.abs(obj), rtol=1e-5)  # the magnitude is kept everywhere
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_allclose(new[:, outside], obj[:, outside], atol=2e-6)  # the rest is unchanged
    if back is not None:
        assert back.format == peer.format and back.box() == peer.box()
        np.testing.assert_allclose(back.images("phase") if peer.kind != "complex" else
                                   np.angle(np.exp(1j * back.images("phase"))),
                                   separated if peer.kind != "complex" else np.angle(np.exp(1j * separated)),
                                   atol=2e-5)


def test_seeds_for_other_tools_from_one_reconstruction(tmp_path, truth):
    """A PtyRAD result seeds fold_slice (a v5 MAT), Adorym (a TIFF pair), PtyRAD and ptycho_ddip/pty-chi (.npy)."""
    obj, positions, probe = truth
    path = write_ptyrad(str(tmp_path / "model.hdf5"), obj, positions, probe)
    peer = read_peer(path)
    y0, y1, x0, x1 = peer.box()
    for fmt in ("foldslice", "adorym", "npy"):
        out = str(tmp_path / f"{fmt}.h5")
        assert main(["separate", path, "-o", out, "--seed-for", fmt] + FAST) == 0
        separated = read_separation_result(out)["separated"]
        seed = seed_paths(fmt, out, peer)[-1]
        new = np.load(seed) if fmt == "npy" else read_peer(seed).transmission()
        assert new.shape == (N_SLICES, H, W)
        np.testing.assert_allclose(np.angle(new[:, y0:y1, x0:x1]), np.angle(np.exp(1j * separated)), atol=2e-5)
        np.testing.assert_allclose(np.abs(new), np.abs(obj), rtol=1e-5)
        if fmt == "npy":  # ptycho_ddip starts a reconstruction from it, and from the peer's file itself
            np.testing.assert_allclose(read_object_guess(seed), new)
    np.testing.assert_allclose(read_object_guess(path), obj, atol=2e-6)


def test_magnitude_part_and_adorym_delta_beta(tmp_path, truth):
    obj, positions, probe = truth
    path = write_ptychodus_h5(str(tmp_path / "product.h5"), obj, positions, probe)
    out = str(tmp_path / "mag.h5")
    assert main(["separate", path, "-o", out, "--part", "magnitude", "--seed-for", "ptychodus"] + FAST) == 0
    peer = read_peer(path)
    y0, y1, x0, x1 = peer.box()
    separated = read_separation_result(out)["separated"]
    new = read_peer(seed_paths("ptychodus", out, peer)[0]).transmission()
    np.testing.assert_allclose(np.abs(new[:, y0:y1, x0:x1]), np.maximum(separated, 1e-3), rtol=1e-5)
    np.testing.assert_allclose(np.angle(new), np.angle(obj), atol=2e-6)
    # Adorym's delta/beta pair: delta is separated as the phase and seeded back as delta
    for name, values in (("delta_ds_1.tiff", np.angle(obj) * 1e-6), ("beta_ds_1.tiff", -np.log(np.abs(obj)) * 1e-7)):
        tifffile.imwrite(str(tmp_path / name), np.moveaxis(values, 0, 2).astype(np.float32),
                         photometric="minisblack")
    src = str(tmp_path / "delta_ds_1.tiff")
    assert main(["separate", src, "-o", str(tmp_path / "db.h5"), "--seed-for", "adorym"] + FAST) == 0
    delta = read_peer(str(tmp_path / "db_seed_adorym_delta.tiff"))
    assert delta.kind == "delta_beta"
    np.testing.assert_allclose(delta.phase, read_separation_result(str(tmp_path / "db.h5"))["separated"], rtol=1e-5,
                               atol=1e-12)
    np.testing.assert_allclose(delta.magnitude, read_peer(src).magnitude)


def test_bad_seed_requests_and_files_give_one_line_errors(tmp_path, truth, capsys):
    obj, positions, probe = truth
    ptyrad = write_ptyrad(str(tmp_path / "model.hdf5"), obj, positions, probe)
    out = str(tmp_path / "out.h5")
    for args, words in (
            ([ptyrad, "--seed-for", "ptychodus"], ["ptychodus", "ptyrad", "--seed-for npy"]),
            ([ptyrad, ptyrad, "--seed-for", "npy"], ["one reconstruction file"]),
            ([ptyrad, "--seed-for", "npy", "--part", "real"], ["--part phase"])):
        assert main(["separate", *args, "-o", out] + FAST) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words) and err.count("\n") == 1, err
        assert not os.path.exists(out)
    # a one-slice reconstruction, a broken PtyRAD file, an unrecognised file
    single = write_ptychodus_h5(str(tmp_path / "single.h5"), obj[:1], positions, probe)
    with h5py.File(str(tmp_path / "broken.hdf5"), "w") as h5:
        h5["optimizable_tensors/objp"] = np.zeros((1, 2, 8, 8), np.float32)
    for path, words in ((single, ["1 slice", "2 or more"]), (str(tmp_path / "broken.hdf5"), ["obja"])):
        assert main(["separate", path, "-o", out] + FAST) == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words) and err.count("\n") == 1, err
    with pytest.raises(InputError, match="not a reconstruction"):
        read_peer(_plain_h5(tmp_path))
    assert sorted(PEERS) == sorted(["ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "ptycho_ddip"])


def _plain_h5(tmp_path):
    path = str(tmp_path / "plain.h5")
    with h5py.File(path, "w") as h5:
        h5["a"], h5["b"] = np.zeros(3), np.zeros(3)
    return path


def test_info_describes_a_peer_file(tmp_path, truth, capsys):
    obj, positions, probe = truth
    for layout in ("ptyrad", "ptychodus-npz", "foldslice-v5"):
        writer, name, fmt, _, _ = LAYOUTS[layout]
        path = writer(str(tmp_path / name), obj, positions, probe)
        assert main(["info", path]) == 0
        assert f"{fmt} reconstruction" in capsys.readouterr().out


def _seed(tmp_path, truth, layout, seed_for):
    obj, positions, probe = truth
    writer, name, _, _, _ = LAYOUTS[layout]
    path = writer(str(tmp_path / name), obj, positions, probe)
    out = str(tmp_path / f"out_{layout}_{seed_for}.h5")
    assert main(["separate", path, "-o", out, "--seed-for", seed_for] + FAST) == 0
    return seed_paths(seed_for, out, read_peer(path))[0]


# Where a peer's package is installed, its own loader reads the seed (skipped otherwise: the suite needs none).
# PtyRAD 1.0.0 and ptychodus 1.7.0 from PyPI passed these by hand; PtyPy is not on PyPI.

def test_ptyrads_own_loader_reads_the_seeds(tmp_path, truth):
    pytest.importorskip("ptyrad")
    from ptyrad.io.load import load_ptyrad

    for layout in ("ptyrad", "ptychodus-h5"):  # a copy of a PtyRAD model, and a minimal model from another tool
        seed = _seed(tmp_path, truth, layout, "ptyrad")
        tensors = load_ptyrad(seed)["optimizable_tensors"]
        np.testing.assert_allclose(tensors["obja"][0] * np.exp(1j * tensors["objp"][0]),
                                   read_peer(seed).transmission(), atol=1e-6)


def test_ptychodus_own_readers_read_the_seeds(tmp_path, truth):
    pytest.importorskip("ptychodus")
    from pathlib import Path

    from ptychodus.api.io import load_product
    from ptychodus.plugins.npz_product_file import NPZProductFileIO

    for layout, read in (("ptychodus-h5", load_product), ("ptychodus-npz", NPZProductFileIO().read)):
        seed = _seed(tmp_path, truth, layout, "ptychodus")
        np.testing.assert_allclose(read(Path(seed)).object_.get_array(), read_peer(seed).object)


def test_ptypys_own_loader_reads_the_seed(tmp_path, truth):
    pytest.importorskip("ptypy")
    from ptypy.utils.scripts import load_from_ptyr

    seed = _seed(tmp_path, truth, "ptypy", "ptypy")
    np.testing.assert_allclose(load_from_ptyr(seed, "obj"), read_peer(seed).object)
