"""The two-scale chain (a coarse chain whose state drives one fine chain per market) as
one HMM on the fine calendar: its likelihood against brute-force enumeration of every
path and against the nested recursion of the hierarchical HMM (coarse forward over
periods, each period's emission the fine chains' own HMM likelihoods), and its gradient
through the kernel against finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp

from regime_model.inference import hmm_filter, hmm_loglik_and_grad
from regime_model.inference.pytensor_op import hmm_log_likelihood
from regime_model.inference.stationary import stationary_distribution, stationary_numpy
from regime_model.models.two_scale_chain import (
    coarse_marginals,
    fine_marginals,
    sample_two_scale_path,
    state_grid,
    two_scale_log_emission,
    two_scale_log_initial,
    two_scale_log_transition,
)

# Two coarse periods of three fine dates and a last, unfinished one of two: its coarse
# observation is not published within the sample, so it has no coarse emission.
OPENS = np.array([1, 0, 0, 1, 0, 0, 1, 0], dtype=bool)
CLOSES = np.array([2, 5])  # the last fine date of each finished period


def _random_stochastic(rng, *shape):
    matrix = rng.random(shape) + 0.2
    return matrix / matrix.sum(axis=-1, keepdims=True)


def _problem(seed: int, n_coarse: int = 2, fine_sizes=(2, 3)):
    """Random parameters and emissions of a two-market model on the OPENS calendar."""
    rng = np.random.default_rng(seed)
    n_dates = len(OPENS)
    coarse_initial = _random_stochastic(rng, n_coarse)
    coarse_transition = _random_stochastic(rng, n_coarse, n_coarse)
    fine_transitions = [_random_stochastic(rng, n_coarse, k, k) for k in fine_sizes]
    entries = [np.stack([stationary_numpy(p) for p in fine]) for fine in fine_transitions]
    fine_emissions = [rng.normal(size=(n_dates, k)) for k in fine_sizes]
    coarse_emission = np.zeros((n_dates, n_coarse))
    coarse_emission[CLOSES] = rng.normal(size=(len(CLOSES), n_coarse))
    return (
        coarse_initial,
        coarse_transition,
        fine_transitions,
        entries,
        fine_emissions,
        coarse_emission,
    )


def _kernel_inputs(
    coarse_initial, coarse_transition, fine_transitions, entries, fine, coarse, carry=False
):
    log_entries = [np.log(entry) for entry in entries]
    grid = state_grid(len(coarse_initial), [p.shape[-1] for p in fine_transitions])
    log_fine_transitions = [np.log(p) for p in fine_transitions]
    return (
        two_scale_log_initial(np.log(coarse_initial), log_entries, grid).eval(),
        two_scale_log_transition(
            np.log(coarse_transition),
            log_fine_transitions,
            None if carry else log_entries,
            OPENS,
            grid,
        ).eval(),
        two_scale_log_emission(fine, coarse, grid).eval(),
    )


def _brute_force(
    coarse_initial, coarse_transition, fine_transitions, entries, fine, coarse, carry=False
):
    """log of the sum over every path of coarse regimes (one per period) and fine regimes
    (one per date and market) of its probability times its emissions; ``carry``: a fine
    chain moves on at an opening (by the new coarse state's matrix) instead of entering
    afresh."""
    periods = np.cumsum(OPENS) - 1
    sizes = [p.shape[-1] for p in fine_transitions]
    n_coarse = len(coarse_initial)
    terms = []
    for coarse_path in itertools.product(range(n_coarse), repeat=periods[-1] + 1):
        c = np.array(coarse_path)[periods]  # (T,) the coarse regime of each date
        log_coarse = np.log(coarse_initial[coarse_path[0]]) + sum(
            np.log(coarse_transition[a, b]) for a, b in itertools.pairwise(coarse_path)
        )
        log_coarse += coarse[np.arange(len(OPENS)), c].sum()
        log_markets = 0.0
        for market, size in enumerate(sizes):  # independent given the coarse path
            paths = []
            for f in itertools.product(range(size), repeat=len(OPENS)):
                log_p = 0.0
                for t in range(len(OPENS)):
                    if t == 0 or (OPENS[t] and not carry):
                        log_p += np.log(entries[market][c[t], f[t]])
                    else:
                        log_p += np.log(fine_transitions[market][c[t], f[t - 1], f[t]])
                    log_p += fine[market][t, f[t]]
                paths.append(log_p)
            log_markets += logsumexp(paths)
        terms.append(log_coarse + log_markets)
    return logsumexp(terms)


def _nested_recursion(coarse_initial, coarse_transition, fine_transitions, entries, fine, coarse):
    """The hierarchical HMM's likelihood: a forward pass over coarse periods whose
    emission for state c is g(x | c) times, for each market, the fine HMM's likelihood
    over the period started from its entry law pi_m(c)."""
    starts = np.flatnonzero(OPENS)
    ends = np.r_[starts[1:], len(OPENS)]
    n_coarse = len(coarse_initial)
    log_alpha = None
    for start, end in zip(starts, ends, strict=True):
        log_period = np.zeros(n_coarse)
        for c in range(n_coarse):
            log_period[c] = coarse[start:end, c].sum()
            for market, transitions in enumerate(fine_transitions):
                result = hmm_filter(
                    np.log(entries[market][c]), np.log(transitions[c]), fine[market][start:end]
                )
                log_period[c] += result.marginal_loglik
        if log_alpha is None:
            log_alpha = np.log(coarse_initial) + log_period
        else:
            log_alpha = logsumexp(log_alpha[:, None] + np.log(coarse_transition), axis=0)
            log_alpha = log_alpha + log_period
    return logsumexp(log_alpha)


@pytest.mark.parametrize("carry", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_product_chain_likelihood_is_the_brute_force_sum_over_paths(seed, carry):
    problem = _problem(seed, fine_sizes=(2, 2))
    inputs = _kernel_inputs(*problem, carry=carry)
    assert inputs[1].shape == (len(OPENS) - 1, 8, 8)
    ours = hmm_loglik_and_grad(*inputs).marginal_loglik
    np.testing.assert_allclose(ours, _brute_force(*problem, carry=carry), rtol=1e-10)
    # The two forms are different models: the other's brute force does not match.
    assert abs(ours - _brute_force(*problem, carry=not carry)) > 1e-3


@pytest.mark.parametrize("n_coarse", [2, 3])
def test_the_product_chain_likelihood_is_the_nested_recursion(n_coarse):
    """K_c = 2 or 3 coarse regimes, markets with 2 and 3 fine regimes (S = 12 or 18)."""
    problem = _problem(10 + n_coarse, n_coarse=n_coarse, fine_sizes=(2, 3))
    ours = hmm_loglik_and_grad(*_kernel_inputs(*problem)).marginal_loglik
    np.testing.assert_allclose(ours, _nested_recursion(*problem), rtol=1e-10)


def test_a_coarse_switch_within_a_period_is_impossible_and_rows_are_stochastic():
    _, log_transition, _ = _kernel_inputs(*_problem(3))
    grid = state_grid(2, [2, 3])
    switches = grid[:, None, 0] != grid[None, :, 0]
    within = ~OPENS[1:]
    assert np.all(np.isneginf(log_transition[within][:, switches]))
    np.testing.assert_allclose(np.exp(log_transition).sum(axis=-1), 1.0)


def test_marginals_sum_out_the_other_chains():
    rng = np.random.default_rng(5)
    probabilities = rng.dirichlet(np.ones(12), size=(4, 7))  # (draws, T, S), S = 2 x 2 x 3
    joint = probabilities.reshape(4, 7, 2, 2, 3)
    np.testing.assert_allclose(coarse_marginals(probabilities, 2), joint.sum(axis=(3, 4)))
    np.testing.assert_allclose(fine_marginals(probabilities, 2, [2, 3], 0), joint.sum(axis=(2, 4)))
    np.testing.assert_allclose(fine_marginals(probabilities, 2, [2, 3], 1), joint.sum(axis=(2, 3)))


def test_the_gradient_through_the_kernel_matches_finite_differences():
    """The log-likelihood as a function of the chains' unconstrained rows (softmax), the
    entry laws the stationary laws of the fine matrices, through the kernel's Op."""
    rng = np.random.default_rng(7)
    _, _, _, _, fine, coarse = _problem(7, fine_sizes=(2, 2))
    grid = state_grid(2, [2, 2])

    def log_likelihood(coarse_logits, fine_logits_a, fine_logits_b):
        log_q = pt.log(pt.special.softmax(coarse_logits, axis=-1))
        fines = [pt.special.softmax(x, axis=-1) for x in (fine_logits_a, fine_logits_b)]
        log_entries = [pt.log(stationary_distribution(p)) for p in fines]
        log_initial = two_scale_log_initial(
            pt.log(stationary_distribution(pt.exp(log_q))), log_entries, grid
        )
        log_transition = two_scale_log_transition(
            log_q, [pt.log(p) for p in fines], log_entries, OPENS, grid
        )
        log_emission = two_scale_log_emission(fine, coarse, grid)
        return hmm_log_likelihood(log_initial, log_transition, log_emission)

    pytensor.gradient.verify_grad(
        log_likelihood,
        [rng.normal(size=(2, 2)), rng.normal(size=(2, 2, 2)), rng.normal(size=(2, 2, 2))],
        rng=np.random.default_rng(8),
        eps=1e-6,
        abs_tol=1e-5,
        rel_tol=1e-5,
    )


def test_simulated_paths_follow_the_chain():
    """20,000 fine dates in periods of four: the coarse regime never changes within a
    period, and the empirical coarse moves, fine entries and fine moves under each coarse
    state match their probabilities within four binomial standard errors."""
    rng = np.random.default_rng(0)
    coarse_initial = np.array([0.5, 0.5])
    coarse_transition = np.array([[0.8, 0.2], [0.3, 0.7]])
    fine_transitions = [
        np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.1, 0.9]]]),
        np.array([[[0.7, 0.3], [0.2, 0.8]], [[0.95, 0.05], [0.5, 0.5]]]),
    ]
    entries = [np.stack([stationary_numpy(p) for p in fine]) for fine in fine_transitions]
    opens = np.arange(20_000) % 4 == 0
    coarse, fine = sample_two_scale_path(
        coarse_initial, coarse_transition, fine_transitions, entries, opens, rng
    )
    periods = np.cumsum(opens) - 1
    assert np.all(coarse == coarse[opens][periods])

    def check(counts, probabilities):
        total = counts.sum(axis=-1, keepdims=True)
        frequency = counts / total
        se = np.sqrt(probabilities * (1 - probabilities) / total)
        assert np.all(np.abs(frequency - probabilities) <= 4 * se), (frequency, probabilities)

    openings = np.flatnonzero(opens)[1:]
    moves = np.zeros((2, 2))
    np.add.at(moves, (coarse[openings - 1], coarse[openings]), 1)
    check(moves, coarse_transition)
    within = np.flatnonzero(~opens)
    for market in range(2):
        entered = np.zeros((2, 2))
        np.add.at(entered, (coarse[opens], fine[opens, market]), 1)
        check(entered, entries[market])
        counts = np.zeros((2, 2, 2))
        np.add.at(counts, (coarse[within], fine[within - 1, market], fine[within, market]), 1)
        check(counts, fine_transitions[market])


def test_simulated_carry_paths_move_on_at_openings():
    """The carry form: at an opening the fine chain moves from where it was by the new
    coarse state's matrix (within four binomial standard errors)."""
    rng = np.random.default_rng(1)
    coarse_transition = np.array([[0.8, 0.2], [0.3, 0.7]])
    fine = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.1, 0.9]]])
    entries = [np.stack([stationary_numpy(p) for p in fine])]
    opens = np.arange(20_000) % 4 == 0
    coarse, path = sample_two_scale_path(
        np.array([0.5, 0.5]), coarse_transition, [fine], entries, opens, rng, carry=True
    )
    openings = np.flatnonzero(opens)[1:]
    counts = np.zeros((2, 2, 2))
    np.add.at(counts, (coarse[openings], path[openings - 1, 0], path[openings, 0]), 1)
    total = counts.sum(axis=-1, keepdims=True)
    se = np.sqrt(fine * (1 - fine) / total)
    assert np.all(np.abs(counts / total - fine) <= 4 * se)
