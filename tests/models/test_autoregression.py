"""Markov-switching autoregression (mean-adjusted, Hamilton's form) as an HMM on regime
histories, checked against published maximum-likelihood results.

The oracles are the fixtures statsmodels ships in its wheel (read from it, data and
filtered probabilities; the parameter vectors and log-likelihoods below are copied from
statsmodels/tsa/regime_switching/tests/test_markov_autoregression.py, which took them
from E-views and Stata):

* Hamilton (1989) US real GNP growth, 1951Q1-1984Q4, MS-AR(4) with a switching mean
  (E-views): log-likelihood -181.26339 and the filtered probabilities;
* the same data, MS-AR(2) with switching mean and AR coefficients (Stata's manual,
  mswitch): -179.32354;
* Filardo (1994) US industrial production growth, MS-AR(4) whose transitions depend on
  the lagged leading indicator through a logistic link: -586.5718 and the filtered
  probabilities.

At the published parameters our log-likelihood must match the published value to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy.special import expit

from regime_model.inference import hmm_filter, hmm_loglik_and_grad
from regime_model.inference.stationary import stationary_numpy
from regime_model.models.autoregression import (
    history_log_initial,
    history_log_transition,
    lag_matrix,
    mean_adjusted_log_emission,
    regime_histories,
    regime_marginals,
)

fixtures = pytest.importorskip(
    "statsmodels.tsa.regime_switching.tests.test_markov_autoregression",
    reason="statsmodels (the dev extra) holds the published fixtures",
)
RESULTS = Path(fixtures.__file__).parent / "results"


def _regime_transition(p00: float, p10: float) -> np.ndarray:
    """statsmodels' p[0->0], p[1->0] as a row-stochastic (from, to) matrix."""
    return np.array([[p00, 1.0 - p00], [p10, 1.0 - p10]])


def _history_inputs(y, transition, mean, ar, sigma, order):
    """(log_initial (S,), log_transition, log_emission (T', S)) of the history chain.

    ``transition`` (K, K) or (T, K, K), entry t the move into date t (statsmodels' layout
    for covariate-driven transitions)."""
    k = len(mean)
    log_transition = np.log(np.maximum(transition, 1e-20))  # statsmodels' floor
    if transition.ndim == 2:  # stationary, then p moves by the one matrix
        log_stationary = np.log(np.maximum(stationary_numpy(transition), 1e-20))
        first_moves = np.broadcast_to(log_transition, (order, k, k))
        log_initial = history_log_initial(log_stationary, first_moves, k, order).eval()
        moves = log_transition
    else:
        # statsmodels: the oldest regime (the date before the sample) is stationary under
        # the first matrix, and the moves into dates 0..p build the first history (the
        # oldest regime then summed out).
        oldest = np.log(np.maximum(stationary_numpy(transition[0]), 1e-20))
        joint = history_log_initial(oldest, log_transition[: order + 1], k, order + 1).eval()
        log_initial = np.logaddexp.reduce(joint.reshape(k ** (order + 1), k), axis=-1)
        moves = log_transition[order + 1 :]
    log_history_transition = history_log_transition(moves, k, order).eval()
    log_emission = mean_adjusted_log_emission(
        lag_matrix(y, order), mean, ar, sigma, k, order
    ).eval()
    return log_initial, log_history_transition, log_emission


def test_histories_shift_one_step_and_the_transition_rows_stay_stochastic():
    histories = regime_histories(2, 2)
    assert histories.shape == (8, 3) and list(histories[5]) == [1, 0, 1]  # s_t most significant
    transition = np.array([[0.9, 0.1], [0.3, 0.7]])
    expanded = np.exp(history_log_transition(np.log(transition), 2, 2).eval())
    np.testing.assert_allclose(expanded.sum(axis=1), 1.0)
    # (1, 0, 1) -> (s, 1, 0), states 0b010 and 0b110, with P[1, s]; nothing else.
    expected = np.zeros(8)
    expected[[0b010, 0b110]] = transition[1]
    np.testing.assert_allclose(expanded[0b101], expected)
    # The stationary joint law of three consecutive regimes sums to one.
    stationary = stationary_numpy(transition)
    first = np.exp(
        history_log_initial(np.log(stationary), np.log(np.stack([transition] * 2)), 2, 2).eval()
    )
    np.testing.assert_allclose(first.sum(), 1.0)
    np.testing.assert_allclose(regime_marginals(first, 2, 2), stationary)


