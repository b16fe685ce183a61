"""Subcommands ``ptycho-ddip simulate`` and ``ptycho-ddip reconstruct`` (registered in
:data:`ptycho_ddip.cli.COMMANDS`).

They parse arguments and call the public API (:func:`ptycho_ddip.multislice.simulate.simulate_to_file`,
:func:`ptycho_ddip.multislice.reconstruct.reconstruct_file`). Options come from the defaults, then the ``--config``
file (JSON/TOML: the option names of ``SimulationOptions`` / ``ReconstructionOptions``, either at the top level or
under a ``"simulation"`` / ``"reconstruction"`` table), then the command-line flags, which win. Bad options or files
give one line naming the file and the fix, exit status 2, and nothing written.

Under ``mpiexec -n R`` the reconstruction is data parallel (each global minibatch split over the ranks, gradients
summed with ``Allreduce``); only rank 0 writes and shows progress.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, Optional

from .cli import add_run_flags, command

#: ptycho_ddip.phantoms.PHANTOMS (spelled out: importing the phantoms would load scipy at every CLI start)
PHANTOMS = ("au-nio", "zp-nio", "litho-cell", "cell-litho", "litho-cell-nio")


def _config_section(path: Optional[str], section: str) -> dict:
    """The ``section`` table of a config file (or its top level when it has no such table)."""
    if not path:
        return {}
    from .io import InputError, load_config

    config = load_config(path)
    sub = config.get(section, config)
    if not isinstance(sub, dict):
        raise InputError(f"{path}: '{section}' must be a table of options, got {type(sub).__name__}")
    return dict(sub)


def check_device(device: str, where: str) -> None:
    """An InputError (exit status 2) instead of a traceback when CUDA is requested but absent."""
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from .io import InputError

            raise InputError(f"{where}: device {device!r} requested but torch.cuda.is_available() is False; use "
                             f"--device cpu (or auto), or install the CUDA build of torch")


def _options(cls, base: dict, flags: dict, config_path: Optional[str]):
    """``cls`` from the config's options overridden by the flags that were given; errors name the config file."""
    from .io import InputError

    merged = dict(base)
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        return cls.from_dict(merged)
    except (TypeError, ValueError) as exc:
        where = f"{config_path} (or the command line)" if config_path else "command line"
        raise InputError(f"{where}: {exc}") from None


# ----------------------------------------------------------------------------------------------------- simulate

