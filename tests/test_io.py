"""Tests of ptycho_ddip.io: round trips, Adorym compatibility, clear errors and atomic, no-overwrite writes."""
from __future__ import annotations

import json
import math
import os

import h5py
import numpy as np
import pytest
import tifffile

from ptycho_ddip import io
from ptycho_ddip.io import DiffractionDataset, InputError


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def write_h5(path, **datasets):
    with h5py.File(path, "w") as h5:
        for name, value in datasets.items():
            h5.create_dataset(name, data=value)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# parse_source
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("rec.h5:/object", ("rec.h5", "/object")),
    ("rec.h5:object", ("rec.h5", "/object")),
    ("dir/rec.hdf5:/group/sub/data", ("dir/rec.hdf5", "/group/sub/data")),
    ("rec.h5", ("rec.h5", None)),
    ("rec.h5:", ("rec.h5", None)),
    ("REC.H5:/x", ("REC.H5", "/x")),
    ("C:\\data\\rec.h5:/obj", ("C:\\data\\rec.h5", "/obj")),
    ("C:\\data\\phase.tiff", ("C:\\data\\phase.tiff", None)),
    ("C:/data/stack.npy", ("C:/data/stack.npy", None)),
    ("../rel/obj_phase_ds_1.tiff", ("../rel/obj_phase_ds_1.tiff", None)),
    ("./a.b.c/x.h5:/d", ("./a.b.c/x.h5", "/d")),
])
def test_parse_source(spec, expected):
    assert io.parse_source(spec) == expected


# ----------------------------------------------------------------------------------------------------------------------
# read_images
# ----------------------------------------------------------------------------------------------------------------------

def test_read_images_h5_stack_and_single_dataset(tmp_path, rng):
    stack = rng.normal(size=(3, 40, 36)).astype(np.float32)
    multi = write_h5(tmp_path / "multi.h5", **{"a": stack, "b/c": stack[:2]})
    images, meta = io.read_images([f"{multi}:/a"])
    assert images.dtype == np.float64 and images.shape == (3, 40, 36)
    np.testing.assert_array_equal(images, stack.astype(np.float64))
    assert meta == {"sources": [f"{multi}:/a"], "dtype": "float32", "part": None, "slices_per_source": [3]}
    nested, _ = io.read_images([f"{multi}:b/c"])
    np.testing.assert_array_equal(nested, stack[:2])
    single = write_h5(tmp_path / "single.h5", only=stack)
    images, meta = io.read_images([str(single)])
    np.testing.assert_array_equal(images, stack)
    assert meta["sources"] == [f"{single}:/only"]


def test_read_images_concatenates_npy_and_tiff(tmp_path, rng):
    a = rng.normal(size=(32, 33))
    b = rng.integers(0, 1000, size=(2, 32, 33)).astype(np.uint16)
    np.save(tmp_path / "a.npy", a)
    tifffile.imwrite(tmp_path / "b.tif", b, photometric="minisblack")
    images, meta = io.read_images([str(tmp_path / "a.npy"), str(tmp_path / "b.tif")])
    assert images.shape == (3, 32, 33)
    np.testing.assert_array_equal(images[0], a)
    np.testing.assert_array_equal(images[1:], b.astype(np.float64))
    assert meta["slices_per_source"] == [1, 2]
    assert meta["dtype"] == "float64"


def test_read_images_adorym_tiff_yxz(tmp_path, rng):
    yxz = rng.normal(size=(40, 36, 2)).astype(np.float32)
    tifffile.imwrite(tmp_path / "obj_phase_ds_1.tiff", yxz)
    path = str(tmp_path / "obj_phase_ds_1.tiff")
    images, _ = io.read_images([path])
    assert images.shape == (2, 40, 36)
    np.testing.assert_array_equal(images[0], yxz[:, :, 0])
    np.testing.assert_array_equal(images[1], yxz[:, :, 1])
    forced, _ = io.read_images([path], tiff_axes="yxz")
    np.testing.assert_array_equal(forced, images)
    # a (z, y, x) multi-page TIFF is left alone by "auto"; "zyx" forbids the transpose
    zyx = np.ascontiguousarray(np.moveaxis(yxz, 2, 0))
    tifffile.imwrite(tmp_path / "zyx.tiff", zyx, photometric="minisblack")
    images2, _ = io.read_images([str(tmp_path / "zyx.tiff")])
    np.testing.assert_array_equal(images2, zyx)
    kept, _ = io.read_images([path], tiff_axes="zyx", min_size=2)  # forced: 40 images of 36 x 2
    np.testing.assert_array_equal(kept, yxz)
    with pytest.raises(InputError, match="tiff_axes"):
        io.read_images([path], tiff_axes="xyz")


