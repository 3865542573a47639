"""The lead-lag model with its lag marginalised (``lag=[...]``): the likelihood is the
mean of the single-lag likelihoods at the same parameters, the per-date quantities are
the mixture of the single-lag ones weighted by what the data up to each date say about
the lag (so nothing after a date enters its filtered value), the batched pass matches
the per-draw one, and on a synthetic world with a known lag the posterior over the lag
finds it where the single-lag held-out scores cannot tell lags apart."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

from regime_model.data.synthetic import simulate_lead_lag_features
from regime_model.model_options import parse_lags
from regime_model.models.leadlag import LeadLagHMM, lag_posterior
from regime_model.models.observations import prepare_observations
from regime_model.results import RegimeResult

LAGS = [0, 2, 3]


@pytest.fixture(scope="module")
def synthetic():
    return simulate_lead_lag_features(120, lag=2, seed=4)


def _compose(features, lag, holdout_start=None, standardise=True):
    spec = LeadLagHMM(2, lag=lag)
    observations = prepare_observations(features, 2, "eq_return", holdout_start, standardise)
    return spec.compose(observations)


def _evaluate(model, graphs, point):
    outs = model.replace_rvs_by_values(graphs)
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)


def _point(model, seed):
    rng = np.random.default_rng(seed)
    return {
        name: value + 0.3 * rng.standard_normal(np.shape(value))
        for name, value in model.initial_point().items()
    }


@pytest.mark.parametrize("holdout", [False, True])
def test_the_likelihood_is_the_mean_of_the_single_lag_likelihoods(synthetic, holdout):
    features, _ = synthetic
    holdout_start = features.frame.index[90] if holdout else None
    _, mixture, graphs = _compose(features, LAGS, holdout_start)
    point = _point(mixture, 0)
    total, probability = _evaluate(
        mixture, [mixture["hmm_loglik"], mixture["lag_probability"]], point
    )
    singles = []
    for lag in LAGS:
        _, model, _ = _compose(features, lag, holdout_start)
        singles.append(float(_evaluate(model, [model["hmm_loglik"]], point)[0]))
    singles = np.array(singles)
    assert float(total) == pytest.approx(logsumexp(singles) - np.log(len(LAGS)), abs=1e-8)
    np.testing.assert_allclose(probability, np.exp(singles - logsumexp(singles)), atol=1e-12)
    # The per-date one-step densities of the fitted dates sum to the sampled likelihood.
    composition = _compose(features, LAGS, holdout_start)[0]
    inputs = tuple(_evaluate(mixture, list(graphs.inputs), point))
    dates, _ = composition.date_quantities(inputs, with_bands=False)
    n_fit = 90 if holdout else len(features.frame)
    assert dates.pointwise_loglik[:n_fit].sum() == pytest.approx(float(total), abs=1e-8)


def _single_lag_quantities(features, lag, point):
    composition, model, graphs = _compose(features, lag)
    inputs = tuple(_evaluate(model, list(graphs.inputs), point))
    return composition.date_quantities(inputs, with_bands=True)


def test_each_date_mixes_the_lags_by_the_data_up_to_it(synthetic):
    """filtered(t) = sum_L p_L(y_0..t) filtered_L(t) / sum_L p_L(y_0..t), predicted with
    y_0..t-1, smoothed and the forecast with all of y, from the single-lag models'
    own quantities at the same parameters."""
    features, _ = synthetic
    composition, mixture, graphs = _compose(features, LAGS)
    point = _point(mixture, 1)
    inputs = tuple(_evaluate(mixture, list(graphs.inputs), point))
    mixed, forecast = composition.date_quantities(inputs, with_bands=True)
    singles = [_single_lag_quantities(features, lag, point) for lag in LAGS]
    cumulative = np.stack([np.cumsum(q.pointwise_loglik) for q, _ in singles])  # (m, T)
    after = np.exp(cumulative - logsumexp(cumulative, axis=0))
    previous = np.hstack([np.zeros((len(LAGS), 1)), cumulative[:, :-1]])
    before = np.exp(previous - logsumexp(previous, axis=0))
    for kind, weights in (("filtered", after), ("predicted", before)):
        expected = sum(
            w[:, None] * getattr(q, kind) for w, (q, _) in zip(weights, singles, strict=True)
        )
        np.testing.assert_allclose(getattr(mixed, kind), expected, atol=1e-12)
    last = after[:, -1]
    expected = sum(w * q.smoothed for w, (q, _) in zip(last, singles, strict=True))
    np.testing.assert_allclose(mixed.smoothed, expected, atol=1e-12)
    # Each single-lag forecast runs L + 4 dates; the mixture's max L + 4: the shorter
    # ones' tails are the longer horizon's first rows (no data there either way).
    horizon = max(LAGS) + 4
    assert forecast.shape == (horizon, 4)
    first = sum(w * paths[0] for w, (_, paths) in zip(last, singles, strict=True))
    np.testing.assert_allclose(forecast[0], first, atol=1e-12)
    expected = np.log(
        np.sum(before * np.exp(np.stack([q.pointwise_loglik for q, _ in singles])), 0)
    )
    np.testing.assert_allclose(mixed.pointwise_loglik, expected, atol=1e-10)
    # All draws at once (the post-processing's compiled pass) as one at a time.
    batched, _ = composition.draw_quantities(tuple(np.stack([x, x]) for x in inputs), False)
    for draw in range(2):
        np.testing.assert_allclose(batched.filtered[draw], mixed.filtered, atol=1e-10)
        np.testing.assert_allclose(
            batched.pointwise_loglik[draw], mixed.pointwise_loglik, atol=1e-9
        )


def test_filtered_values_use_no_later_data(synthetic):
    """Changing every observation after date ``cut`` leaves the filtered and predicted
    probabilities and the one-step densities of dates <= cut as they were (the lag
    weights included); the smoothed ones move."""
    features, _ = synthetic
    cut = 70
    frame = features.frame.copy()
    frame.iloc[cut + 1 :] = frame.iloc[cut + 1 :].to_numpy()[::-1] * 1.7
    changed = type(features)(frame, features.groups, features.freq)
    # Unstandardised: the standardisation's centre and scale come from all dates.
    _, model, _ = _compose(features, LAGS, standardise=False)
    point = _point(model, 2)
    results = []
    for data in (features, changed):
        composition, model, graphs = _compose(data, LAGS, standardise=False)
        inputs = tuple(_evaluate(model, list(graphs.inputs), point))
        results.append(composition.date_quantities(inputs, with_bands=True)[0])
    original, later_changed = results
    for kind in ("filtered", "predicted"):
        np.testing.assert_allclose(
            getattr(later_changed, kind)[: cut + 1], getattr(original, kind)[: cut + 1], atol=1e-12
        )
    np.testing.assert_allclose(
        later_changed.pointwise_loglik[: cut + 1], original.pointwise_loglik[: cut + 1], atol=1e-10
    )
    assert (
        np.abs(later_changed.smoothed[cut - 5 : cut] - original.smoothed[cut - 5 : cut]).max()
        > 1e-4
    )


def test_options_and_their_errors():
    assert parse_lags("3") == 3
    assert parse_lags("0-6") == (0, 1, 2, 3, 4, 5, 6)
    assert parse_lags("4,0,2") == (0, 2, 4)
    for bad in ("6-2", "-1", "a", "1,1", "2-2", ""):
        with pytest.raises(ValueError, match="lag must be"):
            parse_lags(bad)
    assert LeadLagHMM(lag=[3]).lag == 3  # one value: the single-lag model
    assert LeadLagHMM(lag=(2, 0)).get_config()["lag"] == [0, 2]
    with pytest.raises(ValueError, match="twice"):
        LeadLagHMM(lag=[1, 1])
    with pytest.raises(ValueError, match="covariates"):
        LeadLagHMM(lag=[0, 1], covariates=["x"])


def test_the_cli_takes_a_range_and_refuses_a_bad_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "regime_model.cli", "fit", "--model", "leadlag", "--lag", "5-1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--lag: lag must be an integer >= 0, a range such as 0-6" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # usage line, then the error


@pytest.fixture(scope="module")
def lag_three_world():
    """The lag chain follows the lead within about a step of the lag (P(enter) 0.8 once
    the lead is risk_on, 0.02 otherwise), true lag 3."""
    return simulate_lead_lag_features(
        400,
        lag=3,
        enter_probability=(0.02, 0.8),
        stay_probability=(0.3, 0.98),
        lead_stay=0.9,
        separation=2.0,
        seed=1,
    )


def test_the_posterior_over_the_lag_finds_the_true_lag(lag_three_world, tmp_path):
    """Lags 0-5 marginalised: P(L = 3 | data) above 0.9 (three data seeds gave 1.000 at
    3 digits), the couplings given L = 3 clearly positive; the run saves and loads with
    its lag posterior, which lag_posterior() (for runs of one lag each) refuses."""
    features, truth = lag_three_world
    model = LeadLagHMM(
        2, lag=list(range(6)), draws=300, tune=300, chains=2, seed=1, progressbar=False
    )
    result = model.fit(features).result_
    summary = result.fit_info["model_summary"]
    posterior = {row["lag"]: row["probability"] for row in summary["lag_posterior"]}
    assert sorted(posterior) == list(range(6))
    assert sum(posterior.values()) == pytest.approx(1.0)
    assert posterior[truth.lag] > 0.9, posterior
    given_three = [row for row in summary["coupling_by_lag"] if row["lag"] == 3]
    assert {row["parameter"] for row in given_three} == {"coupling_enter", "coupling_stay"}
    assert all(row["lower"] > 0 for row in given_three), given_three
    enter = next(row for row in given_three if row["parameter"] == "coupling_enter")
    assert enter["lower"] <= truth.coupling_enter <= enter["upper"], (enter, truth)
    diagnostics = result.diagnostics()
    assert diagnostics["divergences"] == 0 and diagnostics["labels_consistent"]
    assert result.fit_info["lead_lag"]["lag"] is None
    assert result.fit_info["lead_lag"]["lags"] == list(range(6))
    result.save(tmp_path / "run")
    loaded = RegimeResult.load(tmp_path / "run")
    assert loaded.fit_info["model_summary"]["lag_posterior"] == summary["lag_posterior"]
    assert loaded.config["lag"] == list(range(6))
    with pytest.raises(ValueError, match="its own posterior over lags"):
        lag_posterior([result])


def test_a_simulations_lag_probability_is_computed_on_its_simulated_data(synthetic):
    """P(L | y, theta) depends on the data: the truth a simulation reports (the rank SBC
    takes) is its value on the simulated data at the true parameters, here recomputed
    from the single-lag models' likelihoods, not its value on the template's data."""
    from scipy.special import softmax

    features, _ = synthetic
    model = LeadLagHMM(2, lag=LAGS, standardise=False)
    simulation = model.simulate(features, seed=3)
    likelihoods = []
    for lag in LAGS:
        single = LeadLagHMM(2, lag=lag, standardise=False)
        _, pymc_model, _ = single.compose(single.observations(simulation.features))
        free = list(pymc_model.free_RVs)
        evaluate = pymc_model.compile_fn(
            outs=[pymc_model["hmm_loglik"]], inputs=free, point_fn=False
        )
        likelihoods.append(float(evaluate(*(simulation.parameters[v.name] for v in free))[0]))
    expected = softmax(likelihoods)
    np.testing.assert_allclose(simulation.reported["lag_probability"], expected, atol=1e-10)
    np.testing.assert_allclose(simulation.parameters["lag_probability"], expected, atol=1e-10)
