"""When the index rises while breadth and flows weaken: what do the regime models say?

Weekly data. Every model scores the same observations (iwm_return, btc_return,
hy_spread_change) on the same dates, so their held-out scores compare:

* ``no_drivers``: bayes-hmm, transitions constant;
* ``breadth``: tvtp with the change in % of stocks above their 200-day average;
* ``flows``: tvtp with the change in net liquidity (Fed assets minus reverse repo);
* ``breadth_flows``: tvtp with both.

The snapshot has no ETF shares outstanding, so ETF creations/redemptions cannot be a
driver here (``iwm_flow`` is built only from Yahoo); net liquidity stands in for flows.
Each model is fitted to 2022-12-30 and scored one step ahead from 2023 on (no refit),
which puts the 2025 divergence (small caps up, breadth and flows weak) out of sample.
A divergence week: IWM's 13-week return is positive while the 13-week change in the
share of stocks above their 200-day average is negative.

Outputs: ``compare.csv``/``compare.txt`` (``regime compare``), ``coefficients.csv``,
``divergence_weeks.csv`` (filtered P(risk_on) per model in divergence weeks, with
bands), ``risk_on_recent.png``, ``report.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    MODEL_COLOURS,
    Timer,
    features,
    log,
    mark_halvings,
    parse_args,
    write_json,
    write_table,
)

from regime_model.compare import compare_runs, format_comparison  # noqa: E402
from regime_model.data.cache import write_text_atomic  # noqa: E402
from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.models import TVTPHMM, BayesianHMM  # noqa: E402
from regime_model.models.tvtp import coefficient_table  # noqa: E402

EMISSIONS = ["iwm_return", "btc_return", "hy_spread_change"]
BREADTH, FLOWS = "pct_above_200dma_change", "net_liquidity_change"
DRIVERS = {
    "no_drivers": [],
    "breadth": [BREADTH],
    "flows": [FLOWS],
    "breadth_flows": [BREADTH, FLOWS],
}
HOLDOUT_START = "2023-01-01"
WINDOW = 13  # weeks


def common_dates(feature_set: FeatureSet) -> FeatureSet:
    """Dates on which every emission and every driver is observed, so that all models
    score the same observations (tvtp would otherwise trim its own)."""
    needed = feature_set.frame[EMISSIONS + [BREADTH, FLOWS]]
    observed = needed.notna().all(axis=1)
    first, last = observed.idxmax(), observed[::-1].idxmax()
    frame = feature_set.frame.loc[first:last]
    return FeatureSet(frame, feature_set.groups, feature_set.freq, feature_set.source)


def divergence_weeks(frame: pd.DataFrame) -> pd.Series:
    iwm = frame["iwm_return"].rolling(WINDOW).sum()
    breadth = frame[BREADTH].rolling(WINDOW).sum()
    return (iwm > 0) & (breadth < 0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    weekly = common_dates(features(args.data_dir, "weekly", args.out))
    if args.quick:
        weekly = FeatureSet(weekly.frame.loc["2019-01-01":], weekly.groups, weekly.freq)
    results, seconds = {}, {}
    for name, drivers in DRIVERS.items():
        options = {"seed": args.seed, "progressbar": False, **args.settings.as_kwargs()}
        model = TVTPHMM(2, covariates=drivers, **options) if drivers else BayesianHMM(2, **options)
        with Timer() as timer:
            results[name] = model.fit(weekly, EMISSIONS, holdout_start=HOLDOUT_START).result_
        seconds[name] = round(timer.seconds, 1)
        results[name].save(args.out / f"run_{name}")
        log(f"{name}: {seconds[name]} s, diagnostics {results[name].diagnostics()['verdict']}")
    comparison = compare_runs(results)
    write_table(comparison.table, args.out / "compare.csv", index=True)
    write_text_atomic(format_comparison(comparison) + "\n", args.out / "compare.txt")
    coefficients = pd.concat(
        [
            coefficient_table(result).assign(model=name)
            for name, result in results.items()
            if DRIVERS[name]
        ],
        ignore_index=True,
    )
    write_table(coefficients, args.out / "coefficients.csv")
    flagged = divergence_weeks(weekly.frame)
    rows = []
    for name, result in results.items():
        risk_on = result.regime_probabilities("filtered")["risk_on"]
        risk_on = risk_on[flagged.reindex(risk_on.index, fill_value=False)]
        rows.append(risk_on.assign(model=name).reset_index())
    divergence = pd.concat(rows, ignore_index=True)
    divergence["date"] = divergence["date"].dt.strftime("%Y-%m-%d")
    write_table(divergence, args.out / "divergence_weeks.csv")
    plot_recent(results, flagged, args.out / "risk_on_recent.png")
    # Out of sample: from 2025 on, the calendar year 2025 and the rest (2026) counted apart.
    recent = divergence[divergence["date"] >= "2025-01-01"]
    in_2025 = recent[recent["date"] < "2026-01-01"]
    report = {
        "quick": args.quick,
        "dates": [str(weekly.frame.index[0].date()), str(weekly.frame.index[-1].date())],
        "holdout_start": HOLDOUT_START,
        "fit_seconds": seconds,
        "comparison": comparison.to_dict(),
        "coefficients": coefficients.to_dict(orient="records"),
        "divergence_weeks_2025": int(in_2025["date"].nunique()),
        "divergence_weeks_since_2025": int(recent["date"].nunique()),
        "mean_filtered_risk_on_in_divergence_since_2025": (
            recent.groupby("model")["mean"].mean().to_dict()
        ),
        "diagnostics": {name: r.diagnostics().get("verdict") for name, r in results.items()},
    }  # fmt: skip
    write_json(report, args.out / "report.json")
    log(format_comparison(comparison))
    return 0


def plot_recent(results: dict, flagged: pd.Series, path: Path) -> None:
    """One panel per model (one band per panel, so none hides another), divergence weeks
    shaded and the halving marked."""
    # no_drivers is a plain Bayesian HMM, the others covariate-driven (tvtp): one colour
    # per model family, as in every figure; the panels name the drivers.
    colours = [MODEL_COLOURS["bayes-hmm" if name == "no_drivers" else "tvtp"] for name in results]
    figure, axes = plt.subplots(
        len(results), 1, figsize=(11, 1.9 * len(results)), sharex=True, sharey=True
    )
    shade = flagged.loc["2024-01-01":]
    for axis, (name, result), colour in zip(axes, results.items(), colours, strict=True):
        frame = result.regime_probabilities("filtered")["risk_on"].loc["2024-01-01":]
        axis.fill_between(
            shade.index, 0, 1, where=shade.to_numpy(), color="#e67e22", alpha=0.18,
            transform=axis.get_xaxis_transform(), linewidth=0, label="divergence week",
        )  # fmt: skip
        axis.fill_between(frame.index, frame["lower"], frame["upper"], color=colour, alpha=0.3)
        axis.plot(frame.index, frame["mean"], color=colour, linewidth=1.4, label=name)
        mark_halvings(axis, "2024-01-01")
        axis.set_ylim(0, 1)
        axis.set_ylabel("P(risk_on)")
        axis.legend(fontsize=8, ncol=3, loc="lower left")
    axes[0].set_title(
        "Out of sample (fitted to 2022): filtered P(risk_on) with its 90% band, by model"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
