"""One contract for every Bayesian family (the CONFIGS pattern of dynamax's
test_models.py): on data with a known regime path, a small default fit recovers the path,
its labels are consistent and named risk_off -> risk_on as the generating regimes are,
its posterior means lie inside their bands, and a saved run loads back the same. A new
family is one row of ``CONFIGS``; permutation invariance of each family's log density is
in test_permutation_invariance.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from regime_model.data.features import FeatureSet
from regime_model.data.synthetic import (
    simulate_lead_lag_features,
    simulate_pooled_features,
    simulate_tvtp_features,
    simulate_two_scale_features,
)
from regime_model.models import model_from_config
from regime_model.models.diagnostics import MAX_MEAN_OUTSIDE_BAND
from regime_model.models.estimator import load_run
from regime_model.results import RegimeResult

SMALL = {"draws": 200, "tune": 200, "chains": 2, "cores": 1, "seed": 5, "progressbar": False}


@dataclass(frozen=True)
class Config:
    """A family, its data and how to read its true path off the data's truth."""

    config: dict[str, Any]
    simulate: Any  # () -> (features, truth)
    states: Any  # truth -> (T,) true states in the result's state order
    columns: list[str] | None = None
    min_accuracy: float = 0.9


def _lead_lag_states(truth) -> np.ndarray:
    return truth.lead_regimes * 2 + truth.lag_regimes  # lead-major product states


def _two_scale_states(truth) -> np.ndarray:
    return truth.coarse * 4 + truth.fine[:, 0] * 2 + truth.fine[:, 1]  # coarse-major states


def _with_driver(simulated):
    """A lead-lag world plus a covariate (a persistent AR(1) series, group macro) that
    drives nothing: the covariate-driven family must still recover both chains."""
    features, truth = simulated
    rng = np.random.default_rng(11)
    driver = np.zeros(len(features.frame))
    for t in range(1, len(driver)):
        driver[t] = 0.9 * driver[t - 1] + rng.standard_normal()
    frame = features.frame.assign(driver=driver)
    return FeatureSet(frame, {**features.groups, "driver": "macro"}, features.freq), truth


def _ms_ar_world(mean_adjusted: bool = False):
    """An i.i.d. return and an AR(1) level whose drift (or, ``mean_adjusted``, level)
    switches (test_ar_emissions.py); the truth is the path itself."""
    from test_ar_emissions import TRUE_INTERCEPT, TRUE_LEVEL, simulate_ms_ar

    levels = TRUE_LEVEL if mean_adjusted else TRUE_INTERCEPT
    return simulate_ms_ar(300, seed=8, intercepts=levels, mean_adjusted=mean_adjusted)


