"""Figures are written as PNG files without touching matplotlib's global state."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from test_models import simulate_hmm

from regime_model.models import EMHMM
from regime_model.plots import plot_probability_over_prices, plot_regimes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def em_fit():
    features, _ = simulate_hmm(200, seed=2)
    return EMHMM(2, n_restarts=2).fit(features).result_


def test_regime_figure_is_a_png(em_fit, tmp_path):
    path = plot_regimes(em_fit, tmp_path / "sub" / "regimes.png", kind="smoothed")
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 10_000  # two panels of lines, not an empty canvas


def test_probability_over_prices_figure(em_fit, tmp_path):
    prices = {"IWM": pd.Series(range(1, 201), index=em_fit.dates, dtype=float)}
    path = plot_probability_over_prices(em_fit, prices, tmp_path / "over_prices.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_importing_plots_leaves_the_backend_alone():
    """A notebook's or an application's backend survives ``import regime_model.plots``
    (it used to force Agg)."""
    code = (
        "import matplotlib, regime_model.plots; "
        "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "svg"}
    )
