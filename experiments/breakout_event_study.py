"""Russell 2000 breakouts to new all-time highs, and what crypto did next.

A breakout is an IWM close (dividend-adjusted) above every earlier close when the previous
high is at least ``--min-base-days`` calendar days old (default 365: a breakout from a base
of a year or more, not one more high in a running trend). IWM rather than ^RUT because the
index is a price index: ^RUT stayed below its 2021 high in late 2024 while the total-return
ETF broke out. Since 2015 this finds 2016-11-11, 2020-11-09 and 2024-11-06.

For each horizon (63, 126, 252 trading days: 3, 6, 12 months) the forward log returns of
BTC, ETH and the altcoin basket after each breakout are compared, with partial pooling
(:class:`regime_model.models.event_study.EventStudy`), with non-overlapping windows tiling
the whole period (the unconditional reference). Separately, a crypto-only Bayesian HMM
(weekly) gives each week's filtered P(crypto risk_on); its mean over the weeks after each
breakout is compared with the same mean over tiling windows by the same event-study model.

Outputs: ``events.csv``, ``event_windows.csv``, ``event_study.csv`` (posteriors per asset
and horizon, with HDI widths), ``crypto_risk_on.csv``, ``event_study.png``,
``timeline.png`` (the closes with breakouts and Bitcoin halvings marked), ``report.json``.
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
    HALVINGS,
    Timer,
    features,
    log,
    mark_halvings,
    parse_args,
    prices,
    write_json,
    write_table,
)

from regime_model.data.events import find_breakouts  # noqa: E402
from regime_model.models import BayesianHMM  # noqa: E402
from regime_model.models.event_study import (  # noqa: E402
    EventStudy,
    forward_returns,
    tiling_starts,
)

ASSETS = ["btc_return", "eth_return", "altcoin_return"]
HORIZONS = {"3m": 63, "6m": 126, "12m": 252}  # trading days
WEEKS = {"3m": 13, "6m": 26, "12m": 52}
FIRST_DATE = "2015-01-01"


def crypto_risk_on(weekly, events: pd.DatetimeIndex, args) -> pd.DataFrame:
    """Mean filtered P(crypto risk_on) in the weeks after breakouts vs any time.

    A crypto-only Bayesian HMM gives each week's filtered P(risk_on) (posterior mean). Its
    mean over the 13/26/52 weeks after each breakout is one observation per event; the
    same means over non-overlapping windows tiling all weeks are the reference. The event
    study model compares the two, so the answer's width reflects that there are three
    events, not the HMM's parameter uncertainty alone (which is far narrower).
    """
    # target_accept 0.95: at 0.9 one of 4,000 draws diverged on the real weekly data.
    model = BayesianHMM(
        2, seed=args.seed, progressbar=False, target_accept=0.95, **args.settings.as_kwargs()
    )
    result = model.fit(weekly, ASSETS).result_
    risk_on = result.regime_probabilities("filtered")[[("risk_on", "mean")]]
    risk_on.columns = ["p_risk_on"]
    tables = []
    for label, weeks in WEEKS.items():
        after = forward_returns(risk_on, events, weeks).dropna() / weeks
        reference = forward_returns(risk_on, tiling_starts(risk_on.index, weeks), weeks) / weeks
        if len(after) < 2:
            continue
        study = EventStudy(seed=args.seed, **args.settings.as_kwargs()).fit(
            after, reference.dropna()
        )
        tables.append(
            study.summary().assign(
                horizon=label,
                events=len(after),
                reference_windows=study.n_reference_,
                **{f"diagnostic_{k}": v for k, v in study.diagnostics().items()},
            )
        )
    table = pd.concat(tables, ignore_index=True)
    table.attrs["diagnostics"] = result.diagnostics()
    return table


def plot(table: pd.DataFrame, path: Path) -> None:
    figure, axes = plt.subplots(1, len(HORIZONS), figsize=(12, 3.6), sharey=True)
    for axis, horizon in zip(axes, HORIZONS, strict=True):
        part = table[table["horizon"] == horizon].reset_index(drop=True)
        for offset, (name, colour) in enumerate(
            (("after_event", "#27ae60"), ("any_time", "#7f8c8d"))
        ):
            y = np.arange(len(part)) + 0.15 * (1 - 2 * offset)
            axis.errorbar(
                part[f"{name}_mean"],
                y,
                xerr=[
                    part[f"{name}_mean"] - part[f"{name}_lower"],
                    part[f"{name}_upper"] - part[f"{name}_mean"],
                ],
                fmt="o",
                color=colour,
                label=name.replace("_", " "),
            )
        axis.axvline(0, color="black", linewidth=0.5)
        axis.set_yticks(range(len(part)), part["asset"].str.removesuffix("_return"))
        axis.set_title(f"{horizon} forward log return (%)")
    axes[0].legend(fontsize=8)
    figure.suptitle("Posterior mean and 90% HDI: after an IWM breakout vs any time")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_timeline(
    closes: pd.DataFrame, events: pd.DatetimeIndex, short_base: pd.DatetimeIndex, path: Path
) -> None:
    """IWM and BTC closes (log scale) with the breakouts and the Bitcoin halvings marked:
    the dates the study rests on, and the confounder the commentary names."""
    figure, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    for axis, (name, colour) in zip(axes, (("IWM", "#2c3e50"), ("BTC", "#e67e22")), strict=True):
        series = closes[name].dropna().loc[FIRST_DATE:]
        axis.semilogy(series.index, series, color=colour, linewidth=1, label=f"{name} close")
        for number, date in enumerate(short_base.difference(events)):
            axis.axvline(
                date, color="#95a5a6", linestyle=":", linewidth=1,
                label="breakout, 180-day base only" if number == 0 else None,
            )  # fmt: skip
        for number, date in enumerate(events):
            axis.axvline(
                date, color="#27ae60", linewidth=1.6,
                label="IWM breakout (365-day base)" if number == 0 else None,
            )  # fmt: skip
        mark_halvings(axis, FIRST_DATE)
        axis.legend(fontsize=8, loc="upper left")
    axes[0].set_title("Breakouts used by the event study, and the Bitcoin halvings")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def months_after_halving(dates: pd.DatetimeIndex) -> list[float]:
    """For each date, the months (30.44 days) since the last halving before it."""
    return [round((date - HALVINGS[date >= HALVINGS].max()).days / 30.44, 1) for date in dates]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    min_base_days = 365
    daily = features(args.data_dir, "daily", args.out)
    weekly = features(args.data_dir, "weekly", args.out)
    closes = prices(args.data_dir, {"IWM": "iwm.csv:close", "BTC": "btc_usd_yf.csv:close"})
    iwm = closes["IWM"].dropna()
    breakouts = find_breakouts(iwm, min_base_days)
    breakouts = breakouts[breakouts["date"] >= FIRST_DATE].reset_index(drop=True)
    sensitivity = find_breakouts(iwm, 180)
    sensitivity = sensitivity[sensitivity["date"] >= FIRST_DATE]
    write_table(breakouts, args.out / "events.csv")
    log(f"breakouts (base >= {min_base_days} days): {', '.join(map(str, breakouts['date']))}")
    events = pd.DatetimeIndex(breakouts["date"])
    returns = daily.frame.loc[daily.frame.index >= FIRST_DATE, ASSETS]
    tables, windows = [], []
    with Timer() as timer:
        for label, horizon in HORIZONS.items():
            after = forward_returns(returns, events, horizon)
            reference = forward_returns(returns, tiling_starts(returns.index, horizon), horizon)
            complete = after.dropna(how="all")
            windows.append(after.assign(horizon=label))
            if len(complete) < 2:
                log(f"{label}: fewer than two complete windows after breakouts, skipped")
                continue
            study = EventStudy(seed=args.seed, **args.settings.as_kwargs()).fit(
                complete, reference.dropna(how="all")
            )
            summary = study.summary().assign(
                horizon=label,
                events=len(complete),
                reference_windows=study.n_reference_,
                **{f"diagnostic_{k}": v for k, v in study.diagnostics().items()},
            )
            tables.append(summary)
    table = pd.concat(tables, ignore_index=True)
    write_table(table, args.out / "event_study.csv")
    write_table(pd.concat(windows).reset_index(), args.out / "event_windows.csv")
    plot(table, args.out / "event_study.png")
    plot_timeline(closes, events, pd.DatetimeIndex(sensitivity["date"]), args.out / "timeline.png")
    risk_on = crypto_risk_on(weekly, events, args)
    write_table(risk_on, args.out / "crypto_risk_on.csv")
    report = {
        "quick": args.quick,
        "min_base_days": min_base_days,
        "events": [str(date.date()) for date in events],
        "events_with_180_day_base": [str(date.date()) for date in sensitivity["date"]],
        "months_after_halving": months_after_halving(events),
        "fit_seconds": round(timer.seconds, 1),
        "event_study": table.to_dict(orient="records"),
        "crypto_risk_on": risk_on.to_dict(orient="records"),
        "crypto_hmm_diagnostics": risk_on.attrs["diagnostics"],
    }
    write_json(report, args.out / "report.json")
    for row in table.itertuples():
        log(
            f"{row.horizon} {row.asset}: after {row.after_event_mean:.0f}% "
            f"[{row.after_event_lower:.0f}, {row.after_event_upper:.0f}] vs any time "
            f"{row.any_time_mean:.0f}% [{row.any_time_lower:.0f}, {row.any_time_upper:.0f}]; "
            f"P(after > any) {row.p_difference_positive:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
