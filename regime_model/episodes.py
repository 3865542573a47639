"""Regime episodes: maximal runs of dates on which one regime is the most probable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from regime_model.results import RegimeResult


def regime_episodes(result: RegimeResult, kind: str = "smoothed") -> pd.DataFrame:
    """One row per episode: regime, start, end, duration (steps), mean P(regime) over it.

    The episode path is the argmax of the posterior mean probabilities of ``kind``
    (smoothed by default: episodes describe history; use "filtered" for what was known).
    """
    probabilities = getattr(result.probabilities, kind).mean(axis=0)  # (T, K)
    path = probabilities.argmax(axis=1)
    breaks = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(path)]]) - 1
    rows = [
        {
            "regime": result.regime_names[path[start]],
            "start": result.dates[start],
            "end": result.dates[end],
            "duration": int(end - start + 1),
            "mean_probability": float(probabilities[start : end + 1, path[start]].mean()),
        }
        for start, end in zip(starts, ends, strict=True)
    ]
    frame = pd.DataFrame(rows)
    frame.attrs["kind"] = kind
    return frame


def episode_returns(episodes: pd.DataFrame, log_returns: pd.DataFrame) -> pd.DataFrame:
    """Per episode and column of ``log_returns`` (dates x assets, log returns per step):
    the mean per step and the total log return over the episode (missing steps skipped,
    and counted in ``<asset>_observed``)."""
    columns = {}
    for asset in log_returns.columns:
        means, totals, observed = [], [], []
        for start, end in zip(episodes["start"], episodes["end"], strict=True):
            values = log_returns.loc[start:end, asset].dropna()
            means.append(values.mean() if len(values) else np.nan)
            totals.append(values.sum() if len(values) else np.nan)
            observed.append(len(values))
        columns[f"{asset}_mean"] = means
        columns[f"{asset}_total"] = totals
        columns[f"{asset}_observed"] = observed
    return pd.concat([episodes.reset_index(drop=True), pd.DataFrame(columns)], axis=1)
