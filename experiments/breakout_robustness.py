"""Is "crypto rallies after a Russell 2000 breakout" more than the three cycles it cites?
Every breakout rule, placebo dates, the multiple-comparison count, and the halving.

**The grid** (issue 21 item 2): breakouts to a new all-time high after a base of 180, 365
or 500 calendar days, on IWM (total return), ^RUT (the price index) or IWN (Russell 2000
Value, dividend-adjusted), from 2015-08 (when both BTC and ETH trade) on; for each rule
and horizon (3, 6, 12 months: 63, 126, 252 trading days) the *effect*: the mean forward
log return of crypto (BTC and ETH averaged, %) over the windows after its breakouts,
minus the mean over every date. 27 rules x horizons.

**Placebos**: the same breakouts shifted together by a random number of trading days
around a circle (the returns joined end to start), 5,000 times: the events keep their
number and spacing, the returns their autocorrelation and volatility clusters
(:mod:`regime_model.evaluation.placebo`). A rule's p-value is the share of shifts whose
effect is at least the observed one. Over the grid: Holm's adjustment (family-wise), the
Benjamini-Hochberg q-values (false discovery rate) and one max-statistic p-value for
"any rule beats chance" from the same shifts applied to every rule.

**The halving** (item 3): the cited breakouts came 4-7 months after a Bitcoin halving.
As a stratifier, each event's forward return against the dates of the same halving
phase (the 12 months after a halving, or not), with placebos drawn within the phase; as
a covariate, the event-study model (:class:`~regime_model.models.event_study.EventStudy`,
the IWM 365-day rule, BTC, ETH and altcoins, tiling reference windows) with and without
"the window starts within 12 months after a halving": what is left of the effect.

Outputs: ``grid.csv``, ``halving_model.csv``, ``report.json``, ``grid.png``.
``--quick``: 300 shifts and short chains; checks the pipeline, answers nothing.
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
from common import HALVINGS, features, log, parse_args, prices, write_json, write_table  # noqa: E402

from regime_model.data.events import find_breakouts  # noqa: E402
from regime_model.evaluation.placebo import (  # noqa: E402
    benjamini_hochberg,
    circular_forward_sums,
    event_effect,
    holm,
    max_statistic_p_value,
    placebo_effects,
    placebo_p_value,
    placebo_shifts,
    stratified_placebo_effects,
)
from regime_model.models.event_study import EventStudy, forward_returns, tiling_starts  # noqa: E402

CRYPTO = ["btc_return", "eth_return"]
MODEL_ASSETS = ["btc_return", "eth_return", "altcoin_return"]
SERIES = {"IWM": "iwm.csv:close", "^RUT": "rut_index.csv:close", "IWN": "iwn.csv:adj_close"}
BASES = (180, 365, 500)
HORIZONS = {"3m": 63, "6m": 126, "12m": 252}  # trading days
EARLY_CYCLE_MONTHS = 12


def early_cycle(dates: pd.DatetimeIndex) -> np.ndarray:
    """(T,) True where a date is within EARLY_CYCLE_MONTHS after a Bitcoin halving."""
    last = HALVINGS[HALVINGS.searchsorted(dates, side="right") - 1]
    months = (pd.DatetimeIndex(dates) - last).days.to_numpy() / 30.44
    return months < EARLY_CYCLE_MONTHS


def grid(returns: pd.DataFrame, closes: pd.DataFrame, n_shifts: int, seed: int):
    """One row per rule and horizon, and the (shifts, rules) placebo effects."""
    dates = returns.index
    phase = early_cycle(dates).astype(int)
    shifts = placebo_shifts(len(dates), n_shifts, seed)
    rows, placebo = [], []
    for label, horizon in HORIZONS.items():
        forward = circular_forward_sums(returns.to_numpy(), horizon)
        complete = len(dates) - 1 - horizon  # the last start whose window lies in the data
        for name in closes.columns:
            for base in BASES:
                found = find_breakouts(closes[name].dropna(), base)
                found = found[found["date"] >= dates[0]]
                positions = dates.searchsorted(pd.DatetimeIndex(found["date"]), side="right") - 1
                positions = positions[positions <= complete]
                row = {
                    "series": name,
                    "base_days": base,
                    "horizon": label,
                    "events": len(positions),
                }
                row["event_dates"] = " ".join(str(dates[p].date()) for p in positions)
                if len(positions) == 0:
                    rows.append(row)
                    continue
                effects = placebo_effects(forward, positions, shifts)
                observed = event_effect(forward, positions)
                stratified, within = stratified_placebo_effects(
                    forward, positions, phase, n_shifts, seed
                )
                row |= {
                    "effect_pct": observed,
                    "placebo_mean": float(effects.mean()),
                    "placebo_sd": float(effects.std()),
                    "p_value": placebo_p_value(observed, effects),
                    "events_early_cycle": int(phase[positions].sum()),
                    "effect_within_phase_pct": stratified,
                    "p_value_within_phase": placebo_p_value(stratified, within),
                }
                rows.append(row)
                placebo.append((len(rows) - 1, effects))
    table = pd.DataFrame(rows)
    tested = [index for index, _ in placebo]
    for column, method in (("p_holm", holm), ("q_bh", benjamini_hochberg)):
        table.loc[tested, column] = method(table.loc[tested, "p_value"].to_numpy())
    stacked = np.column_stack([effects for _, effects in placebo])
    max_p = max_statistic_p_value(table.loc[tested, "effect_pct"].to_numpy(), stacked)
    return table, max_p


def halving_model(daily: pd.DataFrame, events: pd.DatetimeIndex, args) -> pd.DataFrame:
    """The event-study model on the IWM 365-day breakouts, with and without the halving
    phase as a covariate: the breakout effect per asset and horizon before and after."""
    rows = []
    for label, horizon in HORIZONS.items():
        after = forward_returns(daily, events, horizon).dropna(how="all")
        starts = tiling_starts(daily.index, horizon)
        reference = forward_returns(daily, starts, horizon).dropna(how="all")
        if len(after) < 2:
            continue
        covariates = [
            pd.DataFrame({"early_cycle": early_cycle(pd.DatetimeIndex(frame.index)).astype(float)})
            for frame in (after, reference)
        ]
        for adjusted in (False, True):
            study = EventStudy(seed=args.seed, **args.settings.as_kwargs())
            study.fit(after, reference, *(covariates if adjusted else (None, None)))
            summary = study.summary()
            summary = summary.assign(
                horizon=label,
                adjusted_for_halving=adjusted,
                events=len(after),
                **{f"diagnostic_{k}": v for k, v in study.diagnostics().items()},
            )
            if adjusted:
                effects = study.covariate_effects().set_index("asset")
                summary["halving_effect_mean"] = summary["asset"].map(effects["mean"])
                summary["halving_effect_lower"] = summary["asset"].map(effects["lower"])
                summary["halving_effect_upper"] = summary["asset"].map(effects["upper"])
            rows.append(summary)
    return pd.concat(rows, ignore_index=True)


def plot(table: pd.DataFrame, path: Path) -> None:
    """Per horizon, the effect of every rule (series x base) with its placebo p-value."""
    figure, axes = plt.subplots(1, len(HORIZONS), figsize=(13, 3.8))
    for axis, label in zip(axes, HORIZONS, strict=True):
        part = table[table["horizon"] == label]
        values = part.pivot(index="series", columns="base_days", values="effect_pct")
        p = part.pivot(index="series", columns="base_days", values="p_value")
        limit = np.nanmax(np.abs(table["effect_pct"].to_numpy()))
        image = axis.imshow(values.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit)
        axis.set_xticks(range(len(values.columns)), [f"{b} d" for b in values.columns])
        axis.set_yticks(range(len(values.index)), values.index)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values.iat[i, j]
                if np.isfinite(value):
                    axis.text(
                        j, i, f"{value:+.0f}%\np={p.iat[i, j]:.2f}", ha="center", va="center",
                        fontsize=8, color="white" if abs(value) > 0.6 * limit else "black",
                    )  # fmt: skip
        axis.set_title(f"{label} after the breakout", fontsize=10)
    figure.suptitle(
        "Crypto (BTC, ETH) forward log return after each rule's breakouts minus any time, "
        "with the placebo p-value",
        fontsize=10,
    )
    figure.colorbar(image, ax=axes, shrink=0.8, label="effect, % (log return)")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    n_shifts = 300 if args.quick else 5000
    daily = features(args.data_dir, "daily", args.out)
    both = daily.frame[CRYPTO].dropna()
    returns = both.loc[both.index[0] : both.index[-1]]
    if returns.isna().any().any():
        raise ValueError("crypto returns have gaps inside the sample")
    closes = prices(args.data_dir, SERIES)
    table, max_p = grid(returns, closes, n_shifts, args.seed)
    write_table(table, args.out / "grid.csv")
    plot(table, args.out / "grid.png")
    iwm = find_breakouts(closes["IWM"].dropna(), 365)
    events = pd.DatetimeIndex(iwm.loc[iwm["date"] >= returns.index[0], "date"])
    model_returns = daily.frame.loc[returns.index[0] :, MODEL_ASSETS]
    model = halving_model(model_returns, events, args)
    write_table(model, args.out / "halving_model.csv")
    tested = table.dropna(subset=["p_value"])
    report = {
        "quick": args.quick,
        "sample": [str(returns.index[0].date()), str(returns.index[-1].date())],
        "shifts": n_shifts,
        "rules_tested": len(tested),
        "rules_p_below_0.05": int((tested["p_value"] < 0.05).sum()),
        "rules_holm_below_0.05": int((tested["p_holm"] < 0.05).sum()),
        "rules_q_below_0.10": int((tested["q_bh"] < 0.10).sum()),
        "max_statistic_p_value": max_p,
        "grid": table.to_dict(orient="records"),
        "halving_model": model.to_dict(orient="records"),
    }
    write_json(report, args.out / "report.json")
    columns = ["series", "base_days", "horizon", "events", "effect_pct", "p_value", "p_holm"]
    columns += ["q_bh", "events_early_cycle", "effect_within_phase_pct", "p_value_within_phase"]
    print(tested[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    log(f"max-statistic p = {max_p:.3f} over {len(tested)} rules")
    keep = ["asset", "horizon", "adjusted_for_halving", "difference_mean", "difference_lower"]
    keep += ["difference_upper", "p_difference_positive"]
    print(model[keep].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