def test_read_images_tiff_axes_zyx_keeps_shape(tmp_path, rng):
    yxz = rng.normal(size=(40, 36, 2)).astype(np.float32)
    tifffile.imwrite(tmp_path / "p.tiff", yxz)
    with pytest.raises(InputError, match="minimum is 32"):
        io.read_images([str(tmp_path / "p.tiff")], tiff_axes="zyx")  # (40, 36, 2): images of 36 x 2


@pytest.mark.parametrize("part, func", [("phase", np.angle), ("magnitude", np.abs),
                                        ("real", np.real), ("imag", np.imag)])
def test_read_images_complex_parts(tmp_path, rng, part, func):
    obj = (rng.normal(size=(2, 32, 32)) + 1j * rng.normal(size=(2, 32, 32))).astype(np.complex64)
    path = write_h5(tmp_path / "rec.h5", object=obj, probe=np.ones((8, 8), np.complex64))
    images, meta = io.read_images([f"{path}:/object"], part=part)
    np.testing.assert_array_equal(images, func(obj).astype(np.float64))
    assert meta["dtype"] == "complex64" and meta["part"] == part


def test_read_images_complex_without_part(tmp_path, rng):
    obj = rng.normal(size=(2, 32, 32)) * np.exp(1j * rng.normal(size=(2, 32, 32)))
    np.save(tmp_path / "obj.npy", obj)
    with pytest.raises(InputError) as err:
        io.read_images([str(tmp_path / "obj.npy")])
    assert "obj.npy" in str(err.value) and "--part phase" in str(err.value) and "--part magnitude" in str(err.value)
    with pytest.raises(InputError, match="unknown part"):
        io.read_images([str(tmp_path / "obj.npy")], part="angle")


@pytest.mark.parametrize("part", ["phase", "magnitude", "imag"])
def test_read_images_real_with_part(tmp_path, rng, part):
    np.save(tmp_path / "real.npy", rng.normal(size=(2, 32, 32)))
    with pytest.raises(InputError) as err:
        io.read_images([str(tmp_path / "real.npy")], part=part)
    assert "real.npy" in str(err.value) and "already real" in str(err.value)
    images, _ = io.read_images([str(tmp_path / "real.npy")], part="real")
    assert images.shape == (2, 32, 32)


def _bad_images(tmp_path, rng, case):
    """Build a bad input; return (sources, file name expected in the message, message fragment, kwargs)."""
    good = rng.normal(size=(2, 32, 32))
    if case == "missing_file":
        return [str(tmp_path / "nope.npy")], "nope.npy", "not found", {}
    if case == "missing_file_h5":
        return [str(tmp_path / "nope.h5") + ":/x"], "nope.h5", "not found", {}
    if case == "missing_dataset":
        write_h5(tmp_path / "slices.h5", a=good, b=good)
        return [str(tmp_path / "slices.h5") + ":/obj"], "slices.h5", "datasets present: /a, /b", {}
    if case == "ambiguous_h5":
        write_h5(tmp_path / "two.h5", a=good, b=good)
        return [str(tmp_path / "two.h5")], "two.h5", "/a, /b", {}
    if case == "group_not_dataset":
        write_h5(tmp_path / "grp.h5", **{"g/a": good})
        return [str(tmp_path / "grp.h5") + ":/g"], "grp.h5", "is a group", {}
    if case == "not_hdf5":
        (tmp_path / "fake.h5").write_bytes(b"not an hdf5 file")
        return [str(tmp_path / "fake.h5")], "fake.h5", "cannot be opened as HDF5", {}
    if case == "four_d":
        np.save(tmp_path / "four.npy", rng.normal(size=(2, 2, 32, 32)))
        return [str(tmp_path / "four.npy")], "four.npy", "4-D", {}
    if case == "one_d":
        np.save(tmp_path / "one.npy", rng.normal(size=(64,)))
        return [str(tmp_path / "one.npy")], "one.npy", "1-D", {}
    if case == "shape_mismatch":
        np.save(tmp_path / "first.npy", rng.normal(size=(32, 32)))
        np.save(tmp_path / "second.npy", rng.normal(size=(32, 40)))
        return ([str(tmp_path / "first.npy"), str(tmp_path / "second.npy")], "second.npy",
                "first.npy: (32, 32)", {})
    if case == "single_slice":
        np.save(tmp_path / "lonely.npy", rng.normal(size=(1, 32, 32)))
        return [str(tmp_path / "lonely.npy")], "lonely.npy", "at least 2", {}
    if case == "nan":
        bad = good.copy()
        bad[1, 3, 4] = np.nan
        bad[1, 5, 6] = np.inf
        np.save(tmp_path / "nan.npy", bad)
        return [str(tmp_path / "nan.npy")], "nan.npy", "slice 1 (input 1, 0-based) has 2 NaN or Inf", {}
    if case == "constant":
        bad = good.copy()
        bad[0] = 0.25
        np.save(tmp_path / "flat.npy", bad)
        return [str(tmp_path / "flat.npy")], "flat.npy", "slice 0 (input 0, 0-based) is constant", {}
    if case == "too_small":
        np.save(tmp_path / "small.npy", rng.normal(size=(2, 16, 64)))
        return [str(tmp_path / "small.npy")], "small.npy", "the minimum is 32", {}
    if case == "too_small_custom":
        np.save(tmp_path / "small2.npy", rng.normal(size=(2, 39, 64)))
        return [str(tmp_path / "small2.npy")], "small2.npy", "the minimum is 40", {"min_size": 40}
    if case == "unknown_suffix":
        (tmp_path / "img.png").write_bytes(b"x")
        return [str(tmp_path / "img.png")], "img.png", "unknown file type", {}
    if case == "object_npy":
        np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return [str(tmp_path / "obj.npy")], "obj.npy", "numeric", {}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_file", "missing_file_h5", "missing_dataset", "ambiguous_h5",
                                  "group_not_dataset", "not_hdf5", "four_d", "one_d", "shape_mismatch",
                                  "single_slice", "nan", "constant", "too_small", "too_small_custom",
                                  "unknown_suffix", "object_npy"])
