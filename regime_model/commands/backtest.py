"""``regime backtest`` (walk-forward refits on a Dask cluster, the allocation report) and
the executor and progress lines every many-fit command shares."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from regime_model.commands.inputs import model_config, model_inputs
from regime_model.data.features import FeatureSet
from regime_model.data.synthetic import truth_path
from regime_model.data.validation import parse_date
from regime_model.errors import RegimeModelError

if TYPE_CHECKING:  # slow to import (the models)
    from regime_model.evaluation.backtest import BacktestResult, BacktestSpec

# regime backtest --allocate: the default cost and the models a baseline rule may use.
DEFAULT_COST_BPS = 10.0
BASELINE_MODELS = ("em-hmm", "bayes-hmm")


def run_walk_forward(args: argparse.Namespace) -> int:
    from regime_model.evaluation.backtest import BacktestSpec, run_backtest, save_backtest
    from regime_model.evaluation.scores import format_scores, read_truth
    from regime_model.provenance import run_config

    # With --allocate, the flags also describe the baseline model.
    config = model_config(args, (baseline_model(args),) if args.allocate else ())
    features, columns = model_inputs(args)
    assets = allocation_assets(args, features)  # checked before hours of fitting
    spec = BacktestSpec(
        config,
        columns,
        parse_date(args.start, "--start"),
        args.every,
        args.window,
        warm_start=not args.cold_starts,
    )
    truth_file = truth_path(args.features)
    truth = read_truth(truth_file) if truth_file.is_file() else None
    provenance = {**spec.to_dict(), **run_config(args.features, features)}
    result = run_backtest(
        features,
        spec,
        args.out,
        executor(args),
        progress=None if args.quiet else print_progress,
        provenance=provenance,
        force=args.force,
    )
    scores = save_backtest(result, args.out, truth)
    if not assets:  # no allocation report now: none from an earlier run may stay beside it
        for name in ("allocation.csv", "allocation_wealth.csv"):
            (Path(args.out) / name).unlink(missing_ok=True)
    report = result.report
    print(
        f"wrote {args.out}: {len(result.segments)} refits ({len(report.computed)} fitted now, "
        f"{len(report.reused)} reused)"
    )
    print(format_scores(scores))
    if truth is None:
        print(f"no {truth_file.name} beside the features: no Brier score")
    if assets:
        run_allocation(args, features, spec, result, assets, provenance, truth)
    return 0


def allocation_assets(args: argparse.Namespace, features: FeatureSet) -> list[str]:
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


def run_allocation(
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
    from regime_model.evaluation.backtest import run_backtest, save_backtest

    signals = {f"rule:{args.model}": result.probabilities("filtered")["risk_on"]}
    baseline_name = baseline_model(args)
    if baseline_name != args.model:
        # The baseline's options are the command's, read as if --model were the baseline's;
        # those it does not take (covariates, lead-lag options, ...) are dropped.
        options = argparse.Namespace(**{**vars(args), "model": baseline_name})
        baseline_spec = replace(spec, model_config=model_config(options, (args.model,)))
        out = Path(args.out) / "baseline"
        baseline = run_backtest(
            features,
            baseline_spec,
            out,
            executor(args),
            progress=None if args.quiet else print_progress,
            provenance={**provenance, **baseline_spec.to_dict()},
            force=args.force,
        )
        baseline_scores = save_backtest(baseline, out, truth)
        total = baseline_scores["log_predictive_density"]
        print(
            f"wrote {out}: baseline {baseline_name}, {len(baseline.segments)} refits "
            f"({len(baseline.report.computed)} fitted now, {len(baseline.report.reused)} "
            f"reused); log predictive density sum {total['sum']:.2f}, mean {total['mean']:.3f}"
        )
        signals[f"rule:{baseline_name}"] = baseline.probabilities("filtered")["risk_on"]
    cost = DEFAULT_COST_BPS if args.cost_bps is None else args.cost_bps
    report = allocation_report(features.frame, signals, assets, cost)
    paths = save_allocation(report, args.out)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    print(format_allocation(report.metrics))


def baseline_model(args: argparse.Namespace) -> str:
    """The model of the allocation report's baseline rule."""
    return args.baseline_model or BASELINE_MODELS[0]


def executor(args: argparse.Namespace):
    """The executor --scheduler and --workers ask for."""
    from regime_model.evaluation.executor import DaskExecutor, SerialExecutor

    if args.workers is not None and args.scheduler:
        raise RegimeModelError("--workers sets the size of the local cluster; not with --scheduler")
    if args.scheduler == "serial":
        return SerialExecutor()
    if args.scheduler and not args.trust_scheduler and not is_loopback(args.scheduler):
        raise RegimeModelError(
            f"--scheduler {args.scheduler} is not on this machine: its workers run the tasks "
            "this process sends and this process unpickles what they return; pass "
            "--trust-scheduler if you control that cluster"
        )
    return DaskExecutor(address=args.scheduler, n_workers=args.workers)


def is_loopback(address: str) -> bool:
    """Whether a scheduler address (tcp://HOST:PORT, HOST:PORT) names this machine."""
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def print_progress(done: int, total: int, what: str = "refits") -> None:
    # One line rewritten in place on a terminal; one line per task in a log.
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    print(f"{what} done: {done}/{total}", end=end, file=sys.stderr, flush=True)
