"""Command line: ``ptycho-ddip simulate|reconstruct|separate|pipeline|info``.

The CLI only parses arguments and calls the public API; errors on bad input are printed as one line naming the file
and the fix, with exit status 2 (no traceback), and nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Optional, Sequence

from ._version import __version__

# name -> (add_arguments(parser), run(args) -> int, help)
COMMANDS: dict = {}


def command(name: str, help: str) -> Callable:
    """Register ``add_arguments`` for a subcommand; the decorated function returns the runner."""

    def deco(add_arguments: Callable) -> Callable:
        COMMANDS[name] = (add_arguments, help)
        return add_arguments

    return deco


def _csv(kind: Callable) -> Callable:
    def parse(s: str) -> list:
        return [kind(v) for v in s.split(",") if v.strip()]

    return parse


# ----------------------------------------------------------------------------------------------- separate

def _gamma_arg(s: str):
    if s.strip().lower() == "auto":
        return "auto"
    try:
        values = [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, a comma-separated list or 'auto', got {s!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"gamma_excl values must be >= 0, got {s!r}")
    return values


def _filters_arg(s: str) -> list:
    values = [v.strip() for v in s.split(",") if v.strip()]
    bad = [v for v in values if v not in ("kernel", "dip")]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"filters must be kernel and/or dip, got {s!r}")
    return values


#: flags of older versions -> what replaced them (hidden; they stop with this message)
_OLD_SEPARATE_FLAGS = {
    "--schedule": "--schedule was replaced by --method (balanced -> estimate, paper -> paper)",
    "--mixing": "--mixing was replaced by --method (estimate -> estimate, learn -> paper)",
    "--mixing-fit": "--mixing-fit was removed: the estimated mixing's fit always fits each slice to its own unmixed "
                    "slice (the old 'unmixed')",
    "--exclusion-input": "--exclusion-input was removed: set learned.exclusion_input in a --config file "
                         "(with --method paper)",
    "--select-estimate": "--select-estimate was removed: set learned.select_estimate in a --config file "
                         "(with --method paper)",
    **{flag: f"{flag} was removed: the option failed validation (docs/method.md)"
       for flag in ("--gamma-ramp", "--exclusion-coarse", "--kernel-size", "--band-constraint", "--filter-blur")},
}


class _OldFlag(argparse.Action):
    """A flag of an older version: stops parsing with the message of :data:`_OLD_SEPARATE_FLAGS`."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(_OLD_SEPARATE_FLAGS[option_string])


