"""Warm starts: a fit started from an earlier fit's end samples the same posterior (the
sampler's linear rescaling changes nothing but its geometry), tunes less, and ignores a
warm start of another model structure; the state round-trips as plain data."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from regime_model.models import BayesianHMM
from regime_model.models.warm_start import WARM_TUNE, WarmStart
from tests.test_models import simulate_hmm

SETTINGS = dict(draws=600, chains=2, seed=3, progressbar=False)


@pytest.fixture(scope="module")
def cold():
    features, _ = simulate_hmm(400, seed=1)
    return features, BayesianHMM(2, **SETTINGS).fit(features)


def _summary(model) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd of every emission mean and scale and the transitions."""
    posterior = model.result_.inference_data.posterior
    draws = np.concatenate(
        [
            posterior[name].to_numpy().reshape(-1, int(np.prod(posterior[name].shape[2:])))
            for name in ("emission_mean", "emission_scale", "transition")
        ],
        axis=1,
    )
    return draws.mean(axis=0), draws.std(axis=0)


def test_the_state_round_trips_as_plain_data_and_refuses_what_is_not_one(cold):
    state = cold[1].warm_state_
    assert state.points.shape == (2, len(state.scale))
    assert (state.scale > 0).all() and state.step_size > 0
    again = WarmStart.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.layout == state.layout
    np.testing.assert_array_equal(again.points, state.points)
    np.testing.assert_array_equal(again.scale, state.scale)
    broken = state.to_dict()
    broken["scale"] = broken["scale"][:-1]
    with pytest.raises(ValueError, match="not a warm start"):
        WarmStart.from_dict(broken)
    with pytest.raises(ValueError, match="not a warm start"):
        WarmStart.from_dict({**state.to_dict(), "step_size": -1.0})
    with pytest.raises(ValueError, match="not a warm start"):
        WarmStart.from_dict({"points": [[0.0]]})


@pytest.mark.parametrize("scale_factor", [1.0, 5.0])
def test_a_warm_started_fit_samples_the_same_posterior(cold, scale_factor):
    """From the cold fit's end, with its scales as they are or five times too wide (a
    wrong rescaling is only worse geometry): the posterior agrees with the cold fit's
    within Monte Carlo error (0.35 posterior sd: about five standard errors of the
    difference of two means at these ESS), with WARM_TUNE tuning steps."""
    features, model = cold
    state = model.warm_state_
    start = replace(state, scale=state.scale * scale_factor)
    warm = BayesianHMM(2, **SETTINGS).fit(features, warm_start=start)
    info = warm.result_.fit_info
    assert info["warm_started"] is True and info["tuning_steps"] == WARM_TUNE
    assert warm.result_.diagnostics()["verdict"] == "pass"
    mean, sd = _summary(model)
    warm_mean, _ = _summary(warm)
    assert np.abs(warm_mean - mean).max() / sd.max() < 0.35
    assert (np.abs(warm_mean - mean) < 0.35 * sd + 1e-9).all()


def test_a_warm_start_of_another_structure_is_ignored(cold):
    features, model = cold
    three = BayesianHMM(3, **{**SETTINGS, "draws": 100}).fit(features, warm_start=model.warm_state_)
    info = three.result_.fit_info
    assert info["warm_started"] is False and info["tuning_steps"] == 300
