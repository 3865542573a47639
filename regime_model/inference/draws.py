"""The forward filter and the smoother of many parameter draws at once: the
post-processing's batched passes (inputs with a leading axis of N draws), each draw's
result as :func:`~regime_model.inference.hmm_filter` and
:func:`~regime_model.inference.hmm_smoother` give it.

Kept apart from :mod:`~regime_model.inference.forward_backward`: numba's cache is per
source file, and editing that module recompiles the sampler's kernels (and has moved
fixed-seed posteriors in the last digits, docs/performance.md).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from regime_model.inference import forward_backward as fb


@numba.njit(cache=True, nogil=True)
def _filter_draws(
    log_initial, log_transition, log_emission, sources, rows, log_predictive, filtered
):
    """Fills ``log_predictive`` and ``filtered`` at ``rows`` (the draws of one thread);
    move t uses matrix ``sources[t]`` of each draw's stack."""
    for draw in rows:
        transition = np.exp(log_transition[draw])
        forward_pass = fb._forward(
            log_initial[draw], transition, log_transition[draw], log_emission[draw], sources
        )
        filtered[draw] = forward_pass[1]
        log_predictive[draw] = forward_pass[6]


@numba.njit(cache=True, nogil=True)
def _smoother_draws(
    log_initial,
    log_transition,
    log_emission,
    sources,
    rows,
    log_predictive,
    filtered,
    predicted,
    smoothed,
):
    """As :func:`_filter_draws`, also filling ``predicted`` and ``smoothed`` at ``rows``."""
    for draw in rows:
        transition = np.exp(log_transition[draw])
        forward_pass = fb._forward(
            log_initial[draw], transition, log_transition[draw], log_emission[draw], sources
        )
        marginal_loglik, filtered_probs, predicted_mass, log_filtered, log_predicted = forward_pass[
            :5
        ]
        log_step = forward_pass[5]
        filtered[draw] = filtered_probs
        log_predictive[draw] = forward_pass[6]
        predicted[draw] = fb._normalised_predicted(predicted_mass, log_predicted, log_step)
        if marginal_loglik == -np.inf:
            smoothed[draw] = np.nan
        else:
            smoothed[draw] = fb._backward(
                filtered_probs,
                predicted_mass,
                log_filtered,
                log_predicted,
                log_step,
                transition,
                log_transition[draw],
                sources,
            )[0]


