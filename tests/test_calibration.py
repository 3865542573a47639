"""Brier score and reliability tables against hand-computed values and a calibrated coin."""

from __future__ import annotations

import numpy as np
import pytest

from regime_model.calibration import brier_score, reliability_table


def test_brier_score_by_hand():
    probabilities = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    truth = np.array([1, 0, 0])
    expected = ((0.2**2 + 0.2**2) + (0.5**2 + 0.5**2) + 0.0) / 3
    assert brier_score(probabilities, truth) == pytest.approx(expected)
    assert brier_score(np.full((4, 2), 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.5)


def test_reliability_of_a_calibrated_and_an_overconfident_forecaster():
    rng = np.random.default_rng(0)
    forecast = rng.uniform(size=20_000)
    truth = (rng.uniform(size=forecast.size) < forecast).astype(int)  # calibrated
    table = reliability_table(np.c_[1 - forecast, forecast], truth, regime=1)
    gap = (table["observed_frequency"] - table["mean_forecast"]).abs()
    assert len(table) == 10 and (gap < 3 * table["standard_error"] + 1e-9).all()
    overconfident = np.clip((forecast - 0.5) * 3 + 0.5, 0, 1)
    table = reliability_table(np.c_[1 - overconfident, overconfident], truth, regime=1)
    extreme = table.iloc[[0, -1]]
    gap = (extreme["observed_frequency"] - extreme["mean_forecast"]).abs()
    assert (gap > 5 * extreme["standard_error"]).all()
