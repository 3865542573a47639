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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from regime_model import __version__
from regime_model.choices import (
    COVARIANCES,
    EMISSIONS,
    IDENTIFICATIONS,
    MODEL_NAMES,
    ORDER_BY,
    SAMPLER_NAMES,
    SWITCHING,
)
from regime_model.data.calendar import FREQUENCIES
from regime_model.data.features import (
    FeatureSet,
    build_features,
    coverage_table,
    read_features,
)
from regime_model.data.sources import CsvDirectorySource, SeriesSource
from regime_model.data.synthetic import simulate_market, truth_path
from regime_model.data.universe import load_universe
from regime_model.data.validation import parse_date
from regime_model.errors import RegimeModelError
from regime_model.evaluation.schedule import EVERY, parse_window

if TYPE_CHECKING:  # slow to import (the models); only the backtest needs them
    from regime_model.evaluation.backtest import BacktestResult, BacktestSpec

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

    _add_fit(commands)
    _add_backtest(commands)
    _add_calibrate(commands)
    _add_summary(commands)
    _add_compare(commands)
    _add_plot(commands)

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


def _add_fit(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser(
        "fit",
        help="fit a regime model to a feature file",
        description="Fit a Bayesian HMM (PyMC, NUTS by default) or a maximum-likelihood "
        "HMM (hmmlearn EM) and write DIR/posterior.nc, DIR/regime_probabilities.csv "
        "(filtered and smoothed, with HDI bands), DIR/summary.json and DIR/config.json.",
    )
    _add_model_options(fit)
    fit.add_argument(
        "--holdout-start",
        metavar="DATE",
        help="fit on the dates before DATE only and score the rest one step ahead with the "
        "filter (for 'regime compare')",
    )
    fit.add_argument("--out", required=True, help="output directory")
    fit.set_defaults(handler=_run_fit)


# regime backtest --allocate: the default cost and the models a baseline rule may use.
DEFAULT_COST_BPS = 10.0
BASELINE_MODELS = ("em-hmm", "bayes-hmm")


def _add_backtest(commands: argparse._SubParsersAction) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="walk-forward evaluation: refit on a schedule, score out of sample",
        description="At each refit date (the first data date of each month or quarter from "
        "--start on) fit the model on the earlier dates only, then filter forward without "
        "refitting until the next refit. Writes DIR/regime_probabilities.csv (the stitched "
        "out-of-sample filtered probabilities), DIR/regime_forecasts.csv (one-step "
        "predicted), DIR/log_predictive_density.csv, DIR/refits.csv (per-refit "
        "diagnostics), DIR/scores.json and, when FILE.truth.csv exists beside the features, "
        "DIR/calibration.csv. Each refit's result is kept in DIR/segments as it finishes; a "
        "re-run with the same inputs computes only the missing ones. Refits run on a Dask "
        "cluster, one single-threaded fit per worker.",
    )
    _add_model_options(backtest)
    backtest.add_argument("--out", required=True, help="output directory")
    schedule = backtest.add_argument_group("walk-forward schedule")
    schedule.add_argument(
        "--start",
        required=True,
        metavar="DATE",
        help="first refit date: fitted on the dates before it, scored from it on",
    )
    schedule.add_argument("--every", choices=tuple(EVERY), required=True, help="how often to refit")
    schedule.add_argument(
        "--window",
        type=_window_argument,
        default="expanding",
        metavar="expanding|N",
        help="fit on every earlier date (expanding, the default) or on the last N dates",
    )
    _add_execution_options(backtest)
    allocation = backtest.add_argument_group(
        "allocation report",
        "Hold P(risk_on) of wealth in an asset (the filtered probability at each close, "
        "held over the next step; cash earns nothing) and compare it with buy-and-hold and "
        "with the same rule driven by a baseline model, backtested on the same schedule "
        "into DIR/baseline. Writes DIR/allocation.csv (return, volatility, Sharpe at a zero "
        "rate, max drawdown, turnover, exposure per asset and strategy) and "
        "DIR/allocation_wealth.csv.",
    )
    allocation.add_argument(
        "--allocate",
        metavar="COLUMN[,COLUMN]",
        help="return columns of the features to allocate to, e.g. btc_return,iwm_return",
    )
    allocation.add_argument(
        "--cost-bps",
        type=float,
        metavar="BPS",
        help=f"cost in basis points per unit of exposure traded, the entry from cash "
        f"included (default {DEFAULT_COST_BPS:g})",
    )
    allocation.add_argument(
        "--baseline-model",
        choices=BASELINE_MODELS,
        help="model of the baseline rule (default em-hmm), with the same columns, regimes "
        "and anchor; not run when --model is the same",
    )
    backtest.set_defaults(handler=_run_backtest)


