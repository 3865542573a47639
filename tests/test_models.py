"""Regime models on synthetic data with known parameters.

The Bayesian fits are small (T = 400, 2 chains x 300 draws) and shared by module-scoped
fixtures, so the file runs in about a minute once PyTensor's compile cache is warm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regime_model.data.features import FeatureSet
from regime_model.models import EMHMM, BayesianHMM, model_from_config
from regime_model.models.observations import order_regimes, regime_names
from regime_model.results import RegimeResult, hdi_bounds

TRUE_TRANSITION = np.array([[0.97, 0.03], [0.02, 0.98]])
TRUE_MEAN = np.array([[-1.0, 0.5], [1.0, -0.5]])  # risk_off, risk_on x 2 features
TRUE_SCALE = np.array([[1.5, 1.0], [0.7, 1.0]])


def simulate_hmm(n_dates: int, seed: int) -> tuple[FeatureSet, np.ndarray]:
    """A 2-regime Gaussian HMM with the parameters above; returns features and path."""
    rng = np.random.default_rng(seed)
    path = np.empty(n_dates, dtype=int)
    path[0] = 1
    for t in range(1, n_dates):
        path[t] = rng.choice(2, p=TRUE_TRANSITION[path[t - 1]])
    values = TRUE_MEAN[path] + TRUE_SCALE[path] * rng.standard_normal((n_dates, 2))
    dates = pd.bdate_range("2020-01-01", periods=n_dates, name="date")
    frame = pd.DataFrame(values, index=dates, columns=["eq_return", "flow"])
    return FeatureSet(frame, {"eq_return": "equity", "flow": "flows"}, "daily"), path


@pytest.fixture(scope="module")
def synthetic():
    return simulate_hmm(400, seed=1)


@pytest.fixture(scope="module")
def bayes_fit(synthetic):
    features, _ = synthetic
    model = BayesianHMM(2, draws=300, tune=300, chains=2, seed=3, progressbar=False)
    return model.fit(features).result_


def _accuracy(result: RegimeResult, path: np.ndarray, kind: str = "smoothed") -> float:
    risk_on = result.regime_probabilities(kind)[("risk_on", "mean")].to_numpy()
    return float(((risk_on > 0.5).astype(int) == path).mean())


def test_regime_names_and_ordering():
    assert regime_names(2) == ["risk_off", "risk_on"]
    assert regime_names(4) == ["risk_off", "neutral_1", "neutral_2", "risk_on"]
    assert list(order_regimes(np.array([0.3, -1.0, 2.0]), np.ones(3), "mean")) == [1, 0, 2]
    assert list(order_regimes(np.zeros(3), np.array([1.0, 3.0, 2.0]), "volatility")) == [1, 2, 0]


def test_hdi_is_the_narrowest_interval():
    draws = np.concatenate([np.zeros(90), np.linspace(5, 10, 10)])[:, None]
    lower, upper = hdi_bounds(draws, 0.9)
    assert lower[0] == 0 and upper[0] == 0  # the 90 zeros
    uniform = np.linspace(0, 1, 1001)[:, None]
    lower, upper = hdi_bounds(uniform, 0.5)
    assert upper[0] - lower[0] == pytest.approx(0.5, abs=2e-3)


def test_em_recovers_parameters_orders_regimes_and_has_no_bands(synthetic):
    features, path = synthetic
    result = EMHMM(2, seed=0).fit(features).result_
    assert not result.has_bands
    probabilities = result.regime_probabilities("filtered")
    assert probabilities.attrs["kind"] == "filtered"
    assert probabilities[("risk_on", "lower")].isna().all()
    emissions = result.emission_summary().set_index(["parameter", "regime", "feature"])["mean"]
    # With 400 dates each regime mean is known to about +-0.1; allow 0.3.
    assert emissions[("mean", "risk_on", "eq_return")] == pytest.approx(1.0, abs=0.3)
    assert emissions[("mean", "risk_off", "eq_return")] == pytest.approx(-1.0, abs=0.3)
    assert emissions[("scale", "risk_off", "eq_return")] == pytest.approx(1.5, abs=0.3)
    assert _accuracy(result, path) > 0.93
    assert result.fit_info["criteria"]["bic"] > result.fit_info["criteria"]["aic"]


def test_em_handles_missing_values(synthetic):
    features, path = synthetic
    frame = features.frame.copy()
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.1, "flow"] = np.nan
    result = EMHMM(2, seed=0).fit(FeatureSet(frame, features.groups, "daily")).result_
    assert len(result.dates) == len(frame)  # nothing dropped
    assert result.fit_info["dates_used_by_em"] < len(frame)
    assert _accuracy(result, path) > 0.9


def assert_recovers_truth(result: RegimeResult, path: np.ndarray) -> None:
    """10 parameters: each inside its 99.5% HDI (family-wise false alarm ~5%), and most
    inside the 94% HDI (expected 9.4 of 10; fewer than 7 would be a 1-in-50 event); the
    smoothed regimes right on more than 95% of dates. Shared with tests/test_nutpie.py."""
    assert result.has_bands
    posterior = result.inference_data.posterior.stack(sample=("chain", "draw"))
    draws = [
        posterior[name].transpose("sample", ...).to_numpy().reshape(posterior.sizes["sample"], -1)
        for name in ("emission_mean", "emission_scale")
    ]
    transition = posterior["transition"].transpose("sample", ...).to_numpy()
    draws.append(np.stack([transition[:, 0, 0], transition[:, 1, 1]], axis=1))
    draws = np.concatenate(draws, axis=1)
    truth = np.concatenate([TRUE_MEAN.ravel(), TRUE_SCALE.ravel(), np.diag(TRUE_TRANSITION)])
    wide_lower, wide_upper = hdi_bounds(draws, 0.995)
    assert ((wide_lower <= truth) & (truth <= wide_upper)).all(), (wide_lower, wide_upper)
    lower, upper = hdi_bounds(draws, 0.94)
    assert ((lower <= truth) & (truth <= upper)).sum() >= 7
    assert _accuracy(result, path) > 0.95
    assert result.diagnostics()["divergences"] == 0


def test_bayesian_recovers_truth_within_hdi(bayes_fit, synthetic):
    assert_recovers_truth(bayes_fit, synthetic[1])


def test_bands_cover_the_mean_and_filtered_differs_from_smoothed(bayes_fit):
    for kind in ("filtered", "smoothed", "predicted"):
        frame = bayes_fit.regime_probabilities(kind)
        assert frame.attrs["kind"] == kind
        mean, lower, upper = (frame[("risk_on", s)] for s in ("mean", "lower", "upper"))
        assert (lower <= mean + 1e-6).all() and (mean <= upper + 1e-6).all()
        assert (upper - lower).max() > 0.01  # parameter uncertainty shows
    filtered = bayes_fit.regime_probabilities("filtered")[("risk_on", "mean")]
    smoothed = bayes_fit.regime_probabilities("smoothed")[("risk_on", "mean")]
    assert np.allclose(filtered.iloc[-1], smoothed.iloc[-1], atol=1e-6)  # same at T
    assert np.abs(filtered - smoothed).max() > 0.05


def test_forecast_converges_to_stationary(bayes_fit):
    forecast = bayes_fit.forecast(horizon=400)
    transition = bayes_fit.transition_matrix()["mean"].to_numpy().reshape(2, 2)
    eigenvalues, eigenvectors = np.linalg.eig(transition.T)
    stationary = np.real(eigenvectors[:, np.argmax(np.real(eigenvalues))])
    stationary /= stationary.sum()
    assert forecast[("risk_on", "mean")].iloc[-1] == pytest.approx(stationary[1], abs=0.05)


def test_em_and_bayes_agree_on_well_separated_data(bayes_fit, synthetic):
    em = EMHMM(2, seed=0).fit(synthetic[0]).result_
    bayes = bayes_fit.regime_probabilities("smoothed")[("risk_on", "mean")]
    em_probs = em.regime_probabilities("smoothed")[("risk_on", "mean")]
    assert ((bayes > 0.5) == (em_probs > 0.5)).mean() > 0.97


def test_pointwise_log_likelihood_sums_to_marginal(bayes_fit):
    log_likelihood = bayes_fit.inference_data.log_likelihood["y"]
    assert log_likelihood.sizes["date"] == len(bayes_fit.dates)
    assert np.isfinite(log_likelihood.to_numpy()).all()


def test_save_load_round_trip(bayes_fit, tmp_path):
    bayes_fit.save(tmp_path / "run")
    loaded = RegimeResult.load(tmp_path / "run")
    for kind in ("filtered", "smoothed"):
        pd.testing.assert_frame_equal(
            loaded.regime_probabilities(kind),
            bayes_fit.regime_probabilities(kind),
            check_freq=False,
        )
    pd.testing.assert_frame_equal(loaded.transition_matrix(), bayes_fit.transition_matrix())
    assert loaded.diagnostics() == bayes_fit.diagnostics()
    csv = pd.read_csv(tmp_path / "run" / "regime_probabilities.csv")
    assert list(csv.columns) == ["date", "regime", "kind", "mean", "lower", "upper"]
    assert len(csv) == len(bayes_fit.dates) * 2 * 2


def test_label_order_stable_across_seeds_with_missing_values(synthetic):
    features, path = synthetic
    frame = features.frame.copy()
    frame.iloc[50:80, 1] = np.nan  # a gap in one feature: masked, not dropped
    features = FeatureSet(frame, features.groups, "daily")
    for seed in (5, 6):
        result = (
            BayesianHMM(2, draws=200, tune=200, chains=2, seed=seed, progressbar=False)
            .fit(features)
            .result_
        )
        emissions = result.emission_summary().set_index(["parameter", "regime", "feature"])
        assert emissions.loc[("mean", "risk_on", "eq_return"), "mean"] > 0.5
        assert _accuracy(result, path) > 0.93
        assert not result.diagnostics()["label_switching"]


@pytest.mark.parametrize(
    "options",
    [
        {"emission": "student-t"},
        {"covariance": "full"},
        {"switching": "mean", "covariance": "full", "emission": "student-t"},
        {"switching": "variance"},
        {"initial": "dirichlet", "n_regimes": 3},
    ],
)
def test_model_variants_have_finite_gradient_at_start(synthetic, options):
    from regime_model.models.observations import prepare_observations

    options = {"n_regimes": 2, **options}
    model = BayesianHMM(**options)
    observations = prepare_observations(synthetic[0], options["n_regimes"])
    pymc_model = model.build_model(observations)
    point = pymc_model.initial_point()
    logp = pymc_model.compile_logp()(point)
    gradient = pymc_model.compile_dlogp()(point)
    assert np.isfinite(logp) and np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_model_from_config_round_trip():
    model = model_from_config({"model": "bayes-hmm", "n_regimes": 3, "emission": "student-t"})
    assert isinstance(model, BayesianHMM) and model.n_regimes == 3
    assert model_from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(ValueError, match="unknown model"):
        model_from_config({"model": "lstm"})


def test_full_covariance_fits_end_to_end(synthetic):
    # `--covariance full` once crashed after sampling; its per-draw quantities are now
    # one vectorised call per chunk of draws (tests/models/test_contract.py).
    features, path = synthetic
    model = BayesianHMM(
        2, covariance="full", draws=60, tune=60, chains=2, cores=1, seed=2, progressbar=False
    )
    result = model.fit(features).result_
    assert result.probabilities.smoothed.shape[0] == 120
    assert _accuracy(result, path) > 0.9
    # The Cholesky factors and triangular solves are one regime at a time, which numba
    # compiles natively: the default sampler, nutpie, takes the model itself.
    assert result.fit_info["sampler"] == "nutpie" and "sampler_note" not in result.fit_info


def test_a_model_nutpie_cannot_compile_goes_to_pymcs_nuts_and_says_so(synthetic, monkeypatch):
    import regime_model.models.nutpie_sampler as nutpie_sampler

    def refuse(*args, **kwargs):
        raise nutpie_sampler.NotCompilableError(
            "nutpie cannot sample this model: numba has no native implementation of SomeOp"
        )

    monkeypatch.setattr(nutpie_sampler, "_logp_function", refuse)
    features, _ = synthetic
    model = BayesianHMM(2, draws=30, tune=30, chains=2, cores=1, seed=2, progressbar=False)
    result = model.fit(features).result_
    assert result.fit_info["sampler"] == "nuts"
    assert result.fit_info["sampler_note"] == (
        "nutpie cannot sample this model: numba has no native implementation of SomeOp: "
        "sampled with PyMC's NUTS"
    )


def test_a_sparsely_observed_feature_is_left_out_of_the_em_start():
    """EM runs on complete dates only: a feature observed every fourth date (a monthly
    one in weekly data) would leave runs of length one. It is left out of EM and gets its
    regime moments from its own dates, weighted by the fit's regime probabilities; the
    other features' start is the EM fit on them alone (moved by less than 1e-3 by the
    weighted moments, which are computed for every feature)."""
    features, path = simulate_hmm(400, seed=1)
    frame = features.frame.copy()
    rng = np.random.default_rng(3)
    monthly = np.where(path == 1, 2.0, -2.0) + 0.3 * rng.standard_normal(len(path))
    frame["monthly"] = np.where(np.arange(len(path)) % 4 == 3, monthly, np.nan)
    sparse = FeatureSet(frame, {**features.groups, "monthly": "flows"}, features.freq)
    model = BayesianHMM(2, seed=0)
    start = model.initial_estimate(model.observations(sparse))
    dense = model.initial_estimate(model.observations(features))
    np.testing.assert_allclose(start.mean[:, :2], dense.mean[:, :2], atol=1e-3)
    np.testing.assert_array_equal(start.transition, dense.transition)
    observations = model.observations(sparse)
    expected = (np.array([-2.0, 2.0]) - observations.center[2]) / observations.scale[2]
    np.testing.assert_allclose(start.mean[:, 2], expected, atol=0.15)
