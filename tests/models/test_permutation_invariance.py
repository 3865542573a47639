"""Relabelling is exact only if the log density (prior and likelihood) is the same at a
point and at every permutation of it that the family allows. Checked per family on its
sampled variables, through the family's composition's ``permute``; and the lead-lag model's
restriction to chain reversals is checked to be needed."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from pymc.model.transform.conditioning import remove_value_transforms

from regime_model.evaluation.sbc import CalibrationSpec, simulation_template
from regime_model.models import model_from_config
from regime_model.models.relabelling import all_permutations, permute_point

FAMILIES = {
    "bayes-hmm": {"model": "bayes-hmm", "n_regimes": 3},
    "bayes-hmm-student-t": {"model": "bayes-hmm", "n_regimes": 2, "emission": "student-t"},
    "bayes-hmm-full": {"model": "bayes-hmm", "n_regimes": 2, "covariance": "full"},
    "bayes-hmm-dirichlet-initial": {"model": "bayes-hmm", "n_regimes": 3, "initial": "dirichlet"},
    "tvtp": {"model": "tvtp", "n_regimes": 3, "covariates": ["driver"]},
    "leadlag": {"model": "leadlag", "n_regimes": 2, "lag": 1},
    "leadlag-3": {"model": "leadlag", "n_regimes": 3, "lag": 0},
    "leadlag-marginal-lag": {"model": "leadlag", "n_regimes": 2, "lag": [0, 2]},
    "leadlag-covariates": {"model": "leadlag", "n_regimes": 2, "lag": 2, "covariates": ["x"]},
    "two-scale": {"model": "two-scale", "coarse_columns": ["liquidity"]},
    "two-scale-restart-3": {
        "model": "two-scale",
        "coarse_columns": ["liquidity"],
        "coarse_regimes": 3,
        "fine_entry": "restart",
        "emission": "student-t",
    },
}


def _model_and_point(config: dict, seed: int):
    """(composition, PyMC model without value transforms, a prior draw of its free
    variables)."""
    family = model_from_config({**config, "standardise": False})
    # 200 weeks: 45 month ends, enough for a two-scale model with three coarse regimes.
    template, columns = simulation_template(CalibrationSpec(config, 1, 200, n_series=4), seed)
    observations = family.observations(template, columns)
    composition, model, _ = family.compose(observations)
    model = remove_value_transforms(model)
    names = [rv.name for rv in model.free_RVs]
    values = pm.draw([model[name] for name in names], random_seed=seed)
    return composition, model, dict(zip(names, values, strict=True))


def _log_density(model: pm.Model, point: dict) -> float:
    return float(model.compile_logp()(point))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_log_density_is_invariant_under_every_allowed_permutation(name):
    composition, model, point = _model_and_point(FAMILIES[name], seed=1)
    reference = _log_density(model, point)
    assert np.isfinite(reference)
    candidates = composition.label_candidates()
    if candidates is None:
        candidates = all_permutations(composition.n_regimes)
    assert len(candidates) > 1
    moved = 0
    for perm in candidates[1:]:
        permuted = permute_point(point, perm[None], composition.permute)
        moved += any(not np.allclose(permuted[key], point[key]) for key in point)
        assert _log_density(model, permuted) == pytest.approx(reference, rel=1e-9, abs=1e-8)
    assert moved == len(candidates) - 1  # every permutation changed the point


def test_lead_lag_prior_is_not_invariant_under_other_permutations():
    # K = 3: swapping two regimes of a chain (not a reversal) changes what "upward" means.
    composition, model, point = _model_and_point(FAMILIES["leadlag-3"], seed=2)
    allowed = {tuple(perm) for perm in composition.label_candidates()}
    swap_lag = np.array([1, 0, 2])
    perm = (np.arange(3)[:, None] * 3 + swap_lag[None, :]).ravel()
    assert tuple(perm) not in allowed
    point["coupling_enter"] = np.asarray(1.5)  # a coupling the permutation cannot carry
    reference = _log_density(model, point)
    permuted = permute_point(point, perm[None], composition.permute)
    assert abs(_log_density(model, permuted) - reference) > 1e-3
