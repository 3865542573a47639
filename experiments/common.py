"""What every experiment script shares: options, features from the snapshot, fit settings,
writing outputs. Model code lives in the package; the scripts only compose it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from regime_model.data.cache import write_text_atomic
from regime_model.data.features import FeatureSet, build_features, read_features
from regime_model.data.sources import CsvDirectorySource
from regime_model.data.universe import load_universe


@dataclass(frozen=True)
class FitSettings:
    """MCMC length: the defaults for real answers, a short run for ``--quick`` (CI smoke).
    ``tune`` None: each model's own default (its sampler's, ``choices.DEFAULT_TUNE``)."""

    draws: int
    tune: int | None
    chains: int

    def as_kwargs(self) -> dict[str, int]:
        tune = {} if self.tune is None else {"tune": self.tune}
        return {"draws": self.draws, **tune, "chains": self.chains}


FULL = FitSettings(draws=1000, tune=None, chains=4)
QUICK = FitSettings(draws=100, tune=150, chains=2)


def parse_args(
    description: str,
    argv: list[str] | None = None,
    extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every experiment takes; ``extra_arguments`` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default="../shared/data", help="snapshot of market data")
    parser.add_argument("--out", required=True, help="output directory for tables and figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short chains and a short sample: checks the pipeline runs, answers nothing",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, help=f"draws per chain (default {FULL.draws})")
    parser.add_argument(
        "--tune", type=int, help="tuning steps per chain (default: the model's, its sampler's)"
    )
    if extra_arguments is not None:
        extra_arguments(parser)
    args = parser.parse_args(argv)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = QUICK if args.quick else FULL
    args.settings = FitSettings(
        draws=args.draws or settings.draws, tune=args.tune or settings.tune, chains=settings.chains
    )
    return args


def features(data_dir: str | Path, freq: str, out: Path) -> FeatureSet:
    """The packaged universe's features built from the snapshot (saved in ``out``)."""
    path = out / f"features_{freq}.csv"
    built = build_features(load_universe(), CsvDirectorySource(data_dir), freq)
    built.save(path)
    return read_features(path)


def prices(data_dir: str | Path, locators: dict[str, str]) -> pd.DataFrame:
    """Closing prices by name from ``file.csv:column`` locators (validated, not filled)."""
    loaded = CsvDirectorySource(data_dir).load(list(locators.values()))
    return pd.DataFrame({name: loaded[locator] for name, locator in locators.items()})


def write_table(frame: pd.DataFrame, path: Path, index: bool = False) -> Path:
    write_text_atomic(frame.to_csv(index=index, float_format="%.6g"), path)
    return path


def write_json(value: dict, path: Path) -> Path:
    write_text_atomic(json.dumps(value, indent=2, default=str) + "\n", path)
    return path


class Timer:
    """Wall time of a block, for the experiment's own log."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.started


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# One colour per model family in every figure (and grey for the maximum-likelihood fit).
MODEL_COLOURS = {
    "em-hmm": "#7f8c8d",
    "bayes-hmm": "#27ae60",
    "hierarchical": "#c0392b",
    "tvtp": "#2980b9",
    "leadlag": "#8e44ad",
    "two-scale": "#d35400",
}

# Bitcoin's block-reward halvings (public block dates, UTC), marked on the figures: the
# commentary names the halving cycle as a confounder of the small-cap breakouts.
HALVINGS = pd.to_datetime(["2012-11-28", "2016-07-09", "2020-05-11", "2024-04-20"])


def mark_halvings(axis, start: str | None = None) -> None:
    """Dashed vertical lines at the halvings on or after ``start`` on a date axis."""
    dates = HALVINGS if start is None else HALVINGS[pd.Timestamp(start) <= HALVINGS]
    for number, date in enumerate(dates):
        axis.axvline(
            date, color="#c0392b", linestyle="--", linewidth=1,
            label="Bitcoin halving" if number == 0 else None,
        )  # fmt: skip
