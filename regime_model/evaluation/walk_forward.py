"""One walk-forward segment: a pure task that refits a model and scores the next stretch.

A :class:`SegmentTask` carries everything its fit reads: the model configuration, the
columns and the feature rows from the fit window's first date to the segment's last
scored date, and nothing later. :func:`run_segment` fits on the dates before the refit date
(``fit(holdout_start=refit_date)``) and runs the filter on through the scored dates
without refitting. Its result is plain JSON-able data, so it can travel from a Dask
worker and be stored as it is.

Warm starts: a Bayesian refit can start from where the previous refit of the same
calendar year ended (its ``warm_state``, see :mod:`regime_model.models.warm_start`); the
task then names that refit (``after``) and its key covers that refit's key. The first
refit of each year starts cold, so a mode a chain got stuck in carries over for a year at
most, and the results do not depend on how many workers run them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from regime_model import __version__
from regime_model.data.features import FeatureSet
from regime_model.evaluation.schedule import Refit
from regime_model.models import model_from_config
from regime_model.models.warm_start import WarmStart
from regime_model.results import RegimeResult

# Diagnostics copied into each segment's record (and the per-refit table), when a model
# reports them: MCMC checks for the Bayesian models, convergence for EM.
DIAGNOSTIC_FIELDS = (
    "verdict",
    "max_rhat",
    "min_ess_bulk",
    "min_ess_tail",
    "divergences",
    "label_switching",
    "labels_consistent",
)
FIT_INFO_FIELDS = (
    "sampler",
    "sampling_seconds",
    "sample_call_seconds",
    "tuning_steps",
    "warm_started",
    "gradient_evaluations",
    "converged",
    "n_iter",
)


@dataclass(frozen=True)
class SegmentTask:
    """Inputs of one refit. ``features``: the rows ``refit.fit_start`` ..
    ``refit.score_end`` of the columns the model reads; ``key``: a hash of all inputs."""

    refit: Refit
    features: FeatureSet
    columns: list[str] | None
    model_config: dict[str, Any]
    key: str
    after: str | None = None
    warm_start: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.refit.name


def warmed(task: SegmentTask, previous: dict[str, Any]) -> SegmentTask:
    """``task`` starting from where the refit it follows ended (its stored record)."""
    return replace(task, warm_start=previous.get("warm_state"))


def config_hash(model_config: dict[str, Any], columns: list[str] | None) -> str:
    """SHA-256 of what a fit does with its data: model settings, columns, package version."""
    text = json.dumps(
        {"model": model_config, "columns": columns, "regime_model": __version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def features_digest(features: FeatureSet) -> str:
    """SHA-256 of the rows, columns, groups and exact float values of a feature set."""
    frame = features.frame
    digest = hashlib.sha256()
    digest.update("\n".join(frame.index.strftime("%Y-%m-%d")).encode())
    digest.update(json.dumps([list(frame.columns), features.groups, features.freq]).encode())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def segment_task(
    features: FeatureSet,
    refit: Refit,
    columns: list[str] | None,
    model_config: dict[str, Any],
    previous: SegmentTask | None = None,
) -> SegmentTask:
    """The task of ``refit``: its rows of ``features`` (already restricted to the columns
    the model reads) and the key a stored result must match to be reused; warm-started
    from the ``previous`` refit's end when given."""
    frame = features.frame
    rows = frame[(frame.index >= refit.fit_start) & (frame.index <= refit.score_end)]
    window = FeatureSet(
        frame=rows,
        groups=dict(features.groups),
        freq=features.freq,
        source=features.source,
        universe=features.universe,
    )
    parts = [config_hash(model_config, columns), refit.name, features_digest(window)]
    if previous is not None:
        parts.append(f"warm from {previous.key}")
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()
    after = None if previous is None else previous.name
    return SegmentTask(refit, window, columns, dict(model_config), key, after)


def run_segment(task: SegmentTask) -> dict[str, Any]:
    """Fit on the dates before the refit date and score the rest of the task's rows.

    Pure: the result depends on the task only. The fit runs single-threaded (chains one
    after another) so that parallel segments do not compete for cores.
    """
    model = model_from_config(task.model_config)
    # cores and progressbar are run-time settings, not part of the model's configuration.
    if hasattr(model, "cores"):
        model.cores = 1
    if hasattr(model, "progressbar"):
        model.progressbar = False
    options = {}
    if task.after is not None and task.warm_start is not None:
        options["warm_start"] = WarmStart.from_dict(task.warm_start)
    started = time.perf_counter()
    model.fit(task.features, task.columns, holdout_start=task.refit.refit_date, **options)
    fit_seconds = time.perf_counter() - started
    record = segment_record(model.result_, task.refit, fit_seconds)
    warm_state = getattr(model, "warm_state_", None)
    if warm_state is not None:
        record["warm_state"] = warm_state.to_dict()
    return record


