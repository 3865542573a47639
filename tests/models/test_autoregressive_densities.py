"""The compiled autoregressive density (both forms, diagonal and full coefficient
matrices) against the same density written as a PyTensor graph (value, gradient, batched
draws), and its gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph

from regime_model.models.autoregression import ar_links, lagged_values, regime_histories
from regime_model.models.autoregressive_densities import autoregressive_density
from regime_model.models.emissions import normal_log_density

# (K, p, mean-adjusted, full): the intercept form's K states and the histories' K^(p+1),
# each feature on its own lags or (full) on every autoregressive feature's.
CASES = [
    (2, 1, False, False),
    (3, 2, False, False),
    (2, 1, True, False),
    (2, 3, True, False),
    (3, 2, True, False),
    (2, 1, False, True),
    (3, 1, True, True),
]
FEATURES = np.array([0, 2])  # the autoregressive ones of three


def _graph_density(y, usable, lags, mean, sigma, coefficients, links, n_regimes, order, adjusted):
    """The density as elementwise PyTensor operations: (T, S) from symbolic (K, D) mean
    and sigma and (K, p, L) coefficients on the (L, 2) (target, source) ``links``."""
    histories = regime_histories(n_regimes, order if adjusted else 0)
    current = histories[:, 0]
    targets, sources = links[:, 0], links[:, 1]
    lag_level = mean[histories[:, 1:]][None][..., sources] if adjusted else 0.0  # (1, S, p, L)
    terms = coefficients[current][None] * (lags[:, None][..., sources] - lag_level)
    correction = terms.sum(axis=2) @ np.eye(y.shape[1])[targets]  # (T, S, D)
    residual = y[:, None, :] - mean[current][None] - correction
    return (normal_log_density(residual, sigma[current][None]) * usable[:, None]).sum(-1)


def _problem(
    seed: int, n_regimes: int, order: int, full: bool = False, n_dates: int = 30, n_features=3
):
    """Data with missing values (two AR features, one i.i.d.) and random parameters."""
    rng = np.random.default_rng(seed)
    observed = (rng.random((n_dates, n_features)) > 0.15).astype(float)
    y = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    links = ar_links(FEATURES, full)
    lags, usable = lagged_values(y, observed, order, links)
    mean = rng.standard_normal((n_regimes, n_features))
    sigma = np.exp(0.3 * rng.standard_normal((n_regimes, n_features)))
    coefficients = 0.6 * rng.standard_normal((n_regimes, order, len(links)))
    return y, usable, lags, mean, sigma, coefficients, links


def _n_states(n_regimes, order, mean_adjusted):
    return n_regimes ** (order + 1) if mean_adjusted else n_regimes


@pytest.mark.parametrize(("n_regimes", "order", "mean_adjusted", "full"), CASES)
def test_the_op_matches_the_graph_in_value_and_gradient(n_regimes, order, mean_adjusted, full):
    problem = _problem(n_regimes + order, n_regimes, order, full)
    y, usable, lags, mean, sigma, coefficients, links = problem
    parameters = [pt.dmatrix("mean"), pt.dmatrix("sigma"), pt.dtensor3("coefficients")]
    n_states = _n_states(n_regimes, order, mean_adjusted)
    weights = np.random.default_rng(0).standard_normal((len(y), n_states))
    outputs = []
    for density in (
        autoregressive_density(y, usable, lags, *parameters, links, n_regimes, mean_adjusted),
        _graph_density(y, usable, lags, *parameters, links, n_regimes, order, mean_adjusted),
    ):
        objective = (density * weights).sum()
        outputs += [density, *pytensor.grad(objective, parameters)]
    values = pytensor.function(parameters, outputs)(mean, sigma, coefficients)
    assert values[0].shape == (len(y), n_states)
    for ours, reference in zip(values[:4], values[4:], strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-11, atol=1e-11)
    assert np.abs(values[1]).max() > 1.0  # the check compares gradients that are not zero


@pytest.mark.parametrize(("mean_adjusted", "full"), [(False, False), (True, False), (True, True)])
def test_the_gradient_matches_finite_differences(mean_adjusted, full):
    order = 1 if full else 2
    y, usable, lags, mean, sigma, coefficients, links = _problem(7, 2, order, full)
    n_states = _n_states(2, order, mean_adjusted)
    weights = np.random.default_rng(1).standard_normal((len(y), n_states))

    def objective(m, s, c):
        density = autoregressive_density(y, usable, lags, m, s, c, links, 2, mean_adjusted)
        return (density * weights).sum()

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
    y, usable, lags, mean, sigma, coefficients, links = _problem(3, 2, 1, full=True)
    rng = np.random.default_rng(4)
    batch = [v + 0.1 * rng.standard_normal((5, *v.shape)) for v in (mean, sigma, coefficients)]
    batch[1] = np.abs(batch[1])
    core = [pt.dmatrix("mean"), pt.dmatrix("sigma"), pt.dtensor3("coefficients")]
    draws = [pt.tensor3("means"), pt.tensor3("sigmas"), pt.tensor4("all_coefficients")]
    density = autoregressive_density(y, usable, lags, *core, links, 2, mean_adjusted)
    batched = vectorize_graph(density, dict(zip(core, draws, strict=True)))
    for mode in ("FAST_COMPILE", "NUMBA"):
        values = pytensor.function(draws, batched, mode=mode)(*batch)
        assert values.shape == (5, len(y), _n_states(2, 1, mean_adjusted))
        for i in range(5):
            draw = (b[i] for b in batch)
            one = autoregressive_density(y, usable, lags, *draw, links, 2, mean_adjusted)
            np.testing.assert_allclose(values[i], one.eval(), rtol=1e-12)
