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


def test_relative_links_in_the_docs_resolve():
    """Every relative link in README.md and docs/*.md points at a file that exists."""
    import re

    root = DOCS.parent
    pages = [root / "README.md", *sorted(DOCS.glob("*.md")), root / "experiments" / "README.md"]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(root)} -> {target}")
    assert not broken, broken


def test_the_shipped_example_is_what_its_documented_command_writes(tmp_path):
    """examples/weekly_features.csv (the quickstart's input) and its metadata and truth
    are exactly `regime data build --source synthetic --freq weekly --seed 0`."""
    from regime_model.cli import main

    out = tmp_path / "weekly_features.csv"
    arguments = ["data", "build", "--source", "synthetic", "--freq", "weekly", "--seed", "0"]
    assert main([*arguments, "--out", str(out)]) == 0
    shipped = DOCS.parent / "examples"
    for name in ("weekly_features.csv", "weekly_features.meta.json", "weekly_features.truth.csv"):
        assert (shipped / name).read_bytes() == (tmp_path / name).read_bytes(), name
