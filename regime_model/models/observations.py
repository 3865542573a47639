"""Turning a feature table into model inputs, and naming and ordering regimes.

Every model goes through :func:`prepare_observations`, the one place where input is
validated, and through :func:`regime_names` / :func:`order_regimes`, the one definition of
which regime is ``risk_off`` and which is ``risk_on``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from regime_model.data.features import FeatureSet, trim_unobserved, validated
from regime_model.errors import (
    ConstantFeatureError,
    DateRangeError,
    InsufficientDataError,
    UnknownSeriesError,
)
from regime_model.model_options import check_option_values

# Per regime and feature a mean and a scale: ask for a few observations of each.
MIN_OBSERVATIONS_PER_PARAMETER = 5


@dataclass(frozen=True)
class CovariateTrimming:
    """Dates dropped from the emission sample because a covariate was not yet (leading)
    or no longer (trailing) observed."""

    leading_dates: int
    trailing_dates: int
    first_date: str
    last_date: str


@dataclass(frozen=True)
class Observations:
    """Standardised observations with their mask.

    ``values`` (T, D): (y - center) / scale with missing entries set to 0;
    ``observed`` (T, D): 1.0 where a value exists. ``center``/``scale`` (D,) map model
    parameters back to the features' units. Only the first ``n_fit`` dates are fitted; the
    rest (a held-out stretch, scored one step ahead) are standardised with the fitted
    part's center and scale, so nothing about them leaks into the fit. ``covariates``
    (T, C): transition drivers in raw units (never emissions; see
    :mod:`regime_model.models.covariates`), named ``covariate_names``; None without.
    """

    dates: pd.DatetimeIndex
    columns: list[str]
    groups: dict[str, str]
    values: np.ndarray
    observed: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    anchor: int
    n_fit: int
    covariates: np.ndarray | None = None
    covariate_names: tuple[str, ...] = ()
    covariate_trimming: CovariateTrimming | None = None

    @property
    def n_dates(self) -> int:
        return self.values.shape[0]

    @property
    def n_holdout(self) -> int:
        return self.n_dates - self.n_fit

    def fitted_part(self) -> Observations:
        """The first ``n_fit`` dates only."""
        n = self.n_fit
        return replace(
            self,
            dates=self.dates[:n],
            values=self.values[:n],
            observed=self.observed[:n],
            covariates=None if self.covariates is None else self.covariates[:n],
        )

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    def view(self, columns: list[str], anchor: str) -> Observations:
        """These ``columns`` only (in this order), named on ``anchor`` (one of them): one
        chain's part of a composition of chains."""
        index = [self.columns.index(column) for column in columns]
        return replace(
            self,
            columns=list(columns),
            groups={column: self.groups[column] for column in columns},
            values=self.values[:, index],
            observed=self.observed[:, index],
            center=self.center[index],
            scale=self.scale[index],
            anchor=list(columns).index(anchor),
        )

    def raw(self) -> np.ndarray:
        """(T, D) observations in the features' own units, NaN where missing."""
        values = self.values * self.scale + self.center
        return np.where(self.observed > 0, values, np.nan)


def regime_names(n_regimes: int) -> list[str]:
    """Names from the lowest to the highest anchor mean: risk_off ... risk_on."""
    if n_regimes == 2:
        return ["risk_off", "risk_on"]
    if n_regimes == 3:
        return ["risk_off", "neutral", "risk_on"]
    return ["risk_off", *[f"neutral_{i}" for i in range(1, n_regimes - 1)], "risk_on"]


def order_regimes(anchor_mean: np.ndarray, anchor_scale: np.ndarray, order_by: str) -> np.ndarray:
    """Permutation putting regimes in risk_off -> risk_on order.

    ``order_by="mean"``: ascending mean of the anchor feature; ``"volatility"``: descending
    scale (the calmest regime is risk_on). Shapes (K,) -> (K,).
    """
    if order_by == "mean":
        return np.argsort(anchor_mean, kind="stable")
    if order_by == "volatility":
        return np.argsort(-anchor_scale, kind="stable")
    raise ValueError(f"order_by must be 'mean' or 'volatility', not {order_by!r}")


def default_anchor(columns: list[str], groups: dict[str, str]) -> str:
    """The first equity return column, else the first equity column, else the first."""
    equity = [column for column in columns if groups.get(column) == "equity"]
    returns = [column for column in equity if column.endswith("_return")]
    return (returns or equity or columns)[0]


def select_features(features: FeatureSet, columns: list[str] | None) -> FeatureSet:
    """The feature set restricted to ``columns`` (all when None), names checked, after
    the checks every model input gets (:func:`~regime_model.data.features.validated`)."""
    features = validated(features)
    if columns is None:
        columns = list(features.frame.columns)
    unknown = [column for column in columns if column not in features.frame.columns]
    if unknown:
        raise UnknownSeriesError(
            f"no feature column {', '.join(unknown)} "
            f"(available: {', '.join(features.frame.columns)})"
        )
    return FeatureSet(
        frame=trim_unobserved(features.frame[columns]),
        groups={column: features.groups.get(column, "unknown") for column in columns},
        freq=features.freq,
        source=features.source,
        universe=features.universe,
        skipped=features.skipped,
    )


