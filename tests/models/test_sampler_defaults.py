"""The tuning length each sampler gets by default, and the convergence statistics
computed without ArviZ's per-process numba compilation."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
from arviz.utils import Numba

from regime_model.choices import DEFAULT_TUNE
from regime_model.models import BayesianHMM
from regime_model.models.diagnostics import convergence
from regime_model.models.event_study import EventStudy


@pytest.mark.parametrize(("sampler", "steps"), [("nutpie", 300), ("nuts", 1000)])
def test_each_sampler_tunes_for_its_own_default_unless_told(sampler, steps):
    assert DEFAULT_TUNE[sampler] == steps
    default = BayesianHMM(2, sampler=sampler)
    assert default.tune is None  # the setting as given (scikit-learn convention)
    assert default.tuning_steps == steps
    assert BayesianHMM(2, sampler=sampler, tune=37).tuning_steps == 37
    assert BayesianHMM(2, sampler=sampler, tune=0).tuning_steps == 0


def test_a_negative_tune_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="tune must be an integer >= 0"):
        BayesianHMM(2, tune=-1)


def test_the_event_study_keeps_pymc_nuts_tuning_by_default():
    assert EventStudy().tune is None  # resolved to DEFAULT_TUNE["nuts"] when sampling
    assert DEFAULT_TUNE["nuts"] == 1000


def test_convergence_matches_arviz_and_leaves_its_numba_flag_alone():
    rng = np.random.default_rng(0)
    # Two chains stuck apart in one variable: R-hat far above 1, ESS small.
    stuck = rng.normal(size=(4, 500)) + np.array([0.0, 0.0, 3.0, 3.0])[:, None]
    data = az.from_dict(posterior={"mixed": rng.normal(size=(4, 500)), "stuck": stuck})
    before = Numba.numba_flag
    statistics = convergence(data, ["mixed", "stuck"])
    assert Numba.numba_flag == before
    assert statistics["max_rhat"] == pytest.approx(float(az.rhat(data).to_array().max()))
    assert statistics["max_rhat"] > 1.5
    bulk = float(az.ess(data, method="bulk").to_array().min())
    tail = float(az.ess(data, method="tail").to_array().min())
    assert statistics["min_ess_bulk"] == pytest.approx(bulk)
    assert statistics["min_ess_tail"] == pytest.approx(tail)
    assert statistics["min_ess_bulk"] < 50
