"""h-step state forecasts against explicit matrix powers."""

from __future__ import annotations

import numpy as np
import pytest
from hmm_brute_force import random_hmm

from regime_model.inference import hmm_filter, hmm_forecast


def test_forecast_equals_filtered_times_matrix_power():
    rng = np.random.default_rng(13)
    log_initial, log_transition, log_emission = random_hmm(rng, 40, 3, time_varying=False)
    filtered_probs = hmm_filter(log_initial, log_transition, log_emission).filtered_probs
    transition = np.exp(log_transition)
    horizon = 6

    forecasts = hmm_forecast(filtered_probs, log_transition, horizon)

    assert forecasts.shape == (40, horizon, 3)
    for h in range(1, horizon + 1):
        expected = filtered_probs @ np.linalg.matrix_power(transition, h)
        np.testing.assert_allclose(forecasts[:, h - 1], expected, atol=1e-14)
    np.testing.assert_allclose(forecasts.sum(axis=-1), 1.0, atol=1e-12)


def test_forecast_from_a_single_distribution():
    transition = np.array([[0.9, 0.1], [0.4, 0.6]])
    probs = np.array([0.3, 0.7])

    forecasts = hmm_forecast(probs, np.log(transition), horizon=3)

    assert forecasts.shape == (3, 2)
    np.testing.assert_allclose(forecasts[0], probs @ transition, atol=1e-15)
    np.testing.assert_allclose(forecasts[2], probs @ transition @ transition @ transition)


def test_forecast_rejects_time_varying_transition_and_bad_horizon():
    probs = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="time-varying"):
        hmm_forecast(probs, np.zeros((4, 2, 2)), horizon=2)
    with pytest.raises(ValueError, match="horizon"):
        hmm_forecast(probs, np.log(np.full((2, 2), 0.5)), horizon=0)