def test_read_images_errors(tmp_path, rng, case):
    sources, file_name, fragment, kwargs = _bad_images(tmp_path, rng, case)
    before = listing(tmp_path)
    with pytest.raises(InputError) as err:
        io.read_images(sources, **kwargs)
    message = str(err.value)
    assert file_name in message, message
    assert fragment in message, message
    assert listing(tmp_path) == before


def test_read_images_shape_mismatch_names_both(tmp_path, rng):
    np.save(tmp_path / "first.npy", rng.normal(size=(32, 32)))
    np.save(tmp_path / "second.npy", rng.normal(size=(32, 40)))
    with pytest.raises(InputError) as err:
        io.read_images([str(tmp_path / "first.npy"), str(tmp_path / "second.npy")])
    assert "first.npy" in str(err.value) and "(32, 32)" in str(err.value)
    assert "second.npy" in str(err.value) and "(32, 40)" in str(err.value)


def test_input_error_is_value_error():
    assert issubclass(InputError, ValueError)


# ----------------------------------------------------------------------------------------------------------------------
# atomic writing
# ----------------------------------------------------------------------------------------------------------------------

def test_check_output_path(tmp_path):
    out = tmp_path / "OUT.h5"
    assert io.check_output_path(str(out)) == out
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError) as err:
        io.check_output_path(str(out))
    assert str(err.value) == f"{out} exists; pass --overwrite to replace it or choose another -o"
    assert io.check_output_path(out, overwrite=True) == out
    with pytest.raises(InputError) as err:
        io.check_output_path(tmp_path / "missing_dir" / "x.h5")
    assert "missing_dir" in str(err.value) and "does not exist" in str(err.value)
    with pytest.raises(InputError, match="is a directory"):
        io.check_output_path(tmp_path, overwrite=True)
    assert out.read_bytes() == b"old"


def test_atomic_write_success_and_temp_name(tmp_path):
    out = tmp_path / "OUT.h5"
    with io.atomic_write(out) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".h5"
        assert tmp.name.startswith(f".OUT.h5.tmp-{os.getpid()}-")
        assert not out.exists()
        tmp.write_bytes(b"new data")
    assert out.read_bytes() == b"new data"
    assert listing(tmp_path) == ["OUT.h5"]


def test_atomic_write_exception_leaves_nothing(tmp_path):
    out = tmp_path / "OUT.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_write(out) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_atomic_write_exception_keeps_existing_file(tmp_path):
    out = tmp_path / "OUT.h5"
    out.write_bytes(b"old")
    with pytest.raises(KeyError):
        with io.atomic_write(out, overwrite=True) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyError("x")
    assert out.read_bytes() == b"old" and listing(tmp_path) == ["OUT.h5"]


