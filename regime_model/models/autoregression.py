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
observations, as Hamilton (1989), E-views, Stata and statsmodels do.

In a fitted model (:class:`~regime_model.models.composition.Regimes` with an
:class:`~regime_model.models.ar_emissions.AutoregressiveEmissions` of
``form="mean-adjusted"``) the history chain runs over all T dates: date 0's history is
(s_0, s_{-1}, ..., s_{-p}), its oldest regime drawn from the model's ``initial`` and the
p moves before the sample made by the first transition matrix; on the first p dates an
autoregressive feature contributes nothing (its lags are not observed). With the
stationary initial distribution and homogeneous transitions, the history at date p then
follows the stationary joint law of p + 1 consecutive regimes, so the likelihood of dates
p..T-1 is Hamilton's exactly; the regime probabilities come back to K regimes by summing
out the older regimes (:func:`regime_marginals`). Other features of the same model are
i.i.d. Gaussians of the current regime and count from date 0.

Everything here is written once in PyTensor, so the same graph builds the PyMC model and
evaluates fixed parameters (``.eval()``); the density over histories is a compiled Op with
its exact gradient (:mod:`~regime_model.models.autoregressive_densities`), the transitions are
gathers PyTensor differentiates.

Shapes: ``values``, ``observed`` (T, D); ``mean``, ``sigma`` (K, D); ``coefficients``
(K, p, A) switching or (p, A) shared, for A autoregressive features ((K, p, A, A) or
(p, A, A) for a VAR's full matrix, :func:`autoregressive_log_density`); ``log_transition``
(K, K) or (n, K, K) with rows the regime moved from. S = K^(p+1) histories.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor import TensorVariable

from regime_model.models.autoregressive_densities import autoregressive_density


def regime_histories(n_regimes: int, order: int) -> np.ndarray:
    """(S, p + 1) ints: row h is the history (s_t, s_{t-1}, ..., s_{t-p}) of state h."""
    return np.array(list(itertools.product(range(n_regimes), repeat=order + 1)), dtype=int)


def ar_links(features: np.ndarray, full: bool = False) -> np.ndarray:
    """(L, 2) (target, source) feature pairs the AR coefficients sit on: (d, d) for each
    autoregressive feature, or, with ``full`` (a VAR's full matrix), every pair (d, e) of
    them, row by row (the order of a (A, A) coefficient matrix flattened)."""
    features = np.asarray(features, dtype=int)
    if full:
        return np.array([(d, e) for d in features for e in features], dtype=int).reshape(-1, 2)
    return np.stack([features, features], axis=1)


def lagged_values(values: np.ndarray, observed: np.ndarray, order: int, links: np.ndarray):
    """(lags (T, p, D), usable (T, D)): lags[t, i, e] = values[t - 1 - i, e] for every
    source feature e of ``links`` (L, 2) (0 elsewhere and before the first date);
    usable[t, d] is 1.0 where y[t, d] enters the likelihood: observed, and the p lags of
    every feature it depends on observed."""
    n_dates, n_features = values.shape
    links = np.asarray(links, dtype=int).reshape(-1, 2)
    sources = np.unique(links[:, 1])
    lags = np.zeros((n_dates, order, n_features))
    lag_observed = np.zeros((n_dates, order, n_features))
    for i in range(order):
        lag = i + 1
        lags[lag:, i, sources] = values[:-lag, sources]
        lag_observed[lag:, i] = observed[:-lag]
    usable = observed.astype(float).copy()
    for target, source in links:
        usable[:, target] *= lag_observed[:, :, source].prod(axis=1)
    return lags, usable


def history_log_transition(log_transition: TensorVariable, n_regimes: int, order: int):
    """(..., K, K) regime log transitions -> (..., S, S) history log transitions, numpy
    in and out or PyTensor in and out.

    Entry [a, b] is log P[a_0, b_0] when b = (b_0, a_0, ..., a_{p-1}), else -inf."""
    histories = regime_histories(n_regimes, order)
    shifts = (histories[None, :, 1:] == histories[:, None, :-1]).all(axis=-1)  # (S, S)
    symbolic = isinstance(log_transition, pt.Variable)
    log_transition = pt.as_tensor(log_transition) if symbolic else np.asarray(log_transition)
    moves = log_transition[..., histories[:, 0][:, None], histories[:, 0][None, :]]
    return (pt.where if symbolic else np.where)(shifts, moves, -np.inf)


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


def history_start(log_initial, log_transition, n_regimes: int, order: int):
    """The regime chain's log_initial (K,) and log_transition ((K, K) or (n, K, K)) ->
    the history chain's log_initial (S,): date 0's history has its oldest regime from
    ``log_initial`` and the p moves before the sample by the first matrix (module
    docstring)."""
    log_transition = pt.as_tensor(log_transition)
    first = log_transition if log_transition.ndim == 2 else log_transition[0]
    return history_log_initial(log_initial, pt.stack([first] * order), n_regimes, order)


def autoregressive_log_density(
    values: np.ndarray,
    observed: np.ndarray,
    order: int,
    features: np.ndarray,
    n_regimes: int,
    mean,
    sigma,
    coefficients,
    mean_adjusted: bool = False,
    full: bool = False,
) -> TensorVariable:
    """(T, K) log densities in the intercept form, or (T, S) over the regime histories in
    the mean-adjusted form (``mean`` is then the level mu).

    ``values``, ``observed`` (T, D) as in :class:`~regime_model.models.observations.
    Observations`; ``mean``, ``sigma`` (K, D); ``coefficients`` (K, p, A) switching or
    (p, A) shared, for the A autoregressive ``features``, or with ``full`` (a VAR with a
    full matrix) (K, p, A, A) or (p, A, A), entry [.., i, a, b] the weight of feature b's
    lag i + 1 in feature a's prediction. A feature that is not among them is an i.i.d.
    Gaussian of the current regime. An autoregressive feature drops out of date t where
    it or a lag it depends on is missing, and on the first p dates (the likelihood
    conditions on them, as Hamilton's does)."""
    links = ar_links(features, full)
    lags, usable = lagged_values(values, observed, order, links)  # (T, p, D), (T, D)
    coefficients = pt.as_tensor(coefficients)
    shared = coefficients.ndim == (3 if full else 2)
    if full:  # (.., p, A, A) -> (.., p, A * A), in the order of the links
        shape = (order, len(links)) if shared else (n_regimes, order, len(links))
        coefficients = coefficients.reshape(shape)
    if shared:
        coefficients = pt.broadcast_to(coefficients[None], (n_regimes, order, len(links)))
    return autoregressive_density(
        values, usable, lags, mean, sigma, coefficients, links, n_regimes, mean_adjusted
    )


def regime_marginals(history_probabilities: np.ndarray, n_regimes: int, order: int):
    """(..., S) probabilities of histories -> (..., K) of the current regime s_t."""
    shape = history_probabilities.shape[:-1] + (n_regimes, n_regimes**order)
    return np.asarray(history_probabilities).reshape(shape).sum(axis=-1)