def test_hamilton_1989_ar4_switching_mean_matches_e_views():
    p00, p10, mean0, mean1, variance, *ar = np.r_[
        0.754673, 0.095915, -0.358811, 1.163516, np.exp(-0.262658) ** 2,
        0.013486, -0.057521, -0.246983, -0.212923,
    ]  # fmt: skip
    inputs = _history_inputs(
        np.asarray(fixtures.rgnp),
        _regime_transition(p00, p10),
        np.array([mean0, mean1]),
        np.array(ar),
        np.sqrt(variance),
        order=4,
    )
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-181.26339)) < 1e-4
    filtered = regime_marginals(hmm_filter(*inputs).filtered_probs, 2, 4)
    np.testing.assert_allclose(filtered[:, 1], fixtures.hamilton_ar4_filtered, atol=1e-5)


def test_hamilton_data_ar2_switching_mean_and_ar_matches_stata():
    p00, p10, mean0, mean1, variance, ar1_0, ar1_1, ar2_0, ar2_1 = np.r_[
        0.3812383, 0.3564492, -0.0055216, 1.195482, 0.6677098**2,
        0.3710719, 0.4621503, 0.7002937, -0.3206652,
    ]  # fmt: skip
    inputs = _history_inputs(
        np.asarray(fixtures.rgnp),
        _regime_transition(p00, p10),
        np.array([mean0, mean1]),
        np.array([[ar1_0, ar2_0], [ar1_1, ar2_1]]),  # (K, p): regime 0's lags, regime 1's
        np.sqrt(variance),
        order=2,
    )
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-179.32354)) < 1e-4


def test_filardo_1994_ar4_with_covariate_driven_transitions_matches_the_fixture():
    import pandas as pd

    data = pd.read_csv(RESULTS / "mar_filardo.csv")
    y = data["dlip"].iloc[1:].to_numpy()
    leading = data["dmdlleading"].iloc[:-1].to_numpy()  # last month's leading indicator
    p00_const, p10_const, p00_slope, p10_slope, mean0, mean1, variance, *ar = np.r_[
        4.35941747, -1.6493936, 1.7702123, 0.9945672, 0.517298, -0.865888,
        np.exp(-0.362469) ** 2, 0.189474, 0.079344, 0.110944, 0.122251,
    ]  # fmt: skip
    stay0 = expit(p00_const + p00_slope * leading)
    enter0 = expit(p10_const + p10_slope * leading)
    transition = np.stack([np.stack([stay0, 1 - stay0], -1), np.stack([enter0, 1 - enter0], -1)], 1)
    inputs = _history_inputs(
        y, transition, np.array([mean0, mean1]), np.array(ar), np.sqrt(variance), order=4
    )
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-586.5718)) < 1e-4
    filtered = regime_marginals(hmm_filter(*inputs).filtered_probs, 2, 4)
    np.testing.assert_allclose(filtered[:, 0], data["filtered_0"].iloc[5:], atol=1e-5)


def test_the_gradient_through_the_histories_matches_finite_differences():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(60).cumsum() * 0.1
    k, order = 2, 2
    lags = lag_matrix(y, order)

    def log_likelihood(mean, ar, log_sigma, logit_stay):
        from regime_model.inference import hmm_log_likelihood

        stay = pt.sigmoid(logit_stay)
        transition = pt.stack([pt.stack([stay[0], 1 - stay[0]]), pt.stack([1 - stay[1], stay[1]])])
        log_transition = pt.log(transition)
        log_initial = history_log_initial(
            pt.log(pt.as_tensor(np.full(k, 0.5))), pt.stack([log_transition] * order), k, order
        )
        return hmm_log_likelihood(
            log_initial,
            history_log_transition(log_transition, k, order),
            mean_adjusted_log_emission(lags, mean, ar, pt.exp(log_sigma), k, order),
        )

    import pytensor

    pytensor.gradient.verify_grad(
        log_likelihood,
        [np.array([-0.3, 0.4]), np.array([[0.2, -0.1], [0.5, 0.1]]), np.array([-0.2, 0.1]),
         np.array([1.5, 2.0])],
        rng=rng,
        eps=1e-6,
        abs_tol=1e-5,
        rel_tol=1e-5,
    )  # fmt: skip
