"""docs/cli.md is the argparse help of every subcommand, regenerated (``python -m ptycho_ddip.clidoc``)."""
import pathlib

from ptycho_ddip.clidoc import cli_markdown

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_in_sync_with_the_parsers():
    text = cli_markdown()
    for name in ("simulate", "reconstruct", "separate", "pipeline", "info"):
        assert f"## ptycho-ddip {name}" in text and f"usage: ptycho-ddip {name}" in text
    assert DOC.read_text() == text, "docs/cli.md is stale: run `python -m ptycho_ddip.clidoc > docs/cli.md`"
