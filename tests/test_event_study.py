"""Breakout detection, forward-return windows and the event-study posterior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regime_model.data.events import find_breakouts
from regime_model.errors import NonPositivePriceError
from regime_model.models.event_study import EventStudy, forward_returns, tiling_starts


def test_breakouts_need_a_long_base():
    dates = pd.bdate_range("2020-01-01", periods=700)
    # high on day 10, a long base below it, a breakout on day 400, new highs right after
    prices = np.full(700, 90.0)
    prices[10] = 100.0
    prices[400:] = 101.0 + np.arange(300) * 0.01
    breakouts = find_breakouts(pd.Series(prices, index=dates), min_base_days=365)
    assert breakouts["date"].tolist() == [dates[400]]
    assert breakouts["previous_high"].iloc[0] == 100.0
    assert breakouts["previous_high_date"].iloc[0] == dates[10]
    assert breakouts["base_days"].iloc[0] == (dates[400] - dates[10]).days
    shorter = find_breakouts(pd.Series(prices, index=dates), min_base_days=30)
    assert shorter["date"].tolist() == [dates[400]]  # the next highs have no base at all


def test_breakouts_reject_bad_prices():
    dates = pd.bdate_range("2020-01-01", periods=5)
    with pytest.raises(NonPositivePriceError):
        find_breakouts(pd.Series([1.0, 2.0, 0.0, 3.0, 4.0], index=dates))


def test_forward_returns_sum_the_steps_after_the_start_and_refuse_partial_windows():
    dates = pd.bdate_range("2024-01-01", periods=8)
    returns = pd.DataFrame(
        {"btc": np.arange(8.0), "eth": [1.0, 1.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0]}, index=dates
    )
    windows = forward_returns(returns, pd.DatetimeIndex([dates[0], dates[3], dates[6]]), 3)
    assert windows.loc[dates[0], "btc"] == 1 + 2 + 3
    assert np.isnan(windows.loc[dates[0], "eth"])  # a missing step inside the window
    assert windows.loc[dates[3], "eth"] == 3.0
    assert windows.loc[dates[6]].isna().all()  # runs past the end
    assert list(tiling_starts(dates, 3)) == [dates[0], dates[3]]


def _windows(rng, n, mean, shared=1.0, noise=0.5):
    shock = shared * rng.standard_normal((n, 1))
    return pd.DataFrame(
        mean + shock + noise * rng.standard_normal((n, 3)), columns=["btc", "eth", "alt"]
    )


def test_event_study_finds_a_clear_excess_and_stays_wide_with_few_events():
    rng = np.random.default_rng(0)
    reference = _windows(rng, 40, 0.0)
    strong = EventStudy(draws=1000, tune=1000, chains=2, seed=1).fit(
        _windows(rng, 12, 3.0), reference
    )
    table = strong.summary().set_index("asset")
    assert (table["p_difference_positive"] > 0.99).all()
    assert ((table["difference_lower"] < 3.0) & (table["difference_upper"] > 3.0)).all()
    diagnostics = strong.diagnostics()
    assert diagnostics["max_rhat"] < 1.02 and diagnostics["divergences"] == 0
    # three events from the same distribution as the reference: no decisive evidence, and
    # a band several times wider than the reference's
    few = EventStudy(draws=1000, tune=1000, chains=2, seed=1).fit(_windows(rng, 3, 0.0), reference)
    table = few.summary().set_index("asset")
    assert table["p_difference_positive"].between(0.02, 0.98).all()
    assert (table["after_event_hdi_width"] > 2 * table["any_time_hdi_width"]).all()


def test_the_predictive_of_a_new_window_has_the_generating_law():
    """With many windows (40 after events, shared shock sd 1, noise sd 0.5, mean 3) the
    predictive of a new event window has mean 3, sd sqrt(1 + 0.25) = 1.12 per asset and
    correlation 1 / 1.25 = 0.8 between assets: the shared shock is in it. The tolerances
    are about three times the sampling error of these estimates from 40 windows."""
    rng = np.random.default_rng(3)
    study = EventStudy(draws=1000, tune=1000, chains=2, seed=2).fit(
        _windows(rng, 40, 3.0), _windows(rng, 80, 0.0)
    )
    predictive = study.predictive(seed=4)
    assert predictive.shape == (2000, 3) and list(predictive.columns) == ["btc", "eth", "alt"]
    np.testing.assert_allclose(predictive.mean(), 3.0, atol=0.5)
    np.testing.assert_allclose(predictive.std(), np.sqrt(1.25), rtol=0.25)
    correlation = predictive.corr().to_numpy()[np.triu_indices(3, 1)]
    np.testing.assert_allclose(correlation, 0.8, atol=0.12)
    reference = study.predictive("any_time", seed=4)
    assert abs(reference.mean().mean()) < 0.5


def test_window_density_is_the_multivariate_normal_of_the_observed_assets():
    """Against scipy's multivariate normal on each window's observed subset, with the
    shared-shock covariance tau^2 11' + diag(sigma^2) written out."""
    from scipy.stats import multivariate_normal

    from regime_model.models.event_study import window_log_density

    rng = np.random.default_rng(4)
    residuals = rng.standard_normal((6, 3))
    observed = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 0, 1]], bool)
    sigma, tau = np.array([0.5, 1.3, 0.8]), 0.7
    expected = []
    for row, mask in zip(residuals, observed, strict=True):
        covariance = tau**2 * np.ones((3, 3)) + np.diag(sigma**2)
        expected.append(
            multivariate_normal(np.zeros(mask.sum()), covariance[np.ix_(mask, mask)]).logpdf(
                row[mask]
            )
        )
    got = window_log_density(residuals, observed, sigma, tau).eval()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_covariate_takes_the_confounded_part_of_the_event_effect():
    """Twenty events that all fall in a phase that lifts returns by 2 (as the cited
    breakouts all fall in the year after a halving), with no effect of their own, against
    reference windows 30% of which are in that phase: without the covariate the model
    sees an event effect (about 1.4); with it, the event effect is 0 within its band and
    the phase's effect is 2 within its band."""
    rng = np.random.default_rng(5)
    phase = rng.random(120) < 0.3  # the reference windows' phase indicator
    reference = _windows(rng, 120, 0.0) + 2.0 * phase[:, None]
    events = _windows(rng, 20, 0.0) + 2.0
    plain = EventStudy(draws=1000, tune=1000, chains=2, seed=3).fit(events, reference)
    assert (plain.summary()["difference_lower"] > 0.5).all()
    covariate = "early_cycle"
    adjusted = EventStudy(draws=1000, tune=1000, chains=2, seed=3).fit(
        events,
        reference,
        pd.DataFrame({covariate: np.ones(20)}),
        pd.DataFrame({covariate: phase.astype(float)}),
    )
    table = adjusted.summary()
    assert ((table["difference_lower"] < 0) & (table["difference_upper"] > 0)).all()
    effects = adjusted.covariate_effects()
    assert list(effects["covariate"].unique()) == [covariate]
    assert ((effects["lower"] < 2.0) & (effects["upper"] > 2.0)).all()
    assert adjusted.diagnostics()["divergences"] == 0
    with pytest.raises(ValueError, match="both"):
        EventStudy().fit(events, reference, pd.DataFrame({covariate: np.ones(20)}))