@command("separate", "separate crosstalk-contaminated slice images with the modified DDIP")
def _add_separate(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="slices: FILE.h5:/dataset, a multi-page TIFF (Adorym's (y, x, z) TIFFs are detected), "
                        "NPY, or one file per slice; or a reconstruction of PtyRAD, fold_slice, ptychodus/pty-chi, "
                        "PtyPy or Adorym, recognised by its layout (its scanned box, the phase unless --part)")
    p.add_argument("-o", "--output", required=True, help="result HDF5 (TIFF and PNG are written beside it)")
    p.add_argument("--part", choices=("phase", "magnitude", "real", "imag"),
                   help="which part of complex input to separate")
    p.add_argument("--truth", nargs="+", metavar="TRUTH", help="true slices: record the ghost-to-signal trajectory")
    p.add_argument("--method", choices=("estimate", "paper"),
                   help="estimate (default): estimate the mixing first as isotropic linear filters and fit the image "
                        "DIPs with it held fixed, so the ghost cannot come back; paper: the paper's learnable mixing "
                        "(weight DIP and --filters), its published recipe")
    p.add_argument("--mixing-sigmas", type=_csv(float), metavar="S1,S2,...",
                   help="--method estimate: widths (px) of the Gaussian blurs the estimated transfer functions are "
                        "made of (default 0.5,1,1.5,2,3,4,6)")
    p.add_argument("--mixing-iters", type=int, metavar="N",
                   help="--method estimate: iterations of the mixing estimate (default 800)")
    p.add_argument("--mixing-blur", type=float, metavar="PX",
                   help="--method estimate: Gaussian blur (px) of the inputs for the mixing estimate only; about 1.5 "
                        "for noisy data (default 0)")
    p.add_argument("--filters", type=_filters_arg, metavar="kernel|dip[,...]",
                   help="--method paper: ghost filters, 7x7 kernels (default) or shallow DIPs; a list (kernel,dip) "
                        "runs a sweep")
    p.add_argument("--ghost-kinds", type=_csv(str), metavar="K1,K2",
                   help="ghost band on each slice, e.g. lowpass,highpass (default) or highpass,lowpass")
    p.add_argument("--gamma-excl", type=_gamma_arg, metavar="G|G1,G2,...|auto",
                   help="exclusion-loss weight (default 0 with the estimated mixing; with --method paper 0.5 kernels / "
                        "0.1 DIPs); a list runs "
                        "a sweep (one result per setting, a comparison figure and a metrics table); 'auto' (--method "
                        "paper only) fits every candidate (kernels 0.1-1, DIPs 0.02-0.4) and keeps the one with the "
                        "smallest truth-free crosstalk estimate")
    p.add_argument("--epochs", type=int,
                   help="fitting epochs (default 2000); with the estimated mixing, 0 returns the unmixed slices "
                        "(seconds, no network prior)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 0.001)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--ensemble", type=int, help="K members with seeds seed..seed+K-1: mean and per-pixel std")
    p.add_argument("--member-batch", type=int, metavar="B",
                   help="ensemble members fitted together in one batched network (default: all on CUDA, 1 on CPU)")
    p.add_argument("--select", choices=("final", "crosstalk", "loss"),
                   help="iterate returned: loss (default with the estimated mixing), each slice's iterate closest to "
                        "its unmixed slice; final (default with --method paper), the last one; crosstalk (--method "
                        "paper), for each slice receiving a high-pass ghost the kept one (every 50 epochs from 100) "
                        "scored cleanest by truth-free crosstalk estimates")
    p.add_argument("--seed-for", choices=("ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "npy"),
                   help="write the separated slices back into the input reconstruction's object (separated part inside "
                        "the scanned box, the rest unchanged) as the initial object that tool loads: OUT_seed_TOOL.ext "
                        "(docs/peers.md)")
    p.add_argument("--snapshot-every", type=int, metavar="K",
                   help="keep the separated slices every K epochs: saved in OUT.h5 (snapshots, snapshot_epochs) "
                        "and drawn in OUT_snapshots.png, to see whether a ghost comes back along the fit")
    add_run_flags(p, "separation")
    for flag in _OLD_SEPARATE_FLAGS:
        p.add_argument(flag, action=_OldFlag)
    return _run_separate


def describe_alpha(alpha) -> str:
    """The weights of a separation in words: each slice's own-signal share, and for two slices the paper's alpha
    (alpha_1 = slice 1's own share, alpha_2 = slice 2's ghost share, Du et al. 2021 eq. 2)."""
    import numpy as np

    a = np.atleast_2d(np.asarray(alpha, dtype=float)).mean(0)
    own = [a[0], 1.0 - a[1]] if a.size == 2 else list(a)
    text = "own-signal share per slice = " + json.dumps([round(float(v), 4) for v in own])
    if a.size == 2:
        text += f" (the paper's alpha_1, alpha_2 = {a[0]:.4f}, {a[1]:.4f})"
    return text


def add_run_flags(p: argparse.ArgumentParser, what: str) -> None:
    """Flags every long-running command shares: threads, checkpoint/resume, config file, overwrite, progress."""
    p.add_argument("--threads", type=int, help="CPU threads per rank (default: usable CPUs / ranks on the node)")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint (OUT.h5.ckpt) every K epochs")
    p.add_argument("--resume", action="store_true", help="continue from OUT.h5.ckpt")
    p.add_argument("--config", help=f"JSON/TOML file of {what} options (command-line flags win)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true",
                   help="plain progress lines (about every 10%% of the epochs or 60 s) instead of a progress bar, "
                        "for log files; they are the default when stderr is not a terminal")


def separation_options_from_args(args: argparse.Namespace, base: Optional[dict] = None):
    """:class:`SeparationOptions` from a config table ``base`` (nested tables for the option groups) and the flags,
    which win; the flags of the estimate and of the learnable mixing go into their groups."""
    from .separation.options import SeparationOptions

    d = dict(base or {})
    filters = args.filters[0] if isinstance(args.filters, list) else args.filters
    gamma = args.gamma_excl[0] if isinstance(args.gamma_excl, list) else args.gamma_excl
    gamma = None if gamma == "auto" else gamma
    flags = {"method": args.method, "ghost_kinds": args.ghost_kinds, "gamma_excl": gamma,
             "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
             "device": args.device, "threads": args.threads, "ensemble": args.ensemble,
             "checkpoint_every": args.checkpoint_every, "member_batch": args.member_batch,
             "snapshot_every": args.snapshot_every, "select": args.select}
    d.update({k: v for k, v in flags.items() if v is not None})
    groups = {"estimate": {"sigmas_px": args.mixing_sigmas, "iters": args.mixing_iters, "blur_px": args.mixing_blur},
              "learned": {"filters": filters}}
    method = d.get("method", "estimate")
    for name, values in groups.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values and (name == "estimate") != (method == "estimate"):
            raise ValueError("--filters sets the ghost filters of the learnable mixing: add --method paper"
                             if name == "learned" else
                             "--mixing-sigmas/--mixing-iters/--mixing-blur set the mixing estimate of --method "
                             "estimate, not of --method paper")
        if values:
            d[name] = {**(d.get(name) or {}), **values}
    if args.resume:
        d["resume"] = True
    if (d.get("checkpoint_every") or d.get("resume")) and not d.get("checkpoint_path"):
        d["checkpoint_path"] = os.fspath(args.output) + ".ckpt"  # as documented: OUT.h5.ckpt
    return SeparationOptions.from_dict(d)


def _run_separate(args: argparse.Namespace) -> int:
    """Serial, or under ``mpiexec -n R``: ensemble member k is fitted on rank k % R and rank 0 gathers the members,
    computes mean and std and writes every output."""
    from .io import InputError, check_output_path, load_config, read_images
    from .parallel import get_comm
    from .progress import cli_progress
    from .runtime import resolve_device
    from .separation_files import output_paths, separate_files

    comm = get_comm()
    with comm.abort_on_error("ptycho-ddip separate: error: "):
        def options():
            base = load_config(args.config) if args.config else {}
            base = base.get("separation", base)
            if not isinstance(base, dict):
                raise InputError(f"{args.config}: 'separation' must be a table of options, got {type(base).__name__}")
            try:
                opts = separation_options_from_args(args, base)
            except ValueError as exc:
                where = f"{args.config} (or the command line)" if args.config else "command line"
                raise InputError(f"{where}: {exc}") from None
            resolve_device(opts.device)  # a missing CUDA is an error now, not after the inputs are read
            return opts

        opts = comm.agree(options)
        from .io.peers import check_seed, default_part, write_seed  # peers' reconstructions, seeds for them

        if args.seed_for:  # refused now, not after the fit
            comm.agree(check_seed, args.seed_for, args.inputs, args.output, args.overwrite)
        part = args.part or default_part(args.inputs)
        gammas = args.gamma_excl if isinstance(args.gamma_excl, list) else None
        filters = args.filters if isinstance(args.filters, list) else [opts.filters or "estimate"]
        if args.gamma_excl == "auto":
            from .separation.sweep import auto_gammas
            from .separation_files import auto_gamma_files

            if len(filters) > 1:
                raise ValueError("--gamma-excl auto chooses gamma for one filter type; give one --filters")
            res = auto_gamma_files(args.inputs, args.output, opts, auto_gammas(opts), part=args.part,
                                   truth_sources=args.truth, overwrite=args.overwrite,
                                   progress=comm.is_root and cli_progress(args.no_progress), comm=comm)
            if res is not None:
                print(f"wrote {args.output}; gamma_excl = {res.config['gamma_excl']:g}; {describe_alpha(res.alpha)}")
                if args.seed_for:
                    print(write_seed(args.seed_for, args.inputs, res.separated, args.output, part, args.overwrite))
            return 0
        if (gammas and len(gammas) > 1) or len(filters) > 1:
            from .separation.sweep import sweep_settings
            from .separation_files import sweep_files, sweep_paths

            if args.seed_for:
                raise InputError("--seed-for writes the seed of one separation; run the chosen setting without a "
                                 "sweep (or use --gamma-excl auto)")

            settings = sweep_settings(gammas or [None], filters)
            rows = sweep_files(args.inputs, args.output, opts, settings, part=args.part, truth_sources=args.truth,
                               overwrite=args.overwrite, progress=comm.is_root and cli_progress(args.no_progress),
                               comm=comm)
            if rows is not None:
                paths = sweep_paths(args.output, settings)
                print(f"wrote {len(settings)} results ({', '.join(paths[st] for st in settings)}), "
                      f"{paths['png']}, {paths['md']}, {paths['json']}")
            return 0
        kwargs: dict = {}
        if comm.size > 1:  # preflight on every rank, so that a bad input stops all ranks with one clean error
            def preflight():
                if comm.is_root:
                    paths = output_paths(args.output)
                    for key in ("h5", "tiff", "png") + (("std_tiff",) if opts.ensemble > 1 else ()):
                        check_output_path(paths[key], args.overwrite)
                read_images(args.inputs, part=args.part)
                if args.truth:
                    read_images(args.truth, part=args.part)

            comm.agree(preflight)
            gather = comm.ensemble_gather(opts.ensemble)
            kwargs = {"members": gather.members, "gather": gather}
        res = separate_files(args.inputs, args.output, opts, part=part, truth_sources=args.truth,
                             overwrite=args.overwrite, progress=comm.is_root and cli_progress(args.no_progress),
                             **kwargs)
        if res is not None:
            print(f"wrote {args.output}; {describe_alpha(res.alpha)}")
            if args.seed_for:
                print(write_seed(args.seed_for, args.inputs, res.separated, args.output, part, args.overwrite))
            if "selected_epochs" in res.config:
                print(f"epochs of the returned slices (select {opts.select}): {res.config['selected_epochs']}")
            if res.monitor is not None:
                last = dict(zip(res.monitor_columns, res.monitor[-1]))
                print("last epoch vs truth: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch"))
    return 0