def _window_argument(value: str) -> str | int:
    try:
        return parse_window(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_model_options(parser: argparse.ArgumentParser, features: bool = True) -> None:
    """The model options shared by 'fit', 'backtest' and 'calibrate'; with ``features``,
    the feature file and columns too."""
    if features:
        parser.add_argument(
            "--features", required=True, help="feature CSV ('date' + one column each)"
        )
        parser.add_argument("--columns", help="comma-separated feature columns (default: all)")
        parser.add_argument(
            "--group",
            action="append",
            default=[],
            metavar="COLUMN=GROUP",
            help="group of a column of a bare CSV (repeatable); build writes them already",
        )
    parser.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default="bayes-hmm",
        help="bayes-hmm (default), em-hmm (maximum likelihood), hierarchical (one regime, "
        "asset parameters pooled by group), tvtp (covariate-driven transitions), leadlag "
        "(a leading and a lagging regime chain)",
    )
    parser.add_argument("--regimes", type=int, default=2, help="number of regimes K (2-5)")
    parser.add_argument("--emission", choices=EMISSIONS, default=EMISSIONS[0])
    parser.add_argument(
        "--switching",
        choices=SWITCHING,
        default="both",
        help="what differs between regimes: means and covariances (both), means with one "
        "shared covariance (mean), or covariances around one common mean (variance)",
    )
    parser.add_argument("--covariance", choices=COVARIANCES, default=COVARIANCES[0])
    parser.add_argument(
        "--anchor", help="column the regimes are ordered on (default: first equity return)"
    )
    parser.add_argument(
        "--order-by",
        choices=ORDER_BY,
        help="order regimes by the anchor's mean (default) or volatility",
    )
    parser.add_argument(
        "--identification",
        choices=IDENTIFICATIONS,
        help="exchangeable priors, every draw's labels matched to the others' regime "
        "probabilities and named on the anchor afterwards (relabelled: every Bayesian "
        "family's default) or the order built into the priors (ordered)",
    )
    parser.add_argument(
        "--stickiness", type=float, default=10.0, help="Dirichlet weight on staying (default 10)"
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLER_NAMES,
        default="nuts",
        help="PyMC NUTS (default), nutpie if installed, or quick MAP / ADVI",
    )
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per chain")
    parser.add_argument("--tune", type=int, default=1000, help="tuning steps per chain")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--restarts", type=int, default=10, help="EM random restarts (em-hmm)")
    tvtp = parser.add_argument_group("covariate-driven transitions (tvtp, hierarchical)")
    tvtp.add_argument(
        "--covariates",
        metavar="COL,COL",
        help="columns that drive the transitions (lagged one step), not used as emissions",
    )
    tvtp.add_argument(
        "--coefficient-scale",
        type=float,
        default=1.0,
        help="prior sd of each transition coefficient per covariate sd (default 1)",
    )
    leadlag = parser.add_argument_group("leadlag model")
    leadlag.add_argument("--lead-group", default="equity", help="group of the leading chain")
    leadlag.add_argument("--lag-group", default="crypto", help="group of the lagging chain")
    leadlag.add_argument(
        "--lag",
        type=int,
        default=1,
        help="the lagging chain's transitions depend on the leading regime LAG steps earlier",
    )
    leadlag.add_argument(
        "--lag-anchor", help="column the lagging chain is ordered on (default: its first return)"
    )
    leadlag.add_argument(
        "--coupling-sd",
        type=float,
        default=1.5,
        help="prior sd of the coupling log odds ratios (default 1.5)",
    )