@command("simulate", "simulate a multislice ptychography dataset (Poisson counts, ground truth, XRF maps) as HDF5")
def _add_simulate(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("-o", "--output", required=True, help="output HDF5 dataset (Adorym layout + ground_truth/)")
    p.add_argument("--phantom", choices=PHANTOMS,
                   help="phantom (default au-nio; litho-cell-nio has three slices)")
    p.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), help="object size in pixels (default 128 128)")
    p.add_argument("--energy-ev", type=float, help="photon energy, eV (default 12000)")
    p.add_argument("--pixel-size-m", type=float, help="object pixel size, m (default 1e-8)")
    sp = p.add_mutually_exclusive_group()
    sp.add_argument("--spacing-m", type=float,
                    help="slice spacing, m (a negative value needs the = form: --spacing-m=-1e-6)")
    sp.add_argument("--spacing-dof", type=float, help="slice spacing in depths of field 5.4 dr^2/lambda (default 3.5)")
    p.add_argument("--propagation", choices=("exact", "paraxial"))
    p.add_argument("--scan", choices=("raster", "spiral"))
    p.add_argument("--step-px", type=float, help="scan step, pixels (default 4)")
    p.add_argument("--jitter-px", type=float, help="uniform random position jitter, pixels (default 0)")
    p.add_argument("--probe", choices=("focused", "gaussian"), help="zone-plate focus (default) or Gaussian")
    p.add_argument("--probe-shape", type=int, nargs=2, metavar=("h", "w"),
                   help="probe window = detector size, pixels (default 64 64)")
    p.add_argument("--probe-fwhm-m", type=float, help="FWHM of the Gaussian probe, m")
    p.add_argument("--defocus-m", type=float, help="defocus of the focused probe, m")
    p.add_argument("--dose", type=float, help="photons per scan position (default 1e6)")
    p.add_argument("--no-noise", action="store_true", help="store noise-free intensities instead of Poisson counts")
    p.add_argument("--seed", type=int, help="seed of the phantom and every noise draw")
    p.add_argument("--config", help="JSON/TOML file of simulation options (flags win)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return _run_simulate


def simulation_options_from_args(args: argparse.Namespace):
    from .multislice.simulate import SimulationOptions

    base = _config_section(args.config, "simulation")
    flags = {"phantom": args.phantom, "shape": args.shape, "energy_ev": args.energy_ev,
             "pixel_size_m": args.pixel_size_m, "spacing_m": args.spacing_m, "spacing_dof": args.spacing_dof,
             "propagation": args.propagation, "scan": args.scan, "step_px": args.step_px,
             "jitter_px": args.jitter_px, "probe": args.probe, "probe_shape": args.probe_shape,
             "probe_fwhm_m": args.probe_fwhm_m, "defocus_m": args.defocus_m, "dose": args.dose, "seed": args.seed,
             "poisson": False if args.no_noise else None}
    if args.spacing_m is not None:
        base.pop("spacing_dof", None)
    if args.spacing_dof is not None:
        base.pop("spacing_m", None)
    return _options(SimulationOptions, base, flags, args.config)


def _run_simulate(args: argparse.Namespace) -> int:
    from .multislice.simulate import simulate_to_file
    from .parallel import get_comm

    opts = simulation_options_from_args(args)

    def run() -> None:  # cheap: one rank simulates and writes; its error (if any) is raised on every rank
        ds = simulate_to_file(args.output, opts, overwrite=args.overwrite)
        print(f"wrote {args.output}: {ds.n_positions} patterns of {ds.detector_shape[0]}x{ds.detector_shape[1]}, "
              f"object {opts.shape[0]}x{opts.shape[1]}, slice spacing {opts.slice_spacing_m * 1e6:.3g} um "
              f"({opts.slice_spacing_m / opts.depth_of_field_m:.3g} DOF), {opts.dose:.3g} photons/position, "
              f"XRF maps {', '.join(sorted(ds.xrf))}")

    get_comm().call_on_root(run)
    return 0


# ----------------------------------------------------------------------------------------------------- reconstruct

def _xrf_elements(text: str) -> dict:
    """``Ni:1,Au:0`` -> {"Ni": 1, "Au": 0} (0-based slice indices)."""
    out = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, index = item.partition(":")
        if not sep or not name.strip() or not index.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"'{item}' is not ELEMENT:SLICE, e.g. Ni:1 (0-based slice index)")
        out[name.strip()] = int(index)
    if not out:
        raise argparse.ArgumentTypeError("give at least one ELEMENT:SLICE, e.g. Ni:1")
    return out


