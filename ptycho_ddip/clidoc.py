"""``docs/cli.md`` made from the argparse parsers, so that the reference cannot drift from the code.

    python -m ptycho_ddip.clidoc > docs/cli.md

A test (tests/test_clidoc.py) fails when docs/cli.md differs from what this prints.
"""
from __future__ import annotations

import os

WIDTH = 118  # columns of the rendered help (fixed, so the output does not depend on the terminal)


def cli_markdown() -> str:
    """Every subcommand's ``--help``, as one Markdown page."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        from .cli import build_parser

        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parts = ["# Command-line reference", "",
                 "Generated from the argparse parsers by `python -m ptycho_ddip.clidoc > docs/cli.md`; do not edit by "
                 "hand. The README shows the few options that matter; this page lists all of them.", ""]
        parts += [f"- [`ptycho-ddip {name}`](#ptycho-ddip-{name}): {sp.description}"
                  for name, sp in sub.choices.items()]
        for name, sp in sub.choices.items():
            parts += ["", f"## ptycho-ddip {name}", "", "```text", sp.format_help().rstrip(), "```"]
        return "\n".join(parts) + "\n"
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


if __name__ == "__main__":
    print(cli_markdown(), end="")