def _add_calibrate(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="simulation-based calibration: simulate from the prior, fit, rank the truth",
        description="Simulation-based calibration (Talts et al. 2018). Each replicate draws "
        "parameters from the model's prior (in unstandardised units), simulates --dates "
        "weekly observations of --series return columns (the first half in group equity, "
        "the rest crypto; tvtp covariates as a persistent AR(1) series), fits the model and "
        "records the rank of every true parameter among 99 evenly spaced posterior draws. "
        "Writes DIR/ranks.csv, DIR/uniformity.csv (a chi-square test per parameter on 10 "
        "bins, failing at the 1% level), DIR/coverage.csv (how often the true regime "
        "probabilities fall inside the 50% and 90% HDI bands), DIR/replicates.csv (per-"
        "replicate diagnostics), DIR/summary.json and DIR/rank_histograms.png. Replicates "
        "are stored in DIR/replicates as they finish; a re-run resumes.",
    )
    _add_model_options(calibrate, features=False)
    calibrate.add_argument("--out", required=True, help="output directory")
    size = calibrate.add_argument_group("simulation size")
    size.add_argument("--replicates", type=int, default=100, help="simulated data sets (100)")
    size.add_argument("--dates", type=int, default=200, help="dates per data set (200)")
    size.add_argument("--series", type=int, default=2, help="emission columns (2)")
    calibrate.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a parameter fails the uniformity test",
    )
    _add_execution_options(calibrate)
    # Hundreds of fits: fewer draws per fit than 'fit' uses. Ranks need only 99 nearly
    # independent draws, and 2 x 500 give several hundred effective ones at this size.
    calibrate.set_defaults(handler=_run_calibrate, draws=500, tune=500, chains=2)


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    """Where many-fit commands run their fits."""
    execution = parser.add_argument_group("execution")
    execution.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="tcp://HOST:PORT of a running Dask scheduler (its workers need regime-model "
        "installed), or 'serial' to fit in this process; default: a local cluster",
    )
    execution.add_argument(
        "--workers",
        type=int,
        help="worker processes of the local cluster (default: one per core)",
    )


def _run_calibrate(args: argparse.Namespace) -> int:
    from regime_model.evaluation.sbc import (
        CalibrationSpec,
        format_calibration,
        run_calibration,
        save_calibration,
    )

    if args.model == "em-hmm":
        raise RegimeModelError("calibrate needs a Bayesian model; em-hmm has no posterior")
    try:
        spec = CalibrationSpec(
            _model_config(args), args.replicates, args.dates, args.series, args.seed
        )
    except ValueError as exc:
        raise RegimeModelError(str(exc)) from exc
    result = run_calibration(
        spec,
        args.out,
        _executor(args),
        progress=lambda done, total: _print_progress(done, total, "replicates"),
    )
    summary = save_calibration(result, args.out)
    print(f"wrote {args.out}: ranks, uniformity, coverage, replicates, rank_histograms.png")
    print(format_calibration(summary, result.uniformity()))
    return 1 if args.strict and summary["verdict"] != "pass" else 0


def _add_summary(commands: argparse._SubParsersAction) -> None:
    summary = commands.add_parser(
        "summary",
        help="summarise a fitted run",
        description="Latest filtered regime probabilities with HDI, the recent regime path, "
        "transition matrix and expected durations, per-regime emission parameters and the "
        "convergence verdict.",
    )
    summary.add_argument("run", help="directory written by 'regime fit'")
    summary.add_argument("--format", choices=("table", "json"), default="table")
    summary.add_argument("--hdi", type=float, default=0.9, help="HDI probability (default 0.9)")
    summary.add_argument(
        "--strict", action="store_true", help="exit with status 1 when diagnostics fail"
    )
    summary.set_defaults(handler=_run_summary)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="rank fitted runs on the same data (held-out score and PSIS-LOO)",
        description="Rank runs fitted on the same observations by the held-out one-step "
        "predictive score (runs fitted with the same --holdout-start) and by PSIS-LOO, with "
        "standard errors of the differences and ArviZ's warnings.",
    )
    compare.add_argument("runs", nargs="+", help="directories written by 'regime fit'")
    compare.add_argument("--format", choices=("table", "json"), default="table")
    compare.set_defaults(handler=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    import json

    from regime_model.compare import compare_runs, format_comparison, load_runs

    comparison = compare_runs(load_runs(args.runs))
    if args.format == "json":
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison))
    return 0


