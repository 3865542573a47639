"""The compiled autoregressive density (both forms) against the same density written as
a PyTensor graph (value, gradient, batched draws), and its gradient against finite
differences."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph

from regime_model.models.autoregression import lagged_values, regime_histories
from regime_model.models.autoregressive_densities import autoregressive_density
from regime_model.models.emissions import normal_log_density

# (K, p, mean-adjusted): the intercept form's K states and the histories' K^(p+1).
CASES = [(2, 1, False), (3, 2, False), (2, 1, True), (2, 3, True), (3, 2, True)]


def _graph_density(y, usable, lags, mean, sigma, coefficients, n_regimes, order, mean_adjusted):
    """The density as elementwise PyTensor operations: (T, S) from symbolic (K, D) mean
    and sigma and (K, p, D) coefficients."""
    histories = regime_histories(n_regimes, order if mean_adjusted else 0)
    current = histories[:, 0]
    lag_level = mean[histories[:, 1:]][None] if mean_adjusted else 0.0  # (1, S, p, D)
    correction = (coefficients[current][None] * (lags[:, None] - lag_level)).sum(axis=2)
    residual = y[:, None, :] - mean[current][None] - correction  # (T, S, D)
    return (normal_log_density(residual, sigma[current][None]) * usable[:, None]).sum(-1)


def _problem(seed: int, n_regimes: int, order: int, n_dates: int = 30, n_features: int = 3):
    """Data with missing values (two AR features, one i.i.d.) and random parameters."""
    rng = np.random.default_rng(seed)
    observed = (rng.random((n_dates, n_features)) > 0.15).astype(float)
    y = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    features = np.array([0, 2])
    lags, usable = lagged_values(y, observed, order, features)
    mean = rng.standard_normal((n_regimes, n_features))
    sigma = np.exp(0.3 * rng.standard_normal((n_regimes, n_features)))
    coefficients = np.zeros((n_regimes, order, n_features))
    coefficients[:, :, features] = 0.6 * rng.standard_normal((n_regimes, order, 2))
    return y, usable, lags, mean, sigma, coefficients


def _n_states(n_regimes, order, mean_adjusted):
    return n_regimes ** (order + 1) if mean_adjusted else n_regimes


@pytest.mark.parametrize(("n_regimes", "order", "mean_adjusted"), CASES)
def test_the_op_matches_the_graph_in_value_and_gradient(n_regimes, order, mean_adjusted):
    y, usable, lags, mean, sigma, coefficients = _problem(n_regimes + order, n_regimes, order)
    parameters = [pt.dmatrix("mean"), pt.dmatrix("sigma"), pt.dtensor3("coefficients")]
    n_states = _n_states(n_regimes, order, mean_adjusted)
    weights = np.random.default_rng(0).standard_normal((len(y), n_states))
    outputs = []
    for density in (
        autoregressive_density(y, usable, lags, *parameters, n_regimes, mean_adjusted),
        _graph_density(y, usable, lags, *parameters, n_regimes, order, mean_adjusted),
    ):
        objective = (density * weights).sum()
        outputs += [density, *pytensor.grad(objective, parameters)]
    values = pytensor.function(parameters, outputs)(mean, sigma, coefficients)
    assert values[0].shape == (len(y), n_states)
    for ours, reference in zip(values[:4], values[4:], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-11)
    assert np.abs(values[1]).max() > 1.0  # the check compares gradients that are not zero


@pytest.mark.parametrize("mean_adjusted", [False, True])
def test_the_gradient_matches_finite_differences(mean_adjusted):
    y, usable, lags, mean, sigma, coefficients = _problem(7, 2, 2)
    weights = np.random.default_rng(1).standard_normal((len(y), _n_states(2, 2, mean_adjusted)))

    def objective(m, s, c):
        return (autoregressive_density(y, usable, lags, m, s, c, 2, mean_adjusted) * weights).sum()

    pytensor.gradient.verify_grad(
        objective,
        [mean, sigma, coefficients],
        rng=np.random.default_rng(2),
        eps=1e-6,
        # verify_grad's one-sided difference errs by about eps x the curvature (~1e-5 here);
        # a wrong term (a sign, a missing lag) is off by O(1).
        abs_tol=1e-4,
        rel_tol=1e-4,
    )


@pytest.mark.parametrize("mean_adjusted", [False, True])
def test_draws_are_batched_through_blockwise(mean_adjusted):
    """A leading axis of posterior draws (how the post-processing evaluates every draw)
    gives each draw's density, in Python and in numba mode."""
    y, usable, lags, mean, sigma, coefficients = _problem(3, 2, 1)
    rng = np.random.default_rng(4)
    batch = [v + 0.1 * rng.standard_normal((5, *v.shape)) for v in (mean, sigma, coefficients)]
    batch[1] = np.abs(batch[1])
    core = [pt.dmatrix("mean"), pt.dmatrix("sigma"), pt.dtensor3("coefficients")]
    draws = [pt.tensor3("means"), pt.tensor3("sigmas"), pt.tensor4("all_coefficients")]
    density = autoregressive_density(y, usable, lags, *core, 2, mean_adjusted)
    batched = vectorize_graph(density, dict(zip(core, draws, strict=True)))
    for mode in ("FAST_COMPILE", "NUMBA"):
        values = pytensor.function(draws, batched, mode=mode)(*batch)
        assert values.shape == (5, len(y), _n_states(2, 1, mean_adjusted))
        for i in range(5):
            one = autoregressive_density(y, usable, lags, *(b[i] for b in batch), 2, mean_adjusted)
            np.testing.assert_allclose(values[i], one.eval(), rtol=1e-12)
