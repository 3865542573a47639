"""Synthetic markets with a known regime path: the demo data set and the tests' ground truth.

:func:`simulate_market` draws a sticky Markov chain of K liquidity regimes on calendar days
(0 = risk_off ... K-1 = risk_on) and, from it, raw series shaped like the real ones:
equity ETF prices on US trading days (weekends and a few holidays closed), crypto prices
every day with fat tails and a higher beta to equities, breadth counts, stablecoin supply,
the Fed balance sheet (weekly, Wednesdays), reverse repo, credit spreads, VIX and ETF
shares outstanding. Crypto may follow equities with a lag: its regime on day t is the
equity regime on day t - ``crypto_lag_days``.

The series are keyed by the names the packaged universe's ``synthetic`` locators use, so
the synthetic data go through exactly the same feature pipeline as real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from regime_model.data.sources import FrameSource

# Daily parameters of the two extreme regimes; intermediate regimes interpolate.
_RISK_OFF = {
    "equity_mean": -0.0012, "equity_vol": 0.018,
    "crypto_mean": -0.0030, "crypto_vol": 0.045,
    "breadth_target": 30.0, "highs_rate": 20.0, "lows_rate": 150.0,
    "stablecoin_growth": -0.0002, "fed_growth": -0.001, "shares_growth": -0.0005,
    "spread_target": 6.5, "vix_target": 28.0,
}  # fmt: skip
_RISK_ON = {
    "equity_mean": 0.0007, "equity_vol": 0.008,
    "crypto_mean": 0.0030, "crypto_vol": 0.025,
    "breadth_target": 70.0, "highs_rate": 150.0, "lows_rate": 20.0,
    "stablecoin_growth": 0.0015, "fed_growth": 0.003, "shares_growth": 0.0005,
    "spread_target": 3.5, "vix_target": 14.0,
}  # fmt: skip
_CRYPTO_BETA = 1.2
_STUDENT_DF = 4.0
_FIXED_HOLIDAYS = ((1, 1), (7, 4), (12, 25))


@dataclass(frozen=True)
class SyntheticMarket:
    """Raw synthetic series and the regime path that generated them.

    ``regimes``/``crypto_regimes``: (N,) ints per calendar day, 0 = risk_off.
    ``transition_matrix``: (K, K) daily transition probabilities of ``regimes``.
    """

    series: dict[str, pd.Series]
    regimes: pd.Series
    crypto_regimes: pd.Series
    transition_matrix: np.ndarray
    crypto_lag_days: int
    seed: int

    @property
    def n_regimes(self) -> int:
        return self.transition_matrix.shape[0]

    def source(self) -> FrameSource:
        """A source serving these series to :func:`~regime_model.data.features.build_features`."""
        return FrameSource(self.series, name="synthetic")

    def truth_on(self, dates: pd.DatetimeIndex) -> pd.DataFrame:
        """True regimes on the given dates (a weekly date gets its Friday's regime)."""
        return pd.DataFrame(
            {
                "regime": self.regimes.reindex(dates).to_numpy(),
                "crypto_regime": self.crypto_regimes.reindex(dates).to_numpy(),
            },
            index=pd.DatetimeIndex(dates, name="date"),
        )


def equity_trading_days(days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Weekdays except New Year's Day, Independence Day and Christmas (when on a weekday)."""
    weekdays = days[days.day_of_week < 5]
    holiday = np.zeros(len(weekdays), dtype=bool)
    for month, day in _FIXED_HOLIDAYS:
        holiday |= (weekdays.month == month) & (weekdays.day == day)
    return weekdays[~holiday]


def simulate_market(
    n_regimes: int = 2,
    start: str = "2016-01-01",
    end: str = "2023-12-31",
    seed: int = 0,
    crypto_lag_days: int = 0,
    stay_probability: float = 0.985,
) -> SyntheticMarket:
    """Simulate a market whose liquidity regime is known. Reproducible by ``seed``.

    ``stay_probability`` is the daily probability of remaining in a regime (mean duration
    1 / (1 - p) days); leaving moves to any other regime with equal probability.
    """
    if n_regimes < 2:
        raise ValueError("n_regimes must be at least 2")
    if not 0.0 < stay_probability < 1.0:
        raise ValueError("stay_probability must be between 0 and 1")
    if crypto_lag_days < 0:
        raise ValueError("crypto_lag_days must be >= 0")
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D", name="date")
    if len(days) < 2 * crypto_lag_days + 30:
        raise ValueError("the date range is too short for the requested lag")
    transition = _transition_matrix(n_regimes, stay_probability)
    # Draw the chain from before `start` so the lagged crypto path is defined from day one.
    path = _markov_chain(rng, transition, len(days) + crypto_lag_days)
    regimes = pd.Series(path[crypto_lag_days:], index=days, name="regime")
    crypto_regimes = pd.Series(path[: len(days)], index=days, name="crypto_regime")

    level = regimes.to_numpy() / (n_regimes - 1)  # 0 = risk_off, 1 = risk_on
    crypto_level = crypto_regimes.to_numpy() / (n_regimes - 1)
    trading_days = equity_trading_days(days)
    is_trading = days.isin(trading_days)

    def param(name: str, where: np.ndarray = level) -> np.ndarray:
        return _RISK_OFF[name] + (_RISK_ON[name] - _RISK_OFF[name]) * where

    equity_shock = rng.standard_normal(len(days))
    equity_return = param("equity_mean") + param("equity_vol") * equity_shock
    equity_return[~is_trading] = 0.0  # closed: no equity move to pass on to crypto

    series: dict[str, pd.Series] = {}

    def on_trading(values: np.ndarray) -> pd.Series:
        """A daily path observed on equity trading days only."""
        return pd.Series(values[is_trading], index=trading_days)

    series["iwm"] = on_trading(100.0 * np.exp(np.cumsum(equity_return)))
    spy_return = 0.75 * equity_return + 0.004 * rng.standard_normal(len(days)) * is_trading
    series["spy"] = on_trading(250.0 * np.exp(np.cumsum(spy_return)))
    hyg_return = 0.2 * equity_return + 0.0025 * rng.standard_normal(len(days)) * is_trading
    series["hyg"] = on_trading(80.0 * np.exp(np.cumsum(hyg_return)))

    btc_return = (
        param("crypto_mean", crypto_level)
        + _CRYPTO_BETA * equity_return
        + param("crypto_vol", crypto_level) * _student_t(rng, len(days))
    )
    series["btc"] = pd.Series(400.0 * np.exp(np.cumsum(btc_return)), index=days)
    for name, start_share, beta, noise in (("eth", 0.0, 1.1, 0.02), ("sol", 0.4, 1.3, 0.04)):
        coin_return = beta * btc_return + noise * _student_t(rng, len(days))
        coin = pd.Series(5.0 * np.exp(np.cumsum(coin_return)), index=days)
        series[name] = coin.iloc[int(start_share * len(days)) :]

    series["vix"] = on_trading(
        np.exp(_mean_reverting(rng, np.log(param("vix_target")), 0.05, 0.06))
    )
    series["pct_above_200dma"] = on_trading(
        np.clip(_mean_reverting(rng, param("breadth_target"), 0.03, 2.5), 1.0, 99.0)
    )
    advancing_share = 1.0 / (1.0 + np.exp(-60.0 * equity_return))
    advancing = np.round(2900 * advancing_share)
    series["advancing"] = on_trading(advancing)
    series["declining"] = on_trading(2900 - advancing)
    series["new_highs"] = on_trading(rng.poisson(param("highs_rate")).astype(float))
    series["new_lows"] = on_trading(rng.poisson(param("lows_rate")).astype(float))
    series["hy_oas"] = on_trading(
        np.clip(_mean_reverting(rng, param("spread_target"), 0.02, 0.05), 1.5, None)
    )

    stablecoin_growth = param("stablecoin_growth") + 0.001 * rng.standard_normal(len(days))
    series["stablecoin_supply"] = pd.Series(5e9 * np.exp(np.cumsum(stablecoin_growth)), index=days)
    shares_growth = param("shares_growth") + 0.002 * rng.standard_normal(len(days))
    series["iwm_shares"] = on_trading(3e8 * np.exp(np.cumsum(shares_growth * is_trading)))

    fed_growth = param("fed_growth") / 7 + 0.0005 * rng.standard_normal(len(days))
    fed_assets = pd.Series(4e6 * np.exp(np.cumsum(fed_growth)), index=days)
    series["fed_assets"] = fed_assets[fed_assets.index.day_of_week == 2]  # Wednesday levels
    series["reverse_repo"] = on_trading(
        np.exp(_mean_reverting(rng, np.full(len(days), np.log(300.0)), 0.02, 0.05))
    )
    dollar_return = 0.003 * rng.standard_normal(len(days)) * is_trading
    series["dollar_index"] = on_trading(100.0 * np.exp(np.cumsum(dollar_return)))

    for name, values in series.items():
        values.index.name = "date"
        values.name = name
    return SyntheticMarket(
        series=series,
        regimes=regimes,
        crypto_regimes=crypto_regimes,
        transition_matrix=transition,
        crypto_lag_days=crypto_lag_days,
        seed=seed,
    )


def _transition_matrix(n_regimes: int, stay_probability: float) -> np.ndarray:
    leave = (1.0 - stay_probability) / (n_regimes - 1)
    matrix = np.full((n_regimes, n_regimes), leave)
    np.fill_diagonal(matrix, stay_probability)
    return matrix


def _markov_chain(rng: np.random.Generator, transition: np.ndarray, length: int) -> np.ndarray:
    n_regimes = transition.shape[0]
    stationary = np.full(n_regimes, 1.0 / n_regimes)  # symmetric chain: uniform
    cumulative = np.cumsum(transition, axis=1)
    uniforms = rng.random(length)
    path = np.empty(length, dtype=np.int64)
    path[0] = np.searchsorted(np.cumsum(stationary), uniforms[0])
    for t in range(1, length):
        path[t] = min(np.searchsorted(cumulative[path[t - 1]], uniforms[t]), n_regimes - 1)
    return path


def _student_t(rng: np.random.Generator, size: int) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(_STUDENT_DF, size) / np.sqrt(_STUDENT_DF / (_STUDENT_DF - 2.0))


def _mean_reverting(
    rng: np.random.Generator, target: np.ndarray, speed: float, noise: float
) -> np.ndarray:
    """AR(1) pulled towards a (regime-dependent) target each day."""
    values = np.empty(len(target))
    values[0] = target[0]
    shocks = noise * rng.standard_normal(len(target))
    for t in range(1, len(target)):
        values[t] = values[t - 1] + speed * (target[t] - values[t - 1]) + shocks[t]
    return values
