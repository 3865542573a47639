"""Argument types of the command line: each converts and range-checks one value, with a
message naming the allowed range (argparse adds the flag)."""

from __future__ import annotations

import argparse

from regime_model.evaluation.schedule import parse_window


def probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1, got {value!r}")
    return number


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return number


def window_argument(value: str) -> str | int:
    try:
        return parse_window(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
