"""Subcommand ``ptycho-ddip convert`` (registered in :data:`ptycho_ddip.cli.COMMANDS`): a diffraction dataset from
the Adorym layout to CXI 1.6 / NXcxi_ptycho or back (:mod:`ptycho_ddip.io.cxi`), the direction set by the output's
suffix (``.cxi``: CXI; anything else: the Adorym layout)."""
from __future__ import annotations

import argparse
import os
from typing import Callable

from .cli import command


@command("convert", "convert a diffraction dataset between the Adorym layout (.h5) and CXI (.cxi)")
def _add_convert(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("data", metavar="IN", help="diffraction dataset: Adorym layout (.h5) or CXI (.cxi)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="OUT.cxi writes CXI, any other suffix (.h5) the Adorym layout")
    p.add_argument("--detector-pixel-size-m", type=float, metavar="DP",
                   help="CXI output: detector pixel width, m (default 75e-6); the distance is set so that "
                        "lambda z / (N dp) is the dataset's pixel size")
    sp = p.add_mutually_exclusive_group()
    sp.add_argument("--slice-spacing-m", type=float, metavar="D",
                    help="slice positions 0, D, 2D, ... (--n-slices of them, default 2) for a dataset that has none "
                         "(CXI files record none)")
    sp.add_argument("--slice-pos-m", type=lambda s: [float(v) for v in s.split(",") if v.strip()],
                    metavar="Z0,Z1,...", help="slice positions, m")
    p.add_argument("--n-slices", type=int, help="number of slices for --slice-spacing-m (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return _run_convert


def slice_positions_from_args(args: argparse.Namespace, default_n: int = 2):
    """Slice positions (m) from ``--slice-pos-m`` or ``--slice-spacing-m`` / ``--n-slices`` (default ``default_n``
    slices), or None when neither is given."""
    import numpy as np

    from .io import InputError

    if getattr(args, "slice_pos_m", None):
        return [float(v) for v in args.slice_pos_m]
    if getattr(args, "slice_spacing_m", None) is None:
        return None
    n = args.n_slices if getattr(args, "n_slices", None) is not None else default_n
    if n < 1 or not (args.slice_spacing_m > 0):
        raise InputError(f"--slice-spacing-m {args.slice_spacing_m:g} --n-slices {n}: give a positive spacing (m) "
                         f"and at least one slice")
    return [float(v) for v in args.slice_spacing_m * np.arange(n)]


def _run_convert(args: argparse.Namespace) -> int:
    import dataclasses

    from .io import check_output_path, read_dataset, write_dataset
    from .io.cxi import DEFAULT_DETECTOR_PIXEL_M, write_cxi

    to_cxi = os.path.splitext(args.output)[1].lower() == ".cxi"
    check_output_path(args.output, args.overwrite)
    ds = read_dataset(args.data)
    positions = slice_positions_from_args(args)
    if positions is not None:
        ds = dataclasses.replace(ds, slice_pos_m=positions)
    if to_cxi:
        write_cxi(args.output, ds, overwrite=args.overwrite,
                  detector_pixel_size_m=args.detector_pixel_size_m or DEFAULT_DETECTOR_PIXEL_M)
    else:
        write_dataset(args.output, ds, overwrite=args.overwrite)
    slices = f"{ds.slice_pos_m.size} slice position(s)" if ds.slice_pos_m.size else "no slice positions"
    print(f"wrote {args.output} ({'CXI' if to_cxi else 'Adorym layout'}): {ds.n_positions} patterns of "
          f"{ds.detector_shape[0]}x{ds.detector_shape[1]}, pixel {ds.pixel_size_m:.4g} m, {slices}")
    return 0
