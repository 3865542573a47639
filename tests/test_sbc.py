"""Simulation-based calibration: the simulators (paths, emissions, whole models against the
models' own kernels), the rank and uniformity machinery on a model with an exact posterior,
and `regime calibrate` end to end with resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from regime_model.cli import main
from regime_model.evaluation.sbc import (
    RANK_DRAWS,
    CalibrationSpec,
    parameter_ranks,
    probability_coverage,
    simulation_template,
    uniformity_tests,
)
from regime_model.inference import sample_markov_path
from regime_model.models import BayesianHMM, model_from_config
from regime_model.models.emissions import sample_emissions
from regime_model.run_directory import verify_run


# ---------------------------------------------------------------- simulators
def test_markov_path_has_the_chains_transition_frequencies():
    transition = np.array([[0.8, 0.15, 0.05], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    path = sample_markov_path(
        np.random.default_rng(0), np.log([0.2, 0.3, 0.5]), np.log(transition), 60_000
    )
    counts = np.zeros((3, 3))
    np.add.at(counts, (path[:-1], path[1:]), 1)
    visits = counts.sum(axis=1, keepdims=True)
    frequencies = counts / visits
    standard_error = np.sqrt(transition * (1 - transition) / visits)
    assert np.all(np.abs(frequencies - transition) < 4 * standard_error)


def test_markov_path_follows_time_varying_transitions():
    # Forced moves: stay, stay, switch, switch, stay... a wrong time index breaks the path.
    stay = np.log(np.eye(2))
    switch = np.log(1 - np.eye(2))
    with np.errstate(divide="ignore"):
        log_transition = np.stack([stay, stay, switch, switch, stay])
    path = sample_markov_path(np.random.default_rng(1), np.log([1.0, 1e-300]), log_transition, 6)
    assert path.tolist() == [0, 0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="5 transition matrices for 7 steps"):
        sample_markov_path(np.random.default_rng(1), np.log([0.5, 0.5]), log_transition, 7)


def test_emissions_have_the_models_moments():
    rng = np.random.default_rng(2)
    n = 100_000
    states = np.repeat([0, 1], n // 2)
    mean = np.array([[-1.0, 2.0], [0.5, 0.0]])
    sigma = np.array([[0.5, 2.0], [1.0, 3.0]])
    values = sample_emissions(rng, states, mean, sigma)
    for k in (0, 1):
        part = values[states == k]
        assert np.all(np.abs(part.mean(axis=0) - mean[k]) < 5 * sigma[k] / np.sqrt(n / 2))
        assert np.allclose(part.std(axis=0), sigma[k], rtol=0.02)
    # Student-t margins: variance sigma^2 nu / (nu - 2).
    nu = np.array([5.0, 8.0])
    values = sample_emissions(rng, states, mean, sigma, nu=nu)
    expected_sd = sigma * np.sqrt(nu / (nu - 2))
    for k in (0, 1):
        assert np.allclose(values[states == k].std(axis=0), expected_sd[k], rtol=0.04)
    # Full covariance: the correlation of each regime.
    correlation = np.array([[[1.0, 0.0], [0.8, 0.6]], [[1.0, 0.0], [-0.5, np.sqrt(0.75)]]])
    values = sample_emissions(rng, states, mean, sigma, correlation)
    for k, rho in ((0, 0.8), (1, -0.5)):
        assert abs(np.corrcoef(values[states == k].T)[0, 1] - rho) < 0.02


def test_simulation_needs_priors_in_the_features_units():
    spec = CalibrationSpec({"model": "bayes-hmm"}, replicates=1, n_dates=50)
    template, columns = simulation_template(spec, seed=0)
    with pytest.raises(ValueError, match="standardise=False"):
        model_from_config({"model": "bayes-hmm"}).simulate(template, columns)


def test_simulation_is_reproducible_and_reports_what_generated_it():
    spec = CalibrationSpec({"model": "bayes-hmm"}, replicates=1, n_dates=3000)
    template, columns = simulation_template(spec, seed=0)
    model = model_from_config({"model": "bayes-hmm", "standardise": False})
    first = model.simulate(template, columns, seed=5)
    again = model.simulate(template, columns, seed=5)
    assert first.features.frame.equals(again.features.frame)
    assert not first.features.frame.equals(model.simulate(template, columns, seed=6).features.frame)
    values = first.features.frame[columns].to_numpy()
    mean, scale = first.reported["emission_mean"], first.reported["emission_scale"]
    assert np.allclose(first.reported["transition"], first.parameters["transition"])
    assert mean[1, 0] > mean[0, 0]  # ordered on the anchor: risk_on above risk_off
    for k in range(2):
        part = values[first.states == k]
        if len(part) > 100:
            error = np.abs(part.mean(axis=0) - mean[k])
            assert np.all(error < 5 * scale[k] / np.sqrt(len(part)))
            assert np.allclose(part.std(axis=0), scale[k], rtol=0.15)


@pytest.mark.parametrize(
    "config",
    [
        {"model": "bayes-hmm", "stickiness": 1.5, "identification": "ordered"},
        {"model": "bayes-hmm", "stickiness": 1.5},  # relabelled, the default
        {"model": "leadlag", "stickiness": 1.5, "lag": 2},
        {"model": "tvtp", "stickiness": 1.5, "covariates": ["driver"], "coefficient_scale": 3},
        {
            "model": "leadlag",
            "stickiness": 1.5,
            "lag": 2,
            "covariates": ["driver"],
            "coefficient_scale": 3,
        },
        {
            "model": "two-scale",
            "stickiness": 1.5,
            "coarse_stickiness": 1.5,
            "coarse_columns": ["liquidity"],
        },
        {
            "model": "two-scale",
            "stickiness": 1.5,
            "coarse_stickiness": 1.5,
            "coarse_columns": ["liquidity"],
            "fine_entry": "restart",
        },
    ],
    ids=[
        "bayes-hmm-ordered",
        "bayes-hmm",
        "leadlag-lag2",
        "tvtp",
        "leadlag-covariates",
        "two-scale",
        "two-scale-restart",
    ],
)
def test_simulated_states_are_calibrated_under_the_models_own_kernel(config):
    """At the true parameters, E[P(z_t = true state | y)] = E[sum_k P(z_t = k | y)^2].

    The simulator and the fitted model's likelihood are separate code; if the simulator
    put a regime on the wrong date (e.g. the lead-lag re-indexing off by the lag, or a
    time-varying transition off by one step) the smoothed probability of the true state
    would fall short of that identity. Averaged over 6 data sets of 300 dates the two
    sides agree to a few thousandths; a one-step shift costs several hundredths
    (non-sticky chains, stickiness 1.5)."""
    spec = CalibrationSpec(config, replicates=1, n_dates=300, n_series=2)
    model = model_from_config({**config, "standardise": False})
    truth_side, identity_side, shifted_side = [], [], []
    for seed in range(6):
        template, columns = simulation_template(spec, seed)
        simulation = model.simulate(template, columns, seed=seed)
        observations = model.observations(simulation.features, columns)
        smoothed = model.quantities_at(simulation.parameters, observations).smoothed
        states = simulation.states
        truth_side.append(smoothed[np.arange(len(states)), states].mean())
        identity_side.append((smoothed**2).sum(axis=1).mean())
        shifted_side.append(smoothed[np.arange(1, len(states)), states[:-1]].mean())
    gap = np.mean(truth_side) - np.mean(identity_side)
    assert abs(gap) < 0.02, (truth_side, identity_side)
    assert np.mean(identity_side) - np.mean(shifted_side) > 0.03


def test_every_bayesian_family_defaults_to_relabelled_and_offers_ordered():
    # Relabelling itself is tested in tests/models/test_relabelling.py.
    families = (
        {"model": "tvtp", "covariates": ["x"]},
        {"model": "hierarchical"},
        {"model": "leadlag"},
    )
    for config in families:
        assert model_from_config(config).identification == "relabelled"
        assert model_from_config({**config, "identification": "ordered"}).identification == (
            "ordered"
        )
    with pytest.raises(ValueError, match="supports identification relabelled or ordered"):
        model_from_config({"model": "leadlag", "identification": "sorted"})


# ---------------------------------------------------------------- ranks and uniformity
def _normal_model_ranks(posterior_sd_factor: float, bias: float, replicates: int = 500):
    """SBC of theta ~ N(0, 1), y_1..5 ~ N(theta, 1), whose posterior is exactly
    N(sum(y) / 6, 1/6): ranks of theta among draws of a posterior with its sd scaled by
    ``posterior_sd_factor`` and its mean moved by ``bias`` posterior sds."""
    rng = np.random.default_rng(11)
    rows = []
    for _ in range(replicates):
        theta = rng.standard_normal()
        y = theta + rng.standard_normal(5)
        sd = np.sqrt(1 / 6)
        draws = y.sum() / 6 + bias * sd + posterior_sd_factor * sd * rng.standard_normal(400)
        array = xr.DataArray(draws.reshape(4, 100), dims=("chain", "draw"))
        rows.append(parameter_ranks("theta", array, np.asarray(theta)))
    return pd.DataFrame(rows)


def test_exact_posterior_gives_uniform_ranks():
    ranks = _normal_model_ranks(1.0, 0.0)
    assert ranks["theta"].between(0, RANK_DRAWS).all()
    test = uniformity_tests(ranks, RANK_DRAWS)
    assert not test["fails"].iloc[0], test


@pytest.mark.parametrize("sd_factor, bias", [(0.6, 0.0), (1.6, 0.0), (1.0, 0.5)])
def test_miscalibrated_posteriors_fail_the_uniformity_test(sd_factor, bias):
    test = uniformity_tests(_normal_model_ranks(sd_factor, bias), RANK_DRAWS)
    assert test["fails"].iloc[0] and test["p_value"].iloc[0] < 1e-4, test


def test_ranks_count_draws_below_the_truth_with_labels():
    draws = xr.DataArray(
        np.arange(200.0).reshape(2, 100, 1) * np.array([1.0, -1.0]),
        dims=("chain", "draw", "regime"),
        coords={"regime": ["risk_off", "risk_on"]},
    )
    ranks = parameter_ranks("mean", draws, np.array([50.0, -50.0]))
    # The 99 evenly spaced draws of 0..199 are 0, 2.03, ...: 25 lie below 50.
    chosen = np.linspace(0, 199, RANK_DRAWS).round()
    assert ranks == {"mean[risk_off]": int((chosen < 50).sum()), "mean[risk_on]": 74}
    with pytest.raises(ValueError, match="ranks need at least"):
        parameter_ranks("mean", draws.isel(draw=slice(0, 10)), np.zeros(2))


def test_uniformity_bins_must_split_the_ranks_evenly():
    with pytest.raises(ValueError, match="equal bins"):
        uniformity_tests(pd.DataFrame({"x": [0, 1]}), rank_draws=98, bins=10)


def test_probability_coverage_counts_truth_inside_the_hdi():
    rng = np.random.default_rng(3)
    draws = rng.beta(50, 50, size=(2000, 3, 1))  # centred on 0.5, sd 0.05
    truth = np.array([[0.5], [0.55], [0.9]])  # inside both; inside the 90% only; outside
    coverage = probability_coverage(draws, truth)
    assert coverage == pytest.approx({"0.5": 1 / 3, "0.9": 2 / 3})


# ---------------------------------------------------------------- CLI
def test_calibrate_cli_writes_ranks_and_resumes(tmp_path, capsys):
    out = tmp_path / "sbc"
    arguments = ["calibrate", "--replicates", "3", "--dates", "80", "--draws", "60"]
    arguments += ["--tune", "100", "--chains", "2", "--scheduler", "serial", "--out", str(out)]
    assert main(arguments) == 0
    ranks = pd.read_csv(out / "ranks.csv")
    assert len(ranks) == 3 and "emission_mean[risk_on,equity_1_return]" in ranks.columns
    assert ranks.drop(columns="replicate").stack().between(0, RANK_DRAWS).all()
    uniformity = pd.read_csv(out / "uniformity.csv")
    assert set(uniformity["parameter"]) == set(ranks.columns) - {"replicate"}
    coverage = pd.read_csv(out / "coverage.csv")
    assert coverage["coverage"].between(0, 1).all() and len(coverage) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["replicates"] == 3 and summary["verdict"] in ("pass", "fail")
    assert (out / "rank_histograms.png").stat().st_size > 10_000
    manifest = verify_run(out)
    assert manifest["kind"] == "calibration" and "ranks.csv" in manifest["files"]
    # Resume: a deleted replicate is the only one computed again, with the same ranks.
    (out / "replicates" / "replicate_0001.json").unlink()
    capsys.readouterr()
    assert main(arguments) == 0
    assert "replicates done: 2/3" in capsys.readouterr().err
    assert pd.read_csv(out / "ranks.csv").equals(ranks)


def test_calibrate_refuses_a_model_without_posterior(tmp_path, capsys):
    arguments = ["calibrate", "--model", "em-hmm", "--out", str(tmp_path), "--scheduler", "serial"]
    assert main(arguments) == 2
    assert "em-hmm has no posterior" in capsys.readouterr().err


def test_relabelled_fit_sorts_every_draw_and_agrees_with_ordered_on_separated_regimes():
    # Two well separated regimes (anchor means -1 and +1, sd 0.5): both identifications
    # find the same posterior, up to their different priors' small pull.
    rng = np.random.default_rng(9)
    states = sample_markov_path(rng, np.log([0.5, 0.5]), np.log([[0.95, 0.05], [0.05, 0.95]]), 300)
    values = sample_emissions(
        rng, states, np.array([[-1.0, 0.5], [1.0, -0.5]]), np.full((2, 2), 0.5)
    )
    template, columns = simulation_template(CalibrationSpec({"model": "bayes-hmm"}, 1, 300), 0)
    template.frame[columns] = values
    fits, diagnostics = {}, {}
    for identification in ("ordered", "relabelled"):
        model = BayesianHMM(
            2,
            identification=identification,
            draws=200,
            tune=200,
            chains=2,
            cores=1,
            progressbar=False,
        )
        result = model.fit(template, columns).result_
        fits[identification] = result.inference_data.posterior
        diagnostics[identification] = result.diagnostics()
    # Separated on the anchor: no draw needed re-sorting, so no overlap warning.
    assert diagnostics["relabelled"]["relabelled_share"] == 0.0
    assert diagnostics["relabelled"]["warnings"] == []
    assert diagnostics["ordered"]["relabelled_share"] is None
    anchor = fits["relabelled"]["emission_mean"].to_numpy()[..., 0]
    assert (anchor[..., 0] <= anchor[..., 1]).all()
    means = {name: post["emission_mean"].mean(("chain", "draw")) for name, post in fits.items()}
    spread = fits["ordered"]["emission_mean"].std(("chain", "draw"))
    assert (abs(means["ordered"] - means["relabelled"]) < 3 * spread).all()


def test_a_prior_with_potential_terms_is_drawn_by_mcmc_not_forward():
    # Forward sampling ignores Potentials: it would give x < 0 half the time here.
    import pymc as pm
    import pytensor.tensor as pt

    from regime_model.models.simulation import LIKELIHOOD, draw_prior

    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("positive", pt.switch(x > 0, 0.0, -np.inf))
        doubled = pm.Deterministic("doubled", 2 * x)
        pm.Potential(LIKELIHOOD, -1e6 * x**2)  # the likelihood is left out of the prior
    draws = [draw_prior(model, [doubled + 1], seed) for seed in range(4)]
    values = np.array([parameters["x"] for parameters, _ in draws])
    assert (values > 0).all() and values.std() > 0.1  # not squeezed to 0 by the likelihood
    for parameters, (extra,) in draws:
        assert parameters["doubled"] == pytest.approx(2 * parameters["x"])
        assert extra == pytest.approx(2 * parameters["x"] + 1)


def test_cli_config_records_the_identification_each_model_family_defaults_to():
    """config.json must say which identification a run used, also when it was defaulted."""
    from regime_model.cli import build_parser
    from regime_model.commands.inputs import model_config

    def config(*options: str) -> dict:
        arguments = build_parser().parse_args(
            ["fit", "--features", "f.csv", "--out", "o", *options]
        )
        return model_config(arguments)

    assert config("--model", "bayes-hmm")["identification"] == "relabelled"
    assert config("--model", "bayes-hmm", "--identification", "ordered")["identification"] == (
        "ordered"
    )
    assert config("--model", "leadlag")["identification"] == "relabelled"
    tvtp = config("--model", "tvtp", "--covariates", "x")
    assert tvtp["identification"] == "relabelled"
