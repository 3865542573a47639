"""``regime data fetch|build|show``: download, build and inspect market data."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from regime_model.data.features import FeatureSet, build_features, coverage_table, read_features
from regime_model.data.sources import CsvDirectorySource, SeriesSource
from regime_model.data.synthetic import simulate_market, truth_path
from regime_model.data.universe import load_universe
from regime_model.data.validation import parse_date
from regime_model.errors import RegimeModelError


def yahoo_source(cache: str) -> SeriesSource:
    from regime_model.data.yahoo import YahooSource  # yfinance is slow to import

    return YahooSource(cache, report=lambda message: print(message, file=sys.stderr))


def run_fetch(args: argparse.Namespace) -> int:
    universe = load_universe(args.universe)
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    tickers = sorted(
        {
            locator.split(":")[0]
            for spec in universe.series
            for item in spec.inputs
            for locator in item.locators.get("yahoo", ())
        }
    )
    if not tickers:
        raise RegimeModelError(f"{universe.path}: no series has a yahoo locator")
    source = yahoo_source(args.cache)
    report = source.fetch(tickers, start=start, end=end)
    print(report)
    return 0


def run_build(args: argparse.Namespace) -> int:
    universe = load_universe(args.universe)
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    market = None
    if args.source == "csv":
        if not args.data_dir:
            raise RegimeModelError("--source csv needs --data-dir DIR")
        source: SeriesSource = CsvDirectorySource(args.data_dir)
    elif args.source == "yahoo":
        source = yahoo_source(args.cache)
    else:
        market = simulate_market(
            n_regimes=args.regimes, seed=args.seed, crypto_lag_days=args.crypto_lag_days
        )
        source = market.source()
    features = build_features(universe, source, args.freq, start=start, end=end)
    if args.coarse_columns:
        features = features.with_coarse(args.coarse_columns, args.coarse_freq)
    path = features.save(args.out)
    rows, columns = features.frame.shape
    print(f"wrote {path}: {rows} {args.freq} dates x {columns} features")
    if features.coarse_columns:
        periods = features.frame[features.coarse_columns[0]].notna().sum()
        print(
            f"coarse columns ({features.coarse_freq}, on each ended period's last date, "
            f"{periods} periods): {', '.join(features.coarse_columns)}"
        )
    if market is not None:
        truth_file = truth_path(path)
        market.truth_on(features.frame.index).to_csv(truth_file, date_format="%Y-%m-%d")
        print(f"wrote {truth_file}: true regime path (0 = risk_off)")
    print_skipped(features)
    return 0


def run_show(args: argparse.Namespace) -> int:
    features = read_features(args.file)
    print_coverage(features)
    return 0


def print_coverage(features: FeatureSet) -> None:
    index = features.frame.index
    print(
        f"{features.freq} features, {len(index)} dates from {index[0]:%Y-%m-%d} to "
        f"{index[-1]:%Y-%m-%d}" + (f", source {features.source}" if features.source else "")
    )
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(coverage_table(features).to_string())
    print_skipped(features)


def print_skipped(features: FeatureSet) -> None:
    for name, reason in features.skipped.items():
        print(f"skipped {name}: {reason}")
    for warning in features.warnings:
        print(f"warning: {warning}")
