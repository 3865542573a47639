"""The full-covariance Gaussian density as a compiled Op: values against scipy, the
gradient against finite differences (every entry of the covariance, perturbed alone),
the emission with missing values against the same density written as PyTensor
operations (values and every gradient, default and NUMBA mode), a covariance that is not
positive definite, and batching over posterior draws."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph
from scipy.stats import multivariate_normal

from regime_model.models.emissions import full_log_density, missing_patterns
from regime_model.models.full_densities import (
    full_gaussian_log_density,
    full_gaussian_numba,
    full_gaussian_vjp_numba,
)


def _random_problem(seed: int, n: int = 9, d: int = 3, k: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d))
    mean = rng.normal(size=(k, d))
    factors = rng.normal(size=(k, d, d))
    covariance = factors @ factors.transpose(0, 2, 1) + 0.3 * np.eye(d)
    return rng, y, mean, covariance


@pytest.mark.parametrize("d", [1, 2, 4])
def test_the_density_is_scipys(d):
    _, y, mean, covariance = _random_problem(d, d=d)
    expected = np.stack(
        [multivariate_normal(mean[k], covariance[k]).logpdf(y) for k in range(len(mean))], axis=1
    ).reshape(len(y), len(mean))
    np.testing.assert_allclose(full_gaussian_numba(y, mean, covariance), expected, atol=1e-12)


def test_the_gradient_matches_finite_differences():
    rng, y, mean, covariance = _random_problem(1)
    weights = rng.normal(size=(len(y), len(mean)))
    grad_mean, grad_covariance = full_gaussian_vjp_numba(y, mean, covariance, weights)

    def loss(m, c):
        return float((full_gaussian_numba(y, m, c) * weights).sum())

    step = 1e-6
    for value, analytic, index in ((mean, grad_mean, 0), (covariance, grad_covariance, 1)):
        numeric = np.zeros_like(value)
        for position in np.ndindex(value.shape):
            shift = np.zeros_like(value)
            shift[position] = step
            args_up, args_down = [mean, covariance], [mean, covariance]
            args_up[index], args_down[index] = value + shift, value - shift
            numeric[position] = (loss(*args_up) - loss(*args_down)) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def _graph_density(y, patterns, mean, sigma, correlation_cholesky):
    """The density as PyTensor operations (the emission before the Op), (T, K)."""
    correlation = correlation_cholesky @ correlation_cholesky.transpose(0, 2, 1)
    covariance = correlation * sigma[:, :, None] * sigma[:, None, :]
    out = pt.zeros((y.shape[0], 2))
    for pattern in patterns:
        d = len(pattern.features)
        sub = covariance[:, pattern.features][:, :, pattern.features]
        residual = y[np.ix_(pattern.rows, pattern.features)][None] - mean[:, None, pattern.features]
        columns = []
        for k in range(2):
            cholesky = pt.linalg.cholesky(sub[k])
            whitened = pt.linalg.solve_triangular(cholesky, residual[k].T, lower=True)
            columns.append(
                -0.5 * (whitened**2).sum(axis=0)
                - pt.log(pt.diagonal(cholesky)).sum()
                - 0.5 * d * np.log(2 * np.pi)
            )
        out = pt.set_subtensor(out[pattern.rows], pt.stack(columns, axis=1))
    return out


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_the_emission_with_missing_values_is_the_graphs(mode):
    """Rows with every feature, with one or two missing, and with none (density 1)."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=(12, 3))
    observed = np.ones_like(y)
    observed[2, 0] = observed[5, 1] = observed[6, 1] = observed[9, [0, 2]] = 0
    observed[11] = 0
    y = np.where(observed == 1, y, 0.0)
    patterns = missing_patterns(observed)
    mean = pt.matrix("mean", shape=(2, 3))
    sigma = pt.matrix("sigma", shape=(2, 3))
    cholesky = pt.tensor3("cholesky", shape=(2, 3, 3))
    weights = rng.normal(size=(12, 2))
    values = []
    for density in (full_log_density(y, patterns, mean, sigma, cholesky), None):
        if density is None:
            density = _graph_density(y, patterns, mean, sigma, cholesky)
        loss = (density * weights).sum()
        gradients = pytensor.grad(loss, [mean, sigma, cholesky])
        function = pytensor.function([mean, sigma, cholesky], [density, *gradients], mode=mode)
        lower = np.tril(rng.normal(size=(2, 3, 3)), -1) * 0.4 + np.eye(3)
        lower /= np.linalg.norm(lower, axis=2, keepdims=True)  # unit rows: a correlation
        point = (rng.normal(size=(2, 3)), rng.uniform(0.5, 2.0, size=(2, 3)), lower)
        values.append((point, function))
    (point, op_function), (_, graph_function) = values
    for ours, reference in zip(op_function(*point), graph_function(*point), strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    assert np.all(op_function(*point)[0][11] == 0.0)  # no feature observed


def test_a_covariance_that_is_not_positive_definite_is_impossible():
    _, y, mean, covariance = _random_problem(4)
    covariance[1] = -np.eye(3)
    values = full_gaussian_numba(y, mean, covariance)
    assert np.isneginf(values[:, 1]).all() and np.isfinite(values[:, [0, 2]]).all()
    grad_mean, grad_covariance = full_gaussian_vjp_numba(y, mean, covariance, np.ones_like(values))
    assert np.isnan(grad_mean[1]).all() and np.isnan(grad_covariance[1]).all()
    assert np.isfinite(grad_mean[[0, 2]]).all()


def test_draws_batch_through_blockwise_in_numba_mode():
    _, y, mean, covariance = _random_problem(5)
    one_mean, one_covariance = pt.matrix("m"), pt.tensor3("c")
    density = full_gaussian_log_density(y, one_mean, one_covariance)
    many_mean, many_covariance = pt.tensor3("ms"), pt.tensor4("cs")
    batched = vectorize_graph(density, {one_mean: many_mean, one_covariance: many_covariance})
    function = pytensor.function([many_mean, many_covariance], batched, mode="NUMBA")
    means = np.stack([mean, mean + 1.0])
    covariances = np.stack([covariance, 2.0 * covariance])
    result = function(means, covariances)
    for draw in range(2):
        np.testing.assert_allclose(
            result[draw], full_gaussian_numba(y, means[draw], covariances[draw]), atol=1e-12
        )
