"""The diagonal Gaussian emission Op: values against scipy with missing values masked,
its gradient against finite differences, every mode against the others, and batching
over posterior draws."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import NullTypeGradError
from pytensor.graph.replace import vectorize_graph
from scipy import stats

from regime_model.models.diagonal_gaussian import DiagonalGaussianLogDensityOp
from regime_model.models.emissions import diagonal_log_density

MODES = ["FAST_COMPILE", None, "NUMBA"]  # Python, PyTensor's default (C), numba


def _data(seed: int, n_dates: int = 40, n_features: int = 3, n_regimes: int = 2):
    rng = np.random.default_rng(seed)
    observed = (rng.random((n_dates, n_features)) > 0.25).astype(float)
    observed[0] = 0.0  # a date with nothing observed contributes 0 to every regime
    y = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    mean = rng.standard_normal((n_regimes, n_features))
    sigma = np.exp(0.4 * rng.standard_normal((n_regimes, n_features)))
    return y, observed, mean, sigma


def _scipy_log_density(y, observed, mean, sigma) -> np.ndarray:
    per_feature = stats.norm.logpdf(y[:, None, :], mean[None], sigma[None])
    return (per_feature * observed[:, None, :]).sum(axis=-1)


@pytest.mark.parametrize("mode", MODES)
def test_values_match_scipy_with_missing_values_masked(mode):
    y, observed, mean_value, sigma_value = _data(0)
    mean, sigma = pt.matrix("mean"), pt.matrix("sigma")
    output = diagonal_log_density(pt.as_tensor(y), pt.as_tensor(observed), mean, sigma)
    assert isinstance(output.owner.op, DiagonalGaussianLogDensityOp)  # not the elementwise graph
    function = pytensor.function([mean, sigma], output, mode=mode)
    result = function(mean_value, sigma_value)
    np.testing.assert_allclose(
        result, _scipy_log_density(y, observed, mean_value, sigma_value), rtol=1e-12
    )
    np.testing.assert_array_equal(result[0], 0.0)


def test_gradient_matches_finite_differences():
    y, observed, mean_value, sigma_value = _data(1)
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((y.shape[0], mean_value.shape[0]))

    def weighted(mean, sigma):
        log_density = diagonal_log_density(pt.as_tensor(y), pt.as_tensor(observed), mean, sigma)
        return pt.sum(pt.as_tensor(weights) * log_density)

    pytensor.gradient.verify_grad(weighted, [mean_value, sigma_value], rng=rng, eps=1e-7)


def test_gradients_agree_across_modes():
    y, observed, mean_value, sigma_value = _data(2)
    mean, sigma = pt.matrix("mean"), pt.matrix("sigma")
    log_density = diagonal_log_density(pt.as_tensor(y), pt.as_tensor(observed), mean, sigma)
    # A nonlinear function of the output, so the output gradient is not constant.
    objective = pt.sum(pt.exp(0.01 * log_density))
    gradients = [
        pytensor.function([mean, sigma], pytensor.grad(objective, [mean, sigma]), mode=mode)(
            mean_value, sigma_value
        )
        for mode in MODES
    ]
    for other in gradients[1:]:
        for expected, actual in zip(gradients[0], other, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-10)


def test_gradient_with_respect_to_the_data_is_refused():
    y_value, observed, mean_value, sigma_value = _data(3)
    y = pt.matrix("y")
    log_density = diagonal_log_density(
        y, pt.as_tensor(observed), pt.as_tensor(mean_value), pt.as_tensor(sigma_value)
    )
    with pytest.raises(NullTypeGradError):
        pytensor.grad(log_density.sum(), y)


def test_vectorised_over_draws_equals_one_draw_at_a_time():
    y, observed, _, _ = _data(4)
    rng = np.random.default_rng(4)
    means = rng.standard_normal((5, 2, y.shape[1]))
    sigmas = np.exp(0.3 * rng.standard_normal((5, 2, y.shape[1])))
    mean, sigma = pt.matrix("mean"), pt.matrix("sigma")
    output = diagonal_log_density(pt.as_tensor(y), pt.as_tensor(observed), mean, sigma)
    batched_mean, batched_sigma = pt.tensor3("means"), pt.tensor3("sigmas")
    batched = vectorize_graph(output, {mean: batched_mean, sigma: batched_sigma})
    result = pytensor.function([batched_mean, batched_sigma], batched, mode="FAST_COMPILE")(
        means, sigmas
    )
    assert result.shape == (5, y.shape[0], 2)
    for draw in range(5):
        np.testing.assert_allclose(
            result[draw], _scipy_log_density(y, observed, means[draw], sigmas[draw]), rtol=1e-12
        )