CONFIGS = {
    "bayes-hmm": Config(
        {"model": "bayes-hmm"},
        lambda: simulate_tvtp_features(300, seed=7),
        lambda truth: truth.regimes,
        columns=["eq_return", "crypto_return"],
    ),
    "bayes-hmm-ar": Config(
        {"model": "bayes-hmm", "ar_order": 1, "ar_columns": ["level"]},
        lambda: _ms_ar_world(),
        lambda truth: truth,
    ),
    "bayes-hmm-ar-mean-adjusted": Config(
        {"model": "bayes-hmm", "ar_order": 1, "ar_columns": ["level"], "ar_form": "mean-adjusted"},
        lambda: _ms_ar_world(mean_adjusted=True),
        lambda truth: truth,
    ),
    "tvtp": Config(
        {"model": "tvtp", "covariates": ["breadth_change", "spread_change"]},
        lambda: simulate_tvtp_features(300, seed=7),
        lambda truth: truth.regimes,
        columns=["eq_return", "crypto_return"],
    ),
    "hierarchical": Config(
        {"model": "hierarchical"},
        lambda: simulate_pooled_features(300, seed=3),
        lambda truth: truth.regimes,
    ),
    "leadlag": Config(
        {"model": "leadlag", "lag": 1},
        lambda: simulate_lead_lag_features(300, lag=1, seed=3),
        _lead_lag_states,
        min_accuracy=0.8,  # four product states, each chain's own errors add up
    ),
    "two-scale": Config(
        {"model": "two-scale", "coarse_columns": ["liquidity"]},
        lambda: simulate_two_scale_features(300, seed=4),
        _two_scale_states,
        min_accuracy=0.8,  # eight product states: each scale's own errors add up
    ),
    "leadlag-marginal-lag": Config(
        {"model": "leadlag", "lag": [0, 1, 2]},
        lambda: simulate_lead_lag_features(300, lag=1, seed=3),
        _lead_lag_states,
        min_accuracy=0.8,
    ),
    "leadlag-covariates": Config(
        {"model": "leadlag", "lag": 1, "covariates": ["driver"]},
        lambda: _with_driver(simulate_lead_lag_features(300, lag=1, seed=3)),
        _lead_lag_states,
        min_accuracy=0.8,
    ),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def fitted(request):
    spec = CONFIGS[request.param]
    features, truth = spec.simulate()
    model = model_from_config({**spec.config, **SMALL}).fit(features, spec.columns)
    return spec, truth, model.result_, model


def test_the_default_identification_is_relabelled(fitted):
    _, _, result, _ = fitted
    assert result.config["identification"] == "relabelled"
    assert result.fit_info["labels"]["method"] == "stephens-kl"


def test_the_fit_recovers_the_path_and_names_it_as_generated(fitted):
    spec, truth, result, _ = fitted
    states = spec.states(truth)[-len(result.dates) :]
    path = result.probabilities.smoothed.mean(axis=0).argmax(axis=1)
    assert (path == states).mean() >= spec.min_accuracy  # the identity, not any permutation
    best = max(
        (np.asarray(perm)[path] == states).mean()
        for perm in itertools.permutations(range(result.probabilities.smoothed.shape[2]))
    )
    assert best == (path == states).mean()


def test_labels_are_consistent_and_means_lie_in_their_bands(fitted):
    _, _, result, _ = fitted
    diagnostics = result.diagnostics()
    assert diagnostics["labels_consistent"], diagnostics["failures"]
    assert diagnostics["mean_outside_band_share"] <= MAX_MEAN_OUTSIDE_BAND
    assert result.fit_info["labels"]["discordant_share"] == 0.0


def test_a_saved_run_loads_back_the_same(fitted, tmp_path):
    _, _, result, _ = fitted
    loaded = RegimeResult.load(result.save(tmp_path / "run"))
    assert loaded.regime_names == result.regime_names
    for kind in ("filtered", "smoothed"):
        np.testing.assert_array_equal(
            getattr(loaded.probabilities, kind), getattr(result.probabilities, kind)
        )
    np.testing.assert_array_equal(
        loaded.inference_data.posterior["transition"].to_numpy(),
        result.inference_data.posterior["transition"].to_numpy(),
    )
    assert loaded.diagnostics()["verdict"] == result.diagnostics()["verdict"]


def test_the_fitted_model_reads_its_data_and_appended_dates_as_its_result(fitted, tmp_path):
    """predict_proba of the fitted data is the result's (same draws, same pass); a run
    loaded from disk filters appended dates exactly as the model in memory, without
    sampling (the composition is rebuilt from the stored inputs, not stored)."""
    spec, _, result, model = fitted
    for kind in ("filtered", "smoothed"):
        means = model.predict_proba(kind=kind)
        expected = result.regime_probabilities(kind).xs("mean", axis=1, level="statistic")
        np.testing.assert_allclose(means.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    loaded = load_run(result.save(tmp_path / "run"))
    # The same settings, with what the fit resolved (anchors left to the default) as the
    # run recorded it.
    settings = {k: v for k, v in model.get_config().items() if v is not None}
    assert settings.items() <= loaded.get_config().items()
    inputs = model.inputs_.frame
    later = inputs.iloc[-20:].set_axis(inputs.index[-20:] + (inputs.index[-1] - inputs.index[-21]))
    appended = pd.concat([inputs, later])
    ours, theirs = model.filter(appended), loaded.filter(later)
    assert len(ours.dates) == 20 and ours.dates.equals(theirs.dates)
    np.testing.assert_allclose(theirs.filtered, ours.filtered, rtol=0, atol=1e-10)
    np.testing.assert_allclose(theirs.pointwise_loglik, ours.pointwise_loglik, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("name", "emission"),
    [*((name, {}) for name in CONFIGS), ("bayes-hmm", {"covariance": "full"}),
     ("bayes-hmm", {"emission": "student-t"}),
     *((name, {"ar_matrix": "full", "ar_columns": ["eq_return", "level"]})
       for name in ("bayes-hmm-ar", "bayes-hmm-ar-mean-adjusted"))],
)  # fmt: skip
def test_the_kernel_inputs_vectorise_over_draws(name, emission):
    """Every family's kernel-input graph (and every emission's) takes a leading axis of
    posterior draws, so the pass over all draws is one compiled call per chunk, not a
    Python loop over draws (posterior_pass.kernel_input_chunks falls back to that loop
    when PyTensor cannot vectorise a node: set_subtensor in the AR coefficients, in
    LKJCorr's matrix and in the full-covariance rows were three)."""
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    spec = CONFIGS[name]
    features, _ = spec.simulate()
    estimator = model_from_config({**spec.config, **emission, "progressbar": False})
    _, model, graphs = estimator.compose(estimator.observations(features, spec.columns))
    batched = {
        rv: pt.tensor(f"{rv.name}_draws", shape=(None, *rv.type.shape), dtype=rv.dtype)
        for rv in model.free_RVs
    }
    outputs = vectorize_graph(list(graphs.inputs), batched)
    assert all(output.type.ndim == value.type.ndim + 1 for output, value in zip(
        outputs, graphs.inputs, strict=True
    ))  # fmt: skip


@pytest.mark.parametrize("with_bands", [False, True])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_batched_pass_over_draws_is_the_per_draw_pass(name, with_bands):
    """Every family's ``draw_quantities`` (the post-processing's compiled pass over many
    draws, with or without bands) gives each draw's per-date quantities and forecast paths
    as ``date_quantities`` gives them one draw at a time, at two different points."""
    spec = CONFIGS[name]
    features, _ = spec.simulate()
    estimator = model_from_config({**spec.config, "progressbar": False})
    composition, model, graphs = estimator.compose(estimator.observations(features, spec.columns))
    evaluate = model.compile_fn(
        model.replace_rvs_by_values(list(graphs.inputs)),
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    rng = np.random.default_rng(3)
    points = [
        {name: value + 0.3 * rng.standard_normal(np.shape(value))
         for name, value in model.initial_point().items()}
        for _ in range(2)
    ]  # fmt: skip
    per_draw = [evaluate(point) for point in points]
    stacked = tuple(np.stack(values) for values in zip(*per_draw, strict=True))
    answer = composition.draw_quantities(stacked, with_bands)
    assert answer is not None, f"{name}: no batched pass with_bands={with_bands}"
    batched, paths = answer
    for draw, inputs in enumerate(per_draw):
        single, extra = composition.date_quantities(tuple(inputs), with_bands)
        for kind in ("filtered", "smoothed", "predicted", "pointwise_loglik"):
            expected = getattr(single, kind)
            if expected is None:
                assert getattr(batched, kind) is None
                continue
            np.testing.assert_allclose(
                getattr(batched, kind)[draw], expected, rtol=0, atol=1e-9, err_msg=kind
            )
        if extra is None:
            assert paths is None
        else:
            np.testing.assert_allclose(paths[draw], extra, rtol=0, atol=1e-10)
