"""Reading new weeks with a fitted run (``regime update``) against refitting, on the real
weekly data, in one process, on the default code path.

A run is fitted (package defaults: 4 chains x 1000 tune + 1000 draws, the default sampler)
on the real weekly features up to ``--new`` weeks before the end and saved. Then, timed
side by side: ``regime update RUN --features FILE`` (load the run, rebuild its
composition, filter the new weeks through 400 band draws), the same through the Python
API on the model in memory (``model.filter``), and a refit on all the data, as one would
without ``filter``.

    python benchmarks/bench_update.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from regime_model.cli import main as regime
from regime_model.data.features import build_features, read_features
from regime_model.data.sources import CsvDirectorySource
from regime_model.data.universe import load_universe
from regime_model.models import BayesianHMM

COLUMNS = ["iwm_return", "btc_return", "hy_spread_change"]


def _timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--new", type=int, default=13, help="weeks appended after the fit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        features = build_features(load_universe(), CsvDirectorySource(args.data_dir), "weekly")
        features.save(directory / "all.csv")
        frame = read_features(directory / "all.csv").frame[COLUMNS]
        head = frame.iloc[: -args.new]
        fit_seconds, model = _timed(lambda: BayesianHMM(2, progressbar=False).fit(head))
        model.result_.save(directory / "run")
        arguments = ["update", str(directory / "run"), "--features", str(directory / "all.csv")]
        with contextlib.redirect_stdout(io.StringIO()):
            update_seconds, _ = _timed(lambda: regime(arguments))
        filter_seconds, filtered = _timed(lambda: model.filter(frame))
        refit_seconds, _ = _timed(lambda: BayesianHMM(2, progressbar=False).fit(frame))
    print(f"real weekly data, {len(head)} fitted weeks + {len(filtered.dates)} new, {COLUMNS}")
    print(f"{'fit on the first weeks (defaults)':<44} {fit_seconds:7.1f} s")
    print(f"{'regime update (load run, filter new weeks)':<44} {update_seconds:7.1f} s")
    print(f"{'model.filter(frame) (model in memory)':<44} {filter_seconds:7.1f} s")
    print(f"{'refit on all weeks (defaults)':<44} {refit_seconds:7.1f} s")
    print(f"refit / regime update: {refit_seconds / update_seconds:.1f}x")


if __name__ == "__main__":
    main()
