"""Wall time of N small walk-forward fits: serially in this process, and on a Dask
LocalCluster with 1 and 2 single-threaded workers; and the executor's overhead per fit.

The fits are the monthly refits of an EM (default) or MAP backtest on synthetic weekly
data. Each setting starts from an empty result store, so every fit runs. For a cluster,
"startup" is the time to start the cluster and its workers; "overhead per fit" is
(wall - startup - the fits' own time in the workers) / N: scheduling, moving inputs and
results, and each worker's first import of the package (the first fit in a fresh worker
also loads the compiled kernels from the on-disk caches).

    python benchmarks/bench_executor.py --fits 12
    python benchmarks/bench_executor.py --fits 8 --model map
"""

from __future__ import annotations

import argparse
import tempfile
import time

from regime_model.data.features import build_features
from regime_model.data.synthetic import simulate_market
from regime_model.data.universe import load_universe
from regime_model.evaluation.backtest import BacktestSpec, plan_backtest
from regime_model.evaluation.executor import (
    DaskExecutor,
    ResultStore,
    SerialExecutor,
    run_tasks,
)
from regime_model.evaluation.walk_forward import run_segment

COLUMNS = ["iwm_return", "btc_return"]
CONFIGS = {
    "em": {"model": "em-hmm", "n_regimes": 2, "n_restarts": 5, "seed": 0},
    "map": {"model": "bayes-hmm", "n_regimes": 2, "sampler": "map", "seed": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=12, help="number of refits N")
    parser.add_argument("--model", choices=list(CONFIGS), default="em")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    market = simulate_market(n_regimes=2, seed=args.seed)
    features = build_features(load_universe(), market.source(), "weekly")
    dates = features.frame.index
    start = dates[len(dates) - args.fits * 5]  # about N monthly refits before the end
    spec = BacktestSpec(CONFIGS[args.model], COLUMNS, start, "month")
    tasks = plan_backtest(features, spec)[: args.fits]
    print(f"{len(tasks)} {args.model} fits on {len(dates)} weekly dates, columns {COLUMNS}")
    print(f"{'executor':<22} {'wall s':>8} {'startup s':>10} {'fits s':>8} {'overhead/fit s':>15}")
    for label, make in (
        ("serial (this process)", SerialExecutor),
        ("LocalCluster 1 worker", lambda: DaskExecutor(n_workers=1)),
        ("LocalCluster 2 workers", lambda: DaskExecutor(n_workers=2)),
    ):
        wall, startup, fit_seconds = _timed_run(make, tasks)
        overhead = (wall - startup - fit_seconds / _workers(label)) / len(tasks)
        print(f"{label:<22} {wall:>8.2f} {startup:>10.2f} {fit_seconds:>8.2f} {overhead:>15.3f}")
    print(
        "fits s: the fits' own time summed over workers; with 2 workers the overhead "
        "divides it by 2 (ideal parallel time)."
    )


def _workers(label: str) -> int:
    return 2 if "2 workers" in label else 1


def _timed_run(make_executor, tasks) -> tuple[float, float, float]:
    """(wall seconds, startup seconds, sum of in-task fit seconds) of one empty-store run."""
    executor = make_executor()
    with tempfile.TemporaryDirectory() as directory:
        store = ResultStore(directory)
        started = time.perf_counter()
        executor.__enter__()  # started here so that startup is measured on its own
        startup = time.perf_counter() - started
        try:
            run_tasks(run_segment, tasks, store, _AlreadyStarted(executor))
            wall = time.perf_counter() - started  # shutting the cluster down is not counted
        finally:
            executor.__exit__(None, None, None)
        fit_seconds = sum(store.load(task)["fit_seconds"] for task in tasks)
    return wall, startup, fit_seconds


class _AlreadyStarted:
    """An executor whose start and stop are done by the caller."""

    def __init__(self, executor) -> None:
        self.executor = executor

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def map_unordered(self, function, tasks):
        return self.executor.map_unordered(function, tasks)


if __name__ == "__main__":
    main()
