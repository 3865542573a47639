"""Walk-forward backtest: plan the refits, run them through the executor, stitch and score.

``run_backtest`` turns a feature set and a :class:`BacktestSpec` into one pure task per
refit (see :mod:`regime_model.evaluation.walk_forward`), runs the tasks that have no stored
result yet, and stitches the stored segments into one out-of-sample record: filtered and
one-step predicted regime probabilities and the log predictive density of every scored
date, each computed with parameters fitted on earlier dates only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regime_model.data.cache import write_text_atomic
from regime_model.data.features import FeatureSet
from regime_model.errors import RegimeModelError
from regime_model.evaluation.executor import (
    Executor,
    Progress,
    ResultStore,
    TaskFunction,
    TaskReport,
    run_tasks,
)
from regime_model.evaluation.schedule import parse_window, refit_schedule
from regime_model.evaluation.scores import forecast_scores, log_score_by_year, log_score_summary
from regime_model.evaluation.walk_forward import (
    DIAGNOSTIC_FIELDS,
    FIT_INFO_FIELDS,
    Segment,
    SegmentTask,
    check_segment_record,
    config_hash,
    run_segment,
    segment_task,
    warmed,
)
from regime_model.models import model_from_config
from regime_model.models.observations import MIN_OBSERVATIONS_PER_PARAMETER, select_features
from regime_model.run_directory import claim_store, seal, unseal

SEGMENTS_DIRECTORY = "segments"


class BacktestError(RegimeModelError):
    """A refit failed; the others' results are stored, so a re-run resumes."""


@dataclass(frozen=True)
class BacktestSpec:
    """What a backtest does. ``model_config``: as for
    :func:`~regime_model.models.model_from_config`; ``columns``: emission columns (None:
    all); ``every``: "month" or "quarter"; ``window``: "expanding" or a number of dates;
    ``warm_start``: a nutpie-sampled refit starts from the previous refit of its calendar
    year (:mod:`~regime_model.evaluation.walk_forward`)."""

    model_config: dict[str, Any]
    columns: list[str] | None
    start: str | pd.Timestamp
    every: str
    window: str | int = "expanding"
    warm_start: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_config,
            "columns": self.columns,
            "start": pd.Timestamp(self.start).strftime("%Y-%m-%d"),
            "every": self.every,
            "window": parse_window(self.window),
            "warm_start": self.warm_start,
            "config_hash": config_hash(self.model_config, self.columns),
        }


def plan_backtest(features: FeatureSet, spec: BacktestSpec) -> list[SegmentTask]:
    """One task per refit, in date order, each warm-started refit naming the refit it
    follows. Checks the model settings and the schedule before anything runs."""
    model = model_from_config(spec.model_config)  # invalid settings fail here, not on a worker
    chained = spec.warm_start and getattr(model, "sampler", None) == "nutpie"
    read = _columns_read(spec.model_config, spec.columns)
    selected = select_features(features, read)
    n_regimes = int(spec.model_config.get("n_regimes", 2))
    refits = refit_schedule(
        selected.frame.index,
        spec.start,
        spec.every,
        spec.window,
        min_fit_dates=MIN_OBSERVATIONS_PER_PARAMETER * 2 * n_regimes,
    )
    tasks: list[SegmentTask] = []
    for refit in refits:
        previous = tasks[-1] if tasks else None
        if (
            not chained
            or previous is None
            or previous.refit.refit_date.year != refit.refit_date.year
        ):
            previous = None  # the first refit of a year starts cold
        tasks.append(segment_task(selected, refit, spec.columns, spec.model_config, previous))
    return tasks


def _columns_read(model_config: dict[str, Any], columns: list[str] | None) -> list[str] | None:
    """Columns a fit reads: the emission columns plus a tvtp model's covariates."""
    if columns is None:
        return None
    covariates = [name for name in model_config.get("covariates") or [] if name not in columns]
    return [*columns, *covariates]


@dataclass
class BacktestResult:
    """Stitched segments, in refit order, and what the executor did this time."""

    segments: list[Segment]
    report: TaskReport

    @property
    def regimes(self) -> list[str]:
        return self.segments[0].regimes

    def log_predictive_density(self) -> pd.DataFrame:
        """Per scored date: the refit that scored it and log p(y_t | y_1..t-1)."""
        return pd.DataFrame(
            {
                "refit_date": np.concatenate(
                    [np.repeat(s.refit_date, len(s.dates)) for s in self.segments]
                ),
                "log_predictive_density": np.concatenate(
                    [s.log_predictive_density for s in self.segments]
                ),
            },
            index=self._dates(),
        )

    def probabilities(self, kind: str = "filtered", statistic: str = "mean") -> pd.DataFrame:
        """(T_scored, K) ``statistic`` (mean, lower, upper) of the ``kind`` (filtered or
        predicted) regime probabilities, one column per regime."""
        values = np.concatenate([getattr(s, kind)[statistic] for s in self.segments])
        return pd.DataFrame(values, index=self._dates(), columns=self.regimes)

    def probabilities_long(self, kind: str = "filtered") -> pd.DataFrame:
        """Rows date, regime, kind, mean, lower, upper: the format of ``regime fit``'s
        regime_probabilities.csv."""
        frames = []
        for k, name in enumerate(self.regimes):
            part = pd.DataFrame(
                {
                    statistic: self.probabilities(kind, statistic).iloc[:, k]
                    for statistic in ("mean", "lower", "upper")
                }
            ).reset_index()
            part.insert(1, "regime", name)
            part.insert(2, "kind", kind)
            frames.append(part)
        long = pd.concat(frames, ignore_index=True)
        return long.sort_values(["date", "kind", "regime"], kind="stable").reset_index(drop=True)

    def refit_table(self) -> pd.DataFrame:
        """One row per refit: fitted and scored dates, score, time and diagnostics."""
        rows = []
        for segment in self.segments:
            record = segment.record
            rows.append(
                {
                    "refit_date": record["refit_date"],
                    "fit_start": record["fit_start"],
                    "fit_end": record["fit_end"],
                    "fit_dates": record["n_fit_dates"],
                    "score_start": record["dates"][0],
                    "score_end": record["dates"][-1],
                    "scored_dates": len(record["dates"]),
                    "log_predictive_sum": float(segment.log_predictive_density.sum()),
                    "fit_seconds": record["fit_seconds"],
                    **{name: record["fit_info"].get(name) for name in FIT_INFO_FIELDS},
                    **{name: record["diagnostics"].get(name) for name in DIAGNOSTIC_FIELDS},
                }
            )
        return pd.DataFrame(rows)

    def scores(self, truth: pd.Series | None = None) -> tuple[dict[str, Any], pd.DataFrame | None]:
        """(scores, calibration table or None). Scores: the log predictive density in total
        and per year; with ``truth`` (true regime per date), Brier scores."""
        lpd = self.log_predictive_density()["log_predictive_density"]
        scores: dict[str, Any] = {
            "refits": len(self.segments),
            "log_predictive_density": log_score_summary(lpd),
            "log_predictive_density_by_year": log_score_by_year(lpd).to_dict(orient="records"),
        }
        table = None
        if truth is not None:
            scores["regime_forecasts"], table = forecast_scores(
                self.probabilities("predicted"), self.probabilities("filtered"), truth
            )
        return scores, table

    def _dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(np.concatenate([s.dates for s in self.segments]), name="date")


