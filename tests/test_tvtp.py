"""Time-varying transition probabilities (``--model tvtp``).

The likelihood is checked against the homogeneous model (all coefficients zero) and against
brute-force enumeration of every regime path; the lag and the absence of look-ahead are
checked on the compiled model at fixed parameters; one small fit (T = 400, 2 chains x 400
draws, about 40 s) checks recovery of the generating coefficients and the reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm

from regime_model.data.features import FeatureSet
from regime_model.data.synthetic import simulate_tvtp_features
from regime_model.errors import ConstantFeatureError, RegimeDataError, UnknownSeriesError
from regime_model.inference import hmm_filter
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.covariates import split_covariates
from regime_model.models.transitions import CovariateLogit
from regime_model.models.tvtp import (
    TVTPHMM,
    coefficient_table,
    duration_draws,
    extreme_covariate_warnings,
    time_varying_durations,
)
from regime_model.results import RegimeResult, hdi_bounds

COVARIATES = ["breadth_change", "spread_change"]


def _observations(model: TVTPHMM, features: FeatureSet, holdout_start=None):
    """What ``fit`` builds the model from (emission columns on the covariates' dates)."""
    return model.observations(features, None, holdout_start)


def _random_point(model, seed: int, **values) -> dict[str, np.ndarray]:
    """A prior draw of every free variable (constrained values, by name), then ``values``."""
    names = [rv.name for rv in model.free_RVs]
    draws = pm.draw(model.free_RVs, random_seed=seed)
    return {**dict(zip(names, draws, strict=True)), **values}


def _evaluator(model, outs):
    """Compiled ``outs`` as a function of a point from :func:`_random_point` (the free
    variables replaced by the given values, as the per-draw summaries do)."""
    free = list(model.free_RVs)
    function = model.compile_fn(outs, inputs=free, point_fn=False, on_unused_input="ignore")
    return lambda point: function(*(point[rv.name] for rv in free))


def _potential(model):
    """Compiled log p(y_1..n_fit | theta) (the Op's Potential) as a function of a point."""
    return _evaluator(model, model["hmm_loglik"])


def _true_standardised(truth, n_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """Generating (intercept, coefficient) in the fit's units: covariates standardised
    with the rows that drive the fitted transitions (dates 0..n_fit-2)."""
    drivers = truth.covariates[: n_fit - 1]
    center, scale = drivers.mean(axis=0), drivers.std(axis=0, ddof=1)
    return truth.intercept + truth.coefficient @ center, truth.coefficient * scale


@pytest.fixture(scope="module")
def synthetic():
    return simulate_tvtp_features(400, seed=1)


@pytest.fixture(scope="module")
def fitted(synthetic):
    features, _ = synthetic
    model = TVTPHMM(
        2, covariates=COVARIATES, draws=400, tune=400, chains=2, seed=3, progressbar=False
    )
    return model, model.fit(features).result_


# ---------------------------------------------------------------------- likelihood
def test_zero_coefficients_equal_the_homogeneous_likelihood(synthetic):
    features, _ = synthetic
    tvtp = TVTPHMM(2, covariates=COVARIATES)
    observations = _observations(tvtp, features)
    tvtp_model = tvtp.build_model(observations)
    intercept = np.array([-2.2, -1.4])
    point = _random_point(
        tvtp_model, 0, transition_intercept=intercept, transition_coefficient=np.zeros((2, 2))
    )
    homogeneous = BayesianHMM(2, identification=tvtp.identification)  # the same priors
    homogeneous_model = homogeneous.build_model(observations)
    transition = np.exp(log_softmax(np.array([[0.0, intercept[0]], [intercept[1], 0.0]]), 1))
    names = {rv.name for rv in homogeneous_model.free_RVs}
    homogeneous_point = {name: point[name] for name in names - {"transition"}}
    homogeneous_point["transition"] = transition
    assert set(homogeneous_point) == names
    tvtp_value = _potential(tvtp_model)(point)
    homogeneous_value = _potential(homogeneous_model)(homogeneous_point)
    assert np.isfinite(tvtp_value)
    assert tvtp_value == pytest.approx(homogeneous_value, abs=1e-10, rel=1e-12)
    # And the coefficients do matter once they are not zero.
    moved = {**point, "transition_coefficient": np.array([[1.0, 0.0], [-1.0, 0.5]])}
    assert abs(_potential(tvtp_model)(moved) - tvtp_value) > 1e-3


def test_likelihood_equals_brute_force_over_all_paths():
    """T = 20, K = 2: sum over all 2^20 paths of prior x lagged-logit transitions x
    Gaussian densities, every piece computed here from its definition."""
    features, _ = simulate_tvtp_features(20, seed=5)
    model = TVTPHMM(2, covariates=COVARIATES)
    observations = _observations(model, features)
    pymc_model = model.build_model(observations)
    intercept = np.array([-1.0, -0.5])
    coefficient = np.array([[0.9, -0.4], [-0.7, 0.6]])
    point = _random_point(
        pymc_model, 1, transition_intercept=intercept, transition_coefficient=coefficient
    )
    mean, sigma = _evaluator(pymc_model, [pymc_model["mean"], pymc_model["sigma"]])(point)

    raw = features.frame[COVARIATES].to_numpy()
    drivers = raw[:-1]  # rows 0..T-2 drive the moves into dates 1..T-1
    x = (drivers - drivers.mean(axis=0)) / drivers.std(axis=0, ddof=1)
    n_dates = len(raw)
    log_transition = np.empty((n_dates - 1, 2, 2))
    for t in range(n_dates - 1):
        leave_off = intercept[0] + coefficient[0] @ x[t]  # risk_off -> risk_on
        leave_on = intercept[1] + coefficient[1] @ x[t]  # risk_on -> risk_off
        log_transition[t] = log_softmax(np.array([[0.0, leave_off], [leave_on, 0.0]]), axis=1)
    average = np.exp(log_softmax(np.array([[0.0, intercept[0]], [intercept[1], 0.0]]), 1))
    stationary = np.array([average[1, 0], average[0, 1]]) / (average[0, 1] + average[1, 0])
    log_emission = norm.logpdf(observations.values[:, None, :], mean, sigma).sum(axis=2)

    paths = np.arange(2**n_dates)
    state = paths & 1
    total = np.log(stationary)[state] + log_emission[0, state]
    for t in range(1, n_dates):
        following = (paths >> t) & 1
        total += log_transition[t - 1, state, following] + log_emission[t, following]
        state = following
    assert _potential(pymc_model)(point) == pytest.approx(logsumexp(total), abs=1e-9)


def test_intercept_prior_matches_the_sticky_dirichlet():
    """Moment matching on the logit scale: the implied mean stay probability is within
    0.02 of the Dirichlet's s / (s + K - 1) (Monte Carlo error ~3e-4)."""
    rng = np.random.default_rng(0)
    for n_regimes in (2, 3):
        component = CovariateLogit(n_regimes, 10.0, "stationary", ["x"])
        mean, sd = component.intercept_prior()
        logits = rng.normal(mean, sd, size=(200_000, n_regimes - 1))
        stay = 1.0 / (1.0 + np.exp(logits).sum(axis=1))
        assert stay.mean() == pytest.approx(10.0 / (10.0 + n_regimes - 1), abs=0.02)


# ---------------------------------------------------------------------- lag and timing
def test_covariate_on_the_last_date_does_not_enter_the_likelihood(synthetic):
    features, _ = synthetic
    values = {
        "transition_intercept": np.array([-2.0, -2.0]),
        "transition_coefficient": np.array([[1.0, 0.5], [-1.0, -0.5]]),
    }

    def loglik(frame: pd.DataFrame) -> float:
        model = TVTPHMM(2, covariates=COVARIATES)
        observations = _observations(model, FeatureSet(frame, features.groups, "weekly"))
        pymc_model = model.build_model(observations)
        point = _random_point(pymc_model, 2, **values)
        return float(_potential(pymc_model)(point))

    base = loglik(features.frame)
    last = features.frame.copy()
    last.iloc[-1, last.columns.get_loc("breadth_change")] += 3.0
    assert loglik(last) == base  # x_T drives no fitted transition, nor the standardisation
    earlier = features.frame.copy()
    earlier.iloc[-2, earlier.columns.get_loc("breadth_change")] += 3.0
    assert abs(loglik(earlier) - base) > 1e-6  # x_{T-1} drives the move into T


def test_filter_has_no_look_ahead_and_the_lag_is_one_step(synthetic):
    """At fixed parameters, in the held-out stretch (so the standardisation is fixed):
    a covariate change on date s moves only the transition s -> s+1, so filtered
    probabilities up to s are unchanged and change from s+1; an emission change on date s
    changes nothing before s. The fitted likelihood ignores held-out data."""
    features, _ = synthetic
    holdout_start = features.frame.index[300]
    values = {
        "transition_intercept": np.array([-2.0, -2.0]),
        "transition_coefficient": np.array([[1.5, 0.5], [-1.5, -0.5]]),
    }
    changed_date = 350

    def run(frame: pd.DataFrame):
        model = TVTPHMM(2, covariates=COVARIATES)
        observations = _observations(
            model, FeatureSet(frame, features.groups, "weekly"), holdout_start
        )
        _, pymc_model, graphs = model.compose(observations)
        point = _random_point(pymc_model, 4, **values)
        inputs = _evaluator(pymc_model, list(graphs.inputs))(point)
        filtered = hmm_filter(*inputs).filtered_probs
        return inputs[1], filtered, float(_potential(pymc_model)(point))

    log_transition, filtered, fitted_loglik = run(features.frame)
    covariate = features.frame.copy()
    covariate.iloc[changed_date, covariate.columns.get_loc("breadth_change")] += 2.0
    moved_transition, moved_filtered, moved_loglik = run(covariate)
    differs = np.abs(moved_transition - log_transition).max(axis=(1, 2)) > 1e-12
    assert np.flatnonzero(differs).tolist() == [changed_date]
    np.testing.assert_array_equal(moved_filtered[: changed_date + 1], filtered[: changed_date + 1])
    assert np.abs(moved_filtered[changed_date + 1] - filtered[changed_date + 1]).max() > 1e-4
    assert moved_loglik == fitted_loglik

    emission = features.frame.copy()
    emission.iloc[changed_date, emission.columns.get_loc("eq_return")] += 4.0
    _, emission_filtered, emission_loglik = run(emission)
    np.testing.assert_array_equal(emission_filtered[:changed_date], filtered[:changed_date])
    assert np.abs(emission_filtered[changed_date] - filtered[changed_date]).max() > 1e-4
    assert emission_loglik == fitted_loglik


# ---------------------------------------------------------------------- bad input
def test_bad_covariate_input(synthetic):
    features, _ = synthetic
    with pytest.raises(ValueError, match="at least one covariate"):
        TVTPHMM(2, covariates=[])
    with pytest.raises(ValueError, match="listed twice"):
        TVTPHMM(2, covariates=["spread_change", "spread_change"])
    with pytest.raises(UnknownSeriesError, match="no covariate column nfci"):
        TVTPHMM(2, covariates=["nfci"]).observations(features)
    with pytest.raises(RegimeDataError, match="breadth_change is both an emission column"):
        TVTPHMM(2, covariates=COVARIATES).observations(features, ["eq_return", "breadth_change"])
    gap = features.frame.copy()
    gap.iloc[120, gap.columns.get_loc("spread_change")] = np.nan
    expected = f"covariate 'spread_change' is missing on {gap.index[120]:%Y-%m-%d}"
    with pytest.raises(RegimeDataError, match=expected):
        TVTPHMM(2, covariates=COVARIATES).fit(FeatureSet(gap, features.groups, "weekly"))
    constant = features.frame.copy()
    constant["spread_change"] = 1.5
    model = TVTPHMM(2, covariates=COVARIATES)
    with pytest.raises(ConstantFeatureError, match="covariate 'spread_change'"):
        model.build_model(_observations(model, FeatureSet(constant, features.groups, "weekly")))


def test_leading_and_trailing_covariate_gaps_are_trimmed(synthetic):
    features, _ = synthetic
    frame = features.frame.copy()
    frame.iloc[:10, frame.columns.get_loc("breadth_change")] = np.nan
    frame.iloc[-3:, frame.columns.get_loc("spread_change")] = np.nan
    split = split_covariates(FeatureSet(frame, features.groups, "weekly"), COVARIATES, None)
    emission = split.emission
    assert list(emission.frame.columns) == ["eq_return", "crypto_return"]
    # The last covariate value is on date T-4; date T-3 still has its x_{t-1}.
    assert emission.frame.index[0] == frame.index[10]
    assert emission.frame.index[-1] == frame.index[-3]
    trimming = split.trimming
    assert (trimming.leading_dates, trimming.trailing_dates) == (10, 2)
    assert split.frame.index.equals(emission.frame.index)
    # The model's observations carry the same covariates on the same dates.
    observations = TVTPHMM(2, covariates=COVARIATES).observations(
        FeatureSet(frame, features.groups, "weekly")
    )
    assert observations.covariate_trimming == trimming
    np.testing.assert_array_equal(observations.covariates, split.frame.to_numpy())


def test_extreme_covariate_values_are_flagged():
    dates = pd.date_range("2020-01-03", periods=4, freq="W-FRI")
    standardised = pd.DataFrame({"calm": [0.5, -1.0, 2.0, 4.9], "wild": [0.1, -6.2, 1.0, 0.0]})
    messages = extreme_covariate_warnings(standardised.set_index(dates))
    assert len(messages) == 1
    assert "'wild' reaches 6.2 standard deviations on 2020-01-10 (1 date beyond 5)" in messages[0]


def test_config_round_trip():
    model = TVTPHMM(3, covariates=["a", "b"], coefficient_scale=0.7, stickiness=20.0)
    config = model.get_config()
    assert config["model"] == "tvtp" and config["covariates"] == ["a", "b"]
    rebuilt = TVTPHMM(**{key: value for key, value in config.items() if key != "model"})
    assert rebuilt.get_config() == config


# ---------------------------------------------------------------------- a fit
def test_recovers_coefficients_and_regimes(fitted, synthetic):
    """Four coefficients and two intercepts, each inside its 99.5% HDI (family-wise false
    alarm ~3%); the two real effects inside their 94% HDI with the right sign at P > 0.9;
    the null covariate's 94% HDIs contain zero."""
    _, result = fitted
    _, truth = synthetic
    intercept, coefficient = _true_standardised(truth, len(result.dates))
    posterior = result.inference_data.posterior.stack(sample=("chain", "draw"))
    coefficient_draws = posterior["transition_coefficient"].transpose("sample", ...).to_numpy()
    intercept_draws = posterior["transition_intercept"].transpose("sample", ...).to_numpy()
    for draws, true in ((coefficient_draws, coefficient), (intercept_draws, intercept)):
        lower, upper = hdi_bounds(draws, 0.995)
        assert ((lower <= true) & (true <= upper)).all(), (lower, true, upper)
    lower, upper = hdi_bounds(coefficient_draws, 0.94)
    inside = (lower <= coefficient) & (coefficient <= upper)
    assert inside.all(), (lower, coefficient, upper)
    table = coefficient_table(result).set_index(["from", "covariate"])
    assert table.loc[("risk_off", "breadth_change"), "p_positive"] > 0.9
    assert table.loc[("risk_on", "breadth_change"), "p_positive"] < 0.1
    risk_on = result.regime_probabilities("smoothed")[("risk_on", "mean")].to_numpy()
    assert ((risk_on > 0.5) == truth.regimes).mean() > 0.93
    diagnostics = result.diagnostics()
    assert diagnostics["divergences"] == 0 and not diagnostics["label_switching"]


def test_durations_are_the_sampled_model_s_transitions(fitted):
    """time_varying_durations recomputes exactly 1 / (1 - p_kk) of the graph NUTS sampled,
    date by date (no shift), and the reports say what they are."""
    model, result = fitted
    pymc_model = model.model_
    evaluate = pymc_model.compile_fn(
        model.graphs_.inputs[1],
        inputs=[pymc_model["transition_intercept"], pymc_model["transition_coefficient"]],
        point_fn=False,
    )
    posterior = result.inference_data.posterior
    dates, draws = duration_draws(result)
    assert dates.equals(result.dates)  # every covariate observed: the last date included
    for index in (0, 437):
        chain, draw = divmod(index, posterior.sizes["draw"])
        log_transition = evaluate(
            posterior["transition_intercept"].to_numpy()[chain, draw],
            posterior["transition_coefficient"].to_numpy()[chain, draw],
        )
        stay = np.exp(np.diagonal(log_transition, axis1=1, axis2=2))
        np.testing.assert_allclose(draws[index, :-1], 1.0 / (1.0 - stay), rtol=1e-10)
    frame = time_varying_durations(result)
    assert (frame.xs("lower", axis=1, level=1) <= frame.xs("mean", axis=1, level=1)).all().all()
    summary = result.fit_info["model_summary"]
    assert len(summary["coefficients"]) == 4
    assert {"mean", "lower", "upper", "p_positive"} <= set(summary["coefficients"][0])
    assert summary["durations_latest"][0]["date"] == f"{result.dates[-1]:%Y-%m-%d}"
    assert result.fit_info["covariates"]["names"] == COVARIATES
    # The average-covariate matrix still drives the generic tables.
    assert result.transition_matrix()["mean"].between(0, 1).all()
    assert result.forecast(horizon=3).shape == (3, 6)


def test_save_load_round_trip(fitted, tmp_path):
    _, result = fitted
    result.save(tmp_path / "run")
    loaded = RegimeResult.load(tmp_path / "run")
    assert loaded.model == "tvtp"
    pd.testing.assert_frame_equal(time_varying_durations(loaded), time_varying_durations(result))
    pd.testing.assert_frame_equal(coefficient_table(loaded), coefficient_table(result))
    pd.testing.assert_frame_equal(loaded.transition_matrix(), result.transition_matrix())
    assert loaded.fit_info["model_summary"] == result.fit_info["model_summary"]
    assert loaded.config["covariates"] == COVARIATES
