"""Bayesian HMM with time-varying transition probabilities driven by lagged covariates.

The family is :class:`~regime_model.models.BayesianHMM`'s emissions composed with the
covariate-logit transition component (:class:`~regime_model.models.transitions.
CovariateLogit`, whose docstring gives the link and the priors); the covariates are
prepared by :mod:`regime_model.models.covariates` and its reports live in
:mod:`regime_model.models.covariate_link`. Covariates drive transitions only, never
emissions; the transition into date t uses the value known on date t-1.

The reported ``transition`` (and so ``RegimeResult.transition_matrix()``,
``expected_durations()`` and ``forecast()``) is the matrix at average covariates (x = 0);
:func:`time_varying_durations` gives the expected durations implied by each date's
covariates, recomputed from a saved run.
"""

from __future__ import annotations

from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.covariate_link import (
    SUMMARY_HDI,
    coefficient_table,
    duration_draws,
    model_summary,
    move_labels,
    time_varying_durations,
)
from regime_model.models.covariates import (
    CONSTANT_GROUP,
    COVARIATE_VARIABLE,
    EXTREME_Z,
    extreme_covariate_warnings,
)
from regime_model.models.transitions import DEFAULT_COEFFICIENT_SCALE

__all__ = [
    "CONSTANT_GROUP",
    "COVARIATE_VARIABLE",
    "DEFAULT_COEFFICIENT_SCALE",
    "EXTREME_Z",
    "SUMMARY_HDI",
    "TVTPHMM",
    "coefficient_table",
    "duration_draws",
    "extreme_covariate_warnings",
    "model_summary",
    "move_labels",
    "time_varying_durations",
]


class TVTPHMM(BayesianHMM):
    """Bayesian HMM whose transition matrix depends on lagged covariates.

    Parameters as :class:`BayesianHMM`; ``covariates`` (feature columns that drive the
    transitions, at least one) are required, ``coefficient_scale`` is the prior sd of
    each coefficient per standard deviation of its covariate, and ``stickiness`` sets the
    intercepts' prior.
    """

    name = "tvtp"
    covariates_allowed = True
    covariates_required = True
