"""Autoregressive emissions, intercept and mean-adjusted forms: the densities against a
direct computation with missing values and lags, and synthetic MS-AR worlds (K = 2 and
3) recovered by the default sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from scipy import stats

from regime_model.data.features import FeatureSet
from regime_model.models import BayesianHMM
from regime_model.models.autoregression import autoregressive_log_density, regime_histories
from regime_model.models.stationarity import coefficients_from_partial_autocorrelations

TRUE_PHI = 0.8
TRUE_INTERCEPT = np.array([-0.4, 0.4])  # the level's drift per regime (raw units)
TRUE_RETURN_MEAN = np.array([-0.6, 0.6])
STAY = 0.97


def _prediction(values, observed, t, d, order, features, phi, full, level):
    """The AR part of feature d's prediction at date t, or None where a lag it needs is
    missing (or before the data). ``level(i, e)``: what lag i of feature e is taken from."""
    sources = list(features) if full else [d]
    if t < order or not all(observed[t - 1 - i, e] for i in range(order) for e in sources):
        return None
    a = list(features).index(d)
    total = 0.0
    for i in range(order):
        for b, e in enumerate(sources):
            weight = phi[i, a, b] if full else phi[i, a]
            total += weight * (values[t - 1 - i, e] - level(i, e))
    return total


def _direct_log_density(
    values, observed, order, features, intercept, sigma, coefficients, full=False
):
    """Date by date, feature by feature: the definition in the module docstring."""
    n_dates, n_features = values.shape
    n_regimes = intercept.shape[0]
    out = np.zeros((n_dates, n_regimes))
    switching = coefficients.ndim == (4 if full else 3)
    for t in range(n_dates):
        for k in range(n_regimes):
            phi = coefficients[k] if switching else coefficients
            for d in range(n_features):
                if not observed[t, d]:
                    continue
                predicted = intercept[k, d]
                if d in features:
                    ar = _prediction(
                        values, observed, t, d, order, features, phi, full, lambda i, e: 0.0
                    )
                    if ar is None:
                        continue  # a lag is missing: d drops out
                    predicted += ar
                out[t, k] += stats.norm.logpdf(values[t, d], predicted, sigma[k, d])
    return out


@pytest.mark.parametrize(("switching", "full"), [(False, False), (True, False), (True, True)])
def test_the_density_matches_the_definition_with_missing_values_and_lags(switching, full):
    rng = np.random.default_rng(0)
    n_dates, n_features = 30, 3
    order = 1 if full else 2
    observed = (rng.random((n_dates, n_features)) > 0.2).astype(float)
    values = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    features = np.array([0, 2])
    intercept = rng.standard_normal((2, n_features))
    sigma = np.exp(0.3 * rng.standard_normal((2, n_features)))
    shape = (order, 2, 2) if full else (order, 2)
    coefficients = 0.5 * rng.standard_normal((2, *shape) if switching else shape)
    ours = autoregressive_log_density(
        values, observed, order, features, 2, intercept, sigma, coefficients, full=full
    ).eval()
    expected = _direct_log_density(
        values, observed, order, features, intercept, sigma, coefficients, full
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def _direct_mean_adjusted(values, observed, order, features, mean, sigma, coefficients, full=False):
    """(T, S) date by date, history by history, feature by feature: Hamilton's form."""
    n_dates, n_features = values.shape
    n_regimes = mean.shape[0]
    histories = regime_histories(n_regimes, order)
    out = np.zeros((n_dates, len(histories)))
    switching = coefficients.ndim == (4 if full else 3)
    for t in range(n_dates):
        for h, history in enumerate(histories):
            k = history[0]
            phi = coefficients[k] if switching else coefficients
            for d in range(n_features):
                if not observed[t, d]:
                    continue
                predicted = mean[k, d]
                if d in features:
                    ar = _prediction(
                        values,
                        observed,
                        t,
                        d,
                        order,
                        features,
                        phi,
                        full,
                        lambda i, e, history=history: mean[history[i + 1], e],
                    )
                    if ar is None:
                        continue
                    predicted += ar
                out[t, h] += stats.norm.logpdf(values[t, d], predicted, sigma[k, d])
    return out