def test_atomic_write_refuses_existing(tmp_path):
    out = tmp_path / "OUT.h5"
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with io.atomic_write(out):
            raise AssertionError("body must not run")  # pragma: no cover
    assert out.read_bytes() == b"old" and listing(tmp_path) == ["OUT.h5"]
    with io.atomic_write(out, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and listing(tmp_path) == ["OUT.h5"]


def test_atomic_write_rechecks_on_commit(tmp_path):
    out = tmp_path / "OUT.h5"
    with pytest.raises(FileExistsError):
        with io.atomic_write(out) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"someone else's")  # appears while we compute
    assert out.read_bytes() == b"someone else's" and listing(tmp_path) == ["OUT.h5"]


def test_tiff_round_trip(tmp_path, rng):
    stack = rng.normal(size=(3, 20, 24)).astype(np.float32)
    image = rng.normal(size=(20, 24))
    io.write_tiff(tmp_path / "s.tiff", stack)
    io.write_tiff(tmp_path / "i.tif", image)
    np.testing.assert_array_equal(io.read_tiff(tmp_path / "s.tiff"), stack)
    back = io.read_tiff(tmp_path / "i.tif")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image.astype(np.float32))
    with tifffile.TiffFile(tmp_path / "s.tiff") as tif:
        assert len(tif.pages) == 3
    with pytest.raises(FileExistsError):
        io.write_tiff(tmp_path / "s.tiff", image)
    np.testing.assert_array_equal(io.read_tiff(tmp_path / "s.tiff"), stack)
    with pytest.raises(InputError, match="c.tiff"):
        io.write_tiff(tmp_path / "c.tiff", image * 1j)
    with pytest.raises(InputError, match="4d.tiff"):
        io.write_tiff(tmp_path / "4d.tiff", np.zeros((2, 2, 4, 4)))
    assert listing(tmp_path) == ["i.tif", "s.tiff"]
    with pytest.raises(InputError, match="absent.tiff"):
        io.read_tiff(tmp_path / "absent.tiff")


# ----------------------------------------------------------------------------------------------------------------------
# separation results
# ----------------------------------------------------------------------------------------------------------------------

def _separation_result(rng, full=True):
    result = {
        "inputs": rng.normal(size=(2, 16, 18)),
        "separated": rng.normal(size=(2, 16, 18)).astype(np.float32),
        "alpha": np.array([0.4, 0.6]),
        "filters": {"f_1_2": rng.normal(size=(7, 7)).astype(np.float32), "f_2_1": rng.normal(size=(123,))},
        "loss": np.column_stack([np.arange(5.0), rng.random((5, 4))]),
        "config": {"epochs": 5, "gamma_excl": 0.5, "filter": "kernel", "sizes": [1, 2], "nested": {"a": None}},
        "version": "0.1.0",
        "seed": 7,
    }
    if full:
        result.update({
            "mean": rng.normal(size=(2, 16, 18)), "std": rng.random((2, 16, 18)),
            "monitor": rng.random((5, 3)), "monitor_columns": ["epoch", "gsr_1", "gsr_2"],
            "extra": {"psnr": np.arange(5, dtype=np.float32), "mask": rng.random((16, 18)) > 0.5},
        })
    return result


@pytest.mark.parametrize("full", [True, False])
def test_separation_result_round_trip(tmp_path, rng, full):
    result = _separation_result(rng, full)
    io.write_separation_result(tmp_path / "sep.h5", result)
    back = io.read_separation_result(tmp_path / "sep.h5")
    for key in ("inputs", "separated", "alpha", "loss", "mean", "std", "monitor"):
        if key in result:
            np.testing.assert_array_equal(back[key], result[key])
            assert back[key].dtype == np.asarray(result[key]).dtype
        else:
            assert key not in back
    assert back["filters"].keys() == result["filters"].keys()
    for name, value in result["filters"].items():
        np.testing.assert_array_equal(back["filters"][name], value)
        assert back["filters"][name].dtype == value.dtype
    assert back["loss_columns"] == list(io.LOSS_COLUMNS)
    assert back["config"] == result["config"]
    assert back["version"] == "0.1.0" and back["seed"] == 7
    if full:
        assert back["monitor_columns"] == result["monitor_columns"]
        assert back["extra"].keys() == {"psnr", "mask"}
        np.testing.assert_array_equal(back["extra"]["psnr"], result["extra"]["psnr"])
        np.testing.assert_array_equal(back["extra"]["mask"], result["extra"]["mask"])
    else:
        assert back["extra"] == {}
    with h5py.File(tmp_path / "sep.h5", "r") as h5:
        assert json.loads(h5.attrs["config"]) == result["config"]
        assert list(h5["loss"].attrs["columns"]) == list(io.LOSS_COLUMNS)
    assert listing(tmp_path) == ["sep.h5"]


