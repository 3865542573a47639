"""Filter and smoother against brute-force enumeration of all state paths."""

from __future__ import annotations

import numpy as np
import pytest
from hmm_brute_force import brute_force, random_hmm

from regime_model.inference import (
    hmm_filter,
    hmm_filter_draws,
    hmm_loglik_and_grad,
    hmm_smoother,
    hmm_smoother_draws,
)
from regime_model.inference.forward_backward import (
    loglik_and_grad_homogeneous,
    loglik_and_grad_time_varying,
)

# Enumeration and the recursions are both exact, so only rounding separates them.
TOLERANCE = 1e-12

CASES = [
    (n_steps, n_states, time_varying)
    for n_steps in (1, 2, 6)
    for n_states in (2, 3)
    for time_varying in (False, True)
    if n_states**n_steps <= 729
]


@pytest.mark.parametrize(("n_steps", "n_states", "time_varying"), CASES)
def test_filter_and_smoother_match_enumeration(n_steps, n_states, time_varying):
    rng = np.random.default_rng(100 * n_steps + 10 * n_states + time_varying)
    log_initial, log_transition, log_emission = random_hmm(rng, n_steps, n_states, time_varying)
    expected = brute_force(log_initial, log_transition, log_emission)

    filtered = hmm_filter(log_initial, log_transition, log_emission)
    smoothed = hmm_smoother(log_initial, log_transition, log_emission)

    for result in (filtered, smoothed):
        assert result.marginal_loglik == pytest.approx(expected.marginal_loglik, abs=TOLERANCE)
        np.testing.assert_allclose(result.filtered_probs, expected.filtered_probs, atol=TOLERANCE)
        np.testing.assert_allclose(result.predicted_probs, expected.predicted_probs, atol=TOLERANCE)
    np.testing.assert_allclose(smoothed.smoothed_probs, expected.smoothed_probs, atol=TOLERANCE)
    np.testing.assert_allclose(smoothed.predicted_probs[0], np.exp(log_initial), atol=TOLERANCE)


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("scale", [1.0, 2000.0])  # 2000: emissions far apart, log-space steps
def test_log_predictive_is_the_increment_of_enumerated_prefix_likelihoods(time_varying, scale):
    """log p(y_t | y_1..t-1) = log p(y_1..t) - log p(y_1..t-1), each by enumeration."""
    rng = np.random.default_rng(11 + time_varying)
    log_initial, log_transition, log_emission = random_hmm(rng, 6, 3, time_varying)
    log_emission = log_emission * scale
    prefix = [
        brute_force(
            log_initial,
            log_transition[: t - 1] if time_varying else log_transition,
            log_emission[:t],
        ).marginal_loglik
        for t in range(1, 7)
    ]
    expected = np.diff(np.concatenate([[0.0], prefix]))
    for result in (
        hmm_filter(log_initial, log_transition, log_emission),
        hmm_smoother(log_initial, log_transition, log_emission),
    ):
        np.testing.assert_allclose(result.log_predictive, expected, rtol=1e-10, atol=1e-9)
        assert result.log_predictive.sum() == pytest.approx(result.marginal_loglik, rel=1e-12)


@pytest.mark.parametrize("time_varying", [False, True])
def test_gradient_equals_posterior_expectations(time_varying):
    """d/d log_emission = smoothed, d/d log_transition = expected transition counts,
    d/d log_initial = smoothed at t = 0, all against enumeration."""
    rng = np.random.default_rng(7 + time_varying)
    log_initial, log_transition, log_emission = random_hmm(rng, 5, 3, time_varying)
    expected = brute_force(log_initial, log_transition, log_emission)

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    assert result.marginal_loglik == pytest.approx(expected.marginal_loglik, abs=TOLERANCE)
    np.testing.assert_allclose(result.grad_log_emission, expected.smoothed_probs, atol=TOLERANCE)
    np.testing.assert_allclose(result.grad_log_initial, expected.smoothed_probs[0], atol=TOLERANCE)
    expected_counts = (
        expected.transition_counts if time_varying else expected.transition_counts.sum(axis=0)
    )
    assert result.grad_log_transition.shape == log_transition.shape
    np.testing.assert_allclose(result.grad_log_transition, expected_counts, atol=TOLERANCE)


