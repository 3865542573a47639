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


def test_the_regime_figure_says_what_it_shows(tmp_path):
    from matplotlib.colors import to_hex

    from regime_model.plots import reading_figure, regime_colours, regimes_figure

    features, _ = simulate_hmm(200, seed=2)
    holdout = features.frame.index[150]
    result = EMHMM(2, n_restarts=2).fit(features, holdout_start=holdout).result_
    figure = regimes_figure(result, "filtered")
    top, bottom = figure.axes
    held_out = [line for line in bottom.get_lines() if "held out from" in line.get_label()]
    assert held_out and held_out[0].get_xdata()[0] == holdout  # the cut is drawn
    assert f"held out from {holdout:%Y-%m-%d} (not fitted)" in [
        text.get_text() for text in bottom.get_legend().get_texts()
    ]
    shading = [text.get_text() for text in top.get_legend().get_texts()]
    assert "shaded: mean P(risk_on) > 0.5" in shading
    last = result.regime_probabilities()[("risk_on", "mean")].iloc[-1]
    notes = [child.get_text() for child in bottom.texts]
    assert notes == [f"P(risk_on) = {last:.2f} on {result.dates[-1]:%Y-%m-%d}"]
    assert "probability, 0 to 1" in bottom.get_ylabel()
    colours = regime_colours(result.regime_names)
    line = next(line for line in bottom.get_lines() if line.get_label().startswith("P(risk_on)"))
    assert to_hex(line.get_color()) == colours["risk_on"] == "#27ae60"
    # ... the same green in the reading's figure.
    table = result.regime_probabilities()["risk_on"]
    reading = {
        "probability": {"risk_off": {"mean": 0.4}, "risk_on": {"mean": 0.6}},
        "has_bands": False,
        "hdi": 0.9,
        "fitted_through": f"{result.dates[149]:%Y-%m-%d}",
        "as_of": f"{result.dates[-1]:%Y-%m-%d}",
        "model": "em-hmm",
        "freq": "daily",
        "forecast": [{"steps": 1, "risk_on": {"mean": 0.6, "lower": None, "upper": None}}],
    }
    page = reading_figure(table, reading, "risk_on")
    assert to_hex(page.axes[0].get_lines()[0].get_color()) == colours["risk_on"]
