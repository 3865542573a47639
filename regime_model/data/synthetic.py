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
from pathlib import Path

import numpy as np
import pandas as pd

from regime_model.data.features import FeatureSet
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


def truth_path(features_path: str | Path) -> Path:
    """``features.csv`` -> ``features.truth.csv``: where the true regimes of a synthetic
    feature file are written beside it."""
    features_path = Path(features_path)
    return features_path.with_name(features_path.stem + ".truth.csv")


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


# Feature-level generators for model tests


@dataclass(frozen=True)
class TVTPTruth:
    """What generated :func:`simulate_tvtp_features`.

    ``regimes`` (T,) ints, 0 = risk_off. Moves i -> j != i are listed origin-major;
    ``intercept`` (M,) and ``coefficient`` (M, C) give each move's logit against staying,
    per *raw* unit of the covariates. ``transition`` (T-1, K, K): entry t moves date t to
    t+1 and uses the covariates of date t. ``mean``/``scale`` (K, D) emission parameters.
    """

    regimes: np.ndarray
    covariates: np.ndarray
    intercept: np.ndarray
    coefficient: np.ndarray
    transition: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    emission_columns: list[str]
    covariate_columns: list[str]


def simulate_tvtp_features(
    n_dates: int = 400,
    intercept: np.ndarray | None = None,
    coefficient: np.ndarray | None = None,
    ar_coefficient: float = 0.8,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[FeatureSet, TVTPTruth]:
    """Weekly features of a regime chain whose switching odds follow lagged covariates.

    Covariates are independent AR(1) paths with unit stationary variance; the move from
    date t-1 to t has logit ``intercept + coefficient @ x_{t-1}`` against staying
    (multinomial logit per origin). Emissions are Gaussian with ``mean``/``scale`` (K, D).
    Defaults: K = 2, two emission columns, covariate ``breadth_change`` pushing risk_off ->
    risk_on up and risk_on -> risk_off down, and ``spread_change`` with no effect.
    Returns (FeatureSet with emissions and covariates, :class:`TVTPTruth`).
    """
    intercept = np.array([-2.5, -2.5]) if intercept is None else np.asarray(intercept, float)
    if coefficient is None:
        coefficient = np.array([[1.2, 0.0], [-1.2, 0.0]])
    coefficient = np.asarray(coefficient, float)
    mean = np.array([[-1.0, 0.5], [1.0, -0.5]]) if mean is None else np.asarray(mean, float)
    scale = np.array([[1.5, 1.0], [0.7, 1.0]]) if scale is None else np.asarray(scale, float)
    n_regimes, n_features = mean.shape
    n_moves, n_covariates = coefficient.shape
    if n_moves != n_regimes * (n_regimes - 1) or intercept.shape != (n_moves,):
        raise ValueError("intercept (K(K-1),) and coefficient (K(K-1), C) must match mean (K, D)")
    if not -1.0 < ar_coefficient < 1.0:
        raise ValueError("ar_coefficient must be between -1 and 1")
    rng = np.random.default_rng(seed)
    covariates = np.empty((n_dates, n_covariates))
    covariates[0] = rng.standard_normal(n_covariates)
    innovation = np.sqrt(1.0 - ar_coefficient**2)
    for t in range(1, n_dates):
        covariates[t] = ar_coefficient * covariates[t - 1] + innovation * rng.standard_normal(
            n_covariates
        )
    off_diagonal = ~np.eye(n_regimes, dtype=bool)
    logits = np.zeros((n_dates - 1, n_regimes, n_regimes))
    logits[:, off_diagonal] = intercept + covariates[:-1] @ coefficient.T
    transition = np.exp(logits - logits.max(axis=2, keepdims=True))
    transition /= transition.sum(axis=2, keepdims=True)
    regimes = np.empty(n_dates, dtype=np.int64)
    regimes[0] = rng.integers(n_regimes)
    for t in range(1, n_dates):
        regimes[t] = rng.choice(n_regimes, p=transition[t - 1, regimes[t - 1]])
    values = mean[regimes] + scale[regimes] * rng.standard_normal((n_dates, n_features))
    emission_columns = ["eq_return", "crypto_return", *[f"flow_{d}" for d in range(2, n_features)]]
    emission_columns = emission_columns[:n_features]
    covariate_columns = ["breadth_change", "spread_change"]
    covariate_columns += [f"driver_{c}" for c in range(2, n_covariates)]
    covariate_columns = covariate_columns[:n_covariates]
    dates = pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI", name="date")
    frame = pd.DataFrame(
        np.hstack([values, covariates]), index=dates, columns=emission_columns + covariate_columns
    )
    groups = {"eq_return": "equity", "crypto_return": "crypto", "breadth_change": "breadth"}
    groups = {column: groups.get(column, "flows") for column in frame.columns}
    truth = TVTPTruth(
        regimes=regimes,
        covariates=covariates,
        intercept=intercept,
        coefficient=coefficient,
        transition=transition,
        mean=mean,
        scale=scale,
        emission_columns=emission_columns,
        covariate_columns=covariate_columns,
    )
    return FeatureSet(frame, groups, "weekly", source="synthetic-tvtp"), truth


@dataclass(frozen=True)
class PooledTruth:
    """What generated :func:`simulate_pooled_features` (K = 2).

    ``regimes`` (T,) ints, 0 = risk_off; ``groups`` (G,) group names. Group level, in units
    of each asset's stationary standard deviation: ``group_mean`` (K, G) signed regime
    responses and ``group_log_scale`` (K, G) log-scale responses, both centred over
    regimes; ``group_mean_sd``/``group_log_scale_sd`` (G,) spreads of the members. Asset
    level: ``signs`` {column: +1 or -1}; ``mean``/``scale`` (K, D) in the features' units.
    ``short_column`` is observed from ``short_start`` on only.
    """

    regimes: np.ndarray
    transition: np.ndarray
    groups: list[str]
    group_mean: np.ndarray
    group_log_scale: np.ndarray
    group_mean_sd: np.ndarray
    group_log_scale_sd: np.ndarray
    signs: dict[str, int]
    mean: np.ndarray
    scale: np.ndarray
    columns: list[str]
    short_column: str
    short_start: pd.Timestamp


# (group, risk_on - risk_off response, risk_off - risk_on log-scale, spreads, members with
# their signs). "coin_new_return" is the short-history asset.
_POOLED_GROUPS = (
    ("equity", 1.2, 0.5, 0.15, 0.10, (("eq_small_return", 1), ("eq_large_return", 1),
                                      ("eq_value_return", 1))),
    ("crypto", 0.8, 0.4, 0.10, 0.08, (("coin_a_return", 1), ("coin_b_return", 1),
                                      ("coin_new_return", 1))),
    ("flows", 1.0, 0.6, 0.15, 0.10, (("spread_change", -1), ("flow_growth", 1))),
)  # fmt: skip


def simulate_pooled_features(
    n_dates: int = 400,
    short_history: float = 0.3,
    stay_probability: float = 0.97,
    missing_share: float = 0.05,
    seed: int = 0,
) -> tuple[FeatureSet, PooledTruth]:
    """Weekly features of one 2-regime chain, asset parameters drawn within groups.

    Each asset's regime response is its group's plus a centred Normal(0, spread) deviation
    per regime (likewise its log-scale response); its signed response sets the sign of its
    mean contrast. Its log-scale level is chosen so its stationary variance is 1 (so
    standardised units are the group level's units), then each asset gets its own raw
    centre and unit. The short-history asset ("coin_new_return") is observed on the last
    ``short_history`` share of dates only; ``missing_share`` of coin_a_return's dates are
    missing at random. Returns (FeatureSet with groups, :class:`PooledTruth`).
    """
    if not 0.0 < short_history < 1.0:
        raise ValueError("short_history must be between 0 and 1")
    rng = np.random.default_rng(seed)
    transition = _transition_matrix(2, stay_probability)
    regimes = _markov_chain(rng, transition, n_dates)
    names = [group[0] for group in _POOLED_GROUPS]
    n_groups = len(names)
    group_mean = np.empty((2, n_groups))
    group_log_scale = np.empty((2, n_groups))
    columns, signs, mean, scale = [], {}, [], []
    for g, (_, response, log_ratio, mean_sd, log_sd, members) in enumerate(_POOLED_GROUPS):
        group_mean[:, g] = [-response / 2, response / 2]
        group_log_scale[:, g] = [log_ratio / 2, -log_ratio / 2]
        for column, sign in members:
            deviation = rng.normal(0.0, [mean_sd, log_sd], size=(2, 2))
            deviation -= deviation.mean(axis=0)  # centred over regimes, as in the model
            effect = group_mean[:, g] + deviation[:, 0]
            log_effect = group_log_scale[:, g] + deviation[:, 1]
            contrast = effect[1] - effect[0]
            # Stationary variance with equal regime shares: mean of sigma^2 + (contrast/2)^2.
            log_level = 0.5 * np.log((1.0 - contrast**2 / 4) / np.mean(np.exp(2 * log_effect)))
            centre, unit = rng.normal(0.0, 0.01), np.exp(rng.normal(-3.0, 1.0))
            columns.append(column)
            signs[column] = sign
            mean.append(centre + unit * sign * effect)
            scale.append(unit * np.exp(log_level + log_effect))
    mean, scale = np.stack(mean, axis=1), np.stack(scale, axis=1)
    values = mean[regimes] + scale[regimes] * rng.standard_normal((n_dates, len(columns)))
    dates = pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI", name="date")
    frame = pd.DataFrame(values, index=dates, columns=columns)
    short_start = dates[int(round((1.0 - short_history) * n_dates))]
    frame.loc[frame.index < short_start, "coin_new_return"] = np.nan
    frame.loc[rng.random(n_dates) < missing_share, "coin_a_return"] = np.nan
    groups = {column: name for name, *_, members in _POOLED_GROUPS for column, _ in members}
    truth = PooledTruth(
        regimes=regimes,
        transition=transition,
        groups=names,
        group_mean=group_mean,
        group_log_scale=group_log_scale,
        group_mean_sd=np.array([group[3] for group in _POOLED_GROUPS]),
        group_log_scale_sd=np.array([group[4] for group in _POOLED_GROUPS]),
        signs=signs,
        mean=mean,
        scale=scale,
        columns=columns,
        short_column="coin_new_return",
        short_start=short_start,
    )
    return FeatureSet(frame, groups, "weekly", source="synthetic-pooled"), truth


@dataclass(frozen=True)
class LeadLagTruth:
    """What generated :func:`simulate_lead_lag_features` (K = 2 regimes per chain).

    ``lead_regimes``/``lag_regimes`` (T,) ints per date, 0 = risk_off. ``lead_transition``
    (K, K); ``lag_transition`` (K, K, K): entry [e] is the lag chain's transition matrix
    when the lead regime ``lag`` steps earlier was e. ``coupling_enter``/``coupling_stay``:
    log odds ratios of P(lag: risk_off -> risk_on) and of P(lag: risk_on -> risk_on)
    between a lead risk_on and a lead risk_off ``lag`` steps earlier. ``mean``/``scale``
    (K, D): each column's parameters in its own chain's regimes (``lead_columns`` follow
    the lead chain, ``lag_columns`` the lag chain).
    """

    lead_regimes: np.ndarray
    lag_regimes: np.ndarray
    lag: int
    lead_transition: np.ndarray
    lag_transition: np.ndarray
    coupling_enter: float
    coupling_stay: float
    mean: np.ndarray
    scale: np.ndarray
    lead_columns: list[str]
    lag_columns: list[str]


# Per column: (name, group, chain, risk_off mean, risk_on mean, risk_off scale, risk_on scale).
_LEAD_LAG_COLUMNS = (
    ("eq_return", "equity", "lead", -1.0, 0.6, 1.5, 0.8),
    ("eq_breadth_change", "equity", "lead", -0.8, 0.5, 1.0, 1.0),
    ("coin_a_return", "crypto", "lag", -1.5, 1.5, 2.0, 1.2),
    ("coin_b_return", "crypto", "lag", -1.2, 1.2, 2.2, 1.5),
)


def simulate_lead_lag_features(
    n_dates: int = 400,
    lag: int = 2,
    lead_stay: float = 0.95,
    enter_probability: tuple[float, float] = (0.02, 0.2),
    stay_probability: tuple[float, float] = (0.85, 0.97),
    separation: float = 1.0,
    seed: int = 0,
) -> tuple[FeatureSet, LeadLagTruth]:
    """Weekly features of two regime chains, the lag chain (crypto columns) switching with
    odds set by the lead chain's (equity columns) regime ``lag`` weeks earlier.

    ``lead_stay``: P(lead stays) in either regime. ``enter_probability``: P(lag chain
    risk_off -> risk_on) when the lead was (risk_off, risk_on) ``lag`` weeks earlier;
    ``stay_probability``: P(lag chain stays risk_on), likewise. Equal pairs: independent
    chains. ``separation`` multiplies every regime mean (larger: regimes easier to tell).
    Both chains run 100 weeks before the first date, so they start near their stationary
    mix. Returns (FeatureSet with groups equity and crypto, :class:`LeadLagTruth`).
    """
    if lag < 0:
        raise ValueError("lag must be >= 0")
    probabilities = (lead_stay, *enter_probability, *stay_probability)
    if not all(0.0 < p < 1.0 for p in probabilities):
        raise ValueError("probabilities must be strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    burn_in = 100
    lead_transition = _transition_matrix(2, lead_stay)
    lag_transition = np.array(
        [
            [[1.0 - enter, enter], [1.0 - stay, stay]]
            for enter, stay in zip(enter_probability, stay_probability, strict=True)
        ]
    )
    # lead[s] is the lead regime of date s - burn_in - lag; lag_path[s] the lag chain's of
    # date s - burn_in, which moves with the lead regime of date s - burn_in - lag = lead[s].
    lead = _markov_chain(rng, lead_transition, burn_in + lag + n_dates)
    lag_path = np.empty(burn_in + n_dates, dtype=np.int64)
    lag_path[0] = rng.integers(2)
    for s in range(1, len(lag_path)):
        row = lag_transition[lead[s], lag_path[s - 1]]
        lag_path[s] = int(rng.random() < row[1])
    lead_regimes, lag_regimes = lead[burn_in + lag :], lag_path[burn_in:]
    columns = [spec[0] for spec in _LEAD_LAG_COLUMNS]
    mean = separation * np.array([spec[3:5] for spec in _LEAD_LAG_COLUMNS]).T  # (K, D)
    scale = np.array([spec[5:7] for spec in _LEAD_LAG_COLUMNS]).T
    follows_lead = np.array([spec[2] == "lead" for spec in _LEAD_LAG_COLUMNS])
    regime = np.where(follows_lead[None, :], lead_regimes[:, None], lag_regimes[:, None])
    columns_index = np.arange(len(columns))[None, :]
    values = mean[regime, columns_index] + scale[regime, columns_index] * rng.standard_normal(
        regime.shape
    )
    dates = pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI", name="date")
    frame = pd.DataFrame(values, index=dates, columns=columns)
    groups = {spec[0]: spec[1] for spec in _LEAD_LAG_COLUMNS}

    def logit(p: float) -> float:
        return float(np.log(p / (1.0 - p)))

    truth = LeadLagTruth(
        lead_regimes=lead_regimes,
        lag_regimes=lag_regimes,
        lag=lag,
        lead_transition=lead_transition,
        lag_transition=lag_transition,
        coupling_enter=logit(enter_probability[1]) - logit(enter_probability[0]),
        coupling_stay=logit(stay_probability[1]) - logit(stay_probability[0]),
        mean=mean,
        scale=scale,
        lead_columns=[c for c, lead in zip(columns, follows_lead, strict=True) if lead],
        lag_columns=[c for c, lead in zip(columns, follows_lead, strict=True) if not lead],
    )
    return FeatureSet(frame, groups, "weekly", source="synthetic-leadlag"), truth


@dataclass(frozen=True)
class TwoScaleTruth:
    """What generated :func:`simulate_two_scale_features` (2 coarse and 2 fine regimes).

    ``coarse`` (T,): the coarse regime of each weekly date (constant within a month);
    ``fine`` (T, M): each market's fine regime; 0 = risk_off. ``coarse_transition`` (2, 2)
    from month to month; ``fine_transitions`` one (2, 2, 2) per market, [c] its weekly
    matrix under coarse regime c; ``entries`` one (2, 2) per market, [c] its stationary
    law (where it starts a month under c); ``coupling`` per market, P(risk_on | coarse
    risk_on) - P(risk_on | coarse risk_off) of the entry laws. ``markets`` in order.
    """

    coarse: np.ndarray
    fine: np.ndarray
    coarse_transition: np.ndarray
    fine_transitions: list[np.ndarray]
    entries: list[np.ndarray]
    coupling: dict[str, float]
    markets: list[str]


# Per column: (name, group, risk_off mean, risk_on mean, risk_off scale, risk_on scale).
_TWO_SCALE_COLUMNS = (
    ("liquidity", "flows", -1.0, 1.0, 0.5, 0.5),
    ("eq_return", "equity", -1.0, 0.6, 1.5, 0.8),
    ("eq_breadth_change", "equity", -0.8, 0.5, 1.0, 1.0),
    ("coin_return", "crypto", -1.5, 1.5, 2.0, 1.2),
    ("alt_return", "crypto", -1.2, 1.2, 2.2, 1.5),
)
# Each market's weekly matrices under the coarse regimes (risk_off, risk_on): equity
# follows liquidity closely, crypto barely.
_TWO_SCALE_FINE = {
    "equity": [[[0.92, 0.08], [0.45, 0.55]], [[0.55, 0.45], [0.06, 0.94]]],
    "crypto": [[[0.85, 0.15], [0.2, 0.8]], [[0.8, 0.2], [0.15, 0.85]]],
}


def _stationary(matrix: np.ndarray) -> np.ndarray:
    """The stationary law of a 2 x 2 transition matrix."""
    leave_off, leave_on = matrix[0, 1], matrix[1, 0]
    return np.array([leave_on, leave_off]) / (leave_on + leave_off)


def simulate_two_scale_features(
    n_dates: int = 520,
    coarse_stay: tuple[float, float] = (0.9, 0.85),
    fine_entry: str = "carry",
    seed: int = 0,
) -> tuple[FeatureSet, TwoScaleTruth]:
    """Weekly features of a monthly liquidity regime driving two markets' weekly regimes.

    The coarse regime moves at the first week of each month (P(stay) ``coarse_stay`` in
    risk_off, risk_on) and sets the ``liquidity`` column's mean; each market's regime
    moves weekly by its matrix under the current coarse regime (``_TWO_SCALE_FINE``:
    equity strongly coupled, crypto weakly) and, at each month's first week, moves on from
    where it was (``fine_entry="carry"``) or starts afresh from that matrix's stationary
    law ("restart", fHMM's). Every date gets a liquidity value; a two-scale model keeps
    the one on each month's last week. Returns (FeatureSet, :class:`TwoScaleTruth`)."""
    from regime_model.data.calendar import period_openings

    if fine_entry not in ("restart", "carry"):
        raise ValueError(f"fine_entry must be 'restart' or 'carry', not {fine_entry!r}")
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2015-01-02", periods=n_dates, freq="W-FRI", name="date")
    opens = period_openings(dates, "M")
    coarse_transition = np.array(
        [[coarse_stay[0], 1 - coarse_stay[0]], [1 - coarse_stay[1], coarse_stay[1]]]
    )
    markets = list(_TWO_SCALE_FINE)
    fine_transitions = [np.array(_TWO_SCALE_FINE[market]) for market in markets]
    entries = [np.stack([_stationary(p) for p in fine]) for fine in fine_transitions]
    coarse = np.empty(n_dates, dtype=np.int64)
    fine = np.empty((n_dates, len(markets)), dtype=np.int64)
    for t in range(n_dates):
        if t == 0:
            coarse[t] = int(rng.random() < _stationary(coarse_transition)[1])
        elif opens[t]:
            coarse[t] = int(rng.random() < coarse_transition[coarse[t - 1], 1])
        else:
            coarse[t] = coarse[t - 1]
        for m, (matrices, entry) in enumerate(zip(fine_transitions, entries, strict=True)):
            if t == 0 or (opens[t] and fine_entry == "restart"):
                law = entry[coarse[t]]
            else:
                law = matrices[coarse[t], fine[t - 1, m]]
            fine[t, m] = int(rng.random() < law[1])
    columns = [spec[0] for spec in _TWO_SCALE_COLUMNS]
    groups = {spec[0]: spec[1] for spec in _TWO_SCALE_COLUMNS}
    values = np.empty((n_dates, len(columns)))
    for d, (_, group, *parameters) in enumerate(_TWO_SCALE_COLUMNS):
        regime = coarse if group == "flows" else fine[:, markets.index(group)]
        mean, scale = np.array(parameters[:2]), np.array(parameters[2:])
        values[:, d] = mean[regime] + scale[regime] * rng.standard_normal(n_dates)
    truth = TwoScaleTruth(
        coarse=coarse,
        fine=fine,
        coarse_transition=coarse_transition,
        fine_transitions=fine_transitions,
        entries=entries,
        coupling={m: float(e[1, 1] - e[0, 1]) for m, e in zip(markets, entries, strict=True)},
        markets=markets,
    )
    frame = pd.DataFrame(values, index=dates, columns=columns)
    return FeatureSet(frame, groups, "weekly", source="synthetic-two-scale"), truth
