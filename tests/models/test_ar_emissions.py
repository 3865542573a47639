"""Autoregressive emissions (intercept form): the density against a direct computation
with missing values and lags, and a synthetic MS-AR world recovered by the default
sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regime_model.data.features import FeatureSet
from regime_model.models import BayesianHMM
from regime_model.models.ar_emissions import autoregressive_log_density

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


def simulate_ms_ar(n_dates: int, seed: int) -> tuple[FeatureSet, np.ndarray]:
    """Two regimes: an i.i.d. return whose mean switches and an AR(1) level whose drift
    switches (phi = 0.8); the level alone is persistent within a regime."""
    rng = np.random.default_rng(seed)
    path = np.zeros(n_dates, dtype=int)
    for t in range(1, n_dates):
        path[t] = path[t - 1] if rng.random() < STAY else 1 - path[t - 1]
    returns = TRUE_RETURN_MEAN[path] + rng.standard_normal(n_dates)
    level = np.zeros(n_dates)
    for t in range(1, n_dates):
        level[t] = TRUE_INTERCEPT[path[t]] + TRUE_PHI * level[t - 1] + 0.5 * rng.standard_normal()
    dates = pd.bdate_range("2020-01-01", periods=n_dates, name="date")
    frame = pd.DataFrame({"eq_return": returns, "level": level}, index=dates)
    return FeatureSet(frame, {"eq_return": "equity", "level": "flows"}, "daily"), path


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
    design = np.column_stack([path[1:] == 0, path[1:] == 1, level[:-1]]).astype(float)
    least_squares = np.linalg.lstsq(design, level[1:], rcond=None)[0][2]
    assert abs(phi.mean() - least_squares) <= 2 * phi.std(), (phi.mean(), phi.std())
    assert abs(phi.mean() - TRUE_PHI) <= 3 * phi.std(), (phi.mean(), phi.std())
    diagnostics = result.diagnostics()
    assert diagnostics["verdict"] == "pass", diagnostics["failures"]
