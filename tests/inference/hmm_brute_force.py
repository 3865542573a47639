"""Brute-force HMM posteriors by enumerating all K^T state paths (tests only, tiny T)."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np


class BruteForce(NamedTuple):
    marginal_loglik: float
    filtered_probs: np.ndarray  # (T, K)
    predicted_probs: np.ndarray  # (T, K)
    smoothed_probs: np.ndarray  # (T, K)
    transition_counts: np.ndarray  # (T-1, K, K): P(z_t = i, z_{t+1} = j | y_1..T)
    paths: np.ndarray  # (K^T, T)
    path_probs: np.ndarray  # (K^T,), P(path | y_1..T)


def transition_at(log_transition: np.ndarray, t: int) -> np.ndarray:
    """The (K, K) log transition from z_t to z_{t+1}, for either input shape."""
    return log_transition[t] if log_transition.ndim == 3 else log_transition


def path_log_joint(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray, path
) -> float:
    """log p(z_1..t, y_1..t) for a path of length t <= T."""
    total = log_initial[path[0]] + log_emission[0, path[0]]
    for t in range(1, len(path)):
        total += transition_at(log_transition, t - 1)[path[t - 1], path[t]]
        total += log_emission[t, path[t]]
    return total


def _posterior_over_prefixes(log_initial, log_transition, log_emission, length: int):
    """Enumerate paths of the first `length` steps; returns (paths, log joints)."""
    n_states = log_emission.shape[1]
    paths = np.array(list(itertools.product(range(n_states), repeat=length)))
    log_joint = np.array(
        [path_log_joint(log_initial, log_transition, log_emission, path) for path in paths]
    )
    return paths, log_joint


def _marginals(paths: np.ndarray, weights: np.ndarray, n_states: int) -> np.ndarray:
    marginals = np.zeros((paths.shape[1], n_states))
    for t in range(paths.shape[1]):
        np.add.at(marginals[t], paths[:, t], weights)
    return marginals


def brute_force(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> BruteForce:
    """All quantities by direct enumeration.  Unnormalised inputs are allowed: the
    likelihood is then the sum over paths of the product of the given factors."""
    n_steps, n_states = log_emission.shape
    filtered = np.empty((n_steps, n_states))
    predicted = np.empty((n_steps, n_states))
    for t in range(n_steps):
        paths, log_joint = _posterior_over_prefixes(
            log_initial, log_transition, log_emission, t + 1
        )
        weights = np.exp(log_joint - np.logaddexp.reduce(log_joint))
        filtered[t] = _marginals(paths, weights, n_states)[t]
        # Predicted: drop the emission of step t from the joint.
        log_prior = log_joint - log_emission[t, paths[:, t]]
        prior_weights = np.exp(log_prior - np.logaddexp.reduce(log_prior))
        predicted[t] = _marginals(paths, prior_weights, n_states)[t]

    paths, log_joint = _posterior_over_prefixes(log_initial, log_transition, log_emission, n_steps)
    marginal_loglik = np.logaddexp.reduce(log_joint)
    path_probs = np.exp(log_joint - marginal_loglik)
    transition_counts = np.zeros((n_steps - 1, n_states, n_states))
    for t in range(n_steps - 1):
        np.add.at(transition_counts[t], (paths[:, t], paths[:, t + 1]), path_probs)
    return BruteForce(
        float(marginal_loglik),
        filtered,
        predicted,
        _marginals(paths, path_probs, n_states),
        transition_counts,
        paths,
        path_probs,
    )


def random_hmm(
    rng: np.random.Generator, n_steps: int, n_states: int, time_varying: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random normalised HMM with Gaussian-ish log emissions."""
    log_initial = np.log(rng.dirichlet(np.ones(n_states)))
    shape = (n_steps - 1, n_states) if time_varying else (n_states,)
    log_transition = np.log(rng.dirichlet(np.ones(n_states), size=shape))
    log_emission = rng.normal(scale=2.0, size=(n_steps, n_states))
    return log_initial, log_transition, log_emission
