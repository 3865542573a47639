"""regime-model: Bayesian regime inference across small caps, flows and crypto.

from regime_model import BayesianHMM, load_run
model = BayesianHMM(n_regimes=2).fit(frame)      # a DataFrame with a DatetimeIndex
model.predict_proba(frame)                       # P(regime) per date, filtered
model.filter(new_rows)                           # appended dates, no refit
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regime-model")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# Imported on first use (PEP 562): the models pull in PyMC, which the CLI's argument
# checks and `regime --help` should not wait for.
_LAZY = {
    "BayesianHMM": "regime_model.models",
    "EMHMM": "regime_model.models",
    "HierarchicalHMM": "regime_model.models",
    "LeadLagHMM": "regime_model.models",
    "TVTPHMM": "regime_model.models",
    "load_run": "regime_model.models.estimator",
    "FilteredDates": "regime_model.models.estimator",
    "RegimeResult": "regime_model.results",
    "FeatureSet": "regime_model.data.features",
    "read_features": "regime_model.data.features",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'regime_model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
