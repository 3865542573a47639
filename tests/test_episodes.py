"""Regime episodes from a fitted run, and per-episode returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from regime_model.episodes import episode_returns, regime_episodes
from regime_model.models import EMHMM
from tests.test_models import simulate_hmm


def test_episodes_partition_the_dates_and_follow_the_argmax_path():
    features, path = simulate_hmm(300, seed=4)
    result = EMHMM(2, n_restarts=3, seed=0).fit(features).result_
    episodes = regime_episodes(result)
    assert episodes["duration"].sum() == len(result.dates)
    assert (episodes["regime"].to_numpy()[1:] != episodes["regime"].to_numpy()[:-1]).all()
    starts = result.dates.get_indexer(episodes["start"])
    ends = result.dates.get_indexer(episodes["end"])
    np.testing.assert_array_equal(starts[1:], ends[:-1] + 1)
    argmax = result.probabilities.smoothed.mean(axis=0).argmax(axis=1)
    for regime, start, end in zip(episodes["regime"], starts, ends, strict=True):
        assert set(argmax[start : end + 1]) == {result.regime_names.index(regime)}
    # well-separated synthetic data: the episodes recover the true path almost everywhere
    labelled = np.concatenate(
        [
            np.full(duration, result.regime_names.index(regime))
            for regime, duration in zip(episodes["regime"], episodes["duration"], strict=True)
        ]
    )
    assert (labelled == path).mean() > 0.95


def test_episode_returns_sum_the_episode_and_count_missing_steps():
    dates = pd.bdate_range("2024-01-01", periods=6, name="date")
    episodes = pd.DataFrame(
        {
            "regime": ["risk_on", "risk_off"],
            "start": [dates[0], dates[3]],
            "end": [dates[2], dates[5]],
            "duration": [3, 3],
        }
    )
    returns = pd.DataFrame({"iwm": [1.0, 2.0, np.nan, -1.0, -2.0, -3.0]}, index=dates)
    table = episode_returns(episodes, returns)
    assert table["iwm_total"].tolist() == [3.0, -6.0]
    assert table["iwm_mean"].tolist() == [1.5, -2.0]
    assert table["iwm_observed"].tolist() == [2, 3]
