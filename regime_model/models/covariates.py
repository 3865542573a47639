"""Transition covariates: the columns that drive a model's transitions, never its emissions.

A covariate value is needed on every date but the last (the transition into date t uses
x_{t-1}), so the sample starts on the first date with every covariate and ends one date
after the last one; a gap in between is an error, never filled in. Covariates are
standardised with the mean and standard deviation of the rows that drive the *fitted*
transitions (dates 0..n_fit-2), so a held-out stretch does not leak into the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from regime_model.data.features import FeatureSet, trim_unobserved
from regime_model.errors import (
    ConstantFeatureError,
    InsufficientDataError,
    RegimeDataError,
    UnknownSeriesError,
)
from regime_model.models.observations import CovariateTrimming, Observations, select_features

# Beyond this many standard deviations a covariate value is flagged in fit_info["warnings"].
EXTREME_Z = 5.0
# Name of the InferenceData group and variable holding the standardised covariates.
CONSTANT_GROUP = "constant_data"
COVARIATE_VARIABLE = "covariate_standardised"


@dataclass(frozen=True)
class CovariateSplit:
    """The emission columns on the dates the covariates allow (``emission``), the
    covariates on the same dates in raw units (``frame``, (T, C)) and what was trimmed."""

    emission: FeatureSet
    frame: pd.DataFrame
    trimming: CovariateTrimming


def split_covariates(
    features: FeatureSet, covariates: list[str], columns: list[str] | None
) -> CovariateSplit:
    """Emission ``columns`` (default: every column that is not a covariate) and the
    ``covariates``, on the dates where both are usable (see the module docstring)."""
    frame = features.frame
    unknown = [name for name in covariates if name not in frame.columns]
    if unknown:
        raise UnknownSeriesError(
            f"no covariate column {', '.join(unknown)} (available: {', '.join(frame.columns)})"
        )
    if columns is None:
        columns = [name for name in frame.columns if name not in covariates]
    both = [name for name in columns if name in covariates]
    if both:
        raise RegimeDataError(
            f"column {', '.join(both)} is both an emission column and a covariate; "
            "covariates only drive the transitions: drop it from one of the two lists"
        )
    emission = select_features(features, columns)
    dates = emission.frame.index
    values = frame[covariates].reindex(dates)
    complete = values.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise InsufficientDataError(
            "no date on which the emission columns and every covariate "
            f"({', '.join(covariates)}) are all available"
        )
    first = int(complete.argmax())
    last = len(complete) - 1 - int(complete[::-1].argmax())
    for name in covariates:
        inside = values[name].iloc[first : last + 1]
        if inside.isna().any():
            gap = inside.index[inside.isna().to_numpy()][0]
            raise RegimeDataError(
                f"covariate '{name}' is missing on {gap:%Y-%m-%d}, inside the range "
                f"{dates[first]:%Y-%m-%d} to {dates[last]:%Y-%m-%d} where the covariates "
                "are observed; a transition driver cannot be skipped and is not filled "
                "in: fill the gap upstream or choose another covariate"
            )
    end = min(last + 2, len(dates))  # the date after the last value still has x_{t-1}
    kept = trim_unobserved(emission.frame.iloc[first:end])
    trimming = CovariateTrimming(
        leading_dates=int(dates.get_loc(kept.index[0])),
        trailing_dates=int(len(dates) - 1 - dates.get_loc(kept.index[-1])),
        first_date=f"{kept.index[0]:%Y-%m-%d}",
        last_date=f"{kept.index[-1]:%Y-%m-%d}",
    )
    trimmed = FeatureSet(
        frame=kept,
        groups=emission.groups,
        freq=emission.freq,
        source=emission.source,
        universe=emission.universe,
        skipped=emission.skipped,
    )
    return CovariateSplit(trimmed, values.loc[kept.index], trimming)


@dataclass(frozen=True)
class StandardisedCovariates:
    """(T, C) ``values`` in standard deviations of the rows driving the fitted transitions
    (NaN only on a last date whose value is missing: it drives no transition), with the
    ``center`` and ``scale`` (C,) used."""

    values: np.ndarray
    center: np.ndarray
    scale: np.ndarray


def standardise_covariates(observations: Observations) -> StandardisedCovariates:
    """The observations' covariates standardised on dates 0..n_fit-2 (no look-ahead)."""
    raw = observations.covariates
    if raw is None:
        raise ValueError("these observations carry no covariates")
    drivers = raw[: observations.n_fit - 1]
    if len(drivers) < 2:
        raise InsufficientDataError("a covariate-driven model needs at least three fitted dates")
    center = drivers.mean(axis=0)
    scale = drivers.std(axis=0, ddof=1)
    for name, value, spread in zip(observations.covariate_names, center, scale, strict=True):
        if not spread > 0:
            raise ConstantFeatureError(f"covariate '{name}': constant value {value:g}")
    return StandardisedCovariates((raw - center) / scale, center, scale)


def extreme_covariate_warnings(standardised: pd.DataFrame) -> list[str]:
    """One message per covariate whose driving values go beyond ``EXTREME_Z`` standard
    deviations: there the logit extrapolates linearly, and durations explode."""
    messages = []
    for name in standardised.columns:
        values = standardised[name].abs()
        n_extreme = int((values > EXTREME_Z).sum())
        if n_extreme:
            messages.append(
                f"covariate '{name}' reaches {values.max():.1f} standard deviations on "
                f"{values.idxmax():%Y-%m-%d} ({n_extreme} date{'s' * (n_extreme > 1)} beyond "
                f"{EXTREME_Z:g}): the transition logit extrapolates linearly there; consider "
                "a robust transform (rank, winsorised or log change) of the covariate"
            )
    return messages