def hmm_filter_draws(
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    sources: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The forward filter of N parameter draws in one compiled loop: (log_predictive
    (N, T), filtered (N, T, K)), each draw's as :func:`hmm_filter` gives them.

    Shapes: log_initial (N, K), log_transition (N, K, K) or (N, T-1, K, K), log_emission
    (N, T, K); or, with ``sources`` (T-1,) ints, a bank (N, B, K, K) of which move t uses
    matrix sources[t] (the kernel's indexed form: no (T-1, K, K) stack is built). One
    call instead of N saves the per-call validation and Python work, about half of a
    draw's cost at T = 2,873, K = 2."""
    inputs = _validated_draws(log_initial, log_transition, log_emission, sources)
    n_draws, n_steps, n_states = inputs[2].shape
    outputs = (np.empty((n_draws, n_steps)), np.empty((n_draws, n_steps, n_states)))
    _over_threads(_filter_draws, n_draws, inputs, outputs)
    return outputs


def hmm_smoother_draws(
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    sources: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Filter and smoother of N parameter draws in one compiled loop: (log_predictive
    (N, T), filtered, predicted, smoothed (N, T, K)), each draw's as :func:`hmm_smoother`
    gives them. Shapes as :func:`hmm_filter_draws`."""
    inputs = _validated_draws(log_initial, log_transition, log_emission, sources)
    n_draws, n_steps, n_states = inputs[2].shape
    outputs = (
        np.empty((n_draws, n_steps)),
        *(np.empty((n_draws, n_steps, n_states)) for _ in range(3)),
    )
    _over_threads(_smoother_draws, n_draws, inputs, outputs)
    return outputs


def _validated_draws(log_initial, log_transition, log_emission, sources=None):
    """The inputs of N draws as contiguous float64, transitions as (N, n, K, K), and the
    (T-1,) index of the matrix each move uses (given, or all 0 / 0..T-2)."""
    log_initial = np.ascontiguousarray(log_initial, dtype=np.float64)
    log_transition = np.ascontiguousarray(log_transition, dtype=np.float64)
    log_emission = np.ascontiguousarray(log_emission, dtype=np.float64)
    if log_emission.ndim != 3 or log_emission.shape[1] < 1:
        raise ValueError(f"log_emission must have shape (N, T, K), got {log_emission.shape}")
    n_draws, n_steps, n_states = log_emission.shape
    if log_initial.shape != (n_draws, n_states):
        raise ValueError(
            f"log_initial must have shape ({n_draws}, {n_states}), got {log_initial.shape}"
        )
    if sources is not None:
        sources = np.ascontiguousarray(sources, dtype=np.int64)
        if log_transition.ndim != 4 or log_transition.shape[0] != n_draws:
            raise ValueError(
                f"with sources, log_transition must be a bank (N, B, K, K), got "
                f"{log_transition.shape}"
            )
        if sources.shape != (n_steps - 1,) or (
            len(sources) and not 0 <= sources.min() <= sources.max() < log_transition.shape[1]
        ):
            raise ValueError(f"sources must be {n_steps - 1} indices into the bank")
        return log_initial, log_transition, log_emission, sources
    if log_transition.shape == (n_draws, n_states, n_states):
        log_transition = log_transition[:, np.newaxis]
    elif log_transition.shape != (n_draws, n_steps - 1, n_states, n_states):
        raise ValueError(
            f"log_transition must have shape ({n_draws}, {n_states}, {n_states}) or "
            f"({n_draws}, {n_steps - 1}, {n_states}, {n_states}), got {log_transition.shape}"
        )
    sources = fb._sources(n_steps, log_transition.shape[1])
    return log_initial, np.ascontiguousarray(log_transition), log_emission, sources


def _over_threads(kernel, n_draws: int, inputs: tuple, outputs: tuple) -> None:
    """Runs ``kernel(*inputs, rows, *outputs)`` on the draws split among the cores.

    The compiled loops release the GIL, so threads share the draws: 0.25 s instead of 0.5
    s for 3,600 filtered draws at T = 2,500, K = 2 on two cores."""
    parts = np.array_split(np.arange(n_draws), max(1, min(n_draws, os.cpu_count() or 1)))
    with ThreadPoolExecutor(len(parts)) as pool:
        list(pool.map(lambda rows: kernel(*inputs, rows, *outputs), parts))


@numba.njit(cache=True, nogil=True)
def _fixed_lag_draws(filtered, log_transition, log_emission, tags, rows, log_total, joint):
    """Fills ``log_total`` and ``joint`` at ``rows`` (see :func:`fixed_lag_draws`).

    In probability space, each step rescaled to a total of one: the filtered start is
    normalised and each step's emissions are shifted by their maximum."""
    n_dates, n_tags, n_states = joint.shape[1:]
    lag = log_emission.shape[1] - n_dates
    homogeneous = log_transition.shape[1] == 1
    message = np.empty((n_tags, n_states))
    carried = np.empty((n_tags, n_states))
    weights = np.empty(n_states)
    for draw in rows:
        transition = np.exp(log_transition[draw])
        for t in range(n_dates):
            message[:] = 0.0
            for state in range(n_states):
                message[tags[state], state] = filtered[draw, t, state]
            log_scale = 0.0
            for step in range(t + 1, t + lag + 1):
                matrix = transition[0 if homogeneous else step - 1]
                peak = np.max(log_emission[draw, step])
                if not np.isfinite(peak):
                    message[:] = 0.0
                    break
                for state in range(n_states):
                    weights[state] = np.exp(log_emission[draw, step, state] - peak)
                total = 0.0
                for tag in range(n_tags):
                    for state in range(n_states):
                        value = 0.0
                        for source in range(n_states):
                            value += message[tag, source] * matrix[source, state]
                        carried[tag, state] = value * weights[state]
                        total += carried[tag, state]
                if total == 0.0:
                    message[:] = 0.0
                    break
                message[:] = carried / total
                log_scale += np.log(total) + peak
            total = message.sum()
            if total > 0.0:
                log_total[draw, t] = np.log(total) + log_scale
                joint[draw, t] = message / total
            else:  # impossible data: as log-space division by exp(-inf) gives
                log_total[draw, t] = -np.inf
                joint[draw, t] = np.nan


def fixed_lag_draws(
    filtered: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    tags: np.ndarray,
    n_tags: int,
    n_dates: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each step's filtered distribution carried L steps forward, for N draws at once: as
    :func:`~regime_model.inference.fixed_lag.fixed_lag_joint` started at step t from
    ``filtered[:, t]``, with the transitions into and the emissions of steps t+1..t+L, for
    every t < ``n_dates`` (L = steps - n_dates).

    Shapes: filtered (N, steps, S) probabilities; log_transition (N, S, S) or
    (N, steps-1, S, S) (row r: the move into step r+1); log_emission (N, steps, S); tags
    (S,) ints in 0..n_tags-1. Returns (log_total (N, n_dates): log p(y of steps
    t+1..t+L | filtered start of step t); joint (N, n_dates, n_tags, S) normalised over
    its last two axes: P(tag of the state at t, state at t+L | those data))."""
    filtered = np.ascontiguousarray(filtered, dtype=np.float64)
    log_transition = np.ascontiguousarray(log_transition, dtype=np.float64)
    log_emission = np.ascontiguousarray(log_emission, dtype=np.float64)
    tags = np.ascontiguousarray(tags, dtype=np.int64)
    n_draws, n_steps, n_states = log_emission.shape
    if filtered.shape != log_emission.shape:
        raise ValueError(f"filtered must have shape {log_emission.shape}, got {filtered.shape}")
    if log_transition.shape == (n_draws, n_states, n_states):
        log_transition = log_transition[:, np.newaxis]
    elif log_transition.shape != (n_draws, n_steps - 1, n_states, n_states):
        raise ValueError(
            f"log_transition must have shape ({n_draws}, {n_states}, {n_states}) or "
            f"({n_draws}, {n_steps - 1}, {n_states}, {n_states}), got {log_transition.shape}"
        )
    if not 0 < n_dates <= n_steps:
        raise ValueError(f"n_dates must be in 1..{n_steps}, got {n_dates}")
    if tags.shape != (n_states,) or tags.min() < 0 or tags.max() >= n_tags:
        raise ValueError(f"tags must be ({n_states},) ints in 0..{n_tags - 1}")
    outputs = (np.empty((n_draws, n_dates)), np.empty((n_draws, n_dates, n_tags, n_states)))
    inputs = (filtered, np.ascontiguousarray(log_transition), log_emission, tags)
    _over_threads(_fixed_lag_draws, n_draws, inputs, outputs)
    return outputs
