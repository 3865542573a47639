"""The ``regime`` command line.

Commands are grouped: ``regime data fetch|build|show`` for the data layer and
``regime demo`` for an offline end-to-end run on synthetic data. Every data error becomes
a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regime_model import __version__
from regime_model.choices import COARSE_FREQUENCIES, MODEL_NAMES
from regime_model.commands.argument_types import positive, probability, window_argument
from regime_model.commands.backtest import (
    BASELINE_MODELS,
    DEFAULT_COST_BPS,
    run_walk_forward,
)
from regime_model.commands.data import run_build, run_fetch, run_show
from regime_model.commands.demo import run_demo
from regime_model.commands.reading import run_now, run_report, run_update
from regime_model.commands.runs import run_calibrate, run_compare, run_fit, run_plot, run_summary
from regime_model.data.calendar import FREQUENCIES
from regime_model.errors import RegimeModelError
from regime_model.evaluation.schedule import EVERY
from regime_model.model_options import MODEL_HELP, MODEL_OPTIONS, comma_list, help_text
from regime_model.progress import hide_phases, show_phases

DEFAULT_CACHE = Path.home() / ".cache" / "regime-model"
EXIT_DATA_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``regime`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line argument error (exit 2)
        return int(exc.code or 0)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_DATA_ERROR
    # SIGTERM (a scheduler's stop, `kill`) ends a run the way Ctrl-C does: partial output
    # removed, exit 130. Only the main thread may set handlers (main() may run in others).
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    phases = None if getattr(args, "quiet", False) else show_phases()
    try:
        return int(args.handler(args) or 0)
    except RegimeModelError as exc:
        print(f"regime: error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except ValueError as exc:  # a check inside a library: still one line, not a traceback
        if os.environ.get("REGIME_DEBUG"):
            raise
        print(f"regime: error: {exc} (REGIME_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_DATA_ERROR
    except BrokenPipeError:  # `regime summary RUN | head`: the reader left; not an error
        # Python flushes stdout again at exit: point it at /dev/null so that is quiet too.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        detail = f" ({exc})" if str(exc) else ""
        print(f"regime: interrupted{detail}", file=sys.stderr)
        return 130
    finally:
        if phases is not None:
            hide_phases(phases)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def console() -> None:
    """The ``regime`` console script: :func:`main`, then the process exits with its status.

    Tearing down the interpreter's modules (PyTensor, numba, PyMC) costs 0.6-0.9 s after
    every command on this machine. Once nothing else runs (no other thread, no child
    process) that work is skipped: atexit handlers run, output is flushed, the process
    ends. Otherwise it exits normally."""
    status = main()
    children = sys.modules.get("multiprocessing")
    if threading.active_count() > 1 or (children and children.active_children()):
        sys.exit(status)
    atexit._run_exitfuncs()  # what a normal exit runs first (logging, temporary files)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left: status stands
            stream.flush()
    os._exit(status)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one --help away), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("regime").strip()
        self.exit(EXIT_DATA_ERROR, f"regime: error: {where + ': ' if where else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _add_reading(commands)

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
    demo.set_defaults(handler=run_demo)
    return parser


def _add_fit(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser(
        "fit",
        help="fit a regime model to a feature file",
        description="Fit a Bayesian HMM (PyMC, sampled by nutpie by default) or a "
        "maximum-likelihood HMM (hmmlearn EM) and write DIR/posterior.nc, "
        "DIR/regime_probabilities.csv (filtered and smoothed, with HDI bands), "
        "DIR/summary.json, DIR/config.json and DIR/manifest.json (every file's sha256: "
        "the run is written whole or not at all, and later commands refuse it if a file "
        "is missing or changed).",
    )
    _add_model_options(fit)
    fit.add_argument(
        "--holdout-start",
        metavar="DATE",
        help="fit on the dates before DATE only and score the rest one step ahead with the "
        "filter (for 'regime compare')",
    )
    fit.add_argument("--out", required=True, help="output directory")
    fit.add_argument(
        "--force", action="store_true", help="replace the run already in --out (never a non-run)"
    )
    fit.set_defaults(handler=run_fit)


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
        type=window_argument,
        default="expanding",
        metavar="expanding|N",
        help="fit on every earlier date (expanding, the default) or on the last N dates",
    )
    schedule.add_argument(
        "--cold-starts",
        action="store_true",
        help="start every refit from its EM estimate (default with nutpie: from where the "
        "previous refit of its calendar year ended, tuning 100 steps instead of 300)",
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
    backtest.set_defaults(handler=run_walk_forward)


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
    parser.add_argument("--model", choices=MODEL_NAMES, default="bayes-hmm", help=MODEL_HELP)
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (phase lines, progress bar, tasks done); results and "
        "errors are still printed",
    )
    sections: dict[str, Any] = {"model": parser}
    for option in MODEL_OPTIONS:
        if option.section not in sections:
            sections[option.section] = parser.add_argument_group(option.section)
        if option.type is bool:  # a switch: given (True) or not (the default)
            sections[option.section].add_argument(
                option.flag, dest=option.name, action="store_const", const=True,
                help=help_text(option),
            )  # fmt: skip
            continue
        sections[option.section].add_argument(
            option.flag,
            dest=option.name,
            type=option.parse,
            choices=option.choices,
            metavar=option.metavar,
            help=help_text(option),
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
    size.add_argument("--replicates", type=positive, default=100, help="simulated data sets (100)")
    size.add_argument("--dates", type=positive, default=200, help="dates per data set (200)")
    size.add_argument("--series", type=positive, default=2, help="emission columns (2)")
    calibrate.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a parameter fails the uniformity test",
    )
    _add_execution_options(calibrate)
    # Hundreds of fits: fewer draws per fit than 'fit' uses. Ranks need only 99 nearly
    # independent draws, and 2 x 500 give several hundred effective ones at this size.
    calibrate.set_defaults(handler=run_calibrate, draws=500, tune=500, chains=2)


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    """Where many-fit commands run their fits, and whether they may replace --out."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a run of other settings in --out (the same settings resume)",
    )
    execution = parser.add_argument_group("execution")
    execution.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="tcp://HOST:PORT of a running Dask scheduler (its workers need regime-model "
        "installed), or 'serial' to fit in this process; default: a local cluster",
    )
    execution.add_argument(
        "--workers",
        type=positive,
        help="worker processes of the local cluster (default: one per core)",
    )
    execution.add_argument(
        "--trust-scheduler",
        action="store_true",
        help="allow a --scheduler on another machine: its workers run the tasks this "
        "process sends and this process unpickles their results (docs/reliability.md)",
    )


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
    summary.add_argument(
        "--hdi", type=probability, default=0.9, help="HDI probability (default 0.9)"
    )
    summary.add_argument(
        "--strict", action="store_true", help="exit with status 1 when diagnostics fail"
    )
    summary.set_defaults(handler=run_summary)


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
    compare.set_defaults(handler=run_compare)


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
    plot.set_defaults(handler=run_plot)


