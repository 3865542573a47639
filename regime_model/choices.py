"""The choices of the models' options, defined once, in a module the CLI reads without
importing the models (PyMC takes seconds to import, and ``regime --help`` should not).

The models validate against these; a test checks that the registries they name
(``regime_model.models.MODELS``, ``regime_model.models.samplers.SAMPLERS``) have exactly
these keys, in this order.
"""

from __future__ import annotations

MODEL_NAMES = ("bayes-hmm", "em-hmm", "hierarchical", "tvtp", "leadlag", "two-scale")
EMISSIONS = ("gaussian", "student-t")
AR_FORMS = ("intercept", "mean-adjusted")  # autoregressive emissions (models/ar_emissions.py)
AR_MATRICES = ("diagonal", "full")  # each feature on its own lags, or a VAR(1)
SWITCHING = ("both", "mean", "variance")
COVARIANCES = ("diag", "full")
ORDER_BY = ("mean", "volatility")
IDENTIFICATIONS = ("relabelled", "ordered")  # the first is every Bayesian family's default
INITIALS = ("stationary", "dirichlet", "stationary-first")
SAMPLER_NAMES = ("nuts", "nutpie", "map", "advi")
# The two-scale model (models/two_scale.py): its coarse calendar (months, quarters,
# weeks), how its coarse regimes are named on their anchor (the highest mean risk_on, or
# the lowest: spreads), and how a fine chain enters a new coarse period.
COARSE_FREQUENCIES = ("M", "Q", "W")
COARSE_ORDERS = ("mean", "inverse")
FINE_ENTRIES = ("carry", "restart")
# Tuning steps per chain when ``tune`` is not given: each sampler's own default. nutpie
# adapts its mass matrix from gradients as well as draws and settles in a few hundred
# steps (300 is its default); PyMC's NUTS adapts from draws only and needs its 1000.
# Measured on every family, the daily and the synthetic benchmark (docs/performance.md).
DEFAULT_TUNE = {"nutpie": 300, "nuts": 1000}


def tuning_steps(tune: int | None, sampler: str) -> int:
    """``tune`` if given, else ``sampler``'s default (0 for samplers that do not tune)."""
    return tune if tune is not None else DEFAULT_TUNE.get(sampler, 0)
