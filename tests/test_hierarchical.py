"""Hierarchical shared-regime model on synthetic groups with known pooled parameters.

Three small fits (T = 400 weekly dates, 2 chains) are shared by module-scoped fixtures:
the hierarchical model and the non-pooled BayesianHMM on the same data, both holding out
the last 20 dates, and a second hierarchical fit with another seed and column order.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from regime_model.data.features import FeatureSet
from regime_model.data.synthetic import simulate_pooled_features
from regime_model.models import BayesianHMM
from regime_model.models.hierarchical import HierarchicalHMM
from regime_model.models.observations import prepare_observations
from regime_model.models.pooled_emissions import (
    GROUP_LOG_SCALE_SD,
    GROUP_MEAN_SD,
    GroupStructure,
    _hierarchy,
    feature_groups,
    zero_sum_basis,
)
from regime_model.results import RegimeResult, hdi_bounds

N_DATES, N_HOLDOUT = 400, 20
# target_accept 0.9 (the model's default is 0.98, tuned for the tails of the weekly data's
# posterior): step size changes the cost, not the posterior these tests check.
SETTINGS = {"draws": 300, "tune": 300, "chains": 2, "target_accept": 0.9, "progressbar": False}


@pytest.fixture(scope="module")
def pooled():
    # Seed 6: the short asset's window (the last 20% of dates) holds both regimes.
    return simulate_pooled_features(N_DATES, short_history=0.2, seed=6)


@pytest.fixture(scope="module")
def holdout_start(pooled):
    return pooled[0].frame.index[-N_HOLDOUT]


@pytest.fixture(scope="module")
def hierarchical_fit(pooled, holdout_start):
    return (
        HierarchicalHMM(2, seed=3, **SETTINGS).fit(pooled[0], holdout_start=holdout_start).result_
    )


@pytest.fixture(scope="module")
def flat_fit(pooled, holdout_start):
    return BayesianHMM(2, seed=3, **SETTINGS).fit(pooled[0], holdout_start=holdout_start).result_


def _draws(result: RegimeResult, name: str) -> np.ndarray:
    values = result.inference_data.posterior[name].to_numpy()
    return values.reshape(-1, *values.shape[2:])


def _risk_on(result: RegimeResult, kind: str = "smoothed") -> np.ndarray:
    return result.regime_probabilities(kind)[("risk_on", "mean")].to_numpy()


# ---------------------------------------------------------------------- building blocks
def test_groups_come_from_the_feature_set_and_ungrouped_columns_stand_alone():
    names, member = feature_groups(
        ["a", "b", "c", "d"], {"a": "equity", "b": "crypto", "c": "equity", "d": "unknown"}
    )
    assert names == ["equity", "crypto", "ungrouped:d"]
    assert list(member) == [0, 1, 0, 2]


@pytest.mark.parametrize("n_regimes", [2, 3, 5])
def test_zero_sum_basis_is_orthonormal_and_sums_to_zero(n_regimes):
    basis = zero_sum_basis(n_regimes)
    assert basis.shape == (n_regimes, n_regimes - 1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(n_regimes - 1), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0.0, atol=1e-12)
    if n_regimes == 2:  # the coordinate grows with the risk_on response
        assert basis[1, 0] > 0 > basis[0, 0]


@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize("spread", [0.05, 0.3, 1.7])
def test_sampled_coordinates_carry_exactly_the_hierarchical_prior(spread, anchored):
    """At a fixed spread, the map from what is sampled (members' average, deviation
    coordinates, group offset) to (members, group) is linear, so the sampled variables'
    density must equal the hierarchy's, members ~ Normal(group, spread) and group ~
    Normal(0, prior_sd) (or given: the ordered anchor), times |det Jacobian|. Groups of
    two and three members with different centring weights, and a lone feature."""
    prior_sd, k = 0.8, 2  # K = 3 regimes
    member = np.array([0, 0, 1, 1, 1, 2])
    structure = GroupStructure(
        columns=list("abcdef"), anchor=0, names=["g0", "g1", "g2"], member=member,
        pooled=np.array([0, 1]), pooled_features=np.arange(5), signs=np.ones(6),
        sign_source=["start"] * 6, level_weights={}, centring={"mean": np.array([0.3, 0.8, 0.0])},
    )  # fmt: skip
    fixed_group = np.array([0.4, -0.2])
    fixed = {0: pt.as_tensor(fixed_group)} if anchored else {}
    with pm.Model(coords={"pooled_group": ["g0", "g1"]}) as model:
        group, members = _hierarchy("mean", structure, prior_sd, fixed, k + 1)
    sampled = [v for v in model.free_RVs if v.name not in ("group_mean_sd", "group_mean_coord")]
    values = [model.rvs_to_values[v] for v in sampled]
    rng = np.random.default_rng(1)
    point = {v.name: rng.standard_normal(model.initial_point()[v.name].shape) for v in values}
    point["group_mean_sd_log__"] = np.log(np.full(2, spread))
    point["group_mean_coord"] = rng.standard_normal((1, k))
    group, members = model.replace_rvs_by_values([group, members])
    outputs = pt.concatenate([members[:5].ravel(), *([] if anchored else [group[0]]), group[1]])
    jacobian = pytensor.gradient.jacobian(outputs, values, disconnected_inputs="ignore")
    square = pt.concatenate([j.reshape((outputs.shape[0], -1)) for j in jacobian], axis=1)
    log_density = model.logp(vars=sampled, jacobian=False)
    evaluate = model.compile_fn([log_density, group, members, square], point_fn=True)
    log_density, group_value, member_value, jac = evaluate(point)
    assert jac.shape[0] == jac.shape[1]
    expected = np.sum(norm.logpdf(member_value[:5], group_value[member[:5]], spread))
    groups = [1] if anchored else [0, 1]
    expected += np.sum(norm.logpdf(group_value[groups], 0.0, prior_sd))
    expected += np.log(abs(np.linalg.det(jac)))
    assert log_density == pytest.approx(expected, rel=1e-10, abs=1e-10)
    if anchored:
        np.testing.assert_allclose(group_value[0], fixed_group)
    # A lone feature's coordinates are its group's.
    np.testing.assert_allclose(member_value[5], group_value[2])
    np.testing.assert_allclose(group_value[2], point["group_mean_coord"][0])


@pytest.mark.parametrize("identification", ["relabelled", "ordered"])
def test_likelihood_equals_a_brute_force_forward_pass(identification):
    """At a random parameter point, the model's HMM potential equals a plain NumPy forward
    algorithm over masked Gaussian densities, and its mean/sigma equal the hierarchy's
    formulas evaluated by hand from the free variables, with the groups' deviations
    sampled at three centring weights (0 non-centred, 1 centred, 0.7 in between).
    Ordered: the anchor group's mean responses are ordered gaps and the levels
    precision-weighted; relabelled: free responses, plain averages."""
    ordered = identification == "ordered"
    features, _ = simulate_pooled_features(80, short_history=0.6, seed=4)
    model = HierarchicalHMM(3, seed=0, identification=identification)
    observations = prepare_observations(features, 3)
    composition = model.components(observations, model.initial_estimate(observations))
    structure = composition.emissions.structure
    structure.centring["mean"][:] = [0.0, 0.7, 1.0]  # equity, crypto, flows
    structure.centring["log_scale"][:] = [1.0, 0.0, 0.7]
    pymc_model, _ = model._build(composition, observations)
    rng = np.random.default_rng(0)
    point = {
        name: value + 0.3 * rng.standard_normal(np.shape(value))
        for name, value in pymc_model.initial_point().items()
    }
    kinds = ("mean", "log_scale")
    names = [
        "level", "log_level", *(["anchor_group_gaps"] if ordered else []),
        *(f"group_{n}_sd" for n in kinds), *(f"member_{n}_deviation" for n in kinds),
        "member_mean_average", "member_log_scale_average", "group_mean_offset",
        "group_log_scale_offset", *(["member_mean_average_raw"] if ordered else []),
        "group_mean", "group_log_scale", "mean", "sigma", "transition", "initial", "hmm_loglik",
    ]  # fmt: skip
    outputs = pymc_model.replace_rvs_by_values([pymc_model[name] for name in names])
    evaluate = pymc_model.compile_fn(outputs, point_fn=True)
    values = dict(zip(names, evaluate(point), strict=True))

    # The hierarchy by hand (standardised units; groups equity, crypto, flows, all pooled).
    np.testing.assert_array_equal(structure.pooled, [0, 1, 2])
    basis = zero_sum_basis(3)
    fixed_mean = {}
    if ordered:
        steps = np.concatenate([[0.0], np.cumsum(values["anchor_group_gaps"])])
        fixed_mean = {0: basis.T @ (steps - steps.mean())}
    else:  # equal level weights: the prior is the same under every permutation
        for name in kinds:
            np.testing.assert_allclose(structure.level_weights[name], 1 / 3)
    expected = {}
    for name, fixed, prior_sd in (
        ("mean", fixed_mean, GROUP_MEAN_SD),
        ("log_scale", {}, GROUP_LOG_SCALE_SD),
    ):
        spread = values[f"group_{name}_sd"]
        group, average = np.empty((3, 2)), np.empty((3, 2))
        free = [g for g in range(3) if g not in fixed]
        for row, g in enumerate(free):  # the group given its members' average
            n, s2 = np.sum(structure.member == g), spread[g] ** 2
            precision = n / s2 + 1 / prior_sd**2
            average[g] = values[f"member_{name}_average"][row]
            offset = values[f"group_{name}_offset"][row]
            group[g] = n * average[g] / s2 / precision + offset / np.sqrt(precision)
        for g, coordinates in fixed.items():
            n = np.sum(structure.member == g)
            group[g] = coordinates
            raw = values[f"member_{name}_average_raw"][0]
            average[g] = coordinates + spread[g] / np.sqrt(n) * raw
        np.testing.assert_allclose(values[f"group_{name}"], basis @ group.T, rtol=1e-10)
        member = np.empty((len(structure.member), 2))
        deviation = values[f"member_{name}_deviation"]
        row = 0
        for g in range(3):
            rows = np.flatnonzero(structure.member == g)
            weight = structure.centring[name][g]
            coordinates = spread[g] ** (1 - weight) * deviation[row : row + len(rows) - 1]
            member[rows] = average[g] + zero_sum_basis(len(rows)) @ coordinates
            row += len(rows) - 1
        response = basis @ member.T  # (K, D), zero-sum over regimes
        # Each feature's level is the level-weighted average over regimes.
        weights = structure.level_weights[name].T
        expected[name] = response - (weights * response).sum(axis=0)
    np.testing.assert_allclose(
        values["mean"], values["level"] + structure.signs * expected["mean"], rtol=1e-10
    )
    np.testing.assert_allclose(
        values["sigma"], np.exp(values["log_level"] + expected["log_scale"]), rtol=1e-10
    )

    # Forward algorithm in NumPy.
    y, observed = observations.values, observations.observed
    log_density = norm.logpdf(y[:, None, :], values["mean"][None], values["sigma"][None])
    log_emission = (log_density * observed[:, None, :]).sum(axis=2)
    alpha = np.log(values["initial"]) + log_emission[0]
    for t in range(1, len(y)):
        alpha = logsumexp(alpha[:, None] + np.log(values["transition"]), axis=0) + log_emission[t]
    assert values["hmm_loglik"] == pytest.approx(logsumexp(alpha), rel=1e-10)


def test_student_t_margins_have_a_finite_gradient(pooled):
    model = HierarchicalHMM(2, emission="student-t")
    pymc_model = model.build_model(prepare_observations(pooled[0], 2))
    point = pymc_model.initial_point()
    assert np.isfinite(pymc_model.compile_logp()(point))
    gradient = pymc_model.compile_dlogp()(point)
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_ungrouped_columns_have_no_spread_parameters(pooled):
    features = FeatureSet(pooled[0].frame, {}, "weekly")  # a bare CSV: no groups
    pymc_model = HierarchicalHMM(2).build_model(prepare_observations(features, 2))
    free = {variable.name for variable in pymc_model.free_RVs}
    assert not free & {"group_mean_sd", "group_log_scale_sd", "member_mean_raw"}
    assert len(pymc_model.coords["group"]) == features.frame.shape[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"covariance": "full"}, "covariance"),
        ({"switching": "mean"}, "switching"),
        ({"order_by": "volatility"}, "order_by"),
        ({"signs": {"coin_a_return": 2}}, "signs must be"),
        ({"emission": "laplace"}, "emission"),
    ],
)
def test_unsupported_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalHMM(2, **options)


def test_bad_signs_are_rejected_at_fit_time(pooled):
    observations = prepare_observations(pooled[0], 2)
    with pytest.raises(ValueError, match="not in the model: nope"):
        HierarchicalHMM(2, signs={"nope": 1}).build_model(observations)
    with pytest.raises(ValueError, match="must be \\+1"):
        HierarchicalHMM(2, signs={"eq_small_return": -1}).build_model(observations)


def test_given_signs_override_the_start(pooled):
    observations = prepare_observations(pooled[0], 2)
    model = HierarchicalHMM(2, signs={"flow_growth": -1})
    structure = model.group_structure(observations, model.initial_estimate(observations))
    d = observations.columns.index("flow_growth")
    assert structure.signs[d] == -1 and structure.sign_source[d] == "user"
    assert structure.sign_source[0] == "start"


# ---------------------------------------------------------------------- fitted
def test_signs_are_read_off_the_start(hierarchical_fit, pooled):
    _, truth = pooled
    table = hierarchical_fit.fit_info["model_summary"]["features"]
    assert {row["feature"]: row["sign"] for row in table} == truth.signs


def test_recovers_group_level_parameters_and_regimes(hierarchical_fit, pooled):
    """Group responses (risk_on - risk_off contrast of each group's mean and log-scale,
    6 numbers) inside their 99.5% HDI (family-wise false alarm ~3%) and at least 5 of 6
    inside their 94% HDI (fewer is a 1-in-20 event)."""
    _, truth = pooled
    assert hierarchical_fit.inference_data.posterior.coords["group"].values.tolist() == truth.groups
    draws, true_values = [], []
    for name in ("group_mean", "group_log_scale"):
        values = _draws(hierarchical_fit, name)  # (S, K, G)
        draws.append(values[:, 1] - values[:, 0])
        true_values.append(getattr(truth, name)[1] - getattr(truth, name)[0])
    draws, true_values = np.concatenate(draws, axis=1), np.concatenate(true_values)
    lower, upper = hdi_bounds(draws, 0.995)
    assert ((lower <= true_values) & (true_values <= upper)).all(), (lower, upper, true_values)
    lower, upper = hdi_bounds(draws, 0.94)
    assert ((lower <= true_values) & (true_values <= upper)).sum() >= 5, (lower, upper)
    path = truth.regimes
    assert (((_risk_on(hierarchical_fit) > 0.5) == path).mean()) > 0.95
    filtered = _risk_on(hierarchical_fit, "filtered")
    assert ((filtered > 0.5) == path).mean() > 0.9
    diagnostics = hierarchical_fit.diagnostics()
    assert diagnostics["max_rhat"] < 1.05 and not diagnostics["label_switching"]


def test_short_history_asset_borrows_strength(hierarchical_fit, flat_fit, pooled):
    """The short asset (60 fitted dates) gets a narrower regime contrast (risk_on minus
    risk_off mean) than without pooling, and its posterior still covers the truth.

    Normal approximation: alone, its contrast has a standard error of about 0.3 sd; the
    group's contrast is known from 400 dates and the members' spread around it is about
    0.2 sd, so the pooled width should be about 0.7 of the unpooled one. 0.85 leaves room
    for the Monte Carlo error of 600-draw HDI widths (~5%). Assets with long histories,
    whose own data dominate, keep their widths (ratio under 1.2: about 2.5 Monte Carlo
    standard errors)."""
    _, truth = pooled
    columns = hierarchical_fit.columns
    short = columns.index(truth.short_column)
    contrast_width, mean_width = {}, {}
    for label, result in (("pooled", hierarchical_fit), ("flat", flat_fit)):
        means = _draws(result, "emission_mean")  # (S, K, D), features' units
        lower, upper = hdi_bounds(means[:, 1] - means[:, 0], 0.9)
        contrast_width[label] = upper - lower
        lower, upper = hdi_bounds(means, 0.9)
        mean_width[label] = upper - lower
    contrast_ratio = contrast_width["pooled"] / contrast_width["flat"]
    assert contrast_ratio[short] < 0.85, contrast_ratio
    mean_ratio = mean_width["pooled"] / mean_width["flat"]
    long_history = [d for d in range(len(columns)) if d != short]
    assert mean_ratio[:, long_history].max() < 1.2, mean_ratio
    means = _draws(hierarchical_fit, "emission_mean")
    lower, upper = hdi_bounds(means, 0.94)
    true_mean = truth.mean[:, short]
    assert ((lower[:, short] <= true_mean) & (true_mean <= upper[:, short])).all()
    lower, upper = hdi_bounds(means[:, 1, short] - means[:, 0, short], 0.94)
    assert lower <= true_mean[1] - true_mean[0] <= upper
    pooling = {
        (row["feature"], row["quantity"]): row
        for row in hierarchical_fit.fit_info["model_summary"]["feature_pooling"]
    }
    distance = pooling[(truth.short_column, "distance")]
    assert distance["lower"] <= 0 <= distance["upper"]  # no evidence it differs from its group


def test_label_order_is_stable_across_seeds_and_column_order(hierarchical_fit, pooled):
    features, truth = pooled
    reordered = FeatureSet(features.frame[features.frame.columns[::-1]], features.groups, "weekly")
    result = (
        HierarchicalHMM(
            2, anchor="eq_small_return", seed=11, **{**SETTINGS, "draws": 150, "tune": 150}
        )
        .fit(reordered)
        .result_
    )
    emissions = result.emission_summary().set_index(["parameter", "regime", "feature"])["mean"]
    assert (
        emissions[("mean", "risk_on", "eq_small_return")]
        > emissions[("mean", "risk_off", "eq_small_return")]
    )
    fitted = slice(0, N_DATES - N_HOLDOUT)
    agreement = ((_risk_on(result) > 0.5) == (_risk_on(hierarchical_fit) > 0.5))[fitted]
    assert agreement.mean() > 0.97
    assert not result.diagnostics()["label_switching"]
    assert ((_risk_on(result) > 0.5) == truth.regimes).mean() > 0.95


def test_reports_group_and_asset_parameters(hierarchical_fit, pooled):
    _, truth = pooled
    posterior = hierarchical_fit.inference_data.posterior
    assert posterior["group_mean"].dims == ("chain", "draw", "regime", "group")
    assert posterior["group_log_scale_sd"].dims == ("chain", "draw", "pooled_group")
    np.testing.assert_allclose(posterior["group_mean"].sum("regime"), 0.0, atol=1e-10)
    emissions = hierarchical_fit.emission_summary()
    assert set(emissions["feature"]) == set(truth.columns)  # asset level, features' units
    summary = hierarchical_fit.fit_info["model_summary"]
    json.dumps(summary)  # saved in summary.json
    for table in ("group_parameters", "feature_pooling"):
        for row in summary[table]:
            assert row["lower"] <= row["mean"] <= row["upper"]
    groups = {row["group"]: row for row in summary["groups"]}
    assert groups["flows"]["members"] == ["spread_change", "flow_growth"]
    rows = {(row["group"], row["parameter"]) for row in summary["group_parameters"]}
    assert {("crypto", "mean_contrast"), ("crypto", "mean_sd"), ("flows", "log_scale_sd")} <= rows
    features = {row["feature"]: row for row in summary["features"]}
    short = features[truth.short_column]
    assert short["fitted_observations"] == (
        pooled[0].frame[truth.short_column].iloc[: N_DATES - N_HOLDOUT].notna().sum()
    )
    assert min(row["p_same_sign"] for row in summary["features"]) > 0.9


def test_holdout_is_scored_one_step_ahead(hierarchical_fit, flat_fit, holdout_start):
    scores = hierarchical_fit.holdout_log_predictive()
    assert scores is not None and len(scores) == N_HOLDOUT
    assert scores.index[0] == holdout_start and np.isfinite(scores).all()
    log_likelihood = hierarchical_fit.inference_data.log_likelihood["y"]
    assert log_likelihood.sizes["date"] == N_DATES - N_HOLDOUT
    # Same data, same held-out dates: the two models' scores are comparable and close.
    difference = scores.sum() - flat_fit.holdout_log_predictive().sum()
    assert abs(difference) < 10.0


def test_save_load_round_trip(hierarchical_fit, tmp_path):
    hierarchical_fit.save(tmp_path / "run")
    loaded = RegimeResult.load(tmp_path / "run")
    assert loaded.model == "hierarchical"
    for kind in ("filtered", "smoothed"):
        pd.testing.assert_frame_equal(
            loaded.regime_probabilities(kind),
            hierarchical_fit.regime_probabilities(kind),
            check_freq=False,
        )
    np.testing.assert_array_equal(
        _draws(loaded, "group_mean"), _draws(hierarchical_fit, "group_mean")
    )
    # (The loaded index comes back as datetime64[ns]: compare values and dates.)
    loaded_scores = loaded.holdout_log_predictive()
    scores = hierarchical_fit.holdout_log_predictive()
    np.testing.assert_allclose(loaded_scores.to_numpy(), scores.to_numpy(), rtol=1e-12)
    assert (loaded_scores.index == scores.index).all()
    assert loaded.fit_info["model_summary"] == json.loads(
        json.dumps(hierarchical_fit.fit_info["model_summary"])
    )
    config = {key: value for key, value in loaded.config.items() if key not in ("model", "columns")}
    assert HierarchicalHMM(**config).get_config() == {"model": "hierarchical", **config}


def test_three_regimes_as_a_point_estimate():
    """K = 3 end to end with the quick MAP sampler: ordered anchor group, tables without
    bands (one draw), results that serialise."""
    features, _ = simulate_pooled_features(300, seed=2)
    result = HierarchicalHMM(3, sampler="map", progressbar=False).fit(features).result_
    assert result.regime_names == ["risk_off", "neutral", "risk_on"]
    group_mean = _draws(result, "group_mean")[0]  # (K, G)
    assert np.all(np.diff(group_mean[:, 0]) > 0)  # the anchor's group (equity) is ordered
    rows = result.fit_info["model_summary"]["group_parameters"]
    assert all(row["lower"] is None and row["upper"] is None for row in rows)
    json.dumps(result.summary())
