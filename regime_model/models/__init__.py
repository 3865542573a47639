"""Regime models: estimators whose ``fit`` returns the fitted model, with its
:class:`~regime_model.results.RegimeResult` in ``result_``
(:mod:`~regime_model.models.estimator`).

:func:`model_from_config` is the one place where a configuration (from the CLI or a saved
``config.json``) becomes a model object.
"""

from __future__ import annotations

from typing import Any

from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.em_hmm import EMHMM
from regime_model.models.hierarchical import HierarchicalHMM
from regime_model.models.leadlag import LeadLagHMM
from regime_model.models.tvtp import TVTPHMM
from regime_model.models.two_scale import TwoScaleHMM

MODELS = {
    "bayes-hmm": BayesianHMM,
    "em-hmm": EMHMM,
    "hierarchical": HierarchicalHMM,
    "tvtp": TVTPHMM,
    "leadlag": LeadLagHMM,
    "two-scale": TwoScaleHMM,
}

__all__ = [
    "MODELS",
    "BayesianHMM",
    "EMHMM",
    "HierarchicalHMM",
    "LeadLagHMM",
    "TVTPHMM",
    "TwoScaleHMM",
    "model_from_config",
]


def model_from_config(config: dict[str, Any]) -> BayesianHMM | EMHMM:
    """Build the model a config dict describes (``model`` key plus its hyperparameters)."""
    config = dict(config)
    name = config.pop("model")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**config)
