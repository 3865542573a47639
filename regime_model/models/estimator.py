"""What every regime model offers once fitted, in scikit-learn's conventions.

Settings go to ``__init__``; ``fit(X)`` returns the estimator, with fitted attributes
ending in ``_`` (``result_``, ``inference_data_``, ``inputs_``, ``observations_``). A
fitted model then reads data *that extend the data it was fitted on* without refitting:
the stored posterior draws (one for a maximum-likelihood fit) are run through the
forward(-backward) pass over the fitted dates and the appended ones, with the fit's own
standardisation, so a date's filtered probability uses the data up to that date and
parameters from the fitted data only.

- :meth:`~RegimeEstimator.predict_proba`: P(regime) per date, the posterior mean (or with
  its band);
- :meth:`~RegimeEstimator.filter`: the appended dates only, with every band draw kept
  (:class:`FilteredDates`);
- :meth:`~RegimeEstimator.score`: the log predictive density of the data;
- :meth:`~RegimeEstimator.forecast`: P(regime) h steps past the fitted data.

X is a :class:`~regime_model.data.features.FeatureSet` or a pandas DataFrame with a
DatetimeIndex (or a ``date`` column); see :func:`~regime_model.data.features.validated`.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from regime_model.data.features import FeatureSet, validated
from regime_model.errors import DateRangeError, RegimeDataError, RegimeModelError
from regime_model.models.observations import Observations, select_features
from regime_model.results import (
    KINDS,
    ProbabilityDraws,
    RegimeResult,
    log_mean_exp,
    probability_rows,
    probability_table,
)

# InferenceData group holding the model inputs as fitted (raw units, every input column).
INPUTS_GROUP = "observed_data"


class NotFittedError(RegimeModelError, AttributeError):
    """A fitted attribute or method was used before ``fit``."""


@dataclass(frozen=True)
class FilteredDates:
    """Regime probabilities of dates appended after the fitted data, from the fitted
    posterior (no refit): per band draw ``filtered`` and ``predicted`` (S, T, K) and the
    one-step log predictive density ``pointwise_loglik`` (S, T). ``fitted_through``: the
    last date the parameters saw."""

    dates: pd.DatetimeIndex
    regime_names: list[str]
    filtered: np.ndarray
    predicted: np.ndarray
    pointwise_loglik: np.ndarray
    has_bands: bool
    fitted_through: pd.Timestamp

    def probabilities(self, kind: str = "filtered", hdi: float = 0.9) -> pd.DataFrame:
        """Mean and HDI per date, as :meth:`RegimeResult.regime_probabilities`."""
        if kind not in ("filtered", "predicted"):
            raise ValueError(f"kind must be 'filtered' or 'predicted', not {kind!r}")
        table = probability_table(
            getattr(self, kind), self.dates, self.regime_names, hdi, self.has_bands, kind
        )
        table.attrs["fitted_through"] = self.fitted_through.strftime("%Y-%m-%d")
        return table

    def probabilities_long(self, hdi: float = 0.9) -> pd.DataFrame:
        """Filtered and predicted probabilities as rows: date, regime, kind, mean, lower,
        upper (the layout of a run's regime_probabilities.csv)."""
        return probability_rows(
            [self.probabilities(kind, hdi) for kind in ("filtered", "predicted")]
        )

    def log_predictive_density(self) -> pd.Series:
        """log p(y_t | y_1..t-1) per date, averaged over the draws as a density."""
        return pd.Series(
            log_mean_exp(self.pointwise_loglik), index=self.dates, name="log_predictive_density"
        )


class RegimeEstimator(ABC):
    """The estimator interface shared by every model (see the module docstring). A model
    defines ``get_config``, ``_fit_result(observations, warm_start)`` (fit the observations' fitted
    part and return the result) and ``_probability_draws(observations)`` (per-date
    probabilities of observations standardised like the fit's, for the result's band
    draws), and records what :meth:`_restore` needs in ``_model_posterior``."""

    covariates: list[str] | None = None

    name = "regime-model"  # the --model name; each model sets its own

    def get_config(self) -> dict[str, Any]:
        """The settings (``__init__`` arguments, :func:`setting_names`) plus the name."""
        return {
            "model": self.name,
            **{name: getattr(self, name) for name in setting_names(type(self))},
        }

    # ------------------------------------------------------------------ a model's part

    @abstractmethod
    def observations(
        self, features: FeatureSet, columns: list[str] | None = None, holdout_start=None
    ) -> Observations:
        """The model's inputs of ``features`` (validated and standardised)."""

    @abstractmethod
    def _fit_result(self, observations: Observations, warm_start=None) -> RegimeResult:
        """Fit on ``observations.fitted_part()`` (from ``warm_start``, where the model can
        start from one), set the model's own fitted attributes, return the result."""

    @abstractmethod
    def _probability_draws(self, observations: Observations) -> ProbabilityDraws:
        """Per band draw, every kind of regime probability of ``observations`` (float64)."""

    @abstractmethod
    def _model_posterior(self) -> xr.Dataset:
        """What the fit needs stored to read new data later (see :meth:`_restore`)."""

    @abstractmethod
    def _restore_fitted(self, model_posterior: xr.Dataset) -> None:
        """Set the model's own fitted attributes from a stored run."""

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: FeatureSet | pd.DataFrame,
        columns: list[str] | None = None,
        holdout_start: str | pd.Timestamp | None = None,
        warm_start=None,
    ) -> RegimeEstimator:
        """Fit the model to ``X`` (``columns`` of it; default: every column that is not a
        covariate) and return it. ``holdout_start``: fit on the dates before it only and
        score the later ones one step ahead with the filter (``result_``'s
        ``holdout_log_predictive``). ``warm_start``: a Bayesian model's ``warm_state_``
        from an earlier fit of the same structure (a walk-forward's previous refit) to
        start sampling from (:mod:`~regime_model.models.warm_start`). Fitted attributes:
        ``result_`` (the :class:`RegimeResult`), ``inference_data_``, ``inputs_`` (the
        input columns as fitted, raw units) and ``observations_``, plus the model's
        own."""
        inputs, columns = self._inputs(X, columns)
        observations = self.observations(inputs, columns, holdout_start)
        result = self._fit_result(observations, warm_start)
        self.inputs_, self.observations_ = inputs, observations
        result.inference_data.add_groups(
            {INPUTS_GROUP: inputs_dataset(inputs), "model_posterior": self._model_posterior()}
        )
        self.result_, self.inference_data_ = result, result.inference_data
        return self

    def _inputs(
        self, X: FeatureSet | pd.DataFrame, columns: list[str] | None
    ) -> tuple[FeatureSet, list[str]]:
        """(the input columns of ``X``: emission columns and covariates, validated; the
        emission columns)."""
        features = validated(X, "X")
        covariates = list(self.covariates or [])
        if columns is None:
            columns = [name for name in features.frame.columns if name not in covariates]
        return select_features(features, list(dict.fromkeys([*columns, *covariates]))), columns

    # ------------------------------------------------------------------ new data
    def extended(self, X: FeatureSet | pd.DataFrame | None = None) -> Observations:
        """Observations of the fitted data followed by ``X``'s later dates, standardised
        as the fit was (its fitted part is the fitted data, so every moment is the
        fit's). ``X`` may repeat any of the fitted dates, with the same values, and must
        hold every input column; other columns are ignored. None: the fitted data."""
        self._check_fitted()
        if X is None:
            return self.observations_
        stored = self.inputs_.frame
        names = list(stored.columns)
        features = validated(X, "X")
        missing = [name for name in names if name not in features.frame.columns]
        if missing:
            raise RegimeDataError(
                f"X has no column {', '.join(missing)}, which the model was fitted on "
                f"(it needs {', '.join(names)})"
            )
        new = features.frame[names]
        first, last = stored.index[0], stored.index[-1]
        before = new.loc[new.index < first]
        if before.notna().to_numpy().any():  # rows the fit trimmed as empty are fine
            raise DateRangeError(
                f"X has values on {before.dropna(how='all').index[0]:%Y-%m-%d}, before the "
                f"fitted data's first date {first:%Y-%m-%d}: new data must extend the "
                "fitted data at its end"
            )
        inside = new.loc[(new.index >= first) & (new.index <= last)]
        unknown = inside.index.difference(stored.index)
        if len(unknown):
            raise DateRangeError(
                f"X has {unknown[0]:%Y-%m-%d}, inside the fitted data "
                f"({stored.index[0]:%Y-%m-%d} to {last:%Y-%m-%d}) but not one of its dates: "
                "new data must extend the fitted data, not change its calendar"
            )
        _check_same_values(stored.loc[inside.index], inside)
        combined = pd.concat([stored, new.loc[new.index > last]])
        inputs = FeatureSet(
            combined, self.inputs_.groups, self.inputs_.freq, features.source or "appended"
        )
        fitted = self.observations_
        n_fit = fitted.n_fit
        # The fitted part is the fit's: held out from its holdout start (if it had one),
        # else from the first appended date.
        appended = combined.index[combined.index > fitted.dates[-1]]
        later = (
            fitted.dates[n_fit] if fitted.n_holdout else (appended[0] if len(appended) else None)
        )
        observations = self.observations(inputs, fitted.columns, later)
        if observations.n_fit != n_fit or not observations.dates[:n_fit].equals(
            fitted.dates[:n_fit]
        ):  # an invariant: the fitted part is the fit's
            raise RegimeModelError("the extended data do not begin with the fitted dates")
        return observations

    def predict_proba(
        self,
        X: FeatureSet | pd.DataFrame | None = None,
        kind: str = "filtered",
        hdi: float | None = None,
    ) -> pd.DataFrame:
        """P(regime) per date of the fitted data and ``X``'s later dates (see
        :meth:`extended`): ``kind`` "filtered" P(z_t | y_1..t) (what the model says on
        date t; the default), "smoothed" P(z_t | all the data) or "predicted"
        P(z_t | y_1..t-1). The posterior mean (T, K), one column per regime; with
        ``hdi``, the mean and HDI bounds (columns regime x statistic)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        observations = self.extended(X)
        draws = getattr(self._probability_draws(observations), kind)
        names = self.result_.regime_names
        if hdi is None:
            return pd.DataFrame(
                draws.mean(axis=0),
                index=pd.DatetimeIndex(observations.dates, name="date"),
                columns=pd.Index(names, name="regime"),
            )
        return probability_table(
            draws, observations.dates, names, hdi, self.result_.has_bands, kind
        )

    def filter(self, X: FeatureSet | pd.DataFrame) -> FilteredDates:
        """The filtered and predicted probabilities (per band draw) of the dates ``X``
        appends after the fitted data, from the fitted posterior: no sampling, nothing
        refitted. ``X`` may hold only the new rows or the fitted data and the new rows."""
        observations = self.extended(X)
        new = observations.dates > self.observations_.dates[-1]
        if not new.any():
            raise DateRangeError(
                f"X has no date after {self.observations_.dates[-1]:%Y-%m-%d}, the last "
                "fitted date: nothing to filter"
            )
        draws = self._probability_draws(observations)
        return FilteredDates(
            dates=pd.DatetimeIndex(observations.dates[new], name="date"),
            regime_names=self.result_.regime_names,
            filtered=draws.filtered[:, new],
            predicted=draws.predicted[:, new],
            pointwise_loglik=draws.pointwise_loglik[:, new],
            has_bands=self.result_.has_bands,
            fitted_through=self.observations_.dates[self.observations_.n_fit - 1],
        )

    def score(self, X: FeatureSet | pd.DataFrame | None = None) -> float:
        """log p(y_1..T) of the fitted data and ``X``'s later dates, averaged over the
        band draws as a density: log mean_s prod_t p_s(y_t | y_1..t-1) (a maximum-
        likelihood fit: its log-likelihood)."""
        totals = self._probability_draws(self.extended(X)).pointwise_loglik.sum(axis=1)
        return float(log_mean_exp(totals))

    def forecast(self, horizon: int = 1, hdi: float = 0.9) -> pd.DataFrame:
        """P(regime) 1..``horizon`` steps after the last fitted date, mean and HDI."""
        self._check_fitted()
        return self.result_.forecast(horizon, hdi)

    # ------------------------------------------------------------------ stored runs
    def _restore(self, result: RegimeResult) -> RegimeEstimator:
        """This (unfitted) model with the fitted state of a stored run."""
        groups = result.inference_data.groups()
        if INPUTS_GROUP not in groups or "model_posterior" not in groups:
            raise RegimeModelError(
                "this run was written by a version that did not store its inputs and "
                "model posterior: fit it again to read new data with it"
            )
        self.inputs_ = inputs_from_dataset(result.inference_data[INPUTS_GROUP])
        self.observations_ = self.observations(
            self.inputs_, result.columns, result.fit_info.get("holdout_start")
        )
        self.result_, self.inference_data_ = result, result.inference_data
        self._restore_fitted(result.inference_data["model_posterior"])
        return self

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X)")

    def __repr__(self) -> str:
        """The settings that differ from the defaults, as scikit-learn shows them."""
        try:  # the defaults as resolved by the constructor (identification, ...)
            defaults = type(self)().get_config()
        except ValueError:  # a family with a required setting (tvtp: covariates)
            defaults = _signature_defaults(type(self))
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_config().items()
            if name != "model" and defaults.get(name) != value
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _check_same_values(stored: pd.DataFrame, given: pd.DataFrame) -> None:
    """Refuse ``given`` values that differ from the fitted ones on the same dates (NaN
    equals NaN; exact, since the fit's standardisation and likelihood used these)."""
    a, b = stored.to_numpy(dtype=float), given.to_numpy(dtype=float)
    differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if differs.any():
        row, column = (int(i[0]) for i in np.nonzero(differs))
        raise RegimeDataError(
            f"X's '{stored.columns[column]}' on {stored.index[row]:%Y-%m-%d} is "
            f"{b[row, column]:.10g}, but the model was fitted with {a[row, column]:.10g}: "
            "new data must extend the fitted data, not revise it (refit on revised data)"
        )


def inputs_dataset(inputs: FeatureSet) -> xr.Dataset:
    """The input columns as fitted, for the run's InferenceData (dims input_date x
    input_column; groups and frequency as attributes)."""
    return xr.Dataset(
        {"inputs": (("input_date", "input_column"), inputs.frame.to_numpy(dtype=float))},
        coords={
            "input_date": inputs.frame.index.to_numpy(),
            "input_column": list(inputs.frame.columns),
        },
        attrs={"groups": json.dumps(inputs.groups), "freq": inputs.freq},
    )


def inputs_from_dataset(dataset: xr.Dataset) -> FeatureSet:
    """The input columns stored by :func:`inputs_dataset`, as a FeatureSet."""
    frame = pd.DataFrame(
        dataset["inputs"].to_numpy(),
        index=pd.DatetimeIndex(dataset["input_date"].to_numpy(), name="date"),
        columns=[str(name) for name in dataset["input_column"].to_numpy()],
    )
    return FeatureSet(frame, json.loads(dataset.attrs["groups"]), str(dataset.attrs["freq"]))


def load_run(directory) -> RegimeEstimator:
    """The fitted model of a run directory written by ``regime fit`` (or
    ``model.result_.save``), checked as :meth:`RegimeResult.load` checks it, ready to
    read new data (:meth:`RegimeEstimator.filter`)."""
    from regime_model.models import model_from_config

    result = RegimeResult.load(directory)
    model = model_from_config(settings_of(result.config))
    return model._restore(result)


def setting_names(cls: type) -> list[str]:
    """A model class's settings: the union of the ``__init__`` signatures along its
    hierarchy (a family names its own options and passes the rest on as ``**options``),
    without the display-only ``cores`` and ``progressbar``."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        for parameter in inspect.signature(klass.__init__).parameters.values():
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            if parameter.name not in (*names, "self", "cores", "progressbar"):
                names.append(parameter.name)
    return names


def _signature_defaults(cls: type) -> dict[str, Any]:
    """Each setting's default as the nearest ``__init__`` along the hierarchy declares it."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__ and klass is not object:
            for parameter in inspect.signature(klass.__init__).parameters.values():
                defaults.setdefault(parameter.name, parameter.default)
    return defaults


def settings_of(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json without what the run added beside the model's settings."""
    from regime_model.models import MODELS

    names = {"model", *setting_names(MODELS[config["model"]])}
    return {name: value for name, value in config.items() if name in names}