def segment_record(result: RegimeResult, refit: Refit, fit_seconds: float) -> dict[str, Any]:
    """The scored part of a fit as plain data (NaN written as None).

    ``filtered`` / ``predicted``: {"mean", "lower", "upper"} each (T_scored, K);
    ``log_predictive_density``: (T_scored,), log mean_s p(y_t | y_1..t-1, theta_s).
    """
    log_predictive = result.holdout_log_predictive()
    if log_predictive is None:
        raise ValueError(f"refit {refit.name}: the fit scored no dates")
    n_fit = len(result.dates) - len(log_predictive)
    info = result.fit_info
    diagnostics = result.diagnostics()
    record = {
        "refit_date": refit.name,
        "fit_start": result.dates[0].strftime("%Y-%m-%d"),
        "fit_end": result.dates[n_fit - 1].strftime("%Y-%m-%d"),
        "n_fit_dates": n_fit,
        "regimes": list(result.regime_names),
        "dates": [date.strftime("%Y-%m-%d") for date in log_predictive.index],
        "log_predictive_density": _plain(log_predictive.to_numpy()),
        "fit_seconds": round(fit_seconds, 3),
        "diagnostics": {name: _json_safe(diagnostics.get(name)) for name in DIAGNOSTIC_FIELDS},
        "fit_info": {name: _json_safe(info.get(name)) for name in FIT_INFO_FIELDS},
    }
    for kind in ("filtered", "predicted"):
        table = result.regime_probabilities(kind).iloc[n_fit:]
        record[kind] = {
            statistic: _plain(table.xs(statistic, axis=1, level="statistic").to_numpy())
            for statistic in ("mean", "lower", "upper")
        }
    json.dumps(record, allow_nan=False)  # fails here, in the task, if not storable
    return record


def _plain(values: np.ndarray) -> list:
    """Floats as Python floats (exact), NaN as None; nested lists for 2-D arrays."""
    return [
        _plain(row) if np.ndim(row) else (None if math.isnan(row) else float(row)) for row in values
    ]


def _json_safe(value: Any) -> Any:
    """A scalar diagnostic as JSON: numpy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_segment_record(task: SegmentTask, record: dict[str, Any]) -> None:
    """Raise ValueError unless ``record`` is the shape :func:`segment_record` gives for
    ``task``: its refit, one entry per scored date of the task's rows, probabilities in
    [0, 1] per regime, finite log densities (or None). Worker results are checked with it
    before they are stored."""
    scored = task.features.frame.index[task.features.frame.index >= task.refit.refit_date]
    allowed = {date.strftime("%Y-%m-%d") for date in scored}
    if record.get("refit_date") != task.refit.name:
        raise ValueError(f"refit {record.get('refit_date')!r}, expected {task.refit.name!r}")
    dates = record.get("dates")
    # The scored dates of the task's rows, ascending (rows no column observes are trimmed).
    if not isinstance(dates, list) or not dates or not set(dates) <= allowed:
        raise ValueError("its dates are not scored dates of the refit")
    if dates != sorted(set(dates)):
        raise ValueError("its dates are not ascending and unique")
    if "warm_state" in record:
        WarmStart.from_dict(record["warm_state"])  # ValueError unless one
    regimes = record.get("regimes")
    if not isinstance(regimes, list) or not all(isinstance(name, str) for name in regimes):
        raise ValueError("no list of regime names")
    density = np.array(record["log_predictive_density"], dtype=float)
    if density.shape != (len(dates),) or np.isinf(density).any():
        raise ValueError("log_predictive_density is not one finite value (or null) per date")
    for kind in ("filtered", "predicted"):
        for statistic in ("mean", "lower", "upper"):
            values = np.array(record[kind][statistic], dtype=float)
            if values.shape != (len(dates), len(regimes)):
                raise ValueError(f"{kind} {statistic} is not (dates, regimes)")
            if ((values < 0) | (values > 1)).any():
                raise ValueError(f"{kind} {statistic} has probabilities outside [0, 1]")


@dataclass(frozen=True)
class Segment:
    """A stored segment result as arrays: ``dates`` (T_s,), probabilities (T_s, K),
    ``log_predictive_density`` (T_s,)."""

    refit_date: pd.Timestamp
    dates: pd.DatetimeIndex
    regimes: list[str]
    filtered: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    log_predictive_density: np.ndarray
    record: dict[str, Any]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Segment:
        def array(values: list) -> np.ndarray:
            return np.array(values, dtype=float)  # None -> NaN

        return cls(
            refit_date=pd.Timestamp(record["refit_date"]),
            dates=pd.DatetimeIndex(pd.to_datetime(record["dates"]), name="date"),
            regimes=list(record["regimes"]),
            filtered={name: array(values) for name, values in record["filtered"].items()},
            predicted={name: array(values) for name, values in record["predicted"].items()},
            log_predictive_density=array(record["log_predictive_density"]),
            record=record,
        )