@pytest.mark.parametrize(("switching", "full"), [(False, False), (True, False), (False, True)])
def test_the_mean_adjusted_density_matches_the_definition(switching, full):
    """Over the K^(p+1) regime histories, with missing values and lags: an AR feature's
    lagged deviations are taken from the regimes of the history (with a full matrix, every
    autoregressive feature's), the i.i.d. features follow the current regime."""
    rng = np.random.default_rng(1)
    n_dates, n_features, n_regimes = 25, 3, 2
    order = 1 if full else 2
    observed = (rng.random((n_dates, n_features)) > 0.2).astype(float)
    values = np.where(observed == 1.0, rng.standard_normal((n_dates, n_features)), 0.0)
    features = np.array([0, 2])
    mean = rng.standard_normal((n_regimes, n_features))
    sigma = np.exp(0.3 * rng.standard_normal((n_regimes, n_features)))
    shape = (order, 2, 2) if full else (order, 2)
    coefficients = 0.5 * rng.standard_normal((n_regimes, *shape) if switching else shape)
    ours = autoregressive_log_density(
        values, observed, order, features, n_regimes, mean, sigma, coefficients, True, full
    ).eval()
    expected = _direct_mean_adjusted(
        values, observed, order, features, mean, sigma, coefficients, full
    )
    assert ours.shape == (n_dates, n_regimes ** (order + 1))
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
    mean_adjusted: bool = False,
) -> tuple[FeatureSet, np.ndarray]:
    """K regimes (K = len(intercepts)), each kept with probability STAY and otherwise left
    for one of the others at random: an i.i.d. return whose mean switches and an AR(1)
    level whose drift switches (phi (K,), default TRUE_PHI in every regime); the level
    alone is persistent within a regime. ``mean_adjusted``: Hamilton's form instead, the
    ``intercepts`` being the levels the series reverts to."""
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
        lag = level[t - 1] - (intercepts[path[t - 1]] if mean_adjusted else 0.0)
        level[t] = intercepts[state] + phi[state] * lag + 0.5 * rng.standard_normal()
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


TRUE_LEVEL = np.array([-1.0, 1.0])  # the mean-adjusted level per regime (raw units)
THREE_LEVELS = np.array([-1.5, 0.0, 1.5])


def least_squares_mean_adjusted_phi(level, path, levels, switching: bool) -> np.ndarray:
    """This sample's information about phi in Hamilton's form, given the true path and
    levels: least squares of the deviation on its lag (per regime when ``switching``)."""
    n_regimes = len(levels)
    deviation = level - levels[path]
    in_regime = (path[1:, None] == np.arange(n_regimes)[None]).astype(float)
    design = in_regime * deviation[:-1, None] if switching else deviation[:-1, None]
    slopes = np.linalg.lstsq(design, deviation[1:], rcond=None)[0]
    return np.broadcast_to(slopes, n_regimes)


@pytest.mark.parametrize("n_regimes", [2, 3])
def test_a_synthetic_mean_adjusted_world_is_recovered(n_regimes):
    """Hamilton's form fitted through the model class (the kernel on K^2 histories): the
    path at >= 0.95, phi within 2 sd of this sample's least-squares value on the true path
    and 3 sd of the truth, the levels within 3 sd, diagnostics passing. K = 3 has
    switching phi."""
    if n_regimes == 2:
        levels, return_means, phi, switching = TRUE_LEVEL, TRUE_RETURN_MEAN, None, False
    else:
        levels, return_means, phi, switching = THREE_LEVELS, THREE_RETURN_MEANS, THREE_PHI, True
    features, path = simulate_ms_ar(
        600, seed=13, intercepts=levels, return_means=return_means, phi=phi, mean_adjusted=True
    )
    model = BayesianHMM(
        n_regimes, ar_order=1, ar_columns=["level"], ar_form="mean-adjusted",
        switching_ar=switching, draws=1000, tune=500, chains=2, seed=4, progressbar=False,
    ).fit(features)  # fmt: skip
    result = model.result_
    smoothed = result.regime_probabilities("smoothed")
    most_probable = np.argmax(
        np.column_stack([smoothed[(name, "mean")].to_numpy() for name in result.regime_names]),
        axis=1,
    )
    assert (most_probable == path).mean() >= 0.95
    posterior = result.inference_data.posterior
    draws = posterior["ar_coefficient"].to_numpy().reshape(-1, n_regimes if switching else 1)
    level = model.inputs_.frame["level"].to_numpy()
    least_squares = least_squares_mean_adjusted_phi(level, path, levels, switching)
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    truth = THREE_PHI if switching else TRUE_PHI
    assert np.all(np.abs(mean - least_squares[: len(mean)]) <= 2 * sd), (mean, sd, least_squares)
    assert np.all(np.abs(mean - truth) <= 3 * sd), (mean, sd)
    level_draws = posterior["emission_mean"].sel(feature="level").to_numpy().reshape(-1, n_regimes)
    level_mean, level_sd = level_draws.mean(axis=0), level_draws.std(axis=0)
    assert np.all(np.abs(level_mean - levels) <= 3 * level_sd), (level_mean, level_sd)
    diagnostics = result.diagnostics()
    assert diagnostics["verdict"] == "pass", diagnostics["failures"]


TRUE_VAR = np.array([[0.7, 0.2], [-0.3, 0.6]])  # level_a on both lags, level_b on both
VAR_INTERCEPTS = np.array([[-0.4, 0.3], [0.4, -0.3]])  # (K, 2), raw units


