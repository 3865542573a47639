"""netCDF writing without xarray's dask question: the file reads back as
``to_netcdf``'s does, ArviZ reads an InferenceData written this way, and writing does
not import distributed (which ``to_netcdf`` does, to ask for dask's scheduler)."""

from __future__ import annotations

import subprocess
import sys

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from regime_model.netcdf import write_groups


def _dataset(seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-03", periods=30, freq="W-FRI")
    values = rng.normal(size=(4, 30, 2))
    values[0, 3, 1] = np.nan
    return xr.Dataset(
        {
            "probability": (("draw", "date", "regime"), values),
            "index": (("draw",), np.arange(4)),
            "diverging": (("draw",), np.array([True, False, False, True])),
        },
        coords={"date": dates, "regime": ["risk_off", "risk_on"]},
        attrs={"note": "test"},
    )


def test_a_written_file_reads_back_as_to_netcdf_writes_it(tmp_path):
    groups = {"first": _dataset(0), "second": _dataset(1)}
    write_groups(tmp_path / "ours.nc", groups)
    for name, dataset in groups.items():
        mode = "w" if name == "first" else "a"
        dataset.to_netcdf(tmp_path / "xarray.nc", mode=mode, group=name, engine="h5netcdf")
    for name, dataset in groups.items():
        ours = xr.load_dataset(tmp_path / "ours.nc", group=name)
        xr.testing.assert_identical(ours, xr.load_dataset(tmp_path / "xarray.nc", group=name))
        xr.testing.assert_identical(ours, dataset)


def test_arviz_reads_an_inference_data_written_group_by_group(tmp_path):
    rng = np.random.default_rng(2)
    idata = az.from_dict(
        posterior={"mu": rng.normal(size=(2, 50))},
        log_likelihood={"y": rng.normal(size=(2, 50, 7))},
        sample_stats={"diverging": np.zeros((2, 50), bool)},
    )
    write_groups(tmp_path / "posterior.nc", {g: idata[g] for g in idata.groups()})
    loaded = az.from_netcdf(tmp_path / "posterior.nc")
    assert loaded.groups() == idata.groups()
    for group in idata.groups():
        xr.testing.assert_identical(loaded[group], idata[group])


def test_writing_does_not_import_distributed(tmp_path):
    target = str(tmp_path / "a.nc")
    script = (
        "import sys, xarray as xr, numpy as np\n"
        "from regime_model.netcdf import write_groups\n"
        f"write_groups({target!r}, {{'': xr.Dataset({{'x': ('t', np.ones(3))}})}})\n"
        "print('distributed' in sys.modules)\n"
        f"xr.Dataset({{'x': ('t', np.ones(3))}}).to_netcdf({target!r}, engine='h5netcdf')\n"
        "print('distributed' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]  # ours does not, to_netcdf does
