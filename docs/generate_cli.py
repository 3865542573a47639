"""Write docs/cli.md from the real argument parser: ``python docs/generate_cli.py --write``.

tests/test_docs.py fails when docs/cli.md differs from what this prints, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from regime_model.cli import build_parser

WIDTH = "100"  # argparse wraps help to the terminal width; fix it for a stable file


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return _reference(build_parser())
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _reference(parser: argparse.ArgumentParser) -> str:
    sections = [
        "# Command line reference",
        "",
        "Generated from the argument parser by `python docs/generate_cli.py --write`;",
        "a test checks that this file matches it. Every command exits 2 with a one-line",
        "message on bad input (a missing file, an unknown column, a malformed date).",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    queue = [("regime", parser)]
    while queue:
        prefix, current = queue.pop(0)
        for name, child in _subparsers(current).items():
            sections += [
                "",
                f"## `{prefix} {name}`",
                "",
                "```",
                child.format_help().rstrip(),
                "```",
            ]
            queue.append((f"{prefix} {name}", child))
    return "\n".join(sections) + "\n"


if __name__ == "__main__":
    text = cli_reference()
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        Path(__file__).with_name("cli.md").write_text(text)
    else:
        sys.stdout.write(text)
