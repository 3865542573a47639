"""The ``regime`` command line.

Commands are grouped: ``regime data fetch|build|show`` for the data layer and
``regime demo`` for an offline end-to-end run on synthetic data. Every data error becomes
a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from regime_model import __version__
from regime_model.data.calendar import FREQUENCIES
from regime_model.data.features import (
    FeatureSet,
    build_features,
    coverage_table,
    read_features,
)
from regime_model.data.sources import CsvDirectorySource, SeriesSource
from regime_model.data.synthetic import simulate_market
from regime_model.data.universe import load_universe
from regime_model.data.validation import parse_date
from regime_model.errors import RegimeModelError

DEFAULT_CACHE = Path.home() / ".cache" / "regime-model"
EXIT_DATA_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regime`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_DATA_ERROR
    try:
        return int(args.handler(args) or 0)
    except RegimeModelError as exc:
        print(f"regime: error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print("regime: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regime",
        description="Bayesian regime inference across small caps, liquidity flows and crypto.",
    )
    parser.add_argument("--version", action="version", version=f"regime-model {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    data = commands.add_parser(
        "data", help="fetch, build and inspect market data", description="The data layer."
    )
    data_commands = data.add_subparsers(title="data commands", metavar="COMMAND")
    data.set_defaults(handler=lambda args: data.print_help() or EXIT_DATA_ERROR)
    _add_fetch(data_commands)
    _add_build(data_commands)
    _add_show(data_commands)

    demo = commands.add_parser(
        "demo",
        help="offline end-to-end run on a synthetic market with known regimes",
        description="Simulate a market with known regimes, build its features and summarise "
        "them. Runs offline.",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--freq", choices=FREQUENCIES, default="daily", help="feature calendar (default daily)"
    )
    demo.set_defaults(handler=_run_demo)
    return parser


def _add_fetch(commands: argparse._SubParsersAction) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="download the universe's Yahoo tickers into the local cache",
        description="Download (or incrementally update) every Yahoo ticker named in the "
        "universe into a parquet cache, one file per ticker. Falls back to the cache, "
        "and says so, when Yahoo cannot be reached.",
    )
    _add_universe_option(fetch)
    fetch.add_argument("--start", default="2014-01-01", help="first date, YYYY-MM-DD")
    fetch.add_argument("--end", default=None, help="last date, YYYY-MM-DD (default: today)")
    _add_cache_option(fetch)
    fetch.set_defaults(handler=_run_fetch)


def _add_build(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser(
        "build",
        help="turn raw series into a feature CSV",
        description="Build model-ready features (a 'date' column plus one column per "
        "feature) from the universe, on a daily (US trading days) or weekly (Friday) "
        "calendar, with no look-ahead. Writes FILE and FILE's .meta.json (groups, "
        "frequency); the synthetic source also writes the true regimes to .truth.csv.",
    )
    _add_universe_option(build)
    build.add_argument(
        "--source",
        choices=("yahoo", "csv", "synthetic"),
        required=True,
        help="where data come from",
    )
    build.add_argument("--data-dir", help="directory of CSV files (for --source csv)")
    _add_cache_option(build)
    build.add_argument(
        "--freq", choices=FREQUENCIES, default="daily", help="feature calendar (default daily)"
    )
    build.add_argument("--start", help="first date, YYYY-MM-DD (default: the universe's start)")
    build.add_argument("--end", help="last date, YYYY-MM-DD (default: the last data)")
    build.add_argument("--out", required=True, help="output CSV path")
    synthetic = build.add_argument_group("synthetic source")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synthetic.add_argument("--regimes", type=int, default=2, help="number of regimes (default 2)")
    synthetic.add_argument(
        "--crypto-lag-days",
        type=int,
        default=0,
        help="days by which crypto's regime follows the equity regime (default 0)",
    )
    build.set_defaults(handler=_run_build)


def _add_show(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser(
        "show",
        help="coverage table of a feature file",
        description="Print each column's group, first and last date, number of values and "
        "share of missing dates.",
    )
    show.add_argument("file", help="feature CSV written by 'regime data build'")
    show.set_defaults(handler=_run_show)


def _add_universe_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--universe", default=None, help="universe TOML file (default: the packaged one)"
    )


def _add_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        default=str(DEFAULT_CACHE),
        help=f"Yahoo download cache directory (default {DEFAULT_CACHE})",
    )


def _yahoo_source(cache: str) -> SeriesSource:
    from regime_model.data.yahoo import YahooSource  # yfinance is slow to import

    return YahooSource(cache, report=lambda message: print(message, file=sys.stderr))


def _run_fetch(args: argparse.Namespace) -> int:
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
    source = _yahoo_source(args.cache)
    report = source.fetch(tickers, start=start, end=end)
    print(report)
    return 0


def _run_build(args: argparse.Namespace) -> int:
    universe = load_universe(args.universe)
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    market = None
    if args.source == "csv":
        if not args.data_dir:
            raise RegimeModelError("--source csv needs --data-dir DIR")
        source: SeriesSource = CsvDirectorySource(args.data_dir)
    elif args.source == "yahoo":
        source = _yahoo_source(args.cache)
    else:
        market = simulate_market(
            n_regimes=args.regimes, seed=args.seed, crypto_lag_days=args.crypto_lag_days
        )
        source = market.source()
    features = build_features(universe, source, args.freq, start=start, end=end)
    path = features.save(args.out)
    rows, columns = features.frame.shape
    print(f"wrote {path}: {rows} {args.freq} dates x {columns} features")
    if market is not None:
        truth_path = path.with_name(path.stem + ".truth.csv")
        market.truth_on(features.frame.index).to_csv(truth_path, date_format="%Y-%m-%d")
        print(f"wrote {truth_path}: true regime path (0 = risk_off)")
    _print_skipped(features)
    return 0


def _run_show(args: argparse.Namespace) -> int:
    features = read_features(args.file)
    _print_coverage(features)
    return 0


def _print_coverage(features: FeatureSet) -> None:
    index = features.frame.index
    print(
        f"{features.freq} features, {len(index)} dates from {index[0]:%Y-%m-%d} to "
        f"{index[-1]:%Y-%m-%d}" + (f", source {features.source}" if features.source else "")
    )
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(coverage_table(features).to_string())
    _print_skipped(features)


def _print_skipped(features: FeatureSet) -> None:
    for name, reason in features.skipped.items():
        print(f"skipped {name}: {reason}")


def _run_demo(args: argparse.Namespace) -> int:
    market = simulate_market(n_regimes=2, seed=args.seed)
    features = build_features(load_universe(), market.source(), args.freq)
    truth = market.truth_on(features.frame.index)
    print(
        f"Synthetic market (seed {args.seed}): 2 regimes, mean regime duration "
        f"{1 / (1 - market.transition_matrix[0, 0]):.0f} days; "
        f"{(truth['regime'] == 1).mean():.0%} of dates risk_on."
    )
    _print_coverage(features)
    means = features.frame.groupby(truth["regime"].map({0: "risk_off", 1: "risk_on"})).mean()
    print("\nFeature means by true regime (what a regime model has to recover):")
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(means.T.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