# ----------------------------------------------------------------------------------------------- info

@command("info", "describe an HDF5 file written or read by ptycho_ddip (datasets, shapes, config), a CXI file or a "
                 "peer's reconstruction")
def _add_info(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("file")
    return _run_info


def _run_info(args: argparse.Namespace) -> int:
    import h5py

    from .io import InputError
    from .io.peers import describe

    found = describe(args.file) if os.path.isfile(args.file) else []  # CXI data, peers' reconstructions
    try:
        fh = h5py.File(args.file, "r")
    except (OSError, FileNotFoundError) as e:
        if found:  # .npz, .mat v5, TIFF pairs
            print(f"{args.file}:\n  " + "\n  ".join(found))
            return 0
        raise InputError(f"{args.file}: cannot open as HDF5 ({e}); check the path") from None
    with fh:
        def show(name, obj):
            if isinstance(obj, h5py.Dataset):
                print(f"  {name:40s} {str(obj.shape):20s} {obj.dtype}")
        print(f"{args.file}:")
        fh.visititems(show)
        for k, v in fh.attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            print(f"  @{k} = {v if len(str(v)) < 400 else str(v)[:400] + '...'}")
    for line in found:
        print(f"  {line}")
    return 0


# ----------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="ptycho-ddip", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ptycho-ddip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_run=add(p))
    return parser


def _load_plugins() -> None:
    """Import the modules that register further subcommands (multislice, pipeline) when they are present."""
    import importlib

    for mod in ("ptycho_ddip.cli_multislice", "ptycho_ddip.cli_pipeline", "ptycho_ddip.cli_convert"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .io import InputError

    args = build_parser().parse_args(argv)
    _one_line_warnings(f"ptycho-ddip {args.command}: warning: ")
    try:
        return int(args._run(args) or 0)
    except (InputError, FileExistsError, ValueError) as e:
        print(f"ptycho-ddip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ptycho-ddip {args.command}: {interrupted_message(args)}", file=sys.stderr)
        return 130


def _one_line_warnings(prefix: str) -> None:
    """Show Python warnings as one line each (``prefix`` + message), without the source line."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}{message}", file=file or sys.stderr)

    warnings.showwarning = show


def interrupted_message(args: argparse.Namespace) -> str:
    """One line after Ctrl-C: where the checkpoints are and how to continue, or how to make a run resumable."""
    import glob

    out = getattr(args, "output", None)
    if out is None:
        return "interrupted"
    if args.command == "pipeline":
        found = sorted(glob.glob(os.path.join(glob.escape(out), "*.ckpt*")))
        if found:
            return (f"interrupted; checkpoints in {out}/ ({', '.join(os.path.basename(f) for f in found)}): rerun "
                    f"the same command to continue")
        return f"interrupted; finished stages are kept in {out}/: rerun the same command to continue"
    found = sorted(glob.glob(glob.escape(os.fspath(out)) + ".ckpt*"))
    if found:
        return f"interrupted; checkpoint at {found[0]}: rerun the same command with --resume to continue"
    if getattr(args, "checkpoint_every", None):
        return "interrupted before the first checkpoint; nothing written"
    return "interrupted; nothing written (add --checkpoint-every K to make a long run resumable)"


if __name__ == "__main__":
    sys.exit(main())
