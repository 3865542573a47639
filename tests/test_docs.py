"""The documentation that is generated from code matches the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_matches_the_parser():
    spec = importlib.util.spec_from_file_location("generate_cli", DOCS / "generate_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.cli_reference()
    assert (DOCS / "cli.md").read_text() == expected, (
        "docs/cli.md is out of date: run python docs/generate_cli.py --write"
    )
