"""Stateless HMM inference shared by every regime model.

All functions take log-space inputs: ``log_initial`` (K,), ``log_transition`` (K, K) or
(T-1, K, K) (row i = from state i; entry t moves z_t to z_{t+1}) and ``log_emission``
(T, K), where a missing observation is a row of zeros.

The PyTensor Ops (``hmm_log_likelihood``, ``HMMLogLikelihoodOp``,
``indexed_log_likelihood`` for moves drawn from a bank of matrices,
``stationary_distribution``) are imported on first access, so numpy-only users do not pay
the ~1 s PyTensor import.
"""

from regime_model.inference.draws import fixed_lag_draws, hmm_filter_draws, hmm_smoother_draws
from regime_model.inference.forecast import hmm_forecast
from regime_model.inference.forward_backward import (
    HMMFilterResult,
    HMMGradient,
    HMMSmootherResult,
    hmm_filter,
    hmm_loglik_and_grad,
    hmm_smoother,
)
from regime_model.inference.sampling import hmm_posterior_sample, sample_markov_path

__all__ = [
    "HMMFilterResult",
    "HMMGradient",
    "HMMLogLikelihoodOp",
    "HMMSmootherResult",
    "fixed_lag_draws",
    "hmm_filter",
    "hmm_filter_draws",
    "hmm_smoother_draws",
    "hmm_forecast",
    "hmm_log_likelihood",
    "hmm_loglik_and_grad",
    "hmm_posterior_sample",
    "hmm_smoother",
    "indexed_log_likelihood",
    "sample_markov_path",
    "stationary_distribution",
]

_PYTENSOR_NAMES = {
    "HMMLogLikelihoodOp": "pytensor_op",
    "hmm_log_likelihood": "pytensor_op",
    "indexed_log_likelihood": "pytensor_op",
    "stationary_distribution": "stationary",
}


def __getattr__(name: str):
    if name in _PYTENSOR_NAMES:
        import importlib

        module = importlib.import_module(f"regime_model.inference.{_PYTENSOR_NAMES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