def simulate_var(n_dates: int, seed: int) -> tuple[FeatureSet, np.ndarray]:
    """Two regimes (kept with probability STAY): an i.i.d. return whose mean switches and
    two levels following a VAR(1) with the full matrix TRUE_VAR and switching intercepts."""
    rng = np.random.default_rng(seed)
    path = np.zeros(n_dates, dtype=int)
    for t in range(1, n_dates):
        path[t] = path[t - 1] if rng.random() < STAY else 1 - path[t - 1]
    returns = TRUE_RETURN_MEAN[path] + rng.standard_normal(n_dates)
    levels = np.zeros((n_dates, 2))
    for t in range(1, n_dates):
        levels[t] = VAR_INTERCEPTS[path[t]] + TRUE_VAR @ levels[t - 1]
        levels[t] += 0.5 * rng.standard_normal(2)
    dates = pd.bdate_range("2020-01-01", periods=n_dates, name="date")
    frame = pd.DataFrame({"eq_return": returns, "level_a": levels[:, 0], "level_b": levels[:, 1]})
    groups = {"eq_return": "equity", "level_a": "flows", "level_b": "flows"}
    return FeatureSet(frame.set_index(dates), groups, "daily"), path


def test_a_var_with_a_full_matrix_is_recovered():
    """``ar_matrix="full"``: the path at >= 0.95, each of the four VAR coefficients
    (standardised features, as the model sees them) within 2 sd of this sample's least
    squares on the true path and 3 sd of the truth, every draw stationary, diagnostics
    passing. The cross terms matter: a diagonal model has no way to express them."""
    features, path = simulate_var(600, seed=7)
    model = BayesianHMM(
        2, ar_order=1, ar_columns=["level_a", "level_b"], ar_matrix="full", draws=1000,
        chains=2, seed=2, progressbar=False,
    ).fit(features)  # fmt: skip
    result = model.result_
    risk_on = result.regime_probabilities("smoothed")[("risk_on", "mean")].to_numpy()
    assert ((risk_on > 0.5).astype(int) == path).mean() >= 0.95
    posterior = result.inference_data.posterior["ar_coefficient"]
    assert posterior.dims[2:] == ("ar_lag", "ar_feature", "ar_source")
    draws = posterior.to_numpy().reshape(-1, 2, 2)
    assert max(np.abs(np.linalg.eigvals(draws)).max(axis=1)) < 1.0
    values = model.observations(features).values[:, 1:]  # standardised levels
    in_regime = (path[1:, None] == np.arange(2)[None]).astype(float)
    design = np.hstack([in_regime, values[:-1]])
    least_squares = np.linalg.lstsq(design, values[1:], rcond=None)[0][2:].T  # (a, b)
    scale = features.frame[["level_a", "level_b"]].to_numpy().std(axis=0, ddof=1)
    truth = TRUE_VAR * scale[None, :] / scale[:, None]
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    assert np.all(np.abs(mean - least_squares) <= 2 * sd), (mean, sd, least_squares)
    assert np.all(np.abs(mean - truth) <= 3 * sd), (mean, sd, truth)
    diagnostics = result.diagnostics()
    assert diagnostics["verdict"] == "pass", diagnostics["failures"]


def test_cli_fits_the_mean_adjusted_form_and_refuses_an_unknown_form(tmp_path, capsys):
    """``regime fit --ar-order 1 --ar-form mean-adjusted`` saves a run whose config says
    so and whose regime probabilities are over the K regimes (not the K^2 histories the
    kernel ran on); an unknown form is a one-line error, exit 2."""
    import json

    from regime_model.cli import main
    from regime_model.results import RegimeResult

    features, path = simulate_ms_ar(300, seed=8, intercepts=TRUE_LEVEL, mean_adjusted=True)
    csv = features.save(tmp_path / "features.csv")
    run = tmp_path / "run"
    common = ["fit", "--features", str(csv), "--ar-order", "1", "--ar-columns", "level"]
    small = ["--draws", "1000", "--tune", "500", "--chains", "2", "--out", str(run)]
    assert main([*common, "--ar-form", "mean-adjusted", *small]) == 0
    assert json.loads((run / "config.json").read_text())["ar_form"] == "mean-adjusted"
    result = RegimeResult.load(run)
    assert result.probabilities.smoothed.shape[1:] == (300, 2)
    on = result.probabilities.smoothed.mean(axis=0)[:, result.regime_names.index("risk_on")]
    assert ((on > 0.5) == path).mean() >= 0.9
    capsys.readouterr()
    assert main([*common, "--ar-form", "hamilton", *small]) == 2
    error = capsys.readouterr().err
    assert "--ar-form" in error and "hamilton" in error and error.count("\n") == 1


def test_cli_refuses_a_full_matrix_beyond_order_one(tmp_path, capsys):
    """A full coefficient matrix is a VAR(1): asking for one at order 2 is a one-line
    error naming both options, exit 2, and no run directory is written."""
    from regime_model.cli import main

    features, _ = simulate_var(120, seed=1)
    csv = features.save(tmp_path / "features.csv")
    run = tmp_path / "run"
    arguments = ["fit", "--features", str(csv), "--ar-order", "2", "--ar-matrix", "full"]
    assert main([*arguments, "--out", str(run)]) == 2
    error = capsys.readouterr().err
    assert "ar_matrix" in error and "ar_order" in error and error.count("\n") == 1, error
    assert not run.exists()