def _add_plot(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "plot",
        help="plot regime probabilities over time",
        description="The anchor feature accumulated over time (a price-like path for "
        "returns) above the probability of each regime with its HDI band.",
    )
    plot.add_argument("run", help="directory written by 'regime fit'")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.add_argument("--kind", choices=("filtered", "smoothed"), default="filtered")
    plot.set_defaults(handler=_run_plot)


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
        truth_file = truth_path(path)
        market.truth_on(features.frame.index).to_csv(truth_file, date_format="%Y-%m-%d")
        print(f"wrote {truth_file}: true regime path (0 = risk_off)")
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


def _run_fit(args: argparse.Namespace) -> int:
    from regime_model.models import model_from_config
    from regime_model.provenance import run_config

    features, columns = _model_inputs(args)
    model = model_from_config(_model_config(args))
    holdout_start = None
    if args.holdout_start:
        holdout_start = parse_date(args.holdout_start, "--holdout-start")
    result = model.fit(features, columns, holdout_start=holdout_start)
    result.config.update(run_config(args.features, features))
    result.save(args.out)
    print(f"wrote {args.out}: posterior.nc, regime_probabilities.csv, summary.json, config.json")
    print(format_summary(result.summary()))
    return 0


def _run_backtest(args: argparse.Namespace) -> int:
    from regime_model.evaluation.backtest import BacktestSpec, run_backtest, save_backtest
    from regime_model.evaluation.scores import format_scores, read_truth
    from regime_model.provenance import run_config

    features, columns = _model_inputs(args)
    assets = _allocation_assets(args, features)  # checked before hours of fitting
    spec = BacktestSpec(
        _model_config(args),
        columns,
        parse_date(args.start, "--start"),
        args.every,
        args.window,
    )
    truth_file = truth_path(args.features)
    truth = read_truth(truth_file) if truth_file.is_file() else None
    provenance = {**spec.to_dict(), **run_config(args.features, features)}
    result = run_backtest(
        features,
        spec,
        args.out,
        _executor(args),
        progress=_print_progress,
        provenance=provenance,
    )
    scores = save_backtest(result, args.out, truth)
    report = result.report
    print(
        f"wrote {args.out}: {len(result.segments)} refits ({len(report.computed)} fitted now, "
        f"{len(report.reused)} reused)"
    )
    print(format_scores(scores))
    if truth is None:
        print(f"no {truth_file.name} beside the features: no Brier score")
    if assets:
        _run_allocation(args, features, spec, result, assets, provenance, truth)
    return 0


def _allocation_assets(args: argparse.Namespace, features: FeatureSet) -> list[str]:
    """The --allocate columns (checked against the features), or [] without --allocate."""
    from regime_model.evaluation.allocation import check_assets

    if not args.allocate:
        if args.cost_bps is not None or args.baseline_model is not None:
            raise RegimeModelError("--cost-bps and --baseline-model need --allocate")
        return []
    if args.cost_bps is not None and args.cost_bps < 0:
        raise RegimeModelError(f"--cost-bps must be zero or positive, got {args.cost_bps:g}")
    if args.model == "leadlag":
        raise RegimeModelError(
            "--allocate needs a P(risk_on); the leadlag model has joint lead/lag states"
        )
    assets = [name.strip() for name in args.allocate.split(",") if name.strip()]
    check_assets(features.frame, assets)
    return list(dict.fromkeys(assets))