def run_backtest(
    features: FeatureSet,
    spec: BacktestSpec,
    out: str | Path,
    executor: Executor,
    progress: Progress | None = None,
    segment_function: TaskFunction = run_segment,
    provenance: dict[str, Any] | None = None,
    force: bool = False,
) -> BacktestResult:
    """Run (or resume) a backtest; segment results are stored in ``out/segments``.

    Refits with a stored result of the same inputs are not run again. Raises
    :class:`BacktestError` naming the failed refits after the others have finished.
    ``provenance``: written to ``out/config.json`` (with the spec) before any refit runs.
    ``segment_function``: the task (tests wrap it to inject failures). ``out`` holding a
    backtest of other settings is refused unless ``force`` (which empties it first).
    """
    tasks = plan_backtest(features, spec)
    claim_store(out, spec.to_dict(), force)
    unseal(out)
    config = {**spec.to_dict(), **(provenance or {})}
    write_text_atomic(json.dumps(config, indent=2, default=str) + "\n", Path(out) / "config.json")
    store = ResultStore(Path(out) / SEGMENTS_DIRECTORY)
    report = run_tasks(
        segment_function, tasks, store, executor, progress, check_segment_record, warmed
    )
    if report.failed:
        raise _failure(report, len(tasks), store.directory)
    segments = [Segment.from_record(store.load(task)) for task in tasks]
    names = {tuple(segment.regimes) for segment in segments}
    if len(names) != 1:
        raise BacktestError(f"segments name their regimes differently: {sorted(names)}")
    return BacktestResult(segments, report)


def _failure(report: TaskReport, n_tasks: int, directory: Path) -> Exception:
    name, error = sorted(report.failed.items())[0]
    context = (
        f"{len(report.failed)} of {n_tasks} refits failed (first: {name}); the others are "
        f"stored in {directory}, and a re-run computes only what is missing"
    )
    if isinstance(error, RegimeModelError):
        failure = BacktestError(f"refit {name}: {error} ({context})")
        failure.__cause__ = error
        return failure
    error.add_note(context)  # an unexpected error keeps its type and traceback
    return error


def save_backtest(
    result: BacktestResult, out: str | Path, truth: pd.Series | None = None
) -> dict[str, Any]:
    """Write the stitched outputs into ``out`` and return the scores.

    regime_probabilities.csv (filtered) and regime_forecasts.csv (predicted): date, regime,
    kind, mean, lower, upper; log_predictive_density.csv: date, refit_date,
    log_predictive_density; refits.csv: per-refit diagnostics; scores.json; and, with a
    truth, calibration.csv (the one-step forecasts of risk_on against what happened).
    """
    out = Path(out)
    written = ["config.json", "log_predictive_density.csv", "refits.csv", "scores.json"]
    for kind, name in (("filtered", "regime_probabilities"), ("predicted", "regime_forecasts")):
        _write_csv(result.probabilities_long(kind), out / f"{name}.csv", float_format="%.6g")
        written.append(f"{name}.csv")
    lpd = result.log_predictive_density().reset_index()
    _write_csv(lpd, out / "log_predictive_density.csv")
    _write_csv(result.refit_table(), out / "refits.csv")
    scores, table = result.scores(truth)
    if table is not None:
        _write_csv(table, out / "calibration.csv")
        written.append("calibration.csv")
    else:  # not one from an earlier run with a truth file
        (out / "calibration.csv").unlink(missing_ok=True)
    write_text_atomic(json.dumps(scores, indent=2) + "\n", out / "scores.json")
    seal(out, written, {"kind": "backtest", "refits": len(result.segments)})
    return scores


def _write_csv(frame: pd.DataFrame, path: Path, float_format: str | None = None) -> None:
    # Dates as YYYY-MM-DD; floats at full precision unless a format is given.
    write_text_atomic(
        frame.to_csv(index=False, date_format="%Y-%m-%d", float_format=float_format), path
    )
