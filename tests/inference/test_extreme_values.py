"""Extreme emissions and (near-)zero transitions against a slow log-space reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp as scipy_logsumexp

from regime_model.inference import (
    hmm_loglik_and_grad,
    hmm_posterior_sample,
    hmm_smoother,
)
from regime_model.inference.fixed_lag import log_sum_exp
from regime_model.inference.forward_backward import _forward


def logsumexp(values: np.ndarray, axis: int | None = None, keepdims: bool = False):
    largest = np.max(values, axis=axis, keepdims=True)
    largest = np.where(np.isfinite(largest), largest, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - largest), axis=axis, keepdims=True)) + largest
    return total if keepdims else np.squeeze(total, axis=axis)


def normalise(log_weights: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Log weights shifted so their exponentials sum to one along axis (all if None)."""
    return log_weights - logsumexp(log_weights, axis=axis, keepdims=True)


def reference_smoother(log_initial, log_transition, log_emission) -> dict[str, np.ndarray]:
    """Textbook forward-backward entirely in log space, pure numpy.

    Messages are renormalised every step (log filtered probabilities, max-shifted log
    beta) so their magnitudes stay ~1e4 and rounding stays ~1e-12 even for T = 1e4."""
    n_steps, n_states = log_emission.shape

    def transition(t):  # log transition from z_t to z_{t+1}
        return log_transition[t] if log_transition.ndim == 3 else log_transition

    log_filtered = np.empty((n_steps, n_states))
    log_predicted = np.empty((n_steps, n_states))
    log_predicted[0] = log_initial
    marginal_loglik = 0.0
    for t in range(n_steps):
        if t > 0:
            log_predicted[t] = logsumexp(log_filtered[t - 1][:, None] + transition(t - 1), axis=0)
        log_joint = log_predicted[t] + log_emission[t]
        marginal_loglik += logsumexp(log_joint, axis=0)
        log_filtered[t] = normalise(log_joint)

    log_beta = np.zeros((n_steps, n_states))  # log p(y_t+1..T | z_t) up to a constant per t
    transition_counts = np.zeros((max(n_steps - 1, 0), n_states, n_states))
    for t in range(n_steps - 2, -1, -1):
        log_pair = (
            log_filtered[t][:, None]
            + transition(t)
            + (log_emission[t + 1] + log_beta[t + 1])[None, :]
        )
        transition_counts[t] = np.exp(normalise(log_pair))
        log_beta[t] = logsumexp(transition(t) + log_emission[t + 1] + log_beta[t + 1], axis=1)
        log_beta[t] -= log_beta[t].max()
    return {
        "marginal_loglik": marginal_loglik,
        "filtered": np.exp(log_filtered),
        "predicted": np.exp(normalise(log_predicted, axis=1)),
        "smoothed": np.exp(normalise(log_filtered + log_beta, axis=1)),
        "transition_counts": transition_counts,
    }


def assert_matches_reference(log_initial, log_transition, log_emission) -> None:
    expected = reference_smoother(log_initial, log_transition, log_emission)
    smoother = hmm_smoother(log_initial, log_transition, log_emission)
    gradient = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    for value in (*smoother, *gradient):
        assert np.all(np.isfinite(value))
    # The log-likelihood is a sum of T terms of size up to ~1e4: allow relative rounding.
    assert smoother.marginal_loglik == pytest.approx(expected["marginal_loglik"], rel=1e-12)
    assert gradient.marginal_loglik == pytest.approx(expected["marginal_loglik"], rel=1e-12)
    np.testing.assert_allclose(smoother.filtered_probs, expected["filtered"], atol=1e-10)
    np.testing.assert_allclose(smoother.predicted_probs, expected["predicted"], atol=1e-10)
    np.testing.assert_allclose(smoother.smoothed_probs, expected["smoothed"], atol=1e-10)
    np.testing.assert_allclose(gradient.grad_log_emission, expected["smoothed"], atol=1e-10)
    counts = expected["transition_counts"]
    if log_transition.ndim == 2:
        counts = counts.sum(axis=0)
    # Summed over up to 1e4 steps, each carrying ~1e-16 rounding.
    np.testing.assert_allclose(gradient.grad_log_transition, counts, atol=1e-8)


def sparse_transition(n_states: int) -> np.ndarray:
    """Transition matrices mixing exact zeros, 1e-300 entries and moderate ones, chosen so
    that some path stays feasible (the likelihood is positive)."""
    if n_states == 2:
        # A change point with hazard 1e-300 into an absorbing state.
        return np.array([[1.0, 1e-300], [0.0, 1.0]])
    if n_states == 3:
        return np.array([[0.9, 0.1, 0.0], [1e-300, 0.9, 0.1], [0.1, 0.0, 0.9]])
    # Sticky, one step ahead with 0.1, never two ahead, anything else with 1e-300.
    transition = np.full((n_states, n_states), 1e-300)
    for i in range(n_states):
        transition[i, i] = 0.9
        transition[i, (i + 1) % n_states] = 0.1
        transition[i, (i + 2) % n_states] = 0.0
    return transition / transition.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_states", [2, 3, 5])