def test_unnormalised_parameters_give_sum_over_paths():
    """Transition rows and the initial vector are free parameters for the likelihood."""
    rng = np.random.default_rng(3)
    log_initial = rng.normal(size=3)
    log_transition = rng.normal(size=(3, 3))
    log_emission = rng.normal(size=(5, 3))
    expected = brute_force(log_initial, log_transition, log_emission)

    result = hmm_loglik_and_grad(log_initial, log_transition, log_emission)

    assert result.marginal_loglik == pytest.approx(expected.marginal_loglik, abs=TOLERANCE)
    np.testing.assert_allclose(result.grad_log_emission, expected.smoothed_probs, atol=TOLERANCE)
    np.testing.assert_allclose(
        result.grad_log_transition, expected.transition_counts.sum(axis=0), atol=TOLERANCE
    )


def test_missing_observations_are_zero_rows():
    """With every emission row zero the filter returns the prior predictive."""
    log_initial = np.log([0.9, 0.1])
    transition = np.array([[0.8, 0.2], [0.3, 0.7]])
    result = hmm_smoother(log_initial, np.log(transition), np.zeros((4, 2)))

    assert result.marginal_loglik == pytest.approx(0.0, abs=TOLERANCE)
    expected = np.array(
        [np.exp(log_initial) @ np.linalg.matrix_power(transition, t) for t in range(4)]
    )
    np.testing.assert_allclose(result.smoothed_probs, expected, atol=TOLERANCE)
    np.testing.assert_allclose(result.filtered_probs, expected, atol=TOLERANCE)


@pytest.mark.parametrize("time_varying", [False, True])
def test_filter_has_no_look_ahead(time_varying):
    rng = np.random.default_rng(11)
    n_steps, cut = 60, 35
    log_initial, log_transition, log_emission = random_hmm(rng, n_steps, 3, time_varying)
    truncated_transition = log_transition[: cut - 1] if time_varying else log_transition

    full = hmm_filter(log_initial, log_transition, log_emission)
    truncated = hmm_filter(log_initial, truncated_transition, log_emission[:cut])

    np.testing.assert_allclose(full.filtered_probs[:cut], truncated.filtered_probs, atol=1e-14)
    np.testing.assert_allclose(full.predicted_probs[:cut], truncated.predicted_probs, atol=1e-14)
    # ...whereas the smoother does look ahead, so this test would notice a swap.
    smoothed = hmm_smoother(log_initial, log_transition, log_emission).smoothed_probs
    assert np.abs(smoothed[: cut - 1] - truncated.filtered_probs[: cut - 1]).max() > 1e-3


