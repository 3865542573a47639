"""The history-chain kernel against the general kernel on the expanded chain (value,
every gradient, the filter of stacked draws), against brute-force enumeration of
regime paths on a tiny problem, against finite differences, and its zero-likelihood
case."""

from __future__ import annotations

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp

from regime_model.inference import hmm_filter, hmm_loglik_and_grad
from regime_model.inference.history_kernel import (
    history_draw_inputs,
    history_filter_draws,
    history_homogeneous,
    history_log_likelihood,
    history_time_varying,
)
from regime_model.models.autoregression import history_log_transition, regime_histories

CASES = [(2, 1, False), (2, 1, True), (3, 2, False), (3, 2, True), (2, 4, True)]


def _problem(n_regimes, order, time_varying, n_dates=25, seed=0):
    """(log_initial (S,), regime log_transition, log_emission (T, S))."""
    rng = np.random.default_rng(seed)
    n_histories = n_regimes ** (order + 1)
    shape = (n_dates - 1, n_regimes) if time_varying else (n_regimes,)
    log_transition = np.log(rng.dirichlet(np.full(n_regimes, 2.0), size=shape))
    log_initial = np.log(rng.dirichlet(np.ones(n_histories)))
    return log_initial, log_transition, 2.0 * rng.standard_normal((n_dates, n_histories))


def _kernel(time_varying):
    return history_time_varying if time_varying else history_homogeneous


def _regime_gradient(expanded_gradient, n_regimes, order):
    """d/dlog P (..., K, K) from d/d of the expanded (..., S, S): each regime entry
    feeds every history move it is gathered into (the structural zeros feed nothing)."""
    histories = regime_histories(n_regimes, order)
    shifts = (histories[None, :, 1:] == histories[:, None, :-1]).all(axis=-1)
    gradient = np.zeros((*expanded_gradient.shape[:-2], n_regimes, n_regimes))
    for a, b in zip(*np.nonzero(shifts), strict=True):
        gradient[..., histories[a, 0], histories[b, 0]] += expanded_gradient[..., a, b]
    return gradient


@pytest.mark.parametrize(("n_regimes", "order", "time_varying"), CASES)
def test_the_kernel_equals_the_general_kernel_on_the_expanded_chain(n_regimes, order, time_varying):
    log_initial, log_transition, log_emission = _problem(n_regimes, order, time_varying)
    expanded = history_log_transition(log_transition, n_regimes, order)
    reference = hmm_loglik_and_grad(log_initial, expanded, log_emission)
    value, grad_initial, grad_transition, grad_emission = _kernel(time_varying)(
        log_initial, log_transition, log_emission, order
    )
    assert abs(value - reference.marginal_loglik) < 1e-10
    np.testing.assert_allclose(grad_initial, reference.grad_log_initial, atol=1e-12)
    np.testing.assert_allclose(grad_emission, reference.grad_log_emission, atol=1e-12)
    np.testing.assert_allclose(
        grad_transition,
        _regime_gradient(reference.grad_log_transition, n_regimes, order),
        atol=1e-10,
    )
    assert np.abs(grad_transition).max() > 0.1  # the check compares gradients that are not 0


def test_the_likelihood_equals_the_sum_over_every_regime_path():
    """T = 6 dates, K = 2, p = 2: all 2^8 paths of (s_{-2}, ..., s_5), each weighted by
    the first history's law and the moves, its density the history's at each date."""
    n_regimes, order, n_dates = 2, 2, 6
    log_initial, log_transition, log_emission = _problem(n_regimes, order, True, n_dates, 3)
    terms = []
    for path in itertools.product(range(n_regimes), repeat=n_dates + order):
        # path[order + t] is s_t; the history at t is (s_t, s_{t-1}, s_{t-2}).
        history = [
            sum(path[order + t - i] * n_regimes ** (order - i) for i in range(order + 1))
            for t in range(n_dates)
        ]
        term = log_initial[history[0]] + sum(log_emission[t, history[t]] for t in range(n_dates))
        for t in range(1, n_dates):
            term += log_transition[t - 1, path[order + t - 1], path[order + t]]
        terms.append(term)
    value = history_time_varying(log_initial, log_transition, log_emission, order)[0]
    assert abs(value - logsumexp(terms)) < 1e-10


def test_the_gradient_matches_finite_differences_through_the_op():
    log_initial, log_transition, log_emission = _problem(2, 2, True, n_dates=15, seed=5)
    pytensor.gradient.verify_grad(
        lambda a, b, c: history_log_likelihood(a, b, c, 2),
        [log_initial, log_transition, log_emission],
        rng=np.random.default_rng(1),
        eps=1e-6,
        abs_tol=1e-5,
        rel_tol=1e-5,
    )


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
def test_the_op_gives_the_kernels_value_in_python_and_numba_mode(mode):
    log_initial, log_transition, log_emission = _problem(3, 1, False, seed=2)
    inputs = [pt.dvector(), pt.dmatrix(), pt.dmatrix()]
    value = history_log_likelihood(*inputs, 1)
    values = pytensor.function(inputs, [value, *pytensor.grad(value, inputs)], mode=mode)(
        log_initial, log_transition, log_emission
    )
    expected = history_homogeneous(log_initial, log_transition, log_emission, 1)
    for ours, reference in zip(values, expected, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("time_varying", [False, True])
def test_the_filter_of_stacked_draws_equals_the_general_filter(time_varying):
    draws = [_problem(2, 2, time_varying, seed=seed) for seed in range(3)]
    log_predictive, filtered = history_filter_draws(
        *history_draw_inputs(*(np.stack(parts) for parts in zip(*draws, strict=True))), 2
    )
    for n, (log_initial, log_transition, log_emission) in enumerate(draws):
        reference = hmm_filter(
            log_initial, history_log_transition(log_transition, 2, 2), log_emission
        )
        np.testing.assert_allclose(filtered[n], reference.filtered_probs, atol=1e-12)
        np.testing.assert_allclose(log_predictive[n], reference.log_predictive, atol=1e-10)


def test_a_likelihood_of_zero_is_minus_infinity_with_an_undefined_gradient():
    """Every regime-1 move impossible, and date 3 has density only under histories
    ending in regime 1: no path explains it."""
    log_initial, log_transition, log_emission = _problem(2, 1, False)
    log_transition[:, 1] = -np.inf
    log_transition[:, 0] = 0.0
    log_initial[:] = [0.0, -np.inf, -np.inf, -np.inf]
    log_emission[3, :2] = -np.inf  # histories (0, .) impossible on date 3
    value, grad_initial, _, grad_emission = history_homogeneous(
        log_initial, log_transition, log_emission, 1
    )
    assert value == -np.inf
    assert np.isnan(grad_initial).all() and np.isnan(grad_emission).all()
