"""Placebo tests for event studies: circular forward sums against a loop, p-values that
are uniform when the events mean nothing and small when they do, and the corrections
against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from regime_model.evaluation.placebo import (
    benjamini_hochberg,
    circular_forward_sums,
    event_effect,
    holm,
    max_statistic_p_value,
    placebo_effects,
    placebo_p_value,
    placebo_shifts,
    stratified_placebo_effects,
)


def test_circular_forward_sums_are_the_window_sums_around_the_circle():
    rng = np.random.default_rng(0)
    returns = rng.normal(size=(50, 3))
    forward = circular_forward_sums(returns, 7)
    per_date = returns.mean(axis=1)
    expected = [per_date[(t + 1 + np.arange(7)) % 50].sum() for t in range(50)]
    np.testing.assert_allclose(forward, expected, rtol=1e-12)
    np.testing.assert_allclose(forward.mean(), 7 * per_date.mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="complete"):
        circular_forward_sums(np.full((5, 1), np.nan), 2)


def _autocorrelated(rng, n):
    """AR(1) returns with volatility clusters: what the circle must keep."""
    returns = np.zeros(n)
    volatility = np.exp(np.cumsum(rng.normal(scale=0.05, size=n)) % 1.0)
    for t in range(1, n):
        returns[t] = 0.3 * returns[t - 1] + volatility[t] * rng.standard_normal()
    return returns[:, None]


def test_p_values_are_uniform_without_an_effect_and_small_with_one():
    """300 simulated markets, three events each at random dates: P(p <= 0.1) is 0.1
    within 3.5 binomial se; a true post-event drift of 1.5 sd of the window sums gives
    p <= 0.05 in most of them."""
    rng = np.random.default_rng(1)
    n_dates, horizon, n_sims = 600, 20, 300
    null_p, effect_p = [], []
    for sim in range(n_sims):
        returns = _autocorrelated(rng, n_dates)
        positions = np.sort(rng.choice(n_dates - horizon - 1, size=3, replace=False))
        shifts = placebo_shifts(n_dates, 400, seed=sim)
        forward = circular_forward_sums(returns, horizon)
        null_p.append(
            placebo_p_value(
                event_effect(forward, positions), placebo_effects(forward, positions, shifts)
            )
        )
        boosted = returns.copy()
        drift = 1.5 * forward.std() / horizon
        for position in positions:
            boosted[position + 1 : position + 1 + horizon] += drift
        forward = circular_forward_sums(boosted, horizon)
        effect_p.append(
            placebo_p_value(
                event_effect(forward, positions), placebo_effects(forward, positions, shifts)
            )
        )
    share = np.mean(np.array(null_p) <= 0.1)
    assert abs(share - 0.1) <= 3.5 * np.sqrt(0.1 * 0.9 / n_sims), share
    assert np.mean(np.array(effect_p) <= 0.05) > 0.7


def test_the_corrections_match_statsmodels():
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5, 0.012, 0.8])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(
        benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12
    )


def test_the_max_statistic_test_sees_one_strong_rule_among_many_null_ones():
    rng = np.random.default_rng(2)
    placebo = rng.standard_normal((2000, 10))
    null = max_statistic_p_value(rng.standard_normal(10) * 0.5, placebo)
    strong = max_statistic_p_value(np.r_[4.0, np.zeros(9)], placebo)
    assert null > 0.3 and strong < 0.02


def test_stratified_placebos_remove_a_stratum_effect_and_are_uniform_without_one():
    """Forward returns lifted by 2 sd in one stratum, events all in it: the plain placebo
    calls twelve such events significant, the stratified one does not; over 200 null
    markets the
    stratified p-values are uniform (P(p <= 0.1) within 3.5 se of 0.1)."""
    rng = np.random.default_rng(3)
    n_dates = 800
    strata = (np.arange(n_dates) // 100) % 2  # alternating blocks of 100 dates
    forward = rng.standard_normal(n_dates) + 2.0 * strata
    positions = rng.choice(np.flatnonzero(strata == 1), size=12, replace=False)
    plain = placebo_p_value(
        event_effect(forward, positions),
        placebo_effects(forward, positions, placebo_shifts(n_dates, 999, 0)),
    )
    observed, placebo = stratified_placebo_effects(forward, positions, strata, 999, seed=0)
    assert plain < 0.01 and placebo_p_value(observed, placebo) > 0.05
    p_values = []
    for sim in range(200):
        forward = rng.standard_normal(n_dates) + 2.0 * strata
        positions = rng.choice(n_dates, size=4, replace=False)
        observed, placebo = stratified_placebo_effects(forward, positions, strata, 400, sim)
        p_values.append(placebo_p_value(observed, placebo))
    share = np.mean(np.array(p_values) <= 0.1)
    assert abs(share - 0.1) <= 3.5 * np.sqrt(0.09 / 200), share
