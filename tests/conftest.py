"""Shared fixtures: small universes, CSV directories and a weekly synthetic feature file
written to a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regime_model.cli import main


def write_universe(path: Path, body: str, header: str = "") -> Path:
    """Write a universe TOML file from an indented snippet."""
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    """Two years of clean equity (trading days) and crypto (every day) prices as CSVs."""
    rng = np.random.default_rng(7)
    days = pd.date_range("2020-01-01", "2021-12-31", freq="D")
    trading = days[days.day_of_week < 5]
    equity = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(trading))))
    crypto = 1000 * np.exp(np.cumsum(0.03 * rng.standard_normal(len(days))))
    pd.DataFrame({"date": trading.strftime("%Y-%m-%d"), "close": equity}).to_csv(
        tmp_path / "equity.csv", index=False
    )
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "price": crypto}).to_csv(
        tmp_path / "coin.csv", index=False
    )
    return tmp_path


SIMPLE_UNIVERSE = """
    [universe]
    name = "simple"
    calendar_series = "equity_return"

    [[series]]
    name = "equity_return"
    group = "equity"
    transform = "log_return"
    calendar = "equity"
    csv = "equity.csv:close"

    [[series]]
    name = "coin_return"
    group = "crypto"
    transform = "log_return"
    calendar = "crypto"
    csv = "coin.csv:price"
"""


@pytest.fixture
def simple_universe(tmp_path: Path) -> Path:
    return write_universe(tmp_path / "simple.toml", SIMPLE_UNIVERSE)


@pytest.fixture(scope="module")
def features_file(tmp_path_factory) -> Path:
    """About 300 weekly synthetic dates (2016-01 to 2021-09) with the true regimes beside."""
    path = tmp_path_factory.mktemp("features") / "weekly.csv"
    code = main(
        ["data", "build", "--source", "synthetic", "--freq", "weekly"]
        + ["--end", "2021-09-30", "--seed", "3", "--out", str(path)]
    )
    assert code == 0
    return path
