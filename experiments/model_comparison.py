"""EM-HMM vs Bayesian HMM vs hierarchical vs TVTP vs lead-lag, K = 2..4, on real weekly data.

Every run scores the same observations (IWM returns and breadth change as the equity
group, BTC and ETH returns as the crypto group) on the same dates, fitted to 2022-12-30 and
scored one step ahead from 2023 without refitting, so ``regime compare`` can rank them.
The TVTP runs use the lagged change in high-yield spreads as their transition driver (a
driver, not an observation, so the scores stay comparable).

Calibration needs a truth, which real data do not have: the one-step regime forecasts
P(z_t | y_1..t-1) of EM and the Bayesian HMM are checked on the package's synthetic market
(weekly, held-out half) with the Brier score and a reliability table.

Outputs: ``compare.csv``/``compare.txt``, ``calibration.csv``, ``brier.csv``,
``reliability.png``, ``report.json``.
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

from regime_model.calibration import brier_score, reliability_table  # noqa: E402
from regime_model.compare import compare_runs, format_comparison  # noqa: E402
from regime_model.data.cache import write_text_atomic  # noqa: E402
from regime_model.data.features import FeatureSet, build_features  # noqa: E402
from regime_model.data.synthetic import simulate_market  # noqa: E402
from regime_model.data.universe import load_universe  # noqa: E402
from regime_model.models import MODELS  # noqa: E402

COLUMNS = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
DRIVER = "hy_spread_change"
HOLDOUT_START = "2023-01-01"
SYNTHETIC_COLUMNS = ["iwm_return", "btc_return", "hy_spread_change"]


def candidates(quick: bool) -> dict[str, tuple[str, dict]]:
    """Run name -> (model name, options)."""
    regimes = (2, 3) if quick else (2, 3, 4)
    runs = {}
    for k in regimes:
        runs[f"em_k{k}"] = ("em-hmm", {"n_regimes": k, "n_restarts": 10})
        runs[f"bayes_k{k}"] = ("bayes-hmm", {"n_regimes": k})
        runs[f"hierarchical_k{k}"] = ("hierarchical", {"n_regimes": k})
        runs[f"tvtp_k{k}"] = ("tvtp", {"n_regimes": k, "covariates": [DRIVER]})
    runs["leadlag_k2_lag1"] = ("leadlag", {"n_regimes": 2, "lag": 1, "order_by": "volatility"})
    return runs


def real_data_comparison(args) -> tuple:
    weekly = features(args.data_dir, "weekly", args.out)
    groups = {**weekly.groups, "pct_above_200dma_change": "equity"}
    needed = weekly.frame[COLUMNS + [DRIVER]].notna().all(axis=1)
    frame = weekly.frame.loc[needed.idxmax() : needed[::-1].idxmax()]
    if args.quick:
        frame = frame.loc["2019-01-01":]
    weekly = FeatureSet(frame, groups, weekly.freq, weekly.source)
    results, seconds = {}, {}
    for run, (name, options) in candidates(args.quick).items():
        settings = {} if name == "em-hmm" else {**args.settings.as_kwargs(), "progressbar": False}
        model = MODELS[name](seed=args.seed, **options, **settings)
        with Timer() as timer:
            results[run] = model.fit(weekly, COLUMNS, holdout_start=HOLDOUT_START).result_
        seconds[run] = round(timer.seconds, 1)
        log(f"{run}: {seconds[run]} s, {results[run].diagnostics().get('verdict', 'n/a')}")
    return compare_runs(results), seconds


def synthetic_calibration(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    market = simulate_market(n_regimes=2, seed=args.seed + 1)
    weekly = build_features(load_universe(), market.source(), "weekly")
    cut = weekly.frame.index[len(weekly.frame) // 2]
    truth_frame = market.truth_on(weekly.frame.index)["regime"]
    tables, scores = [], []
    for name in ("em-hmm", "bayes-hmm"):
        settings = {} if name == "em-hmm" else {**args.settings.as_kwargs(), "progressbar": False}
        result = (
            MODELS[name](2, seed=args.seed, **settings)
            .fit(weekly, SYNTHETIC_COLUMNS, holdout_start=cut)
            .result_
        )
        held_out = result.dates >= cut
        predicted = result.probabilities.predicted.mean(axis=0)[held_out]
        truth = truth_frame.reindex(result.dates[held_out]).to_numpy()
        risk_on = result.regime_names.index("risk_on")
        tables.append(reliability_table(predicted, truth, risk_on, n_bins=5).assign(model=name))
        scores.append(
            {
                "model": name,
                "held_out_dates": int(held_out.sum()),
                "brier": brier_score(predicted, truth),
                # the forecaster who always says the held-out base rate (a hard benchmark)
                "brier_always_base_rate": brier_score(
                    np.tile([1 - truth.mean(), truth.mean()], (len(truth), 1)), truth
                ),
            }
        )
    return pd.concat(tables, ignore_index=True), pd.DataFrame(scores)


def plot_reliability(table: pd.DataFrame, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(4.8, 4.4))
    axis.plot([0, 1], [0, 1], color="black", linewidth=0.5)
    for name, part in table.groupby("model"):
        axis.errorbar(
            part["mean_forecast"],
            part["observed_frequency"],
            yerr=2 * part["standard_error"],
            fmt="o-",
            color=MODEL_COLOURS[name],
            label=name,
        )
    axis.set_xlabel("one-step forecast P(risk_on)")
    axis.set_ylabel("observed frequency (±2 se)")
    axis.set_title("Synthetic market, held-out half")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    comparison, seconds = real_data_comparison(args)
    write_table(comparison.table, args.out / "compare.csv", index=True)
    write_text_atomic(format_comparison(comparison) + "\n", args.out / "compare.txt")
    calibration, brier = synthetic_calibration(args)
    write_table(calibration, args.out / "calibration.csv")
    write_table(brier, args.out / "brier.csv")
    plot_reliability(calibration, args.out / "reliability.png")
    write_json(
        {
            "quick": args.quick,
            "holdout_start": HOLDOUT_START,
            "fit_seconds": seconds,
            "comparison": comparison.to_dict(),
            "brier": brier.to_dict(orient="records"),
        },
        args.out / "report.json",
    )
    log(format_comparison(comparison))
    log(brier.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