def test_shape_errors_are_reported():
    with pytest.raises(ValueError, match="log_transition"):
        hmm_filter(np.zeros(2), np.zeros((3, 2, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="log_initial"):
        hmm_filter(np.zeros(3), np.zeros((2, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="log_emission"):
        hmm_filter(np.zeros(2), np.zeros((2, 2)), np.zeros(5))
    # The jitted entry points used by the NUMBA-mode Op check shapes too.
    with pytest.raises(ValueError, match="log_transition"):
        loglik_and_grad_homogeneous(np.zeros(2), np.zeros((3, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="T-1"):
        loglik_and_grad_time_varying(np.zeros(2), np.zeros((5, 2, 2)), np.zeros((5, 2)))


@pytest.mark.parametrize("time_varying", [False, True])
def test_filtering_many_draws_at_once_matches_one_at_a_time(time_varying):
    """hmm_filter_draws and hmm_smoother_draws (the post-processing's batched passes,
    split among threads) give every draw hmm_filter's and hmm_smoother's results, to
    rounding (the transitions' exponential is numba's, not numpy's), including a draw
    whose emissions are so far apart that the filter steps in log space and one whose
    data are impossible (smoothed NaN, as hmm_smoother gives). Seven draws: not a
    multiple of the threads, so the split's uneven part is covered."""
    rng = np.random.default_rng(4)
    n_draws, n_steps, n_states = 7, 60, 3
    log_initial = np.log(rng.dirichlet(np.ones(n_states), size=n_draws))
    shape = (n_draws, n_steps - 1) if time_varying else (n_draws,)
    log_transition = np.log(rng.dirichlet(np.ones(n_states), size=(*shape, n_states)))
    log_emission = rng.normal(size=(n_draws, n_steps, n_states))
    log_emission[2] *= 1e4  # every step of draw 2 underflows in linear space
    log_predictive, filtered = hmm_filter_draws(log_initial, log_transition, log_emission)
    assert log_predictive.shape == (n_draws, n_steps)
    assert filtered.shape == (n_draws, n_steps, n_states)
    for draw in range(n_draws):
        one = hmm_filter(log_initial[draw], log_transition[draw], log_emission[draw])
        np.testing.assert_allclose(log_predictive[draw], one.log_predictive, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(filtered[draw], one.filtered_probs, rtol=1e-12, atol=1e-300)
    log_emission[5, 30] = -np.inf  # draw 5: no state can emit date 30
    batched = hmm_smoother_draws(log_initial, log_transition, log_emission)
    for draw in range(n_draws):
        one = hmm_smoother(log_initial[draw], log_transition[draw], log_emission[draw])
        expected = (one.log_predictive, one.filtered_probs, one.predicted_probs)
        for value, reference in zip(batched, (*expected, one.smoothed_probs), strict=True):
            np.testing.assert_allclose(value[draw], reference, rtol=1e-12, atol=1e-300)
    assert np.isnan(batched[3][5]).all() and not np.isnan(batched[3][4]).any()


def test_a_bank_and_its_indices_filter_as_the_stack_they_index():
    """hmm_filter_draws / hmm_smoother_draws with a bank (N, B, K, K) and sources (T-1,)
    give what they give on the (N, T-1, K, K) stack bank[:, sources] (two-scale's
    post-processing: a period-opening and a within-period matrix)."""
    rng = np.random.default_rng(8)
    n_draws, n_steps, n_states = 5, 40, 4
    log_initial = np.log(rng.dirichlet(np.ones(n_states), size=n_draws))
    bank = np.log(rng.dirichlet(np.ones(n_states), size=(n_draws, 2, n_states)))
    sources = (np.arange(n_steps - 1) % 9 != 0).astype(np.int64)  # every ninth move opens
    log_emission = rng.normal(size=(n_draws, n_steps, n_states))
    stack = bank[:, sources]
    for function in (hmm_filter_draws, hmm_smoother_draws):
        indexed = function(log_initial, bank, log_emission, sources)
        stacked = function(log_initial, stack, log_emission)
        for value, reference in zip(indexed, stacked, strict=True):
            np.testing.assert_array_equal(value, reference)
    # ... and not what a wrong index would give.
    shifted = hmm_filter_draws(log_initial, bank, log_emission, 1 - sources)
    assert np.abs(shifted[1] - stacked[1]).max() > 1e-3
    with pytest.raises(ValueError, match="indices into the bank"):
        hmm_filter_draws(log_initial, bank, log_emission, sources + 1)
    with pytest.raises(ValueError, match="indices into the bank"):
        hmm_filter_draws(log_initial, bank, log_emission, sources[1:])
    with pytest.raises(ValueError, match="a bank"):
        hmm_filter_draws(log_initial, bank[:, 0], log_emission, sources)


def test_filtering_many_draws_refuses_mismatched_shapes():
    log_initial = np.log(np.full((2, 2), 0.5))
    log_emission = np.zeros((2, 10, 2))
    with pytest.raises(ValueError, match="log_transition must have shape"):
        hmm_filter_draws(log_initial, np.zeros((2, 3, 2, 2)), log_emission)
    with pytest.raises(ValueError, match="log_initial must have shape"):
        hmm_filter_draws(log_initial[:1], np.zeros((2, 2, 2)), log_emission)