def _run_allocation(
    args: argparse.Namespace,
    features: FeatureSet,
    spec: BacktestSpec,
    result: BacktestResult,
    assets: list[str],
    provenance: dict[str, Any],
    truth: pd.Series | None,
) -> None:
    """The allocation report of ``regime backtest --allocate``: the same schedule with the
    baseline model into OUT/baseline (resumable like the main run), then both rules and
    buy-and-hold per asset into OUT/allocation.csv and OUT/allocation_wealth.csv."""
    from regime_model.evaluation.allocation import (
        allocation_report,
        format_allocation,
        save_allocation,
    )
    from regime_model.evaluation.backtest import BacktestSpec, run_backtest, save_backtest

    signals = {f"rule:{args.model}": result.probabilities("filtered")["risk_on"]}
    baseline_model = args.baseline_model or BASELINE_MODELS[0]
    if baseline_model != args.model:
        # The baseline's options are the command's, read as if --model were the baseline's;
        # covariates belong to tvtp only.
        options = argparse.Namespace(**{**vars(args), "model": baseline_model, "covariates": None})
        baseline_spec = BacktestSpec(
            _model_config(options), spec.columns, spec.start, spec.every, spec.window
        )
        out = Path(args.out) / "baseline"
        baseline = run_backtest(
            features,
            baseline_spec,
            out,
            _executor(args),
            progress=_print_progress,
            provenance={**provenance, **baseline_spec.to_dict()},
        )
        baseline_scores = save_backtest(baseline, out, truth)
        total = baseline_scores["log_predictive_density"]
        print(
            f"wrote {out}: baseline {baseline_model}, {len(baseline.segments)} refits "
            f"({len(baseline.report.computed)} fitted now, {len(baseline.report.reused)} "
            f"reused); log predictive density sum {total['sum']:.2f}, mean {total['mean']:.3f}"
        )
        signals[f"rule:{baseline_model}"] = baseline.probabilities("filtered")["risk_on"]
    cost = DEFAULT_COST_BPS if args.cost_bps is None else args.cost_bps
    report = allocation_report(features.frame, signals, assets, cost)
    paths = save_allocation(report, args.out)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    print(format_allocation(report.metrics))


def _executor(args: argparse.Namespace):
    """The executor --scheduler and --workers ask for."""
    from regime_model.evaluation.executor import DaskExecutor, SerialExecutor

    if args.workers is not None and args.scheduler:
        raise RegimeModelError("--workers sets the size of the local cluster; not with --scheduler")
    if args.workers is not None and args.workers < 1:
        raise RegimeModelError(f"--workers must be at least 1, got {args.workers}")
    if args.scheduler == "serial":
        return SerialExecutor()
    return DaskExecutor(address=args.scheduler, n_workers=args.workers)


def _print_progress(done: int, total: int, what: str = "refits") -> None:
    # One line rewritten in place on a terminal; one line per task in a log.
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    print(f"{what} done: {done}/{total}", end=end, file=sys.stderr, flush=True)


def _model_inputs(args: argparse.Namespace) -> tuple[FeatureSet, list[str] | None]:
    """The feature set (with --group applied) and the --columns list (None: all)."""
    groups = dict(_parse_group(item) for item in args.group)
    features = read_features(args.features, groups=groups)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    return features, columns


def _model_config(args: argparse.Namespace) -> dict:
    """The model options as a config for ``model_from_config``."""
    if args.model == "em-hmm":
        config = {
            "model": "em-hmm",
            "n_regimes": args.regimes,
            "covariance": args.covariance,
            "n_restarts": args.restarts,
            "anchor": args.anchor,
            "order_by": args.order_by or "mean",
            "seed": args.seed,
        }
    else:
        from regime_model.models import MODELS

        config = {
            "model": args.model,
            "n_regimes": args.regimes,
            "emission": args.emission,
            "switching": args.switching,
            "covariance": args.covariance,
            "anchor": args.anchor,
            "order_by": args.order_by,
            # Resolved here so that config.json records it.
            "identification": args.identification or MODELS[args.model].identifications[0],
            "stickiness": args.stickiness,
            "sampler": args.sampler,
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "seed": args.seed,
        }
        config.update(_model_specific_config(args))
    return config