def test_separation_result_refuses_overwrite_and_bad_input(tmp_path, rng):
    out = tmp_path / "sep.h5"
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        io.write_separation_result(out, _separation_result(rng))
    assert out.read_bytes() == b"old"
    io.write_separation_result(out, _separation_result(rng, full=False), overwrite=True)
    assert io.read_separation_result(out)["alpha"].tolist() == [0.4, 0.6]
    bad = _separation_result(rng)
    bad["extra"] = {"inputs": np.zeros(3)}  # clashes with a reserved dataset, detected mid-write
    with pytest.raises(InputError, match="new.h5"):
        io.write_separation_result(tmp_path / "new.h5", bad)
    bad = _separation_result(rng)
    bad["loss"] = bad["loss"][:, :4]
    with pytest.raises(InputError, match="columns"):
        io.write_separation_result(tmp_path / "new.h5", bad)
    bad = _separation_result(rng)
    del bad["alpha"]
    with pytest.raises(InputError, match="alpha"):
        io.write_separation_result(tmp_path / "new.h5", bad)
    assert listing(tmp_path) == ["sep.h5"]


def test_read_separation_result_errors(tmp_path):
    with pytest.raises(InputError, match="none.h5"):
        io.read_separation_result(tmp_path / "none.h5")
    write_h5(tmp_path / "other.h5", data=np.zeros(3))
    with pytest.raises(InputError) as err:
        io.read_separation_result(tmp_path / "other.h5")
    assert "other.h5" in str(err.value) and "inputs" in str(err.value)


# ----------------------------------------------------------------------------------------------------------------------
# diffraction datasets
# ----------------------------------------------------------------------------------------------------------------------

def _dataset(rng, full=True):
    n_pos, det = 6, 16
    kwargs = dict(
        intensities=rng.poisson(5.0, size=(n_pos, det, det)).astype(np.float32),
        energy_ev=8801.0,
        pixel_size_m=6.67e-9,
        positions_px=rng.random((n_pos, 2)) * 20,
        slice_pos_m=np.array([0.0, 1.23e-6]),
    )
    if full:
        kwargs.update(
            free_prop_m=7e-4,  # (7e-4 * 100) / 100 != 7e-4: exactness needs the stored value_m
            probe=(rng.normal(size=(det, det)) + 1j * rng.normal(size=(det, det))).astype(np.complex64),
            object_shape=(40, 44),
            ground_truth_object=np.exp(1j * rng.normal(size=(2, 40, 44))).astype(np.complex64),
            xrf={"Au": rng.random((40, 44)), "Ni": rng.random((40, 44))},
            ground_truth_xrf={"Au": rng.random((40, 44)).astype(np.float32)},
        )
    return DiffractionDataset(**kwargs)


