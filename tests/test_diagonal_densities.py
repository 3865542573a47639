"""The diagonal emission Ops (Gaussian and Student-t margins): values against scipy with
missing values masked, gradients against finite differences, every mode against the
others, and batching over posterior draws."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import NullTypeGradError
from pytensor.graph.replace import vectorize_graph
from scipy import stats

from regime_model.models.diagonal_densities import DiagonalLogDensityOp
from regime_model.models.emissions import diagonal_log_density

MODES = ["FAST_COMPILE", None, "NUMBA"]  # Python, PyTensor's default (C), numba
FAMILIES = ["gaussian", "student-t"]


def _data(seed: int, n_dates: int = 40, n_features: int = 3, n_regimes: int = 2):
    rng = np.random.default_rng(seed)
    observed = (rng.random((n_dates, n_features)) > 0.25).astype(float)
    observed[0] = 0.0  # a date with nothing observed contributes 0 to every regime
    # Heavy-tailed values, so the Student-t terms are far from their Gaussian limit.
    y = np.where(observed == 1.0, rng.standard_t(3.0, (n_dates, n_features)), 0.0)
    mean = rng.standard_normal((n_regimes, n_features))
    sigma = np.exp(0.4 * rng.standard_normal((n_regimes, n_features)))
    nu = rng.uniform(1.5, 30.0, n_features)
    return y, observed, mean, sigma, nu


def _parameters(family: str, mean, sigma, nu) -> list[np.ndarray]:
    return [mean, sigma] if family == "gaussian" else [mean, sigma, nu]


def _symbols(family: str) -> list[pt.TensorVariable]:
    symbols = [pt.matrix("mean"), pt.matrix("sigma")]
    return symbols if family == "gaussian" else [*symbols, pt.vector("nu")]


def _scipy_log_density(y, observed, mean, sigma, nu=None) -> np.ndarray:
    if nu is None:
        per_feature = stats.norm.logpdf(y[:, None, :], mean[None], sigma[None])
    else:
        per_feature = stats.t.logpdf(y[:, None, :], nu[None, None], mean[None], sigma[None])
    return (per_feature * observed[:, None, :]).sum(axis=-1)


def _density(y, observed, *parameters):
    return diagonal_log_density(pt.as_tensor(y), pt.as_tensor(observed), *parameters)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", MODES)
def test_values_match_scipy_with_missing_values_masked(mode, family):
    y, observed, *values = _data(0)
    values = _parameters(family, *values)
    symbols = _symbols(family)
    output = _density(y, observed, *symbols)
    assert isinstance(output.owner.op, DiagonalLogDensityOp)  # not the elementwise graph
    assert output.owner.op.family == family
    result = pytensor.function(symbols, output, mode=mode)(*values)
    np.testing.assert_allclose(result, _scipy_log_density(y, observed, *values), rtol=1e-12)
    np.testing.assert_array_equal(result[0], 0.0)


def test_a_shared_degrees_of_freedom_broadcasts_over_features():
    y, observed, mean, sigma, _ = _data(5)
    result = _density(y, observed, mean, sigma, pt.as_tensor(7.0)).eval()
    np.testing.assert_allclose(
        result, _scipy_log_density(y, observed, mean, sigma, np.full(3, 7.0)), rtol=1e-12
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_matches_finite_differences(family):
    y, observed, *values = _data(1)
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((y.shape[0], values[0].shape[0]))

    def weighted(*parameters):
        return pt.sum(pt.as_tensor(weights) * _density(y, observed, *parameters))

    pytensor.gradient.verify_grad(
        weighted, _parameters(family, *values), rng=rng, eps=1e-7, abs_tol=1e-6, rel_tol=1e-6
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_agree_across_modes_and_with_the_elementwise_graph(family):
    y, observed, *values = _data(2)
    values = _parameters(family, *values)
    symbols = _symbols(family)
    # A nonlinear function of the output, so the output gradient is not constant.
    objective = pt.sum(pt.exp(0.01 * _density(y, observed, *symbols)))
    gradients = [
        pytensor.function(symbols, pytensor.grad(objective, symbols), mode=mode)(*values)
        for mode in MODES
    ]
    # The same density written as PyTensor operations, differentiated by PyTensor.
    z = (y[:, None, :] - symbols[0][None]) / symbols[1][None]
    if family == "gaussian":
        per_feature = -0.5 * z**2 - pt.log(symbols[1])[None] - 0.5 * np.log(2 * np.pi)
    else:
        nu = symbols[2][None, None, :]
        per_feature = (
            pt.gammaln((nu + 1) / 2)
            - pt.gammaln(nu / 2)
            - 0.5 * pt.log(nu * np.pi)
            - pt.log(symbols[1])[None]
            - (nu + 1) / 2 * pt.log1p(z**2 / nu)
        )
    graph = pt.sum(pt.exp(0.01 * (per_feature * observed[:, None, :]).sum(axis=-1)))
    elementwise = pytensor.function(symbols, pytensor.grad(graph, symbols))(*values)
    for other in gradients[1:]:
        for expected, actual in zip(gradients[0], other, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-12)
    # The graph's digamma is scipy's, the Op's the package's own (accurate to ~1e-15 per
    # call, summed over 120 dates x regimes).
    for expected, actual in zip(elementwise, gradients[0], strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-8)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_with_respect_to_the_data_is_refused(family):
    y_value, observed, *values = _data(3)
    y = pt.matrix("y")
    log_density = diagonal_log_density(
        y, pt.as_tensor(observed), *map(pt.as_tensor, _parameters(family, *values))
    )
    with pytest.raises(NullTypeGradError):
        pytensor.grad(log_density.sum(), y)


@pytest.mark.parametrize("family", FAMILIES)
def test_vectorised_over_draws_equals_one_draw_at_a_time(family):
    y, observed, *_ = _data(4)
    rng = np.random.default_rng(4)
    draws = [
        rng.standard_normal((5, 2, y.shape[1])),
        np.exp(0.3 * rng.standard_normal((5, 2, y.shape[1]))),
        rng.uniform(2.0, 20.0, (5, y.shape[1])),
    ][: 2 if family == "gaussian" else 3]
    symbols = _symbols(family)
    output = _density(y, observed, *symbols)
    batched_symbols = [
        pt.tensor(f"batched_{s.name}", shape=(None,) * (s.ndim + 1)) for s in symbols
    ]
    batched = vectorize_graph(output, dict(zip(symbols, batched_symbols, strict=True)))
    result = pytensor.function(batched_symbols, batched, mode="FAST_COMPILE")(*draws)
    assert result.shape == (5, y.shape[0], 2)
    for draw in range(5):
        np.testing.assert_allclose(
            result[draw],
            _scipy_log_density(y, observed, *(value[draw] for value in draws)),
            rtol=1e-12,
        )
