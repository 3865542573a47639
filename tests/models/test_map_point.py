"""The MAP point on stored NUMBA functions is pymc.find_MAP's point: the same search
(L-BFGS-B from the same start on the log density without Jacobians), so the same
optimum, for every free variable and deterministic; a start where the log density is not
finite is refused as PyMC refuses it."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from pymc.exceptions import SamplingError

from regime_model.data.synthetic import simulate_tvtp_features
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.map_point import map_point


@pytest.fixture(scope="module")
def hmm():
    features, _ = simulate_tvtp_features(200, seed=2)
    estimator = BayesianHMM(2, sampler="map", seed=0, progressbar=False)
    observations = estimator.observations(features, ["eq_return", "crypto_return"])
    composition, model, _ = estimator.compose(observations)
    start = estimator.initial_estimate(observations)
    # A start away from the EM optimum, so the search has work to do.
    point = composition.starts(start, observations, 1, 0)[0]
    point = {name: np.asarray(value) * 0.8 for name, value in point.items()}
    return model, point


def test_the_point_is_pymcs_find_map(hmm):
    model, start = hmm
    ours = map_point(model, start)
    with model:
        theirs = pm.find_MAP(start=start, progressbar=False)
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-6, atol=1e-8, err_msg=name)
    # and it is a better point than the start
    logp = model.compile_logp(jacobian=False)
    names = [value.name for value in model.value_vars]
    before = {**model.initial_point(), **start}
    assert logp({n: ours[n] for n in names}) > logp({n: before[n] for n in names}) + 1.0


def test_a_start_with_an_impossible_log_density_is_refused(hmm):
    model, start = hmm
    name = next(name for name in start if "scale" in name)
    with pytest.raises(SamplingError, match="not finite"):
        map_point(model, {**start, name: np.full_like(start[name], np.inf)})