@command("reconstruct", "multislice reconstruction of a diffraction dataset (Adam; MPI data parallel under mpiexec)")
def _add_reconstruct(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("data", metavar="DATA.h5", help="diffraction dataset (Adorym layout, e.g. from `simulate`, or CXI)")
    p.add_argument("-o", "--output", required=True, help="result HDF5 (phase/magnitude TIFFs are written beside it)")
    p.add_argument("--epochs", type=int, help="passes over all positions (default 300)")
    p.add_argument("--batch-size", type=int, help="global minibatch size, summed over MPI ranks (default 16)")
    p.add_argument("--lr-object", type=float, help="Adam step of the object, rad / nepers (default 0.02)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="learning-rate schedule (default cosine: decay to 1%% over the run, converged final object)")
    p.add_argument("--lr-probe", type=float, help="Adam step of the probe, relative (default 0.01)")
    p.add_argument("--optimize-probe", action="store_true", help="refine the probe too")
    p.add_argument("--probe-delay", type=int, help="epochs before the probe starts to move")
    p.add_argument("--loss", choices=("amplitude", "poisson"))
    p.add_argument("--init", help="random | constant | xrf | FILE.h5 (a reconstruction, or FILE.h5:/dataset) | .npy")
    p.add_argument("--xrf-elements", type=_xrf_elements, metavar="EL:SLICE,...",
                   help="element -> 0-based slice for --init xrf, e.g. Ni:1")
    p.add_argument("--n-slices", type=int, help="number of slices (default: the dataset's)")
    p.add_argument("--slice-spacing-m", type=float, metavar="D",
                   help="slices at 0, D, 2D, ... (--n-slices of them, default 2), m; needed for CXI data, which record "
                        "no slice positions")
    p.add_argument("--propagation", choices=("exact", "paraxial"))
    p.add_argument("--dtype", choices=("complex64", "complex128"))
    p.add_argument("--seed", type=int, help="seed of the initial guess and of the minibatch order")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="MPI rank r uses cuda:(r %% device_count)")
    p.add_argument("--depth-reg", choices=("none", "kz", "zcorr"),
                   help="in-loop depth regulariser: kz = missing-wedge filter of the slices every K epochs, zcorr = "
                        "inter-slice phase correlation penalty (default none)")
    p.add_argument("--depth-reg-weight", type=float, metavar="W",
                   help="kz: the filter's beta (W = 1/2 on |kz| = |kr| / beta, grid units; default 0.1); zcorr: the "
                        "penalty weight (default 1)")
    p.add_argument("--depth-reg-every", type=int, metavar="K", help="epochs between kz filter passes (default 1)")
    add_run_flags(p, "reconstruction")
    return _run_reconstruct


def reconstruction_options_from_args(args: argparse.Namespace):
    from .cli_convert import slice_positions_from_args
    from .multislice.reconstruct import ReconstructionOptions

    base = _config_section(args.config, "reconstruction")
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr_object": args.lr_object,
             "lr_schedule": args.lr_schedule,
             "lr_probe": args.lr_probe, "optimize_probe": True if args.optimize_probe else None,
             "probe_delay_epochs": args.probe_delay, "loss": args.loss, "init": args.init,
             "xrf_elements": args.xrf_elements, "n_slices": args.n_slices, "propagation": args.propagation,
             "dtype": args.dtype, "seed": args.seed, "device": args.device, "depth_reg": args.depth_reg,
             "depth_reg_weight": args.depth_reg_weight, "depth_reg_every": args.depth_reg_every,
             "checkpoint_every": args.checkpoint_every, "resume": True if args.resume else None,
             "slice_pos_m": slice_positions_from_args(args, base.get("n_slices") or 2)}
    if flags["checkpoint_every"] or flags["resume"] or base.get("checkpoint_every") or base.get("resume"):
        base.setdefault("checkpoint_path", os.fspath(args.output) + ".ckpt")
    opts = _options(ReconstructionOptions, base, flags, args.config)
    check_device(opts.device, args.config or "--device")
    return opts


def _run_reconstruct(args: argparse.Namespace) -> int:
    from .io.cxi import require_slice_positions
    from .multislice.reconstruct import reconstruct_file
    from .parallel import get_comm
    from .progress import cli_progress
    from .runtime import configure_threads

    comm = get_comm()
    with comm.abort_on_error("ptycho-ddip reconstruct: error: "):
        opts = comm.agree(reconstruction_options_from_args, args)
        comm.agree(require_slice_positions, args.data, opts.slice_pos_m, opts.n_slices)  # CXI records none
        configure_threads(args.threads)
        res = reconstruct_file(args.data, args.output, opts, overwrite=args.overwrite,
                               progress=cli_progress(args.no_progress), comm=comm,
                               notify=lambda line: print(line, flush=True))
        if comm.is_root:
            ck = opts.checkpoint_path
            if ck and os.path.exists(ck):  # the result is written: the checkpoint is no longer needed
                os.remove(ck)
            stem = os.path.splitext(args.output)[0]
            loss = f"{res.loss[-1]:.4g}" if res.loss.size else "n/a"
            print(f"wrote {args.output} (+ {stem}_phase.tiff, {stem}_magnitude.tiff): object "
                  f"{res.object.shape[0]}x{res.object.shape[1]}x{res.object.shape[2]}, {res.loss.size} epochs on "
                  f"{comm.size} rank(s), final loss {loss}")
    return 0