def prepare_observations(
    features: FeatureSet,
    n_regimes: int,
    anchor: str | None = None,
    holdout_start: str | pd.Timestamp | None = None,
    standardise: bool = True,
    covariates: pd.DataFrame | None = None,
    covariate_trimming: CovariateTrimming | None = None,
) -> Observations:
    """Validate a feature set for a K-regime model and standardise it.

    A date on which no feature is observed stays in the sequence (the regime still
    evolves across it); leading and trailing ones are trimmed by :func:`select_features`.
    ``holdout_start``: dates from this one on are held out (not fitted, scored later).
    ``standardise=False`` keeps the features' own units (center 0, scale 1), so priors do
    not depend on the data (simulation-based calibration needs that). ``covariates``: raw
    transition drivers on the same dates (see :func:`~regime_model.models.covariates.
    split_covariates`).
    """
    check_option_values({"n_regimes": n_regimes})
    frame = features.frame
    columns = list(frame.columns)
    if not columns:
        raise InsufficientDataError("no feature columns to model")
    anchor = anchor or default_anchor(columns, features.groups)
    if anchor not in columns:
        raise UnknownSeriesError(f"anchor column '{anchor}' is not among {', '.join(columns)}")
    n_fit = _fitted_length(frame.index, holdout_start)
    fitted = frame.iloc[:n_fit]
    needed = MIN_OBSERVATIONS_PER_PARAMETER * 2 * n_regimes
    for column in columns:
        values = fitted[column].dropna()
        if len(values) < needed:
            raise InsufficientDataError(
                f"feature '{column}': {len(values)} observations; a {n_regimes}-regime "
                f"model needs at least {needed}"
            )
        if values.nunique() < 2:
            raise ConstantFeatureError(f"feature '{column}': constant value {values.iloc[0]:g}")
    observed = frame.notna().to_numpy()
    # Centring and scaling only set the prior's units; they are undone in every report.
    if standardise:
        center, scale = _moments(fitted)
    else:
        center, scale = np.zeros(len(columns)), np.ones(len(columns))
        too_large = np.nanmax(np.abs(frame.to_numpy()), axis=0) > MAX_UNSCALED
        if too_large.any():
            raise InsufficientDataError(
                f"feature '{columns[int(np.flatnonzero(too_large)[0])]}' has values beyond "
                f"{MAX_UNSCALED:g}: with standardise=False the model needs values of moderate "
                "size (rescale the column, or standardise)"
            )
    values = np.where(observed, (frame.to_numpy() - center) / scale, 0.0)
    return Observations(
        dates=pd.DatetimeIndex(frame.index, name="date").as_unit("us"),
        columns=columns,
        groups={column: features.groups.get(column, "unknown") for column in columns},
        values=values,
        observed=observed.astype(float),
        center=center,
        scale=scale,
        anchor=columns.index(anchor),
        n_fit=n_fit,
        covariates=None if covariates is None else _aligned(covariates, frame.index),
        covariate_names=() if covariates is None else tuple(covariates.columns),
        covariate_trimming=covariate_trimming,
    )


# Beyond this magnitude squares overflow (or, below its inverse, underflow) in float64.
EXTREME = 1e150
MAX_UNSCALED = 1e100


def _moments(fitted: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(center (D,), scale (D,)): each column's mean and standard deviation over the
    fitted dates. A column of extreme magnitude (its variance overflows or underflows
    float64) is measured in units of its largest absolute value first, so that 1e300 or
    1e-300 standardise as any other column would; others exactly as pandas computes."""
    center = fitted.mean().to_numpy().copy()
    scale = fitted.std().to_numpy().copy()
    largest = fitted.abs().max().to_numpy()
    extreme = ~np.isfinite(scale) | (largest > EXTREME) | (largest < 1 / EXTREME)
    for d in np.flatnonzero(extreme):
        unit = fitted.iloc[:, d] / largest[d]
        center[d] = unit.mean() * largest[d]
        scale[d] = unit.std() * largest[d]
    return center, scale


def _aligned(covariates: pd.DataFrame, dates: pd.Index) -> np.ndarray:
    """(T, C) covariate values on exactly ``dates`` (an error, not a reindex, if not)."""
    if not covariates.index.equals(dates):
        raise ValueError("covariates must be on the emission dates (see split_covariates)")
    return covariates.to_numpy(dtype=float)


def holdout_info(observations: Observations) -> dict[str, object]:
    """What a result's ``fit_info`` says about the data it scored: ``data_sha256``, a
    hash of the dates, columns and observed values (so ``regime compare`` can tell runs
    on different data apart even when their columns and dates agree), and the held-out
    stretch, if any."""
    digest = hashlib.sha256()
    digest.update(observations.dates.asi8.tobytes())
    digest.update("\x1f".join(observations.columns).encode())
    values = np.where(observations.observed, observations.values * observations.scale, np.nan)
    digest.update(np.ascontiguousarray(values + observations.center).tobytes())
    info: dict[str, object] = {"data_sha256": digest.hexdigest()}
    if not observations.n_holdout:
        return info
    return {
        **info,
        "holdout_start": observations.dates[observations.n_fit].strftime("%Y-%m-%d"),
        "holdout_dates": observations.n_holdout,
    }


def _fitted_length(dates: pd.Index, holdout_start: str | pd.Timestamp | None) -> int:
    """How many leading dates are fitted when dates from ``holdout_start`` are held out."""
    if holdout_start is None:
        return len(dates)
    start = pd.Timestamp(holdout_start)
    n_fit = int((dates < start).sum())
    if n_fit == len(dates):
        raise DateRangeError(
            f"holdout start {start:%Y-%m-%d} is after the last date {dates[-1]:%Y-%m-%d}: "
            "nothing would be held out"
        )
    if n_fit == 0:
        raise DateRangeError(
            f"holdout start {start:%Y-%m-%d} is on or before the first date "
            f"{dates[0]:%Y-%m-%d}: nothing would be fitted"
        )
    return n_fit
