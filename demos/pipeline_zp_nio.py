"""Demo: the whole pipeline on a simulated zone-plate/NiO sample at small slice spacing, with an XRF-seeded start.

    python demos/pipeline_zp_nio.py [--out demo_pipeline_zp_nio] [--size 128] [--spacing-dof 0.5]
                                    [--epochs-pass1 300] [--epochs-separation 2000] [--epochs-pass2 300]
    mpiexec -n 2 python demos/pipeline_zp_nio.py --threads 1

At a spacing below the depth of field a random start gives two nearly identical slices; pass 1 therefore starts
from the XRF seed (a single-slice reconstruction split with the Ni fluorescence map, which marks the NiO slice:
``init="xrf"``, ``xrf_elements={"Ni": 1}``). The DDIP then separates the phase of the two slices and pass 2 starts
from the separated phase. Prints the per-stage metric table and the time of each stage; writes ``OUT/pipeline/``.
Same options as ``demos/pipeline_au_nio.py`` (run time of the same order plus the XRF seeding).
"""
from pipeline_au_nio import parse, run_demo


def main() -> None:
    args = parse(__doc__.splitlines()[0], {"out": "demo_pipeline_zp_nio", "spacing_dof": 0.5})
    from ptycho_ddip.runtime import configure_threads

    configure_threads(args.threads)
    run_demo(args, "zp-nio", {"init": "xrf", "xrf_elements": {"Ni": 1}})


if __name__ == "__main__":
    main()