def _add_reading(commands: argparse._SubParsersAction) -> None:
    update = _reading_parser(
        commands,
        "update",
        "filter new data through a fitted run (no refit)",
        "Run each stored posterior draw's forward pass over the dates FILE adds after the "
        "fitted data: filtered and predicted P(regime) with HDI bands, nothing resampled. "
        "FILE may hold only the new rows or the fitted data and the new rows; fitted dates "
        "must keep their values.",
        features_required=True,
    )
    update.add_argument("--out", help="CSV to write (date, regime, kind, mean, lower, upper)")
    update.add_argument("--last", type=positive, default=8, help="rows to print (default 8)")
    update.set_defaults(handler=run_update)
    now = _reading_parser(
        commands,
        "now",
        "the current reading: P(regime) now, its change, forecast, stale features",
        "For a run (and optionally new data filtered through it): the as-of date, filtered "
        "P(each regime) with its HDI, the change over 4 and 13 periods, the forecast 1, 4 "
        "and 13 periods ahead, the features missing or stale at the end, and whether each "
        "value shown was read with parameters fitted on later data.",
    )
    now.add_argument("--format", choices=("table", "json"), default="table")
    now.add_argument("--figure", help="PNG file for the one-page figure")
    now.set_defaults(handler=run_now)
    report = _reading_parser(
        commands,
        "report",
        "one self-contained HTML page of a run (reading, figures, tables)",
        "The current reading, the regime figures, the transition matrix, durations, "
        "emission parameters and diagnostics in one HTML file with the figures embedded: "
        "readable offline.",
    )
    report.add_argument("--html", required=True, help="HTML file to write")
    report.set_defaults(handler=run_report)


def _reading_parser(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str,
    features_required: bool = False,
) -> argparse.ArgumentParser:
    """A command reading a fitted run, with new data filtered through it (no refit)."""
    parser = commands.add_parser(name, help=summary, description=description)
    parser.add_argument("run", help="directory written by 'regime fit'")
    parser.add_argument(
        "--features",
        required=features_required,
        help="feature CSV extending the fit's data (filtered through the fitted posterior)",
    )
    parser.add_argument("--hdi", type=probability, default=0.9, help="HDI (default 0.9)")
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
    fetch.set_defaults(handler=run_fetch)


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
    build.add_argument(
        "--coarse-columns",
        type=comma_list,
        metavar="COL,COL",
        help="features observed on a coarse calendar (a two-scale model's slow ones): each "
        "kept only on the last date of every ended --coarse-freq period, as known then",
    )
    build.add_argument(
        "--coarse-freq",
        choices=COARSE_FREQUENCIES,
        default="M",
        help="the coarse calendar: M (months, default), Q (quarters) or W (weeks)",
    )
    synthetic = build.add_argument_group("synthetic source")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synthetic.add_argument("--regimes", type=int, default=2, help="number of regimes (default 2)")
    synthetic.add_argument(
        "--crypto-lag-days",
        type=int,
        default=0,
        help="days by which crypto's regime follows the equity regime (default 0)",
    )
    build.set_defaults(handler=run_build)


def _add_show(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser(
        "show",
        help="coverage table of a feature file",
        description="Print each column's group, first and last date, number of values and "
        "share of missing dates.",
    )
    show.add_argument("file", help="feature CSV written by 'regime data build'")
    show.set_defaults(handler=run_show)


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


if __name__ == "__main__":
    console()
