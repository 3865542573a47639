"""``regime fit``, ``summary``, ``compare``, ``plot`` and ``calibrate``: one fitted run,
or simulation-based calibration."""

from __future__ import annotations

import argparse

from regime_model.commands.backtest import executor, print_progress
from regime_model.commands.inputs import model_config, model_inputs
from regime_model.data.validation import parse_date
from regime_model.errors import RegimeModelError
from regime_model.report_text import format_summary
from regime_model.run_directory import check_writable


def run_fit(args: argparse.Namespace) -> int:
    from regime_model.models import model_from_config
    from regime_model.provenance import run_config

    check_writable(args.out, args.force)  # before minutes of sampling
    model = model_from_config(model_config(args))  # checked before the data are read
    model.progressbar = not args.quiet
    features, columns = model_inputs(args)
    holdout_start = None
    if args.holdout_start:
        holdout_start = parse_date(args.holdout_start, "--holdout-start")
    result = model.fit(features, columns, holdout_start=holdout_start).result_
    result.config.update(run_config(args.features, features))
    result.save(args.out, force=args.force)
    print(
        f"wrote {args.out}: posterior.nc, regime_probabilities.csv, summary.json, config.json, "
        "manifest.json"
    )
    print(format_summary(result.summary()))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    import json

    from regime_model.results import RegimeResult

    summary = RegimeResult.load(args.run).summary(hdi=args.hdi)
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    verdict = summary["fit_info"].get("diagnostics", {}).get("verdict")
    return 1 if args.strict and verdict == "fail" else 0


def run_compare(args: argparse.Namespace) -> int:
    import json

    from regime_model.compare import compare_runs, format_comparison, load_runs

    comparison = compare_runs(load_runs(args.runs))
    if args.format == "json":
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from regime_model.plots import plot_regimes
    from regime_model.results import RegimeResult

    path = plot_regimes(RegimeResult.load(args.run), args.out, kind=args.kind)
    print(f"wrote {path}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from regime_model.evaluation.sbc import (
        CalibrationSpec,
        format_calibration,
        run_calibration,
        save_calibration,
    )

    if args.model == "em-hmm":
        raise RegimeModelError("calibrate needs a Bayesian model; em-hmm has no posterior")
    config = model_config(args)
    try:
        spec = CalibrationSpec(config, args.replicates, args.dates, args.series, config["seed"])
    except ValueError as exc:
        raise RegimeModelError(str(exc)) from exc
    result = run_calibration(
        spec,
        args.out,
        executor(args),
        progress=None
        if args.quiet
        else lambda done, total: print_progress(done, total, "replicates"),
        force=args.force,
    )
    summary = save_calibration(result, args.out)
    print(f"wrote {args.out}: ranks, uniformity, coverage, replicates, rank_histograms.png")
    print(format_calibration(summary, result.uniformity()))
    return 1 if args.strict and summary["verdict"] != "pass" else 0
