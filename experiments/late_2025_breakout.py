"""The late-2025 small-cap breakout, scored: every breakout rule on 2025-2026, what a model
said at the time, and what crypto did next against what the earlier breakouts predicted.

Rules: a close above every earlier close whose previous high is at least 180, 365 or 500
calendar days old, on IWM (total return), ^RUT (the price index) and IWN (Russell 2000
Value, dividend-adjusted). For every event from 2025-01-01 on:

* **at the time**: a crypto-only weekly Bayesian HMM (BTC, ETH, altcoin returns, as in
  ``breakout_event_study``) fitted on the weeks up to the event only; its filtered
  P(crypto risk_on) in the last week on or before the event, with the 90% band. No data
  after the event enter it.
* **expected**: the event-study model fitted on the IWM 365-day breakouts *before* 2025
  (2016-11-11, 2020-11-09, 2024-11-06) against tiling windows, on the returns known
  before the first scored event; its predictive
  of a new event window's 3-month (63 trading days) forward log returns, mean and 90%
  interval per asset.
* **what happened**: the realised 3-month forward log returns where the snapshot holds
  the whole window, and where the realised return falls in the predictive (its
  predictive percentile).

Outputs: ``events.csv`` (every rule's 2025-2026 events), ``scored.csv``, ``report.json``,
``late_2025_breakout.png`` (expected against realised 3-month returns per event date, and
the crypto regime reading at the time).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    MODEL_COLOURS,
    features,
    log,
    parse_args,
    prices,
    write_json,
    write_table,
)

from regime_model.data.events import find_breakouts  # noqa: E402
from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.models import BayesianHMM  # noqa: E402
from regime_model.models.event_study import (  # noqa: E402
    EventStudy,
    forward_returns,
    tiling_starts,
)

ASSETS = ["btc_return", "eth_return", "altcoin_return"]
SERIES = {"IWM": "iwm.csv:close", "^RUT": "rut_index.csv:close", "IWN": "iwn.csv:adj_close"}
BASES = (180, 365, 500)
HORIZON = 63  # trading days: 3 months
FIRST_DATE = "2015-01-01"
SCORED_FROM = pd.Timestamp("2025-01-01")


def rule_events(closes: pd.DataFrame) -> pd.DataFrame:
    """Every rule's breakouts from 2015 on: series, base_days, date."""
    rows = []
    for name in closes.columns:
        for base in BASES:
            found = find_breakouts(closes[name].dropna(), base)
            for date in found.loc[found["date"] >= FIRST_DATE, "date"]:
                rows.append({"series": name, "base_days": base, "date": pd.Timestamp(date)})
    return pd.DataFrame(rows).sort_values(["date", "series", "base_days"], ignore_index=True)


