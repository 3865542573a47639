"""Fit time and ESS per second of each model family on weekly data (T ~ 600, K = 2).

Uses the real weekly features built from ``--data-dir`` (the snapshot beside the
repository). Each model is fitted at its defaults (4 chains, 1000 draws; ``--tune`` sets the
tuning steps, else the default) on
the same columns: IWM returns and breadth change (equity), BTC and ETH returns (crypto);
tvtp adds the lagged change in high-yield spreads as its transition driver, leadlag uses
lag 1 and volatility ordering; two-scale keeps D = 4 with IWM returns (equity), BTC and
ETH returns (crypto) and the month-end high-yield spread level as its coarse column.

    python benchmarks/bench_models.py --data-dir ../shared/data
    python benchmarks/bench_models.py --data-dir ../shared/data --only tvtp
    python benchmarks/bench_models.py --data-dir ../shared/data --tune 1000  # PyMC's default
"""

from __future__ import annotations

import argparse
import time

import arviz as az

from regime_model.data.features import FeatureSet, build_features
from regime_model.data.sources import CsvDirectorySource
from regime_model.data.universe import load_universe
from regime_model.models import MODELS

COLUMNS = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
RUNS = {
    "bayes-hmm": {},
    "hierarchical": {},
    "tvtp": {"covariates": ["hy_spread_change"]},
    "leadlag": {"lag": 1, "order_by": "volatility"},
    "two-scale": {"coarse_columns": ["hy_spread"], "coarse_order": "inverse"},
}
# A family's own columns where it needs others (the same T and D).
RUN_COLUMNS = {"two-scale": ["iwm_return", "btc_return", "eth_return", "hy_spread"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--only", choices=list(RUNS), action="append")
    parser.add_argument("--tune", type=int, help="tuning steps per chain (default: the model's)")
    args = parser.parse_args()
    weekly = build_features(load_universe(), CsvDirectorySource(args.data_dir), "weekly")
    needed = weekly.frame[COLUMNS + ["hy_spread_change", "hy_spread"]].notna().all(axis=1)
    frame = weekly.frame.loc[needed.idxmax() : needed[::-1].idxmax()]
    groups = {**weekly.groups, "pct_above_200dma_change": "equity"}
    features = FeatureSet(frame, groups, "weekly")
    tune = {} if args.tune is None else {"tune": args.tune}
    print(f"T = {len(frame)} weekly dates, K = 2, 4 chains x 1000 draws, {tune or 'default tune'}")
    header = f"{'model':<13} {'wall s':>7} {'sampling s':>10} {'min ESS':>8} {'ESS/s':>7}"
    print(header + f" {'tail ESS':>8} {'max R-hat':>9} {'div':>4} {'gradients':>9} verdict")
    for name in args.only or RUNS:
        model = MODELS[name](2, progressbar=False, **RUNS[name], **tune)
        started = time.perf_counter()
        result = model.fit(features, RUN_COLUMNS.get(name, COLUMNS)).result_
        wall = time.perf_counter() - started
        data = result.inference_data
        ess = float(az.ess(data, method="bulk").to_array().min())
        tail = float(az.ess(data, method="tail").to_array().min())
        sampling = result.fit_info.get("sampling_seconds") or result.fit_info["sample_call_seconds"]
        diagnostics = result.diagnostics()
        print(
            f"{name:<13} {wall:7.1f} {sampling:10.1f} {ess:8.0f} {ess / sampling:7.1f} {tail:8.0f} "
            f"{diagnostics['max_rhat']:9.3f} {diagnostics['divergences']:4d} "
            f"{result.fit_info.get('gradient_evaluations', 0):9d} {diagnostics['verdict']}"
        )


if __name__ == "__main__":
    main()
