"""The choices of the models' options, defined once, in a module the CLI reads without
importing the models (PyMC takes seconds to import, and ``regime --help`` should not).

The models validate against these; a test checks that the registries they name
(``regime_model.models.MODELS``, ``regime_model.models.samplers.SAMPLERS``) have exactly
these keys, in this order.
"""

from __future__ import annotations

MODEL_NAMES = ("bayes-hmm", "em-hmm", "hierarchical", "tvtp", "leadlag")
EMISSIONS = ("gaussian", "student-t")
SWITCHING = ("both", "mean", "variance")
COVARIANCES = ("diag", "full")
ORDER_BY = ("mean", "volatility")
IDENTIFICATIONS = ("relabelled", "ordered")  # the first is every Bayesian family's default
INITIALS = ("stationary", "dirichlet")
SAMPLER_NAMES = ("nuts", "nutpie", "map", "advi")
