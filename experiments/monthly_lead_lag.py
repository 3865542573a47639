"""Does small-cap risk-on lead crypto risk-on by months? A posterior over the lag itself.

Monthly data (calendar months of the daily features: log returns and breadth changes
summed within the month; a month missing any day of a column is missing for that
column, never filled; the snapshot's unfinished last month is left out). Two coupled
chains (``LeadLagHMM``): small caps (IWM return, change in the share of US stocks above
their 200-day average) and crypto (BTC and ETH returns), crypto kept out of the equity
chain's emissions. Crypto's switching odds depend on the equity regime L months earlier,
and L is not chosen: it is summed out of the likelihood over 0..6 months with equal prior
weight (``lag=[0, ..., 6]``, models/lag_mixture.py), so the run gives P(L | data) and the
couplings given each lag. Regimes are named by volatility (the calm one is risk_on).

Fits:

* ``all``: every complete month from 2015;
* ``before_2024`` / ``from_2024``: the spot-ETF question (US spot Bitcoin ETFs began
  trading in January 2024): the same model on the months before and from then;
* ``synthetic``: the package's lead-lag simulator at its default, weak coupling
  (P(enter) 0.02 / 0.2) with a true lag of 3: what the posterior over the lag says where
  separate fits' held-out scores cannot tell lags apart.

Outputs: ``monthly_features.csv``, ``lag_posterior.csv``, ``coupling_by_lag.csv``,
``durations.csv``, ``monthly_lead_lag.png``, ``report.json`` and the runs.
``--quick``: lags 0-2, short chains; checks the pipeline, answers nothing.
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
    Timer,
    features,
    log,
    parse_args,
    write_json,
    write_table,
)

from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.data.synthetic import simulate_lead_lag_features  # noqa: E402
from regime_model.models import LeadLagHMM  # noqa: E402

COLUMNS = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
LAGS = list(range(7))
QUICK_LAGS = [0, 1, 2]
ETF_START = "2024-01-01"
SYNTHETIC_LAG = 3


def monthly(daily: FeatureSet, columns: list[str]) -> tuple[FeatureSet, dict[str, int]]:
    """Calendar-month sums of daily log returns and changes (each the month's own log
    return or change when no day is missing); a month with a missing day is missing for
    that column. The last month is left out unless the daily data reach its last
    business day. -> (monthly features, months missing per column)."""
    frame = daily.frame[columns]
    months = frame.index.to_period("M")
    sums = frame.groupby(months).sum(min_count=1)
    complete = frame.notna().groupby(months).all()
    sums = sums.where(complete)
    last = frame.index[-1]
    if last < (last + pd.offsets.BMonthEnd(0)):
        sums = sums.iloc[:-1]  # the snapshot ends inside this month
    sums.index = sums.index.to_timestamp(how="end").normalize()
    groups = {column: daily.groups[column] for column in columns}
    groups["pct_above_200dma_change"] = "equity"
    missing = {column: int(sums[column].isna().sum()) for column in columns}
    return FeatureSet(sums, groups, "monthly", source=f"{daily.source} (monthly sums)"), missing


def fit(
    data: FeatureSet, lags: list[int], args, name: str, columns: list[str] | None = COLUMNS
) -> dict:
    model = LeadLagHMM(
        2, lag=lags, order_by="volatility", seed=args.seed, progressbar=False,
        **args.settings.as_kwargs(),
    )  # fmt: skip
    with Timer() as timer:
        result = model.fit(data, columns).result_
    result.save(args.out / f"run_{name}")
    summary = result.fit_info["model_summary"]
    diagnostics = result.diagnostics()
    log(f"{name}: {timer.seconds:.1f} s, {len(result.dates)} dates, {diagnostics['verdict']}")
    return {
        "name": name,
        "result": result,
        "months": len(result.dates),
        "first": f"{result.dates[0]:%Y-%m}",
        "last": f"{result.dates[-1]:%Y-%m}",
        "seconds": round(timer.seconds, 1),
        "verdict": diagnostics["verdict"],
        "failures": diagnostics.get("failures", []),
        "lag_posterior": summary["lag_posterior"],
        "coupling": summary["coupling"],
        "coupling_by_lag": summary["coupling_by_lag"],
    }


def durations(run: dict) -> list[dict]:
    """Each chain's expected regime durations 1 / (1 - P(stay)), in months, with 90%
    intervals. The lag chain's stay probability depends on the lead regime, so it is
    given under each."""
    posterior = run["result"].inference_data.posterior
    lead = posterior["lead_transition"].to_numpy().reshape(-1, 2, 2)
    lag = posterior["lag_transition"].to_numpy().reshape(-1, 2, 2, 2)
    names = ("risk_off", "risk_on")
    rows = []
    cases = [("equity", names[r], "", lead[:, r, r]) for r in range(2)] + [
        ("crypto", names[r], f"equity {names[e]} L months earlier", lag[:, e, r, r])
        for e in range(2)
        for r in range(2)
    ]
    for chain, regime, condition, stay in cases:
        months = 1.0 / (1.0 - stay)
        low, high = np.quantile(months, [0.05, 0.95])
        rows.append(
            {
                "fit": run["name"],
                "chain": chain,
                "regime": regime,
                "condition": condition,
                "median_months": float(np.median(months)),
                "lower": float(low),
                "upper": float(high),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    lags = QUICK_LAGS if args.quick else LAGS
    data, missing = monthly(features(args.data_dir, "daily", args.out), COLUMNS)
    data.save(args.out / "monthly_features.csv")
    log(f"{len(data.frame)} months {data.frame.index[0]:%Y-%m} to {data.frame.index[-1]:%Y-%m}")
    log(f"months missing per column: {missing}")
    before = FeatureSet(data.frame.loc[:"2023-12-31"], data.groups, data.freq, data.source)
    after = FeatureSet(data.frame.loc[ETF_START:], data.groups, data.freq, data.source)
    synthetic, truth = simulate_lead_lag_features(400, lag=SYNTHETIC_LAG, seed=0)
    runs = [
        fit(data, lags, args, "all"),
        fit(before, lags, args, "before_2024"),
        fit(after, lags, args, "from_2024"),
    ]
    if not args.quick:
        runs.append(fit(synthetic, list(range(6)), args, "synthetic", columns=None))
    lag_table = pd.DataFrame(
        [{"fit": run["name"], **row} for run in runs for row in run["lag_posterior"]]
    )
    coupling_table = pd.DataFrame(
        [{"fit": run["name"], **row} for run in runs for row in run["coupling_by_lag"]]
    )
    duration_table = pd.DataFrame([row for run in runs[:3] for row in durations(run)])
    write_table(lag_table, args.out / "lag_posterior.csv")
    write_table(coupling_table, args.out / "coupling_by_lag.csv")
    write_table(duration_table, args.out / "durations.csv")
    verdicts = {run["name"]: run["verdict"] for run in runs}
    plot(lag_table, coupling_table, verdicts, args.out / "monthly_lead_lag.png")
    write_json(
        {
            "quick": args.quick,
            "lags": lags,
            "months_missing": missing,
            "synthetic_true_lag": SYNTHETIC_LAG if not args.quick else None,
            "fits": [{key: value for key, value in run.items() if key != "result"} for run in runs],
        },
        args.out / "report.json",
    )
    log(lag_table.pivot(index="lag", columns="fit", values="probability").round(3).to_string())
    return 0


def plot(
    lag_table: pd.DataFrame, coupling_table: pd.DataFrame, verdicts: dict[str, str], path: Path
) -> None:
    """Left: P(L | data) per fit (a fit failing its diagnostics says so in the legend).
    Right: coupling_enter given each lag (weighted 90% intervals), all months."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    fits = [name for name in lag_table["fit"].unique() if name != "synthetic"]
    width = 0.8 / len(fits)
    shades = ("#8e44ad", "#c39bd3", "#5b2c6f")
    for i, name in enumerate(fits):
        part = lag_table[lag_table["fit"] == name]
        failed = " (fails diagnostics)" if verdicts[name] != "pass" else ""
        axes[0].bar(
            part["lag"] + (i - (len(fits) - 1) / 2) * width, part["probability"], width,
            yerr=part["mcse"], color=shades[i % len(shades)],
            label=name.replace("_", " ") + failed,
        )  # fmt: skip
    prior = 1.0 / lag_table["lag"].nunique()
    axes[0].axhline(prior, color="black", linestyle=":", linewidth=1, label="prior")
    axes[0].set_xlabel("lag L (months)")
    axes[0].set_ylabel("P(L | data)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Posterior over the lag")
    part = coupling_table[
        (coupling_table["fit"] == "all") & (coupling_table["parameter"] == "coupling_enter")
    ]
    axes[1].errorbar(
        part["lag"], part["mean"],
        yerr=[part["mean"] - part["lower"], part["upper"] - part["mean"]],
        fmt="o", color=MODEL_COLOURS["leadlag"],
    )  # fmt: skip
    axes[1].axhline(0, color="black", linewidth=0.5)
    axes[1].set_xlabel("lag L (months)")
    axes[1].set_ylabel("log odds ratio, 90% interval")
    axes[1].set_title("Crypto entering risk_on: coupling given L (all months)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