def _model_specific_config(args: argparse.Namespace) -> dict:
    """The options only some model families take; an error if given to another."""
    from regime_model.models import MODELS

    family = MODELS[args.model]
    options: dict = {}
    if args.covariates:
        if not family.covariates_allowed:
            takes = [
                name for name, model in MODELS.items() if getattr(model, "covariates_allowed", 0)
            ]
            raise RegimeModelError(f"--covariates is for --model {' or '.join(takes)}")
        options["covariates"] = [
            name.strip() for name in args.covariates.split(",") if name.strip()
        ]
        options["coefficient_scale"] = args.coefficient_scale
    elif family.covariates_required:
        raise RegimeModelError(f"--model {args.model} needs --covariates COL,COL")
    if args.model == "leadlag":
        return {
            "lead_group": args.lead_group,
            "lag_group": args.lag_group,
            "lag": args.lag,
            "lag_anchor": args.lag_anchor,
            "coupling_sd": args.coupling_sd,
        }
    return options


def _parse_group(item: str) -> tuple[str, str]:
    column, separator, group = item.partition("=")
    if not separator or not column or not group:
        raise RegimeModelError(f"--group takes COLUMN=GROUP, got {item!r}")
    return column, group


def _run_summary(args: argparse.Namespace) -> int:
    import json

    from regime_model.results import RegimeResult

    summary = RegimeResult.load(args.run).summary(hdi=args.hdi)
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    verdict = summary["fit_info"].get("diagnostics", {}).get("verdict")
    return 1 if args.strict and verdict == "fail" else 0


def _run_plot(args: argparse.Namespace) -> int:
    from regime_model.plots import plot_regimes
    from regime_model.results import RegimeResult

    path = plot_regimes(RegimeResult.load(args.run), args.out, kind=args.kind)
    print(f"wrote {path}")
    return 0


def format_summary(summary: dict) -> str:
    """The text ``regime summary`` prints."""
    lines = [
        f"{summary['model']} on {summary['n_dates']} dates, {summary['first_date']} to "
        f"{summary['last_date']}; features: {', '.join(summary['columns'])}",
        "",
        f"Filtered regime probabilities on {summary['last_date']} (real-time; "
        f"{summary['hdi']:.0%} HDI):",
    ]
    for name, values in summary["latest_filtered"].items():
        band = (
            f"  [{values['lower']:.2f}, {values['upper']:.2f}]"
            if values["lower"] is not None
            else "  (no band: point estimate)"
        )
        lines.append(f"  {name:<12} {values['mean']:.2f}{band}")
    lines += [
        "",
        "Recent regime path (most probable regime):",
        "  date        filtered      smoothed",
    ]
    lines += [
        f"  {row['date']}  {row['filtered']:<13} {row['smoothed']}"
        for row in summary["recent_path"]
    ]
    lines += ["", "Transition probabilities per step (mean [HDI]):"]
    lines += [
        f"  {row['from']:>12} -> {row['to']:<12} {_band(row)}"
        for row in summary["transition_matrix"]
    ]
    lines += ["", "Expected duration in steps (mean [HDI]):"]
    lines += [f"  {row['regime']:<12} {_band(row, '.1f')}" for row in summary["expected_durations"]]
    lines += ["", "Emission parameters in the features' units (mean [HDI]):"]
    lines += [
        f"  {row['parameter']:<6} {row['feature']:<26} {row['regime']:<12} {_band(row, '.4g')}"
        for row in summary["emissions"]
    ]
    info = summary["fit_info"]
    for title, records in info.get("model_summary", {}).items():
        lines += ["", f"{title.replace('_', ' ').capitalize()}:"]
        lines += _records_table(records)
    if "holdout_start" in info:
        lines += [
            "",
            f"Held out from {info['holdout_start']} ({info['holdout_dates']} dates): fitted on "
            "the earlier dates, later dates filtered with those parameters.",
        ]
    diagnostics = info.get("diagnostics")
    lines.append("")
    if diagnostics and diagnostics.get("verdict") in ("pass", "fail"):
        lines.append(
            f"Diagnostics: {diagnostics['verdict'].upper()} (max R-hat "
            f"{diagnostics['max_rhat']:.3f}, min ESS bulk {diagnostics['min_ess_bulk']:.0f} / "
            f"tail {diagnostics['min_ess_tail']:.0f}, {diagnostics['divergences']} divergences, "
            f"labels: {_labels_word(diagnostics)})"
        )
        lines += [f"  - {failure}" for failure in diagnostics["failures"]]
        lines += [f"  ! {warning}" for warning in diagnostics.get("warnings", [])]
    elif diagnostics:
        lines.append(f"Diagnostics: {diagnostics.get('reason', 'not applicable')}")
    if "note" in info:
        lines.append(f"Note: {info['note']}")
    return "\n".join(lines)


