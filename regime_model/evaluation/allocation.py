"""What the regime probabilities are worth: a simple allocation rule and its report.

The rule holds ``exposure_t = P(risk_on | y_1..t)`` of wealth in one asset and the rest
in cash earning nothing. The exposure is decided at the close of date t with the filtered
probability of that date (posterior mean) and held over the next period of the feature
calendar, so it earns the asset's return dated t+1: nothing from t+1 on enters the
position held over (t, t+1]. The last scored date's exposure has no next return and is
not counted. One caveat of trading "at the close": a crypto close (24:00 UTC) comes 3-4
hours after the US equity close of the same date, so a rule on an equity asset driven by
crypto features trades at a price that was already past when the signal was known.

Returns: the ``*_return`` features are log returns in percent,
``100 * log(price_t / price_t-1)`` over one step of the feature calendar (see
:mod:`regime_model.data.transforms`); they are turned into simple returns
``exp(r / 100) - 1`` before compounding, since a portfolio's simple return is the
exposure-weighted simple return of its holdings, not of their log returns.

Costs: ``cost_bps`` basis points of wealth per unit of turnover, where the turnover at
date t is ``|exposure_t - exposure_t-1|`` and the exposure before the first decision is 0
(the entry from cash is paid). The cost is taken from wealth at t, before the period's
return. Two simplifications: the drift of the asset's weight within a period is not
rebalanced (so a constant exposure of 0.5 trades nothing), and the final position is
marked to market, not sold. Buy-and-hold is the asset itself (exposure 1, no cost), so a
rule that is always fully invested trails it by exactly the entry cost.

Every strategy of one asset is evaluated over the same holding periods; a missing asset
return inside them is an error naming the dates, never dropped. Metrics are annualised
with :func:`periods_per_year` of the evaluated dates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regime_model.data.cache import write_text_atomic
from regime_model.errors import DateRangeError, RegimeDataError, UnknownSeriesError

RETURN_SUFFIX = "_return"
RETURN_SCALE = 100.0  # the *_return features are log returns in percent
BUY_AND_HOLD = "buy-and-hold"
CONSTANT = "constant"  # the first signal's average exposure, held throughout
METRICS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "max_drawdown",
    "annual_turnover",
    "mean_exposure",
)
_SHOWN_DATES = 5  # dates listed in an error message before "..."


class MissingReturnError(RegimeDataError):
    """The asset has no return on some holding period of the evaluation."""


def simple_returns(log_returns_percent: pd.Series) -> pd.Series:
    """Log returns in percent -> simple returns as fractions: ``exp(r / 100) - 1``."""
    return np.expm1(log_returns_percent.astype(float) / RETURN_SCALE)


def periods_per_year(dates: pd.DatetimeIndex) -> float:
    """The number of periods per year of a date grid, to annualise with.

    The median spacing tells the grid's kind: 80 days or more is quarterly (4), 25 or more
    monthly (12), 5 or more weekly (52; the Friday grid). A daily grid is either trading
    days or every calendar day, told apart by the dates actually present per year,
    ``(n - 1) / span in years``: above 300 it is a seven-day (crypto-only) grid, 365;
    otherwise US trading days, 252. The grid, not the asset, decides: on the equity daily
    grid a crypto asset's Monday return spans the weekend, so 252 is right for it too.
    """
    dates = pd.DatetimeIndex(dates)
    if len(dates) < 2:
        raise RegimeDataError("at least two dates are needed to tell the data's frequency")
    spacing = dates.to_series().diff().median()
    for days, periods in ((80, 4.0), (25, 12.0), (5, 52.0)):
        if spacing >= pd.Timedelta(days=days):
            return periods
    years = (dates[-1] - dates[0]) / pd.Timedelta(days=365.25)
    return 365.0 if (len(dates) - 1) / years > 300 else 252.0


def check_assets(frame: pd.DataFrame, assets: Sequence[str]) -> None:
    """Raise :class:`UnknownSeriesError` naming any of ``assets`` that is not a column of
    ``frame``, with the ``*_return`` columns it has."""
    unknown = [asset for asset in assets if asset not in frame.columns]
    if unknown:
        available = [column for column in frame.columns if column.endswith(RETURN_SUFFIX)]
        raise UnknownSeriesError(
            f"no feature column {', '.join(unknown)} to allocate to "
            f"(return columns: {', '.join(available) or 'none'})"
        )


def holding_periods(decision_dates: pd.DatetimeIndex, log_returns: pd.Series) -> pd.DataFrame:
    """The period after each decision date and the asset's simple return over it.

    ``decision_dates``: (N,) consecutive dates of ``log_returns``' calendar (the feature
    dates, log returns in percent). Returns (N - 1, 2): ``decision_date`` (when the
    position is taken) and ``simple_return`` (earned over the next step), indexed by the
    period's end date. The last decision date's period would end after the last decision
    date and is left out, so every strategy of an asset covers the same periods.
    """
    calendar = log_returns.index
    position = calendar.get_indexer(decision_dates)
    if (position < 0).any():
        outside = decision_dates[position < 0]
        raise DateRangeError(
            f"{len(outside)} signal dates are not dates of the features "
            f"({_list_dates(outside)}); the features run {_span(calendar)}"
        )
    if len(position) < 2:
        raise DateRangeError(
            f"the signals and the features share {len(position)} dates: no holding period"
        )
    gaps = np.flatnonzero(np.diff(position) != 1)
    if len(gaps):
        raise DateRangeError(
            f"the signal dates skip feature dates after {_list_dates(decision_dates[gaps])}: "
            "each position must be held over one step of the feature calendar"
        )
    ends = calendar[position[1:]]
    returns = log_returns.iloc[position[1:]]
    missing = ends[returns.isna().to_numpy()]
    if len(missing):
        observed = log_returns.dropna()
        has = f"it has values {_span(observed.index)}" if len(observed) else "it has none"
        raise MissingReturnError(
            f"'{log_returns.name}' has no return on {len(missing)} of the {len(ends)} holding "
            f"periods ({_list_dates(missing)}); {has}. Allocate to another asset or "
            "backtest over dates where it trades"
        )
    return pd.DataFrame(
        {
            "decision_date": decision_dates[:-1],
            "simple_return": simple_returns(returns).to_numpy(),
        },
        index=pd.DatetimeIndex(ends, name="date"),
    )


def rule_path(exposure: pd.Series, periods: pd.DataFrame, cost_bps: float) -> pd.DataFrame:
    """Wealth of holding ``exposure`` over ``periods`` after costs.

    ``exposure``: decided at each decision date (indexed by them; at least every
    ``periods.decision_date``); ``periods``: from :func:`holding_periods`, (P, 2).
    Returns (P, 4) indexed by period end: ``exposure`` (held over the period),
    ``turnover`` (``|e_t - e_t-1|`` traded at its start, from 0 before the first),
    ``net_return`` (``(1 - cost * turnover) * (1 + e * R) - 1``) and ``wealth``
    (starting from 1 before the first trade).
    """
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be zero or positive, got {cost_bps}")
    held = exposure.reindex(periods["decision_date"]).to_numpy(dtype=float)
    if not np.isfinite(held).all():
        bad = periods["decision_date"][~np.isfinite(held)]
        raise RegimeDataError(f"no exposure on {_list_dates(pd.DatetimeIndex(bad))}")
    turnover = np.abs(np.diff(held, prepend=0.0))
    growth = (1.0 - cost_bps / 1e4 * turnover) * (1.0 + held * periods["simple_return"].to_numpy())
    return pd.DataFrame(
        {
            "exposure": held,
            "turnover": turnover,
            "net_return": growth - 1.0,
            "wealth": np.cumprod(growth),
        },
        index=periods.index,
    )


def buy_and_hold_path(periods: pd.DataFrame) -> pd.DataFrame:
    """The asset itself over ``periods``: exposure 1, no trades and no cost. (P, 4) like
    :func:`rule_path`."""
    returns = periods["simple_return"].to_numpy()
    return pd.DataFrame(
        {
            "exposure": 1.0,
            "turnover": 0.0,
            "net_return": returns,
            "wealth": np.cumprod(1.0 + returns),
        },
        index=periods.index,
    )


def max_drawdown(wealth: np.ndarray) -> float:
    """The largest fall from a running peak, as a fraction <= 0 (-0.25: a quarter lost).
    The starting wealth of 1 counts as the first peak. (P,) -> scalar."""
    path = np.concatenate([[1.0], np.asarray(wealth, dtype=float)])
    return float(np.min(path / np.maximum.accumulate(path) - 1.0))


def performance(path: pd.DataFrame, per_year: float) -> dict[str, float]:
    """The metrics of a path from :func:`rule_path`, with ``per_year`` periods a year.

    total_return: final wealth - 1; annual_return: compounded,
    ``wealth ** (per_year / P) - 1``; annual_volatility: standard deviation of the net
    period returns times ``sqrt(per_year)``; sharpe: their mean over their standard
    deviation times ``sqrt(per_year)``, against a zero rate (cash earns nothing here
    either); max_drawdown: see :func:`max_drawdown`; annual_turnover: total turnover
    per year (1 = one full switch in or out a year); mean_exposure: average exposure held.
    """
    returns = path["net_return"].to_numpy()
    final = float(path["wealth"].iloc[-1])
    # One period has no spread; a path that never moves (always in cash) has no ratio.
    deviation = float(np.std(returns, ddof=1)) if len(returns) > 1 else np.nan
    sharpe = np.nan if not deviation > 0 else float(np.mean(returns)) / deviation
    return {
        "total_return": final - 1.0,
        "annual_return": final ** (per_year / len(returns)) - 1.0 if final > 0 else -1.0,
        "annual_volatility": deviation * np.sqrt(per_year),
        "sharpe": sharpe * np.sqrt(per_year),
        "max_drawdown": max_drawdown(path["wealth"].to_numpy()),
        "annual_turnover": float(path["turnover"].sum()) * per_year / len(returns),
        "mean_exposure": float(path["exposure"].mean()),
    }


@dataclass
class AllocationReport:
    """``metrics``: one row per asset and strategy (columns asset, strategy, start, end,
    periods, periods_per_year, cost_bps and :data:`METRICS`); ``wealth``: rows date,
    asset, strategy, wealth, starting at 1 on the first decision date."""

    metrics: pd.DataFrame
    wealth: pd.DataFrame


def allocation_report(
    features: pd.DataFrame,
    signals: Mapping[str, pd.Series],
    assets: Sequence[str],
    cost_bps: float = 10.0,
) -> AllocationReport:
    """The rule driven by each of ``signals``, buy-and-hold, and a constant exposure
    equal to the first signal's average, for each asset. The constant one separates the
    value of timing from that of simply holding less of the asset.

        ``features``: (T, D) feature frame indexed by date, with the assets' log returns in
        percent; ``signals``: strategy name -> P(risk_on) per decision date (filtered, known
        at the close of that date). Every strategy is evaluated on the decision dates all
        signals share, so they are compared over identical periods.
    """
    check_assets(features, assets)
    if not signals:
        raise ValueError("no signal to allocate with")
    dates = None
    for signal in signals.values():
        dates = signal.index if dates is None else dates.intersection(signal.index)
    if dates is None or len(dates) == 0:
        raise DateRangeError("the signals share no date")
    metrics, wealth = [], []
    for asset in assets:
        periods = holding_periods(pd.DatetimeIndex(dates), features[asset])
        per_year = periods_per_year(periods.index)
        paths = {name: rule_path(signal, periods, cost_bps) for name, signal in signals.items()}
        paths[BUY_AND_HOLD] = buy_and_hold_path(periods)
        average = paths[next(iter(signals))]["exposure"].mean()
        constant = pd.Series(average, index=pd.DatetimeIndex(periods["decision_date"]))
        paths[CONSTANT] = rule_path(constant, periods, cost_bps)
        for name, path in paths.items():
            metrics.append(
                {
                    "asset": asset,
                    "strategy": name,
                    "start": dates[0],
                    "end": path.index[-1],
                    "periods": len(path),
                    "periods_per_year": per_year,
                    "cost_bps": 0.0 if name == BUY_AND_HOLD else float(cost_bps),
                    **performance(path, per_year),
                }
            )
            start = pd.Series([1.0], index=pd.DatetimeIndex([dates[0]]))
            series = pd.concat([start, path["wealth"]])
            wealth.append(
                pd.DataFrame(
                    {"date": series.index, "asset": asset, "strategy": name, "wealth": series}
                )
            )
    return AllocationReport(pd.DataFrame(metrics), pd.concat(wealth, ignore_index=True))


def save_allocation(report: AllocationReport, out: str | Path) -> list[Path]:
    """Write ``out/allocation.csv`` (metrics) and ``out/allocation_wealth.csv`` atomically;
    return their paths."""
    out = Path(out)
    paths = [out / "allocation.csv", out / "allocation_wealth.csv"]
    for frame, path in zip((report.metrics, report.wealth), paths, strict=True):
        write_text_atomic(
            frame.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.6g"), path
        )
    return paths


def format_allocation(metrics: pd.DataFrame) -> str:
    """The table ``regime backtest --allocate`` prints: one line per asset and strategy."""
    first = metrics.iloc[0]
    cost = metrics.loc[metrics["strategy"] != BUY_AND_HOLD, "cost_bps"]
    lines = [
        "Allocation: exposure = filtered P(risk_on) at each close, held over the next step; "
        f"{first['start']:%Y-%m-%d} to {first['end']:%Y-%m-%d},",
        f"{first['periods']} periods ({first['periods_per_year']:g} a year); cost "
        f"{cost.iloc[0] if len(cost) else 0:g} bps per unit traded (buy-and-hold: none); "
        "annualised; Sharpe at a zero rate",
        f"  {'asset':<14} {'strategy':<16} {'total':>8} {'annual':>7} {'vol':>6} "
        f"{'sharpe':>6} {'max dd':>7} {'turns/yr':>8} {'exposure':>8}",
    ]
    for row in metrics.itertuples(index=False):
        lines.append(
            f"  {row.asset:<14} {row.strategy:<16} {row.total_return:>8.1%} "
            f"{row.annual_return:>7.1%} {row.annual_volatility:>6.1%} {row.sharpe:>6.2f} "
            f"{row.max_drawdown:>7.1%} {row.annual_turnover:>8.2f} {row.mean_exposure:>8.2f}"
        )
    return "\n".join(lines)


def _list_dates(dates: pd.DatetimeIndex) -> str:
    shown = ", ".join(f"{date:%Y-%m-%d}" for date in dates[:_SHOWN_DATES])
    return shown + (", ..." if len(dates) > _SHOWN_DATES else "")


def _span(dates: pd.DatetimeIndex) -> str:
    return f"{dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}"
