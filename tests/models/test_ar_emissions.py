"""Autoregressive emissions (intercept form): the density against a direct computation
with missing values and lags, and a synthetic MS-AR world recovered by the default
sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from scipy import stats

from regime_model.data.features import FeatureSet
from regime_model.models import BayesianHMM
from regime_model.models.ar_emissions import (
    autoregressive_log_density,
    coefficients_from_partial_autocorrelations,
)

TRUE_PHI = 0.8
TRUE_INTERCEPT = np.array([-0.4, 0.4])  # the level's drift per regime (raw units)
TRUE_RETURN_MEAN = np.array([-0.6, 0.6])
STAY = 0.97


def _direct_log_density(values, observed, order, features, intercept, sigma, coefficients):
    """Date by date, feature by feature: the definition in the module docstring."""
    n_dates, n_features = values.shape
    n_regimes = intercept.shape[0]
    out = np.zeros((n_dates, n_regimes))
    for t in range(n_dates):
        for k in range(n_regimes):
            for d in range(n_features):
                if not observed[t, d]:
                    continue
                predicted = intercept[k, d]
                if d in features:
                    if t < order or not all(observed[t - 1 - i, d] for i in range(order)):
                        continue  # a lag is missing (or before the data): d drops out
                    a = list(features).index(d)
                    phi = coefficients[k] if coefficients.ndim == 3 else coefficients
                    predicted += sum(phi[i, a] * values[t - 1 - i, d] for i in range(order))
                out[t, k] += stats.norm.logpdf(values[t, d], predicted, sigma[k, d])
    return out


@pytest.mark.parametrize("switching", [False, True])
def test_the_density_matches_the_definition_with_missing_values_and_lags(switching):
    rng = np.random.default_rng(0)
    n_dates, n_features, order = 30, 3, 2
    observed = (rng.random((n_dates, n_features)) > 0.2).astype(float)
    values = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    features = np.array([0, 2])
    intercept = rng.standard_normal((2, n_features))
    sigma = np.exp(0.3 * rng.standard_normal((2, n_features)))
    shape = (2, order, 2) if switching else (order, 2)
    coefficients = 0.5 * rng.standard_normal(shape)
    ours = autoregressive_log_density(
        values, observed, order, features, 2, intercept, sigma, coefficients
    ).eval()
    expected = _direct_log_density(
        values, observed, order, features, intercept, sigma, coefficients
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_partial_autocorrelations_map_onto_stationary_coefficients(order):
    """Every point of (-1, 1)^p gives an AR(p) whose characteristic roots lie outside the
    unit circle, and the PyTensor graph computes what numpy does."""
    rng = np.random.default_rng(order)
    partial = rng.uniform(-1.0, 1.0, (400, order, 2))
    partial[0] = 0.999  # near the unit root
    phi = coefficients_from_partial_autocorrelations(partial, order)
    for draw in phi.transpose(0, 2, 1).reshape(-1, order):
        # z^p - phi_1 z^(p-1) - ... - phi_p: its roots are the inverse characteristic roots.
        assert np.abs(np.roots(np.r_[1.0, -draw])).max() < 1.0, draw
    symbolic = coefficients_from_partial_autocorrelations(pt.as_tensor(partial), order).eval()
    np.testing.assert_allclose(symbolic, phi, rtol=1e-14)


def test_the_recursion_matches_the_closed_form_at_order_two():
    """phi_1 = r_1 (1 - r_2), phi_2 = r_2: the recursion written out for p = 2."""
    partial = np.array([[0.5, -0.9], [0.3, 0.4]])  # (p = 2, A = 2)
    expected = np.array([[0.5 * 0.7, -0.9 * 0.6], [0.3, 0.4]])
    np.testing.assert_allclose(coefficients_from_partial_autocorrelations(partial, 2), expected)


def simulate_ms_ar(
    n_dates: int,
    seed: int,
    intercepts: np.ndarray = TRUE_INTERCEPT,
    return_means: np.ndarray = TRUE_RETURN_MEAN,
    phi: np.ndarray | None = None,
) -> tuple[FeatureSet, np.ndarray]:
    """K regimes (K = len(intercepts)), each kept with probability STAY and otherwise left
    for one of the others at random: an i.i.d. return whose mean switches and an AR(1)
    level whose drift switches (phi (K,), default TRUE_PHI in every regime); the level
    alone is persistent within a regime."""
    rng = np.random.default_rng(seed)
    n_regimes = len(intercepts)
    phi = np.full(n_regimes, TRUE_PHI) if phi is None else phi
    path = np.zeros(n_dates, dtype=int)
    for t in range(1, n_dates):
        path[t] = path[t - 1]
        if rng.random() >= STAY:
            path[t] = rng.choice(np.delete(np.arange(n_regimes), path[t - 1]))
    returns = return_means[path] + rng.standard_normal(n_dates)
    level = np.zeros(n_dates)
    for t in range(1, n_dates):
        state = path[t]
        level[t] = intercepts[state] + phi[state] * level[t - 1] + 0.5 * rng.standard_normal()
    dates = pd.bdate_range("2020-01-01", periods=n_dates, name="date")
    frame = pd.DataFrame({"eq_return": returns, "level": level}, index=dates)
    return FeatureSet(frame, {"eq_return": "equity", "level": "flows"}, "daily"), path


def least_squares_phi(level: np.ndarray, path: np.ndarray, switching: bool) -> np.ndarray:
    """This sample's own information about phi: least squares of the level on one
    intercept per regime and its lag (one slope per regime when ``switching``), given the
    true path. -> (K,) slopes (all equal when not switching)."""
    n_regimes = path.max() + 1
    in_regime = (path[1:, None] == np.arange(n_regimes)[None]).astype(float)
    slopes = in_regime * level[:-1, None] if switching else level[:-1, None]
    coefficients = np.linalg.lstsq(np.hstack([in_regime, slopes]), level[1:], rcond=None)[0]
    return np.broadcast_to(coefficients[n_regimes:], n_regimes)


@pytest.fixture(scope="module")
def ar_fit():
    features, path = simulate_ms_ar(600, seed=5)
    model = BayesianHMM(
        2, ar_order=1, ar_columns=["level"], draws=1000, tune=500, chains=2, seed=2,
        progressbar=False,
    )  # fmt: skip
    return model.fit(features), path


def test_a_synthetic_ms_ar_world_is_recovered(ar_fit):
    model, path = ar_fit
    result = model.result_
    risk_on = result.regime_probabilities("smoothed")[("risk_on", "mean")].to_numpy()
    assert ((risk_on > 0.5).astype(int) == path).mean() >= 0.95
    phi = result.inference_data.posterior["ar_coefficient"].to_numpy().reshape(-1)
    # This sample's own information about phi: least squares given the true path (0.770,
    # se 0.019 here; the truth, 0.8, is 1.5 se from it by sampling noise). The posterior
    # must sit within 2 sd of that, and within 3 sd of the truth (2 for the noise, 1 more
    # for the unknown path).
    level = model.inputs_.frame["level"].to_numpy()
    least_squares = least_squares_phi(level, path, switching=False)[0]
    assert abs(phi.mean() - least_squares) <= 2 * phi.std(), (phi.mean(), phi.std())
    assert abs(phi.mean() - TRUE_PHI) <= 3 * phi.std(), (phi.mean(), phi.std())
    diagnostics = result.diagnostics()
    assert diagnostics["verdict"] == "pass", diagnostics["failures"]


THREE_INTERCEPTS = np.array([-0.4, 0.0, 0.4])
THREE_RETURN_MEANS = np.array([-1.5, 0.0, 1.5])
THREE_PHI = np.array([0.6, 0.8, 0.9])  # switching: the regimes' own persistence


def test_three_regimes_with_switching_coefficients_are_recovered():
    """K = 3, phi differing between regimes: the path at >= 0.95 and each regime's phi
    within 2 sd of the least-squares value on the true path, 3 sd of the truth."""
    features, path = simulate_ms_ar(
        600, seed=11, intercepts=THREE_INTERCEPTS, return_means=THREE_RETURN_MEANS, phi=THREE_PHI
    )
    model = BayesianHMM(
        3, ar_order=1, ar_columns=["level"], switching_ar=True, draws=1000, tune=500,
        chains=2, seed=3, progressbar=False,
    ).fit(features)  # fmt: skip
    result = model.result_
    smoothed = result.regime_probabilities("smoothed")
    names = result.regime_names  # risk_off, neutral, risk_on: ascending return mean
    most_probable = np.argmax(
        np.column_stack([smoothed[(name, "mean")].to_numpy() for name in names]), axis=1
    )
    assert (most_probable == path).mean() >= 0.95
    phi = result.inference_data.posterior["ar_coefficient"].to_numpy()  # (c, d, K, 1, 1)
    phi = phi.reshape(-1, 3)
    level = model.inputs_.frame["level"].to_numpy()
    least_squares = least_squares_phi(level, path, switching=True)
    mean, sd = phi.mean(axis=0), phi.std(axis=0)
    assert np.all(np.abs(mean - least_squares) <= 2 * sd), (mean, sd, least_squares)
    assert np.all(np.abs(mean - THREE_PHI) <= 3 * sd), (mean, sd)
    diagnostics = result.diagnostics()
    assert diagnostics["verdict"] == "pass", diagnostics["failures"]
