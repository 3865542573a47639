"""Markov-switching autoregression in Hamilton's mean-adjusted form, as an HMM on regime
histories.

    y_t - mu[s_t] = sum_{i=1..p} phi[s_t, i] (y_{t-i} - mu[s_{t-i}]) + e_t,
    e_t ~ Normal(0, sigma[s_t]^2)

The density of y_t depends on the last p + 1 regimes, so the chain the kernel runs on is
the history h_t = (s_t, s_{t-1}, ..., s_{t-p}): K^(p+1) states, numbered with s_t the most
significant digit (:func:`regime_histories`). A history can only move to one that shifts
it by a step, h_t = (s_t, h_{t-1}[:-1]), with probability P[s_{t-1}, s_t]; every other
entry of its transition matrix is a structural zero (-inf in log space), which the
forward-backward kernel handles exactly. The likelihood conditions on the first p
observations, as Hamilton (1989), E-views, Stata and statsmodels do: the first modelled
date is t = p, and the histories' starting distribution is the regime chain's stationary
joint law of p + 1 consecutive regimes (with covariate-driven transitions: the stationary
law of the first period's matrix, moved forward through the first periods' matrices, as
statsmodels does).

Everything here is written once in PyTensor, so the same graph builds the PyMC model and
evaluates fixed parameters (``.eval()``); the gradient comes from the kernel Op and
PyTensor's differentiation of these gathers.

Shapes: ``y`` (T,) one series; ``mean`` (K,); ``ar`` (K, p) (switching) or (p,) (shared);
``sigma`` (K,) or (); ``log_transition`` (K, K) or (n, K, K) with rows the regime moved
from. S = K^(p+1) histories, T' = T - p modelled dates.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor import TensorVariable

from regime_model.models.emissions import normal_log_density


def regime_histories(n_regimes: int, order: int) -> np.ndarray:
    """(S, p + 1) ints: row h is the history (s_t, s_{t-1}, ..., s_{t-p}) of state h."""
    return np.array(list(itertools.product(range(n_regimes), repeat=order + 1)), dtype=int)


def lag_matrix(y: np.ndarray, order: int) -> np.ndarray:
    """(T,) -> (T - p, p + 1): row t holds (y_{t+p}, y_{t+p-1}, ..., y_t)."""
    y = np.asarray(y, dtype=float)
    n_modelled = len(y) - order
    if n_modelled < 1:
        raise ValueError(f"an AR({order}) needs more than {order} dates, not {len(y)}")
    return np.column_stack([y[order - lag : order - lag + n_modelled] for lag in range(order + 1)])


def history_log_transition(log_transition: TensorVariable, n_regimes: int, order: int):
    """(..., K, K) regime log transitions -> (..., S, S) history log transitions.

    Entry [a, b] is log P[a_0, b_0] when b = (b_0, a_0, ..., a_{p-1}), else -inf."""
    histories = regime_histories(n_regimes, order)
    shifts = (histories[None, :, 1:] == histories[:, None, :-1]).all(axis=-1)  # (S, S)
    log_transition = pt.as_tensor(log_transition)
    moves = log_transition[..., histories[:, 0][:, None], histories[:, 0][None, :]]
    return pt.where(shifts, moves, -np.inf)


def history_log_initial(
    log_stationary: TensorVariable, log_transitions: TensorVariable, n_regimes: int, order: int
) -> TensorVariable:
    """(S,) log probabilities of the first modelled history (s_p, ..., s_0).

    ``log_stationary`` (K,) is the law of the oldest regime s_0 and ``log_transitions``
    (p, K, K) the p moves that follow it (the same matrix p times for a homogeneous chain):
    log P(h) = log pi[s_0] + sum_i log P_i[s_{i-1}, s_i]."""
    histories = regime_histories(n_regimes, order)
    log_probability = pt.as_tensor(log_stationary)[histories[:, order]]
    for step in range(order):  # the move from s_step to s_{step+1}
        older, newer = histories[:, order - step], histories[:, order - step - 1]
        log_probability = log_probability + log_transitions[step][older, newer]
    return log_probability


def mean_adjusted_log_emission(
    lags: np.ndarray, mean, ar, sigma, n_regimes: int, order: int
) -> TensorVariable:
    """(T', S) log densities of each modelled date under each history.

    ``lags`` (T', p + 1) from :func:`lag_matrix`; ``ar`` (K, p) switching or (p,) shared;
    ``sigma`` (K,) switching or () shared."""
    histories = regime_histories(n_regimes, order)
    mean, ar, sigma = (pt.as_tensor(value) for value in (mean, ar, sigma))
    current = histories[:, 0]
    deviations = pt.as_tensor(lags)[:, None, :] - mean[histories][None, :, :]  # (T', S, p+1)
    coefficients = ar[current] if ar.ndim == 2 else pt.broadcast_to(ar, (len(histories), order))
    residual = deviations[:, :, 0] - (coefficients[None] * deviations[:, :, 1:]).sum(axis=-1)
    scale = sigma[current] if sigma.ndim == 1 else pt.broadcast_to(sigma, (len(histories),))
    return normal_log_density(residual, scale[None])


def regime_marginals(history_probabilities: np.ndarray, n_regimes: int, order: int):
    """(..., S) probabilities of histories -> (..., K) of the current regime s_t."""
    shape = history_probabilities.shape[:-1] + (n_regimes, n_regimes**order)
    return np.asarray(history_probabilities).reshape(shape).sum(axis=-1)
