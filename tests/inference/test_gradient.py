"""Analytic gradients of the log-likelihood against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hmm_brute_force import random_hmm

from regime_model.inference import hmm_loglik_and_grad

# Central differences with step h have truncation error ~h^2 |f'''| / 6 and rounding error
# ~eps |f| / h.  With h = 1e-5, |f| ~ 50 and O(1) third derivatives both are below 1e-9, so
# 1e-7 absolute leaves a wide margin while still catching any wrong term (gradient entries
# here are probabilities or sums of them, of order 0.01 to 10).
STEP = 1e-5
TOLERANCE = 1e-7


def finite_difference_gradient(function, point: np.ndarray) -> np.ndarray:
    gradient = np.empty_like(point)
    for index in np.ndindex(point.shape):
        shifted_up, shifted_down = point.copy(), point.copy()
        shifted_up[index] += STEP
        shifted_down[index] -= STEP
        gradient[index] = (function(shifted_up) - function(shifted_down)) / (2 * STEP)
    return gradient


def loglik(log_initial, log_transition, log_emission) -> float:
    return hmm_loglik_and_grad(log_initial, log_transition, log_emission).marginal_loglik


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("normalised", [True, False])
def test_gradient_matches_finite_differences(time_varying, normalised):
    rng = np.random.default_rng(21 + 2 * time_varying + normalised)
    log_initial, log_transition, log_emission = random_hmm(rng, 12, 3, time_varying)
    if not normalised:
        # Free parameters: rows off the simplex must still give the exact gradient.
        log_initial = log_initial + rng.normal(scale=0.5, size=log_initial.shape)
        log_transition = log_transition + rng.normal(scale=0.5, size=log_transition.shape)

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    numeric_initial = finite_difference_gradient(
        lambda value: loglik(value, log_transition, log_emission), log_initial
    )
    numeric_transition = finite_difference_gradient(
        lambda value: loglik(log_initial, value, log_emission), log_transition
    )
    numeric_emission = finite_difference_gradient(
        lambda value: loglik(log_initial, log_transition, value), log_emission
    )
    np.testing.assert_allclose(result.grad_log_initial, numeric_initial, atol=TOLERANCE)
    np.testing.assert_allclose(result.grad_log_transition, numeric_transition, atol=TOLERANCE)
    np.testing.assert_allclose(result.grad_log_emission, numeric_emission, atol=TOLERANCE)


def test_gradient_on_log_space_steps_matches_finite_differences():
    """Emissions extreme enough that the kernel's log-space fallback runs on most steps."""
    rng = np.random.default_rng(5)
    log_initial, log_transition, _ = random_hmm(rng, 10, 3, time_varying=False)
    log_emission = rng.normal(scale=800.0, size=(10, 3))

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    numeric_transition = finite_difference_gradient(
        lambda value: loglik(log_initial, value, log_emission), log_transition
    )
    numeric_emission = finite_difference_gradient(
        lambda value: loglik(log_initial, log_transition, value), log_emission
    )
    # |f| ~ 1e4 here, so rounding error is ~eps * 1e4 / h ~ 2e-7: loosen accordingly.
    np.testing.assert_allclose(result.grad_log_transition, numeric_transition, atol=1e-5)
    np.testing.assert_allclose(result.grad_log_emission, numeric_emission, atol=1e-5)
