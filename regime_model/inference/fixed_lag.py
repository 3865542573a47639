"""Joint distributions of a state and the state a fixed number of steps later.

A filter answers P(z_s | y_1..s). Some questions need the joint of z_s and z_{s+L} given
a few more observations, e.g. when a model's state space is re-indexed so that one
component of z_{s+L} belongs to the same calendar date as z_s (the lead-lag model). This
module propagates N starting distributions L steps forward at once, in log space, keeping
track of a grouping ("tag") of the starting state.
"""

from __future__ import annotations

import numpy as np


def log_sum_exp(values: np.ndarray, axis, keepdims: bool = False) -> np.ndarray:
    """log sum exp over ``axis`` (an int or a tuple), shifted by the maximum; -inf where
    every term is -inf. As scipy.special.logsumexp without weights, at a third of its
    cost on the small arrays of a per-draw pass (93 us against 290 us on (563, 2, 4))."""
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)


def fixed_lag_joint(
    log_start: np.ndarray,
    log_transition: np.ndarray,
    log_emission_window: np.ndarray,
    tags: np.ndarray,
    n_tags: int,
) -> np.ndarray:
    """log sum_{u: tags[u] = g} start_n(u) p(y_{n,1..L}, z_L = v | z_0 = u), per n, g, v.

    Shapes: ``log_start`` (N, S) log weights of the starting state (need not be
    normalised; -inf allowed); ``log_transition`` (S, S) homogeneous, or (N, L, S, S)
    the transition into each of start n's L following steps, row = from;
    ``log_emission_window`` (N, L, S) log emission densities of the L following steps (a
    row of zeros: nothing observed); ``tags`` (S,) ints in 0..n_tags-1. -> (N, n_tags, S).

    With L = 0 the result is the tagged start. Summing exp(result) over g and v gives
    p(y_{n,1..L} | start_n) times the start's total weight.

    Each step is a matrix product after shifting every row by its maximum, so terms below
    about e^-700 of their row's largest term are dropped; the result is otherwise exact.
    """
    log_start = np.asarray(log_start, dtype=np.float64)
    log_transition = np.asarray(log_transition, dtype=np.float64)
    log_emission_window = np.asarray(log_emission_window, dtype=np.float64)
    tags = np.asarray(tags)
    n_starts, n_states = log_start.shape
    if log_emission_window.ndim != 3 or log_emission_window.shape[0] != n_starts:
        raise ValueError(f"log_emission_window must be ({n_starts}, L, {n_states})")
    window = log_emission_window.shape[1]
    if log_transition.shape not in ((n_states, n_states), (n_starts, window, n_states, n_states)):
        raise ValueError(
            f"log_transition must be ({n_states}, {n_states}) or "
            f"({n_starts}, {window}, {n_states}, {n_states})"
        )
    if log_emission_window.shape[2] != n_states:
        raise ValueError(f"log_emission_window must be ({n_starts}, L, {n_states})")
    if tags.shape != (n_states,) or tags.min() < 0 or tags.max() >= n_tags:
        raise ValueError(f"tags must be ({n_states},) ints in 0..{n_tags - 1}")
    one_hot = tags[None, :] == np.arange(n_tags)[:, None]  # (G, S)
    message = np.where(one_hot[None], log_start[:, None, :], -np.inf)  # (N, G, S)
    transition = np.exp(log_transition)
    with np.errstate(divide="ignore", invalid="ignore"):
        for step in range(log_emission_window.shape[1]):
            shift = message.max(axis=2, keepdims=True)
            shift = np.where(np.isfinite(shift), shift, 0.0)
            matrix = transition if transition.ndim == 2 else transition[:, step]
            message = (
                np.log(np.exp(message - shift) @ matrix)
                + shift
                + log_emission_window[:, None, step, :]
            )
    return message
