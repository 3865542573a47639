"""Transition components composed with other emissions: covariate-driven transitions on
the hierarchical (pooled) emissions, from the Python API and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytest
from scipy.special import log_softmax

from regime_model.cli import main
from regime_model.data.synthetic import simulate_tvtp_features
from regime_model.models import BayesianHMM, HierarchicalHMM

COVARIATES = ["breadth_change", "spread_change"]
COLUMNS = ["eq_return", "crypto_return"]


def _potential(model: pm.Model, point: dict) -> float:
    free = list(model.free_RVs)
    function = model.compile_fn(model["hmm_loglik"], inputs=free, point_fn=False)
    return float(function(*(point[rv.name] for rv in free)))


def test_pooled_emissions_with_zero_coefficients_equal_the_homogeneous_likelihood():
    features, _ = simulate_tvtp_features(200, seed=2)
    driven = HierarchicalHMM(2, covariates=COVARIATES, seed=0)
    observations = driven.observations(features, COLUMNS)
    assert observations.covariate_names == tuple(COVARIATES)
    driven_model = driven.build_model(observations)
    homogeneous = HierarchicalHMM(2, seed=0)
    homogeneous_model = homogeneous.build_model(observations)
    names = [rv.name for rv in driven_model.free_RVs]
    assert {"transition_intercept", "transition_coefficient"} <= set(names)
    point = dict(zip(names, pm.draw(driven_model.free_RVs, random_seed=1), strict=True))
    intercept = np.array([-2.0, -1.2])
    point |= {"transition_intercept": intercept, "transition_coefficient": np.zeros((2, 2))}
    transition = np.exp(log_softmax(np.array([[0.0, intercept[0]], [intercept[1], 0.0]]), 1))
    plain = {name: point[name] for name in point if not name.startswith("transition_")}
    plain["transition"] = transition
    expected = _potential(homogeneous_model, plain)
    assert _potential(driven_model, point) == pytest.approx(expected, rel=1e-10)
    moved = {**point, "transition_coefficient": np.array([[1.0, 0.0], [0.0, -1.0]])}
    assert abs(_potential(driven_model, moved) - expected) > 1e-3


def test_cli_fits_a_hierarchical_model_with_covariate_driven_transitions(tmp_path):
    features, _ = simulate_tvtp_features(160, seed=3)
    path = features.save(tmp_path / "features.csv")
    run = tmp_path / "run"
    arguments = [
        "fit",
        "--features",
        str(path),
        "--model",
        "hierarchical",
        "--columns",
        ",".join(COLUMNS),
        "--covariates",
        ",".join(COVARIATES),
        "--draws",
        "100",
        "--tune",
        "100",
        "--chains",
        "2",
        "--out",
        str(run),
    ]
    assert main(arguments) == 0
    summary = json.loads((run / "summary.json").read_text())
    tables = summary["fit_info"]["model_summary"]
    assert {"groups", "features", "coefficients", "durations_latest"} <= set(tables)
    assert summary["fit_info"]["covariates"]["names"] == COVARIATES
    coefficients = {(row["from"], row["covariate"]) for row in tables["coefficients"]}
    assert coefficients == {(a, c) for a in ("risk_off", "risk_on") for c in COVARIATES}
    config = json.loads((run / "config.json").read_text())
    assert config["covariates"] == COVARIATES and config["identification"] == "relabelled"


def test_families_without_covariate_transitions_refuse_covariates():
    with pytest.raises(ValueError, match="bayes-hmm takes no covariates"):
        BayesianHMM(2, covariates=["x"])
    with pytest.raises(ValueError, match="needs at least one covariate"):
        from regime_model.models import TVTPHMM

        TVTPHMM(2)


def test_the_first_dates_stationary_start_is_refused_where_it_is_not_built():
    """Coupled chains (leadlag) take the stationary law of their average matrix; asking
    for the first date's is an error naming the choices, not a silent fallback."""
    from regime_model.models import LeadLagHMM

    with pytest.raises(ValueError, match="initial must be one of stationary, dirichlet, not"):
        LeadLagHMM(2, initial="stationary-first")
    assert BayesianHMM(2, initial="stationary-first").initial == "stationary-first"


def test_a_components_log_transition_at_a_point_equals_its_graph():
    # What quantities_at (e.g. a simulation's truth) reads must be what the model samples.
    features, _ = simulate_tvtp_features(120, seed=4)
    for family in (HierarchicalHMM(2, covariates=COVARIATES), HierarchicalHMM(2)):
        observations = family.observations(features, COLUMNS)
        composition, model, graphs = family.compose(observations)
        free = list(model.free_RVs)
        point = dict(zip([rv.name for rv in free], pm.draw(free, random_seed=2), strict=True))
        graph = model.compile_fn(
            graphs.inputs[1], inputs=free, point_fn=False, on_unused_input="ignore"
        )
        expected = graph(*(point[rv.name] for rv in free))
        component = composition.transitions
        if family.covariates:
            assert expected.shape == (len(observations.dates) - 1, 2, 2)
        else:  # the homogeneous component reads the matrix by name
            point["transition"] = np.exp(expected)
        np.testing.assert_allclose(
            component.log_transition_at(point, observations), expected, rtol=1e-10, atol=1e-12
        )
