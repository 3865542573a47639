"""Feature transforms: aligned raw inputs in, one feature series out.

Every transform is causal: the value at date t uses inputs at dates <= t only (differences,
trailing windows, expanding statistics). That is what makes the no-look-ahead guarantee of
:func:`regime_model.data.features.build_features` hold, and a test checks it.

A transform receives its inputs already aligned on the target calendar (see
``calendar.align_to_calendar``); a few (the advance-decline line) first need a step on the
input's own calendar, given as ``native``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Series = pd.Series


@dataclass(frozen=True)
class TransformContext:
    """What a transform may need besides its inputs."""

    window: int
    periods_per_year: float


@dataclass(frozen=True)
class Transform:
    """A named feature transform.

    ``roles`` are the names of its inputs (``("*",)`` = any number, named in the universe);
    ``positive_roles`` must be strictly positive (taken in logs or divided by);
    ``multiplier`` is the default unit scale of the output (100 = percent).
    """

    roles: tuple[str, ...]
    compute: Callable[[dict[str, Series], TransformContext], Series]
    description: str
    positive_roles: tuple[str, ...] = ()
    native: Callable[[dict[str, Series]], dict[str, Series]] | None = None
    multiplier: float = 1.0
    default_window: dict[str, int] | None = None


def _log_change(inputs: dict[str, Series], context: TransformContext) -> Series:
    (values,) = inputs.values()
    return np.log(values).diff()


def _realised_volatility(inputs: dict[str, Series], context: TransformContext) -> Series:
    log_returns = _log_change(inputs, context)
    window = context.window
    return log_returns.rolling(window, min_periods=window).std() * np.sqrt(context.periods_per_year)


def _level(inputs: dict[str, Series], context: TransformContext) -> Series:
    (values,) = inputs.values()
    return values


def _log_level(inputs: dict[str, Series], context: TransformContext) -> Series:
    (values,) = inputs.values()
    return np.log(values)


def _change(inputs: dict[str, Series], context: TransformContext) -> Series:
    (values,) = inputs.values()
    return values.diff()


def _advance_decline_line(inputs: dict[str, Series]) -> dict[str, Series]:
    # Net advances as a share of issues traded, accumulated on the source's own days, so a
    # weekly feature is the sum of that week's daily readings rather than Friday's alone.
    advancing, declining = inputs["advancing"], inputs["declining"]
    both = pd.concat([advancing, declining], axis=1, join="inner").dropna()
    net_ratio = (both.iloc[:, 0] - both.iloc[:, 1]) / (both.iloc[:, 0] + both.iloc[:, 1])
    return {"line": net_ratio.cumsum()}


def _net_new_highs(inputs: dict[str, Series], context: TransformContext) -> Series:
    return inputs["highs"] - inputs["lows"]


def _net_liquidity_change(inputs: dict[str, Series], context: TransformContext) -> Series:
    # Fed net liquidity = balance sheet minus reverse repo; its relative change.
    net = inputs["assets"] - inputs["reverse_repo"]
    return net.diff() / net.shift(1)


def _relative_change(inputs: dict[str, Series], context: TransformContext) -> Series:
    (values,) = inputs.values()
    return values.diff() / values.shift(1)


def _basket_log_return(inputs: dict[str, Series], context: TransformContext) -> Series:
    # Equal weight over the members that have a return on the date; the count varies as
    # coins list and delist, which the docs state.
    returns = pd.concat([np.log(series).diff() for series in inputs.values()], axis=1)
    return returns.mean(axis=1, skipna=True).where(returns.notna().any(axis=1))


_RETURN_WINDOWS = {"daily": 21, "weekly": 13}

TRANSFORMS: dict[str, Transform] = {
    "log_return": Transform(
        ("price",),
        _log_change,
        "log return over one step of the target calendar, in percent",
        positive_roles=("price",),
        multiplier=100.0,
    ),
    "log_growth": Transform(
        ("value",),
        _log_change,
        "log change of a level (supply, money stock, dollar index), in percent",
        positive_roles=("value",),
        multiplier=100.0,
    ),
    "realised_volatility": Transform(
        ("price",),
        _realised_volatility,
        "annualised standard deviation of log returns over a trailing window, in percent",
        positive_roles=("price",),
        multiplier=100.0,
        default_window=_RETURN_WINDOWS,
    ),
    "level": Transform(("value",), _level, "the value itself"),
    "log_level": Transform(
        ("value",), _log_level, "natural log of the value", positive_roles=("value",)
    ),
    "change": Transform(("value",), _change, "difference over one step (spreads, yields)"),
    "relative_change": Transform(
        ("value",),
        _relative_change,
        "relative change over one step, in percent",
        positive_roles=("value",),
        multiplier=100.0,
    ),
    "ad_line_change": Transform(
        ("line",),
        _change,
        "change of the advance-decline line built from (adv - decl) / (adv + decl), percent",
        native=_advance_decline_line,
        multiplier=100.0,
    ),
    "net_new_highs": Transform(
        ("highs", "lows"), _net_new_highs, "new highs minus new lows (issues)"
    ),
    "net_liquidity_change": Transform(
        ("assets", "reverse_repo"),
        _net_liquidity_change,
        "relative change of Fed net liquidity (WALCL - RRP), in percent",
        positive_roles=("assets",),
        multiplier=100.0,
    ),
    "etf_flow_pct": Transform(
        ("shares",),
        _relative_change,
        "creation/redemption flow as percent of assets (change in shares outstanding)",
        positive_roles=("shares",),
        multiplier=100.0,
    ),
    "basket_log_return": Transform(
        ("*",),
        _basket_log_return,
        "equal-weight mean log return of the members with data on the date, in percent",
        positive_roles=("*",),
        multiplier=100.0,
    ),
}

# Roles that a `native` step consumes, per transform (the universe names these).
NATIVE_INPUT_ROLES: dict[str, tuple[str, ...]] = {"ad_line_change": ("advancing", "declining")}


def input_roles(transform_name: str) -> tuple[str, ...]:
    """The input roles a universe declares for a transform (before any native step)."""
    return NATIVE_INPUT_ROLES.get(transform_name, TRANSFORMS[transform_name].roles)


def standardize(
    values: Series, method: str, window: int | None = None, min_periods: int = 60
) -> Series:
    """Z-score using only the past: expanding or trailing mean and standard deviation.

    The statistics at t include t itself (known at t) and nothing after it. Dates with
    fewer than ``min_periods`` earlier observations stay missing.
    """
    if method == "none":
        return values
    if method == "expanding":
        rolling = values.expanding(min_periods=max(min_periods, 2))
    elif method == "trailing":
        if window is None:
            raise ValueError("trailing standardisation needs a window")
        rolling = values.rolling(window, min_periods=max(min(min_periods, window), 2))
    else:
        raise ValueError(f"unknown standardisation {method!r}")
    scale = rolling.std()
    return (values - rolling.mean()) / scale.where(scale > 0)