def _assert_same_dataset(a: DiffractionDataset, b: DiffractionDataset):
    for name in ("intensities", "positions_px", "slice_pos_m"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert (a.energy_ev, a.pixel_size_m, a.free_prop_m, a.object_shape) == \
        (b.energy_ev, b.pixel_size_m, b.free_prop_m, b.object_shape)
    for name in ("probe", "ground_truth_object"):
        if getattr(a, name) is None:
            assert getattr(b, name) is None
        else:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert getattr(a, name).dtype == getattr(b, name).dtype
    for name in ("xrf", "ground_truth_xrf"):
        assert getattr(a, name).keys() == getattr(b, name).keys()
        for element in getattr(a, name):
            np.testing.assert_array_equal(getattr(a, name)[element], getattr(b, name)[element])


@pytest.mark.parametrize("full", [True, False])
def test_dataset_round_trip(tmp_path, rng, full):
    ds = _dataset(rng, full)
    io.write_dataset(tmp_path / "data.h5", ds)
    back = io.read_dataset(tmp_path / "data.h5")
    _assert_same_dataset(ds, back)
    assert back.source == str(tmp_path / "data.h5")
    with h5py.File(tmp_path / "data.h5", "r") as h5:
        assert h5["exchange/data"].dtype == np.float32 and h5["exchange/data"].attrs["kind"] == "intensity"
        assert math.isclose(float(h5["metadata/psize_cm"][()]), 6.67e-7, rel_tol=1e-12)
        np.testing.assert_allclose(h5["metadata/slice_pos_cm"][()], [0.0, 1.23e-4], rtol=1e-12)
        if full:
            assert math.isclose(float(h5["metadata/free_prop_cm"][()]), 0.07, rel_tol=1e-12)
            assert (7e-4 * 100.0) / 100.0 != 7e-4 and back.free_prop_m == 7e-4
            assert h5["metadata/obj_shape_px"][()].tolist() == [40, 44]
            assert set(h5["ground_truth/xrf"]) == {"Au"} and set(h5["xrf"]) == {"Au", "Ni"}
        else:
            assert h5["metadata/free_prop_cm"][()] == b"inf"
            assert math.isinf(back.free_prop_m)
    with pytest.raises(FileExistsError):
        io.write_dataset(tmp_path / "data.h5", ds)
    assert listing(tmp_path) == ["data.h5"]


def _adorym_file(path, rng, data, **attrs):
    with h5py.File(path, "w") as h5:
        dset = h5.create_dataset("exchange/data", data=data)
        for key, value in attrs.items():
            dset.attrs[key] = value
        h5.create_dataset("metadata/energy_ev", data=5000.0)
        h5.create_dataset("metadata/psize_cm", data=1e-7)
        h5.create_dataset("metadata/probe_pos_px", data=rng.integers(0, 30, size=(data.shape[-3], 2)))
    return path


def test_read_dataset_adorym_4d_magnitude(tmp_path, rng):
    magnitude = rng.random((1, 5, 8, 8)).astype(np.float32)
    path = _adorym_file(tmp_path / "adorym.h5", rng, magnitude, kind="magnitude")
    ds = io.read_dataset(path)
    assert ds.intensities.shape == (5, 8, 8) and ds.intensities.dtype == np.float32
    np.testing.assert_array_equal(ds.intensities, np.square(magnitude[0]))
    assert ds.energy_ev == 5000.0 and math.isclose(ds.pixel_size_m, 1e-9, rel_tol=1e-15)
    assert ds.positions_px.dtype == np.float64 and ds.positions_px.shape == (5, 2)
    assert ds.slice_pos_m.shape == (0,) and math.isinf(ds.free_prop_m) and ds.probe is None
    # no 'kind' attribute on the data, but metadata says magnitude
    path2 = _adorym_file(tmp_path / "adorym2.h5", rng, magnitude)
    with h5py.File(path2, "a") as h5:
        h5.create_dataset("metadata/raw_data_type", data="magnitude")
    np.testing.assert_array_equal(io.read_dataset(path2).intensities, np.square(magnitude[0]))
    # no mark at all: intensities as stored
    path3 = _adorym_file(tmp_path / "adorym3.h5", rng, magnitude)
    np.testing.assert_array_equal(io.read_dataset(path3).intensities, magnitude[0])


def _corrupt(path, case, rng):
    with h5py.File(path, "a") as h5:
        if case == "no_data":
            del h5["exchange/data"]
        elif case in ("metadata/energy_ev", "metadata/psize_cm", "metadata/probe_pos_px"):
            del h5[case]
        elif case in ("nan", "inf", "negative"):
            data = h5["exchange/data"][()]
            data[2, 3, 4] = {"nan": np.nan, "inf": np.inf, "negative": -1.0}[case]
            h5["exchange/data"][...] = data
        elif case == "positions_shape":
            del h5["metadata/probe_pos_px"]
            h5.create_dataset("metadata/probe_pos_px", data=np.zeros((6, 3)))
        elif case == "positions_count":
            del h5["metadata/probe_pos_px"]
            h5.create_dataset("metadata/probe_pos_px", data=np.zeros((5, 2)))
        elif case == "probe_shape":
            del h5["metadata/probe"]
            h5.create_dataset("metadata/probe", data=np.ones((8, 16), np.complex64))
        elif case == "kind":
            h5["exchange/data"].attrs["kind"] = "amplitude^3"
        elif case == "multi_angle":
            data = h5["exchange/data"][()]
            del h5["exchange/data"]
            h5.create_dataset("exchange/data", data=np.stack([data, data]))
        else:
            raise AssertionError(case)


@pytest.mark.parametrize("case, fragment", [
    ("no_data", "'exchange/data' not found"),
    ("metadata/energy_ev", "'metadata/energy_ev' is missing"),
    ("metadata/psize_cm", "'metadata/psize_cm' is missing"),
    ("metadata/probe_pos_px", "'metadata/probe_pos_px' is missing"),
    ("nan", "1 NaN or Inf"),
    ("inf", "1 NaN or Inf"),
    ("negative", "1 negative"),
    ("positions_shape", "expected (n_pos, 2)"),
    ("positions_count", "5 positions but exchange/data has 6"),
    ("probe_shape", "probe has shape (8, 16) but the detector is (16, 16)"),
    ("kind", "must be 'intensity' or 'magnitude'"),
    ("multi_angle", "one rotation angle"),
])
def test_read_dataset_errors(tmp_path, rng, case, fragment):
    path = tmp_path / "bad_data.h5"
    io.write_dataset(path, _dataset(rng))
    _corrupt(path, case, rng)
    with pytest.raises(InputError) as err:
        io.read_dataset(path)
    assert "bad_data.h5" in str(err.value) and fragment in str(err.value), str(err.value)
    assert listing(tmp_path) == ["bad_data.h5"]


def test_read_dataset_missing_file_and_negative_magnitude(tmp_path, rng):
    with pytest.raises(InputError, match="absent.h5.*not found"):
        io.read_dataset(tmp_path / "absent.h5")
    magnitude = rng.random((4, 8, 8)).astype(np.float32) - 0.5
    path = _adorym_file(tmp_path / "negmag.h5", rng, magnitude, kind="magnitude")
    with pytest.raises(InputError, match="negmag.h5.*negative"):
        io.read_dataset(path)


def test_dataset_validation_in_memory(tmp_path, rng):
    ds = _dataset(rng)
    with pytest.raises(InputError, match="probe has shape"):
        DiffractionDataset(ds.intensities, 1000.0, 1e-8, ds.positions_px, [0.0], probe=np.ones((3, 3)))
    with pytest.raises(InputError, match="energy_ev"):
        DiffractionDataset(ds.intensities, -1.0, 1e-8, ds.positions_px, [0.0])
    with pytest.raises(InputError, match="ground_truth/object has 2 slices"):
        DiffractionDataset(ds.intensities, 1000.0, 1e-8, ds.positions_px, [0.0],
                           ground_truth_object=ds.ground_truth_object)
    ds.intensities[0, 0, 0] = -5  # corrupted after construction: write_dataset validates again
    with pytest.raises(InputError, match="negative"):
        io.write_dataset(tmp_path / "x.h5", ds)
    assert listing(tmp_path) == []


# ----------------------------------------------------------------------------------------------------------------------
# reconstruction results
# ----------------------------------------------------------------------------------------------------------------------

def _reconstruction(rng):
    return {
        "object": (rng.normal(size=(2, 24, 20)) * np.exp(1j * rng.normal(size=(2, 24, 20)))).astype(np.complex64),
        "probe": (rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))).astype(np.complex64),
        "positions": rng.random((9, 2)) * 10,
        "loss": rng.random(12),
        "extra": {"probe_history": rng.random((3, 8, 8))},
        "config": {"epochs": 12, "lr": 1e-3, "slice_spacing_m": 1.5e-6},
        "version": "0.1.0",
        "seed": 3,
        "n_ranks": 2,
    }