def reading_at(weekly: FeatureSet, date: pd.Timestamp, args) -> dict[str, float]:
    """P(crypto risk_on) filtered at the last week on or before ``date``, from a fit on the
    weeks up to it only."""
    frame = weekly.frame.loc[:date, ASSETS].dropna()
    past = FeatureSet(frame, {a: "crypto" for a in ASSETS}, weekly.freq)
    model = BayesianHMM(
        2, seed=args.seed, progressbar=False, target_accept=0.95, **args.settings.as_kwargs()
    )
    result = model.fit(past).result_
    last = result.regime_probabilities("filtered")["risk_on"].iloc[-1]
    return {
        "week": str(frame.index[-1].date()),
        "p_risk_on": float(last["mean"]),
        "p_risk_on_lower": float(last["lower"]),
        "p_risk_on_upper": float(last["upper"]),
        "verdict": result.diagnostics()["verdict"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    daily = features(args.data_dir, "daily", args.out)
    weekly = features(args.data_dir, "weekly", args.out)
    closes = prices(args.data_dir, SERIES)
    events = rule_events(closes)
    write_table(events, args.out / "events.csv")
    recent = events[events["date"] >= SCORED_FROM]
    log(f"events from {SCORED_FROM.date()}: {len(recent)} over {recent['date'].nunique()} dates")

    # What the three cited breakouts say to expect, from the returns known before the
    # first scored event (the 2024-11-06 window ended in February 2025).
    returns = daily.frame.loc[FIRST_DATE:, ASSETS]
    first_scored = recent["date"].min()
    before = returns.loc[: first_scored - pd.Timedelta(days=1)]
    cited = events[(events["series"] == "IWM") & (events["base_days"] == 365)]
    cited = pd.DatetimeIndex(cited.loc[cited["date"] < SCORED_FROM, "date"])
    after_cited = forward_returns(before, cited, HORIZON).dropna(how="all")
    reference = forward_returns(before, tiling_starts(before.index, HORIZON), HORIZON)
    study = EventStudy(seed=args.seed, **args.settings.as_kwargs()).fit(
        after_cited, reference.dropna(how="all")
    )
    predictive = study.predictive(seed=args.seed)
    log(f"event study on {len(after_cited)} earlier events: {study.diagnostics()}")

    realised = forward_returns(returns, pd.DatetimeIndex(recent["date"].unique()), HORIZON)
    readings = {date: reading_at(weekly, date, args) for date in recent["date"].unique()}
    rows = []
    for event in recent.itertuples():
        row = {"series": event.series, "base_days": event.base_days, "date": event.date.date()}
        row |= {f"at_time_{key}": value for key, value in readings[event.date].items()}
        for asset in ASSETS:
            draws = predictive[asset].to_numpy()
            value = realised.loc[event.date, asset] if event.date in realised.index else np.nan
            row |= {
                f"{asset}_expected_mean": float(draws.mean()),
                f"{asset}_expected_lower": float(np.quantile(draws, 0.05)),
                f"{asset}_expected_upper": float(np.quantile(draws, 0.95)),
                f"{asset}_realised": float(value),
                f"{asset}_percentile": float((draws < value).mean())
                if np.isfinite(value)
                else np.nan,
            }
        rows.append(row)
    scored = pd.DataFrame(rows)
    write_table(scored, args.out / "scored.csv")
    plot(scored, args.out / "late_2025_breakout.png")
    write_json(
        {
            "quick": args.quick,
            "scored_from": str(SCORED_FROM.date()),
            "horizon_trading_days": HORIZON,
            "earlier_events": [str(date.date()) for date in cited],
            "event_study_diagnostics": study.diagnostics(),
            "events": scored.to_dict(orient="records"),
        },
        args.out / "report.json",
    )
    for row in scored.itertuples():
        log(
            f"{row.series} base {row.base_days} on {row.date}: P(crypto risk_on) at the time "
            f"{row.at_time_p_risk_on:.2f} [{row.at_time_p_risk_on_lower:.2f}, "
            f"{row.at_time_p_risk_on_upper:.2f}]; BTC 3m expected "
            f"{row.btc_return_expected_mean:.0f}% [{row.btc_return_expected_lower:.0f}, "
            f"{row.btc_return_expected_upper:.0f}], realised {row.btc_return_realised:.0f}%"
        )
    return 0


def plot(scored: pd.DataFrame, path: Path) -> None:
    """Left: per asset, the 3-month return the earlier breakouts predicted (mean, 90%
    interval) and what followed each 2025 event date. Right: P(crypto risk_on) at the
    time, per event date, with its 90% band."""
    dates = scored.drop_duplicates("date").reset_index(drop=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(3, 2))
    markers = ("o", "s", "D", "^")
    names = {"btc_return": "BTC", "eth_return": "ETH", "altcoin_return": "altcoins"}
    for position, asset in enumerate(ASSETS):
        first = dates.iloc[0]
        mean = first[f"{asset}_expected_mean"]
        low, high = first[f"{asset}_expected_lower"], first[f"{asset}_expected_upper"]
        label = "predicted by the earlier breakouts" if position == 0 else None
        left.errorbar(
            mean, position, xerr=[[mean - low], [high - mean]], fmt="|", color="#7f8c8d",
            markersize=14, capsize=4, label=label,
        )  # fmt: skip
        realised = dates[f"{asset}_realised"].to_numpy()
        if not np.isfinite(realised).any():
            left.annotate(
                "no outcome in the snapshot", (mean, position), xytext=(0, 8),
                textcoords="offset points", fontsize=8, color="#7f8c8d", ha="center",
            )  # fmt: skip
        for number, row in dates.iterrows():
            value = row[f"{asset}_realised"]
            if np.isfinite(value):
                left.plot(
                    value, position + 0.15 * (number + 1), markers[number % len(markers)],
                    color="#c0392b", label=f"after {row['date']}" if position == 0 else None,
                )  # fmt: skip
    left.axvline(0, color="black", linewidth=0.5)
    left.set_yticks(range(len(ASSETS)), [names[asset] for asset in ASSETS])
    left.set_xlabel("3-month forward log return (%)")
    left.set_title("Expected (90% interval) against realised")
    left.set_ylim(-0.4, len(ASSETS) - 0.4)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    right.errorbar(
        range(len(dates)), dates["at_time_p_risk_on"],
        yerr=[dates["at_time_p_risk_on"] - dates["at_time_p_risk_on_lower"],
              dates["at_time_p_risk_on_upper"] - dates["at_time_p_risk_on"]],
        fmt="o", color=MODEL_COLOURS["bayes-hmm"], capsize=4,
    )  # fmt: skip
    right.set_xticks(range(len(dates)), [str(date) for date in dates["date"]])
    right.set_xlim(-0.5, len(dates) - 0.5)
    right.set_ylim(0, 1)
    right.set_ylabel("P(crypto risk_on), 90% band")
    right.set_title("Crypto regime at the time (data up to it)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
