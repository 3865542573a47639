"""The joint liquidity regime, 2015 to the end of the data, weekly and daily.

One latent risk-on / risk-off regime inferred jointly from small-cap returns and breadth,
credit, volatility and crypto returns (Student-t margins, K = 2). Two designs (see
``DESIGNS``): "state" and "returns_only", each weekly and daily. Writes, per run NAME (``weekly``,
``daily``, ``returns_only_weekly``, ``returns_only_daily``):

* ``risk_on_NAME.png``: filtered (real-time) and smoothed P(risk_on) with 90% bands,
  over IWM and BTC prices;
* ``probabilities_NAME.csv``: the same probabilities as rows (date, regime, kind, ...);
* ``episodes_NAME.csv``: smoothed regime episodes (start, end, duration, mean
  probability) with each asset's mean and total log return (percent) in the episode;
* ``summary_NAME.json``: transition matrix, durations, emissions, diagnostics;
* ``now_NAME.txt``, ``.json``, ``.png``: the current reading (``regime now``): P(regime)
  on the last date with its band, its change over 4 and 13 periods, the forecast, the
  features stale at the end and which values are real-time;
* ``report.json``: per run, the verdict, expected durations, P(stay) and the latest
  filtered P(risk_on).

    python experiments/regime_history.py --data-dir ../shared/data --out results/regime_history
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, features, log, parse_args, prices, write_json, write_table  # noqa: E402

from regime_model.episodes import episode_returns, regime_episodes  # noqa: E402
from regime_model.models import BayesianHMM  # noqa: E402
from regime_model.models.observations import select_features  # noqa: E402
from regime_model.plots import plot_probability_over_prices  # noqa: E402
from regime_model.reading import current_reading, format_reading, plot_reading  # noqa: E402

# Small caps, breadth, credit, crypto: the legs of the "one liquidity regime" story.
# Two designs. "state" (the main one) adds two slow-moving state variables, the share of
# US stocks (broad universe) above their 200-day average (breadth level) and log VIX
# (risk appetite), to the weekly changes: a liquidity regime is a state that lasts
# months, and these say which state the market is in. "returns_only" uses the changes
# alone; its regimes turn out to be week-to-week (or day-to-day) moves, not cycles,
# which the report shows side by side. Stablecoin supply starts in 2020 (masked before),
# so it is left to the flows experiment; net liquidity is weekly by nature and flat on
# most days.
DESIGNS = {
    "state": [
        "iwm_return",
        "pct_above_200dma",
        "hy_spread_change",
        "vix_log",
        "btc_return",
        "eth_return",
    ],
    "returns_only": [
        "iwm_return",
        "pct_above_200dma_change",
        "hy_spread_change",
        "btc_return",
        "eth_return",
    ],
}
RUNS = [
    ("state", "weekly"),
    ("state", "daily"),
    ("returns_only", "weekly"),
    ("returns_only", "daily"),
]
RETURN_COLUMNS = ["iwm_return", "spy_return", "btc_return", "eth_return", "altcoin_return"]
PRICES = {"IWM": "iwm.csv:close", "BTC": "btc_usd_yf.csv:close"}


def run_name(design: str, freq: str) -> str:
    """The run's name in output files: ``weekly``, ``daily``, ``returns_only_weekly``."""
    return freq if design == "state" else f"{design}_{freq}"


def run(design: str, freq: str, args) -> dict:
    feature_set = features(args.data_dir, freq, args.out)
    columns = DESIGNS[design]
    name = run_name(design, freq)
    if args.quick:  # the last three years only: a smoke test of the pipeline
        frame = feature_set.frame[feature_set.frame.index >= "2023-01-01"]
        feature_set = select_features(
            type(feature_set)(frame, feature_set.groups, feature_set.freq), None
        )
    # Student-t emissions: crash weeks and crypto's fat tails would otherwise get a regime
    # of their own.
    model = BayesianHMM(
        2, emission="student-t", seed=args.seed, progressbar=False, **args.settings.as_kwargs()
    )
    with Timer() as timer:
        result = model.fit(feature_set, columns).result_
    log(f"{name}: fitted {len(result.dates)} dates in {timer.seconds:.0f} s")
    run_dir = args.out / f"run_{name}"
    result.save(run_dir, force=True)
    # The current reading (as `regime now` prints it): the last date's filtered
    # P(regime), its change, the forecast, stale features and what is real-time.
    reading = current_reading(model)
    (args.out / f"now_{name}.txt").write_text(format_reading(reading, str(run_dir)) + "\n")
    write_json(reading, args.out / f"now_{name}.json")
    plot_reading(model, reading, args.out / f"now_{name}.png")
    probabilities = result.probabilities_long()
    probabilities["date"] = probabilities["date"].dt.strftime("%Y-%m-%d")
    write_table(probabilities, args.out / f"probabilities_{name}.csv")
    episodes = episode_returns(
        regime_episodes(result, "smoothed"), feature_set.frame[RETURN_COLUMNS]
    )
    for column in ("start", "end"):
        episodes[column] = episodes[column].dt.strftime("%Y-%m-%d")
    write_table(episodes, args.out / f"episodes_{name}.csv")
    price_frame = prices(args.data_dir, PRICES)
    plot_probability_over_prices(
        result,
        {name: price_frame[name].dropna() for name in PRICES},
        args.out / f"risk_on_{name}.png",
    )
    summary = result.summary()
    summary["fit_seconds"] = round(timer.seconds, 1)
    write_json(summary, args.out / f"summary_{name}.json")
    diagnostics = summary["fit_info"].get("diagnostics", {})
    risk_on = episodes[episodes["regime"] == "risk_on"]
    durations = {row["regime"]: row for row in summary["expected_durations"]}
    stay = {row["from"]: row for row in summary["transition_matrix"] if row["from"] == row["to"]}
    return {
        "design": design,
        "columns": columns,
        "freq": freq,
        "dates": len(result.dates),
        "fit_seconds": round(timer.seconds, 1),
        "verdict": diagnostics.get("verdict"),
        "failures": diagnostics.get("failures", []),
        "latest_date": summary["last_date"],
        "latest_filtered_risk_on": summary["latest_filtered"]["risk_on"],
        "stale_at_end": [row for row in reading["features"] if row["missing_at_end"]],
        "latest_is_real_time": reading["is_real_time"],
        "risk_on_episodes": len(risk_on),
        "share_of_time_risk_on": float(risk_on["duration"].sum() / len(result.dates)),
        "expected_duration_steps": durations,
        "p_stay": stay,
    }


def main(argv: list[str] | None = None) -> int:
    def only(parser) -> None:
        parser.add_argument(
            "--only",
            action="append",
            choices=[run_name(design, freq) for design, freq in RUNS],
            help="run only these (repeatable; default: all)",
        )

    args = parse_args(__doc__.splitlines()[0], argv, only)
    runs = [(d, f) for d, f in RUNS if not args.only or run_name(d, f) in args.only]
    report = [run(design, freq, args) for design, freq in runs]
    write_json({"runs": report, "quick": args.quick}, args.out / "report.json")
    for row in report:
        log(
            f"{row['design']} {row['freq']}: {row['dates']} dates, diagnostics {row['verdict']}, "
            f"P(risk_on) now {row['latest_filtered_risk_on']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
