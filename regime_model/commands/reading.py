"""``regime update`` and ``regime now``: a fitted run reading new data without refitting,
and the current reading with what it can and cannot claim."""

from __future__ import annotations

import argparse
import json


def run_update(args: argparse.Namespace) -> int:
    from regime_model.data.cache import write_text_atomic
    from regime_model.data.features import read_features
    from regime_model.models.estimator import load_run

    model = load_run(args.run)
    filtered = model.filter(read_features(args.features))
    rows = filtered.probabilities_long(args.hdi)
    rows["date"] = rows["date"].dt.strftime("%Y-%m-%d")
    print(
        f"{args.run}: {len(filtered.dates)} dates after the fit "
        f"({filtered.dates[0]:%Y-%m-%d} to {filtered.dates[-1]:%Y-%m-%d}), filtered with the "
        f"fitted posterior ({filtered.filtered.shape[0]} draws; parameters fitted through "
        f"{filtered.fitted_through:%Y-%m-%d}, not refitted)"
    )
    shown = filtered.probabilities("filtered", args.hdi)
    print(shown.tail(args.last).round(3).to_string())
    if args.out:
        write_text_atomic(rows.to_csv(index=False, float_format="%.6g"), args.out)
        print(f"wrote {args.out}")
    return 0


def run_now(args: argparse.Namespace) -> int:
    from regime_model.data.features import read_features
    from regime_model.models.estimator import load_run
    from regime_model.reading import current_reading, format_reading, plot_reading

    model = load_run(args.run)
    new = read_features(args.features) if args.features else None
    appended = None if new is None else model.filter(new)  # once, for text and figure
    reading = current_reading(model, new, args.hdi, appended)
    if args.format == "json":
        print(json.dumps(reading, indent=2))
    else:
        print(format_reading(reading, str(args.run)))
    if args.figure:
        print(f"wrote {plot_reading(model, reading, args.figure, appended)}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from regime_model.data.features import read_features
    from regime_model.html_report import write_report
    from regime_model.models.estimator import load_run

    model = load_run(args.run)
    new = read_features(args.features) if args.features else None
    print(f"wrote {write_report(model, args.html, str(args.run), new, args.hdi)}")
    return 0
