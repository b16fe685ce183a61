"""Subcommand ``ptycho-ddip pipeline`` (registered in :data:`ptycho_ddip.cli.COMMANDS`): reconstruct -> DDIP ->
reconstruct from the separated slices, with a report; it parses arguments and calls
:func:`ptycho_ddip.pipeline.run_pipeline`.

Options: defaults, then ``--config FILE.json|toml`` (the layout of ``OUTDIR/config.json``: ``part``, ``crop_to_scan``,
``scan_threshold``, ``separation_threshold``, ``checkpoint_every``, ``separation_checkpoint_every`` and the tables
``pass1``, ``separation``, ``pass2``; optionally all under a ``"pipeline"`` table), then the flags, which win.
"""
from __future__ import annotations

import argparse
from typing import Callable

from .cli import command
from .cli_multislice import _xrf_elements, check_device


@command("pipeline", "reconstruct -> DDIP separation -> second reconstruction from the separated slices, with a report")
def _add_pipeline(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("data", metavar="DATA.h5", help="diffraction dataset (Adorym layout, e.g. from `simulate`, or CXI)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output directory: pass1.h5, separation.h5, pass2.h5, PNGs, summary.png, metrics.json, "
                        "config.json")
    p.add_argument("--config", help="JSON/TOML pipeline config (see OUTDIR/config.json of any run); flags win")
    p.add_argument("--force", action="store_true", help="delete the outputs of a previous run in OUTDIR, redo all")
    p.add_argument("--part", choices=("phase", "magnitude"), help="part of the slices to separate (default phase)")
    p.add_argument("--pass2-seed", choices=("totals", "separated", "ghost_removed"),
                   help="seed of pass 2: totals (default; each separated slice with what pass 1 put of it into the "
                        "other slices), the DDIP's clean images, or pass 1 minus the ghost estimate")
    p.add_argument("--epochs-pass1", type=int, help="epochs of the first reconstruction")
    p.add_argument("--epochs-separation", type=int, help="DDIP epochs")
    p.add_argument("--epochs-pass2", type=int, help="epochs of the second reconstruction")
    p.add_argument("--batch-size", type=int, help="global minibatch size of both passes")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), help="learning-rate schedule of both passes")
    p.add_argument("--init", help="start of pass 1: random | constant | xrf | FILE.h5")
    p.add_argument("--xrf-elements", type=_xrf_elements, metavar="EL:SLICE,...",
                   help="element -> 0-based slice for --init xrf, e.g. Ni:1")
    p.add_argument("--slice-spacing-m", type=float, metavar="D",
                   help="slices at 0, D, 2D, ... (pass1.n_slices of them, default 2), m, for both passes; needed for "
                        "CXI data, which record no slice positions")
    p.add_argument("--method", choices=("estimate", "paper"),
                   help="DDIP method: the estimated mixing (default) or the paper's learnable mixing")
    p.add_argument("--filters", choices=("kernel", "dip"), help="DDIP ghost filters of --method paper")
    p.add_argument("--ensemble", type=int, help="DDIP ensemble members (spread over MPI ranks)")
    p.add_argument("--seed", type=int, help="seed of every stage")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device of every stage")
    p.add_argument("--threads", type=int, help="CPU threads per rank")
    p.add_argument("--no-progress", action="store_true",
                   help="plain progress lines (about every 10%% of the epochs or 60 s) instead of progress bars, "
                        "for log files; they are the default when stderr is not a terminal")
    return _run_pipeline


def pipeline_options_from_args(args: argparse.Namespace):
    """:class:`~ptycho_ddip.pipeline.PipelineOptions` from ``--config`` and the flags; errors name the file."""
    from .io import InputError, load_config
    from .pipeline import PipelineOptions

    config = load_config(args.config) if args.config else {}
    config = dict(config.get("pipeline", config))
    stages = {name: dict(config.get(name) or {}) for name in ("pass1", "separation", "pass2")}
    if args.part is not None:
        config["part"] = args.part
    if args.pass2_seed:
        config["pass2_seed"] = args.pass2_seed
    sets = {"pass1": {"epochs": args.epochs_pass1, "batch_size": args.batch_size, "init": args.init,
                      "lr_schedule": args.lr_schedule,
                      "xrf_elements": args.xrf_elements, "seed": args.seed, "device": args.device},
            "separation": {"epochs": args.epochs_separation, "method": args.method, "ensemble": args.ensemble,
                           "seed": args.seed, "device": args.device, "threads": args.threads},
            "pass2": {"epochs": args.epochs_pass2, "batch_size": args.batch_size, "seed": args.seed,
                      "lr_schedule": args.lr_schedule,
                      "device": args.device}}
    if args.slice_spacing_m is not None:  # both passes use the same slices
        from .cli_convert import slice_positions_from_args

        sets["pass1"]["slice_pos_m"] = sets["pass2"]["slice_pos_m"] = slice_positions_from_args(
            args, stages["pass1"].get("n_slices") or 2)
    for name, flags in sets.items():
        stages[name].update({k: v for k, v in flags.items() if v is not None})
    if args.filters is not None:  # the learnable mixing's group
        stages["separation"]["learned"] = {**(stages["separation"].get("learned") or {}), "filters": args.filters}
    config.update(stages)
    where = args.config + " (or the command line)" if args.config else "command line"
    try:
        opts = PipelineOptions.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None
    for name in ("pass1", "separation", "pass2"):
        check_device(getattr(opts, name).device, f"{where}: {name}")
    return opts


def _run_pipeline(args: argparse.Namespace) -> int:
    from .io.cxi import require_slice_positions
    from .parallel import get_comm
    from .pipeline import run_pipeline
    from .progress import cli_progress
    from .runtime import configure_threads

    comm = get_comm()
    with comm.abort_on_error("ptycho-ddip pipeline: error: "):
        opts = comm.agree(pipeline_options_from_args, args)
        comm.agree(require_slice_positions, args.data, opts.pass1.slice_pos_m, opts.pass1.n_slices)  # CXI: none
        configure_threads(args.threads)
        out = run_pipeline(args.data, args.output, opts, force=args.force, progress=cli_progress(args.no_progress),
                           comm=comm, verbose=True)
        if comm.is_root:
            print(f"wrote {args.output}/: pass1.h5, separation.h5, pass2.h5, summary.png, metrics.json, config.json "
                  f"(ran: {', '.join(out['ran']) or 'nothing'}; skipped: {', '.join(out['skipped']) or 'nothing'})")
    return 0