def test_reconstruction_round_trip(tmp_path, rng):
    result = _reconstruction(rng)
    io.write_reconstruction(tmp_path / "rec.h5", result)
    assert listing(tmp_path) == ["rec.h5", "rec_magnitude.tiff", "rec_phase.tiff"]
    back = io.read_reconstruction(tmp_path / "rec.h5")
    for key in ("object", "probe", "positions", "loss"):
        np.testing.assert_array_equal(back[key], result[key])
        assert back[key].dtype == result[key].dtype
    np.testing.assert_array_equal(back["extra"]["probe_history"], result["extra"]["probe_history"])
    assert back["config"] == result["config"]
    assert (back["version"], back["seed"], back["n_ranks"]) == ("0.1.0", 3, 2)
    np.testing.assert_array_equal(io.read_tiff(tmp_path / "rec_phase.tiff"), np.angle(result["object"]))
    np.testing.assert_array_equal(io.read_tiff(tmp_path / "rec_magnitude.tiff"), np.abs(result["object"]))
    guess = io.read_object_guess(str(tmp_path / "rec.h5"), n_slices=2)
    np.testing.assert_array_equal(guess, result["object"])


@pytest.mark.parametrize("existing", ["rec.h5", "rec_phase.tiff", "rec_magnitude.tiff"])
def test_reconstruction_refuses_any_existing(tmp_path, rng, existing):
    (tmp_path / existing).write_bytes(b"old")
    with pytest.raises(FileExistsError) as err:
        io.write_reconstruction(tmp_path / "rec.h5", _reconstruction(rng))
    assert existing in str(err.value)
    assert listing(tmp_path) == [existing] and (tmp_path / existing).read_bytes() == b"old"
    io.write_reconstruction(tmp_path / "rec.h5", _reconstruction(rng), overwrite=True)
    assert listing(tmp_path) == ["rec.h5", "rec_magnitude.tiff", "rec_phase.tiff"]


