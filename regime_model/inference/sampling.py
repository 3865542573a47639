"""Posterior sampling of state paths by forward filtering, backward sampling (FFBS)."""

from __future__ import annotations

import math

import numba
import numpy as np

from regime_model.inference.forward_backward import _forward_from_inputs

# Below this total weight the linear-space weights of a backward step may have lost
# precision to underflow, so the step is redone in log space.  (Defined here, and no jitted
# helpers are imported, because numba's on-disk cache does not notice changes to other
# modules' jitted code or constants.)
_MIN_TOTAL_WEIGHT = 1e-290


@numba.njit(cache=True)
def _draw_categorical(weights: np.ndarray, uniform: float) -> int:
    """Inverse-CDF draw from unnormalised non-negative weights (K,) with uniform in [0, 1).

    The strict comparison never selects a zero-weight state."""
    threshold = uniform * np.sum(weights)
    cumulative = 0.0
    last_positive = 0
    for k in range(weights.shape[0]):
        if weights[k] > 0.0:
            last_positive = k
        cumulative += weights[k]
        if threshold < cumulative:
            return k
    # Only reachable through rounding when uniform is within an ulp of one.
    return last_positive


@numba.njit(cache=True)
def _backward_sample(
    filtered: np.ndarray,
    log_filtered: np.ndarray,
    log_step: np.ndarray,
    transition: np.ndarray,
    log_transition: np.ndarray,
    uniforms: np.ndarray,
) -> np.ndarray:
    """Draw paths given the forward pass; uniforms (n_samples, T) in [0, 1).

    z_{T-1} ~ P(z_{T-1} | y_1..T), then z_t ~ P(z_t | z_{t+1}, y_1..t), which is proportional
    to filtered[t, i] * A_t(i, z_{t+1})."""
    n_samples, n_steps = uniforms.shape
    n_states = filtered.shape[1]
    n_transitions = transition.shape[0]
    paths = np.empty((n_samples, n_steps), dtype=np.int64)
    weights = np.empty(n_states)
    for sample in range(n_samples):
        paths[sample, n_steps - 1] = _draw_categorical(
            filtered[n_steps - 1], uniforms[sample, n_steps - 1]
        )
        for t in range(n_steps - 2, -1, -1):
            source = t if n_transitions > 1 else 0
            next_state = paths[sample, t + 1]
            total = 0.0
            if not log_step[t]:
                for i in range(n_states):
                    weights[i] = filtered[t, i] * transition[source, i, next_state]
                    total += weights[i]
            if not _MIN_TOTAL_WEIGHT <= total < np.inf:
                # Underflow (or a log-space filter step): build the weights in log space.
                largest = -np.inf
                for i in range(n_states):
                    if log_step[t]:
                        log_alpha = log_filtered[t, i]
                    elif filtered[t, i] > 0.0:
                        log_alpha = math.log(filtered[t, i])
                    else:
                        log_alpha = -np.inf
                    weights[i] = log_alpha + log_transition[source, i, next_state]
                    largest = max(largest, weights[i])
                for i in range(n_states):
                    weights[i] = math.exp(weights[i] - largest)
            paths[sample, t] = _draw_categorical(weights, uniforms[sample, t])
    return paths


def hmm_posterior_sample(
    rng: np.random.Generator,
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    n_samples: int = 1,
) -> np.ndarray:
    """Draw state paths from P(z_1..T | y_1..T) by forward filtering, backward sampling.

    Shapes: log_initial (K,), log_transition (K, K) or (T-1, K, K), log_emission (T, K).
    Returns an int64 array (n_samples, T).  All randomness comes from ``rng`` (the uniforms
    are drawn up front), so results are reproducible by seed.  Raises ValueError if the data
    have zero likelihood.
    """
    transition, stacked_transition, _, forward_pass = _forward_from_inputs(
        log_initial, log_transition, log_emission
    )
    marginal_loglik, filtered, _, log_filtered, _, log_step, _ = forward_pass
    if marginal_loglik == -np.inf:
        raise ValueError("the observations have zero likelihood under every state path")
    uniforms = rng.random((n_samples, filtered.shape[0]))
    return _backward_sample(
        filtered, log_filtered, log_step, transition, stacked_transition, uniforms
    )


def sample_markov_path(
    rng: np.random.Generator,
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    n_steps: int,
) -> np.ndarray:
    """Draw a state path z_1..T from the chain itself (no observations): the generative
    counterpart of :func:`hmm_posterior_sample`.

    Shapes: log_initial (K,), log_transition (K, K) or (T-1, K, K). -> int64 (T,).
    """
    initial = np.exp(np.asarray(log_initial, dtype=float))
    transition = np.exp(np.asarray(log_transition, dtype=float))
    if transition.ndim == 3 and transition.shape[0] != n_steps - 1:
        raise ValueError(f"{transition.shape[0]} transition matrices for {n_steps} steps")
    uniforms = rng.random(n_steps)
    path = np.empty(n_steps, dtype=np.int64)
    path[0] = _draw_categorical(initial, uniforms[0])
    for t in range(1, n_steps):
        matrix = transition[t - 1] if transition.ndim == 3 else transition
        path[t] = _draw_categorical(matrix[path[t - 1]], uniforms[t])
    return path
