"""Timing of writing a fitted run: the two netCDF files of a run directory, as
``RegimeResult.save`` writes them, beside the alternatives, in one process. Prints the
median seconds of ``--repeats`` writes and the file sizes; asserts nothing.

    python benchmarks/bench_write.py RUN_DIR [--repeats 3]

RUN_DIR is any run written by ``regime fit`` (the real daily Student-t fit is the one
that motivated this: 4 x 1000 draws x 2,873 dates of pointwise log-likelihoods).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from regime_model.results import RegimeResult


def median_write(write, path: Path, repeats: int) -> tuple[float, int]:
    seconds = []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        write(path)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = RegimeResult.load(args.run)
    data = result.inference_data
    # As a fit holds it: no encoding read back from the file (a loaded dataset keeps the
    # zlib setting it was written with, which would compress every case below).
    for group in data.groups():
        for variable in getattr(data, group).variables.values():
            variable.encoding = {}
    draws = result.draws_dataset()
    shape = data.log_likelihood["y"].shape
    print(
        f"run {args.run}: pointwise log-likelihood {shape}, regime draws {draws['filtered'].shape}"
    )

    def zlib(level: int | None) -> dict:
        if level is None:
            return {}
        return {name: {"zlib": True, "complevel": level} for name in draws.data_vars}

    cases = {
        "posterior.nc, arviz compress=True": lambda p: data.to_netcdf(str(p)),
        "posterior.nc, compress=False": lambda p: data.to_netcdf(str(p), compress=False),
        "regime_draws.nc, zlib level 4": lambda p: draws.to_netcdf(p, encoding=zlib(4)),
        "regime_draws.nc, zlib level 1": lambda p: draws.to_netcdf(p, encoding=zlib(1)),
        "regime_draws.nc, uncompressed": lambda p: draws.to_netcdf(p),
    }
    with tempfile.TemporaryDirectory() as directory:
        for name, write in cases.items():
            seconds, size = median_write(write, Path(directory) / "file.nc", args.repeats)
            print(f"{name:40s} {seconds:7.2f} s  {size / 1e6:7.1f} MB")
        started = time.perf_counter()
        result.save(Path(directory) / "run")
        print(f"{'RegimeResult.save (the whole run)':40s} {time.perf_counter() - started:7.2f} s")


if __name__ == "__main__":
    main()