def test_long_series_with_extreme_emissions(n_states):
    rng = np.random.default_rng(n_states)
    n_steps = 10_000
    # Each observation strongly favours one state: the others lose up to 1e4 nats.
    true_states = rng.integers(n_states, size=n_steps)
    log_emission = -rng.uniform(0.0, 1e4, size=(n_steps, n_states))
    log_emission[np.arange(n_steps), true_states] = 0.0
    with np.errstate(divide="ignore"):
        log_transition = np.log(sparse_transition(n_states))
        log_initial = np.log(np.full(n_states, 1.0 / n_states))

    assert_matches_reference(log_initial, log_transition, log_emission)


def test_time_varying_extreme_transitions():
    rng = np.random.default_rng(9)
    n_steps, n_states = 3_000, 3
    log_emission = rng.normal(scale=400.0, size=(n_steps, n_states))
    transition = rng.dirichlet(np.ones(n_states), size=(n_steps - 1, n_states))
    transition[rng.random(transition.shape) < 0.2] = 1e-300
    transition[rng.random(transition.shape) < 0.1] = 0.0
    np.einsum("tii->ti", transition)[:] += 0.5  # the diagonal keeps every step feasible
    transition /= transition.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        log_transition = np.log(transition)

    assert_matches_reference(np.log(np.full(3, 1 / 3)), log_transition, log_emission)


def test_suppressed_state_that_becomes_the_only_explanation():
    """State 1 has posterior weight e^-1e4 after t = 0 (far below the smallest double) and
    cannot be entered afterwards; at t = 1 only state 1 explains the data.  A scaled filter
    that let the weight underflow to zero would return -inf."""
    log_initial = np.log([0.5, 0.5])
    with np.errstate(divide="ignore"):
        log_transition = np.log([[0.5, 0.0], [0.5, 0.5]])  # 0 -> 1 impossible
    log_emission = np.array([[0.0, -1e4], [-3e4, 0.0], [-3e4, 0.0]])

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    # Dominant path: 1, 1, 1 with log weight log(0.5) - 1e4 + 2 log(0.5); the only
    # alternative ends in state 0 and costs >= 3e4 more.
    assert result.marginal_loglik == pytest.approx(3 * np.log(0.5) - 1e4, rel=1e-14)
    np.testing.assert_allclose(result.grad_log_emission, [[0, 1], [0, 1], [0, 1]], atol=1e-12)
    np.testing.assert_allclose(result.grad_log_transition, [[0, 0], [0, 2]], atol=1e-12)
    assert_matches_reference(log_initial, log_transition, log_emission)
    paths = hmm_posterior_sample(
        np.random.default_rng(0), log_initial, log_transition, log_emission, n_samples=50
    )
    assert np.all(paths == 1)


def test_structural_zeros_keep_the_fast_linear_path():
    """A left-to-right change-point chain has exact zeros everywhere; they must not push
    the filter into its (slower) log-space steps."""
    rng = np.random.default_rng(4)
    n_steps, n_states = 400, 4
    transition = np.diag(np.full(n_states, 0.98)) + np.diag(np.full(n_states - 1, 0.02), k=1)
    transition[-1, -1] = 1.0
    with np.errstate(divide="ignore"):
        log_transition = np.log(transition)
        log_initial = np.log(np.eye(n_states)[0])
    log_emission = rng.normal(size=(n_steps, n_states))

    sources = np.zeros(n_steps - 1, dtype=np.int64)  # every move by the one matrix
    log_step = _forward(log_initial, transition[None], log_transition[None], log_emission, sources)[
        5
    ]

    assert not log_step.any()
    assert_matches_reference(log_initial, log_transition, log_emission)


def test_zero_likelihood_is_minus_infinity():
    with np.errstate(divide="ignore"):
        log_initial = np.log([1.0, 0.0])
        log_transition = np.log(np.eye(2))
    log_emission = np.array([[0.0, 0.0], [-np.inf, 0.0]])  # state 0 cannot emit y_1

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    assert result.marginal_loglik == -np.inf
    assert np.isnan(result.grad_log_emission).all()
    assert hmm_smoother(log_initial, log_transition, log_emission).marginal_loglik == -np.inf
    with pytest.raises(ValueError, match="zero likelihood"):
        hmm_posterior_sample(np.random.default_rng(0), log_initial, log_transition, log_emission)


@pytest.mark.parametrize(("axis", "keepdims"), [((1, 2), False), (1, True), (2, False)])
def test_log_sum_exp_matches_scipy_with_huge_and_infinite_terms(axis, keepdims):
    """The per-draw pass's log-sum-exp equals scipy's, rows of -inf and terms of +-900
    included (no overflow, -inf where every term is -inf)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3, 4)) * 300.0
    values[0] = -np.inf
    values[1, 0] = -np.inf
    values[2, 1, 2] = 900.0
    ours = log_sum_exp(values, axis, keepdims)
    expected = scipy_logsumexp(values, axis=axis, keepdims=keepdims)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-14)
    assert np.array_equal(np.isneginf(ours), np.isneginf(expected))
    assert np.isneginf(ours).any()