def test_reconstruction_bad_input_writes_nothing(tmp_path, rng):
    result = _reconstruction(rng)
    result["object"] = np.abs(result["object"])
    with pytest.raises(InputError, match="rec.h5.*complex"):
        io.write_reconstruction(tmp_path / "rec.h5", result)
    result = _reconstruction(rng)
    result["extra"] = {"probe": np.zeros(2)}
    with pytest.raises(InputError, match="rec.h5"):
        io.write_reconstruction(tmp_path / "rec.h5", result)
    assert listing(tmp_path) == []
    with pytest.raises(InputError, match="nothing.h5"):
        io.read_reconstruction(tmp_path / "nothing.h5")


def test_read_object_guess(tmp_path, rng):
    obj = np.exp(1j * rng.normal(size=(3, 16, 16)))
    path = write_h5(tmp_path / "guess.h5", init=obj, other=np.zeros(3))
    np.testing.assert_array_equal(io.read_object_guess(f"{path}:/init", n_slices=3), obj)
    np.save(tmp_path / "guess.npy", obj[0])
    assert io.read_object_guess(str(tmp_path / "guess.npy"), n_slices=1).shape == (1, 16, 16)
    with pytest.raises(InputError) as err:
        io.read_object_guess(f"{path}:/init", n_slices=2)
    assert "guess.h5" in str(err.value) and "3 slice(s)" in str(err.value) and "2" in str(err.value)
    with pytest.raises(InputError, match="guess.h5.*/init, /other"):
        io.read_object_guess(str(path))
    with pytest.raises(InputError, match="guess.h5.*real"):
        io.read_object_guess(f"{path}:/other")
    with pytest.raises(InputError, match="gone.h5.*not found"):
        io.read_object_guess(str(tmp_path / "gone.h5"))


# ----------------------------------------------------------------------------------------------------------------------
# configuration files
# ----------------------------------------------------------------------------------------------------------------------

def test_config_json_round_trip(tmp_path):
    config = {"separation": {"epochs": 10, "gamma_excl": 0.5, "filter": "kernel"}, "seed": np.int64(4),
              "sizes": np.array([1, 2])}
    io.save_config_json(tmp_path / "c.json", config)
    text = (tmp_path / "c.json").read_text()
    assert text.startswith("{\n  ")
    assert io.load_config(tmp_path / "c.json") == {"separation": {"epochs": 10, "gamma_excl": 0.5,
                                                                  "filter": "kernel"}, "seed": 4, "sizes": [1, 2]}
    with pytest.raises(FileExistsError):
        io.save_config_json(tmp_path / "c.json", {})
    assert (tmp_path / "c.json").read_text() == text
    io.save_config_json(tmp_path / "c.json", {"a": 1}, overwrite=True)
    assert io.load_config(tmp_path / "c.json") == {"a": 1}
    assert listing(tmp_path) == ["c.json"]


def test_config_toml_and_errors(tmp_path):
    (tmp_path / "c.toml").write_text('seed = 3\n[separation]\nepochs = 20\nfilter = "dip"\n')
    assert io.load_config(tmp_path / "c.toml") == {"seed": 3, "separation": {"epochs": 20, "filter": "dip"}}
    (tmp_path / "bad.json").write_text('{"a": 1,}')
    with pytest.raises(InputError, match="bad.json.*line 1"):
        io.load_config(tmp_path / "bad.json")
    (tmp_path / "bad.toml").write_text("a = = 1")
    with pytest.raises(InputError, match="bad.toml.*invalid TOML"):
        io.load_config(tmp_path / "bad.toml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="list.json.*top level"):
        io.load_config(tmp_path / "list.json")
    with pytest.raises(InputError, match="c.yaml.*unknown config type"):
        io.load_config(tmp_path / "c.yaml")
    with pytest.raises(InputError, match="missing.json.*not found"):
        io.load_config(tmp_path / "missing.json")
    with pytest.raises(InputError, match="c2.json"):
        io.save_config_json(tmp_path / "c2.json", {"obj": object()})
    assert "c2.json" not in listing(tmp_path)