def _labels_word(diagnostics: dict) -> str:
    """ "consistent" or "MIXED" (runs saved before the label checks: chain agreement only)."""
    consistent = diagnostics.get("labels_consistent", not diagnostics.get("label_switching"))
    return "consistent" if consistent else "MIXED"


def _records_table(records: list[dict] | dict | str) -> list[str]:
    """A model's own summary table (list of records, a note, or a list of notes) as
    indented text lines."""
    import textwrap

    if isinstance(records, str):
        records = [records]
    if not records:
        return ["  none"]
    if isinstance(records, list) and all(isinstance(item, str) for item in records):
        return [
            line
            for note in records
            for line in textwrap.wrap(note, width=92, initial_indent="  ", subsequent_indent="    ")
        ]
    frame = pd.DataFrame(records if isinstance(records, list) else [records])
    text = frame.to_string(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-")
    return [f"  {line}" for line in text.splitlines()]


def _band(row: dict, spec: str = ".3f") -> str:
    if row["lower"] is None or row["lower"] != row["lower"]:  # NaN: no band
        return f"{row['mean']:{spec}}"
    return f"{row['mean']:{spec}} [{row['lower']:{spec}}, {row['upper']:{spec}}]"


DEMO_COLUMNS = ["iwm_return", "btc_return", "stablecoin_growth", "hy_spread_change"]


def _run_demo(args: argparse.Namespace) -> int:
    from regime_model.models import BayesianHMM

    market = simulate_market(n_regimes=2, seed=args.seed)
    features = build_features(load_universe(), market.source(), args.freq)
    truth = market.truth_on(features.frame.index)
    print(
        f"1. Synthetic market (seed {args.seed}): 2 regimes, true mean duration "
        f"{1 / (1 - market.transition_matrix[0, 0]):.0f} days; "
        f"{(truth['regime'] == 1).mean():.0%} of dates risk_on."
    )
    _print_coverage(features)
    print(f"\n2. Bayesian HMM on {', '.join(DEMO_COLUMNS)}")
    print("   (2 chains x 1000 draws; the first run also compiles the model, ~30 s):")
    model = BayesianHMM(
        n_regimes=2, draws=1000, tune=1000, chains=2, seed=args.seed, progressbar=False
    )
    result = model.fit(features, DEMO_COLUMNS)
    print(format_summary(result.summary()))
    true_path = truth["regime"].reindex(result.dates).to_numpy()
    print("\n3. Recovery of the known regimes:")
    for kind in ("filtered", "smoothed"):
        risk_on = result.regime_probabilities(kind)[("risk_on", "mean")].to_numpy()
        accuracy = ((risk_on > 0.5).astype(int) == true_path).mean()
        print(f"   {kind:<9} P(risk_on) > 0.5 matches the true regime on {accuracy:.1%} of dates")
    stay = result.transition_matrix().query("`from` == `to`")["mean"].to_numpy()
    print(
        f"   P(stay) posterior means {np.round(stay, 3).tolist()} vs true "
        f"{market.transition_matrix[0, 0]:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
