"""Multi-step state forecasts from filtered probabilities."""

from __future__ import annotations

import numpy as np


def hmm_forecast(
    filtered_probs: np.ndarray, log_transition: np.ndarray, horizon: int
) -> np.ndarray:
    """P(z_{t+h} | y_1..t) for h = 1..horizon, i.e. filtered_probs[t] @ A^h.

    Shapes: filtered_probs (T, K) or (K,); log_transition (K, K), row i = from state i.
    Returns (T, horizon, K), or (horizon, K) for a (K,) input.

    A time-varying chain is not accepted: the caller passes the (K, K) transition that
    applies beyond t (e.g. ``log_transition[-1]`` or one built from forecast covariates).
    """
    filtered_probs = np.asarray(filtered_probs, dtype=np.float64)
    log_transition = np.asarray(log_transition, dtype=np.float64)
    n_states = filtered_probs.shape[-1]
    if filtered_probs.ndim not in (1, 2):
        raise ValueError(f"filtered_probs must be (T, K) or (K,), got {filtered_probs.shape}")
    if log_transition.shape != (n_states, n_states):
        raise ValueError(
            f"log_transition must be ({n_states}, {n_states}); for a time-varying chain pass "
            f"the transition to use beyond t, got {log_transition.shape}"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")

    transition = np.exp(log_transition)
    forecasts = np.empty((*filtered_probs.shape[:-1], horizon, n_states))
    current = filtered_probs
    for step in range(horizon):
        # Repeated vector-matrix products rather than matrix powers: horizon is small and
        # this is (T, K) @ (K, K) per step.
        current = current @ transition
        forecasts[..., step, :] = current
    return forecasts
