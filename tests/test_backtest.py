"""Walk-forward backtest: schedule, no look-ahead, equality with a hand-run holdout fit,
resume after interruption, a worker killed on a real Dask cluster, and the CLI."""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regime_model.cli import main
from regime_model.data.features import FeatureSet, read_features
from regime_model.errors import DateRangeError, InsufficientDataError
from regime_model.evaluation.backtest import (
    BacktestError,
    BacktestSpec,
    plan_backtest,
    run_backtest,
    save_backtest,
)
from regime_model.evaluation.executor import (
    DaskExecutor,
    ResultStore,
    SerialExecutor,
    run_tasks,
)
from regime_model.evaluation.schedule import refit_schedule
from regime_model.evaluation.walk_forward import run_segment
from regime_model.models import EMHMM, BayesianHMM
from regime_model.run_directory import IncompleteRunError, verify_run

COLUMNS = ["iwm_return", "btc_return"]
EM_CONFIG = {"model": "em-hmm", "n_regimes": 2, "n_restarts": 3, "seed": 0}
START = "2020-10-01"  # four quarterly refits on weekly data that end in September 2021
OUTPUTS = ("regime_probabilities.csv", "regime_forecasts.csv", "log_predictive_density.csv")


@pytest.fixture(scope="module")
def features(features_file) -> FeatureSet:
    return read_features(features_file)


@pytest.fixture(scope="module")
def serial_run(features, tmp_path_factory):
    """The EM backtest run serially in this process: (directory, result)."""
    out = tmp_path_factory.mktemp("serial")
    result = run_backtest(features, _spec(), out, SerialExecutor())
    save_backtest(result, out)
    return out, result


def _spec(config: dict | None = None, start: str = START, **options) -> BacktestSpec:
    return BacktestSpec(
        config or EM_CONFIG, COLUMNS, start, options.pop("every", "quarter"), **options
    )


def _comparable(record: dict) -> dict:
    """A stored segment without its wall time (which differs from run to run)."""
    return {key: value for key, value in record.items() if key != "fit_seconds"}


def _with_changed_rows(features: FeatureSet, from_date: pd.Timestamp) -> FeatureSet:
    frame = features.frame.copy()
    frame.loc[frame.index >= from_date] = frame.loc[frame.index >= from_date] * -3.0 + 1.0
    return FeatureSet(frame, features.groups, features.freq, features.source)


# ---------------------------------------------------------------------------- schedule


def test_schedule_refits_on_the_first_date_of_each_period_and_tiles_the_rest():
    dates = pd.date_range("2019-01-04", periods=120, freq="W-FRI")
    monthly = refit_schedule(dates, "2020-06-10", "month", "expanding", min_fit_dates=20)
    assert [refit.name for refit in monthly[:3]] == ["2020-06-12", "2020-07-03", "2020-08-07"]
    assert all(refit.fit_start == dates[0] for refit in monthly)
    scored = [d for r in monthly for d in dates[(dates >= r.refit_date) & (dates <= r.score_end)]]
    assert pd.DatetimeIndex(scored).equals(dates[dates >= "2020-06-12"])  # no gap, no overlap
    assert sum(r.n_scored_dates for r in monthly) == len(scored)
    rolling = refit_schedule(dates, "2020-06-10", "quarter", 52, min_fit_dates=20)
    assert [r.name for r in rolling] == [
        "2020-06-12",
        "2020-07-03",
        "2020-10-02",
        "2021-01-01",
        "2021-04-02",
    ]
    for refit in rolling:
        position = dates.get_loc(refit.refit_date)
        assert refit.fit_start == dates[position - 52] and refit.n_fit_dates == 52


@pytest.mark.parametrize(
    ("start", "window", "error", "message"),
    [
        ("2018-01-01", "expanding", DateRangeError, "on or before the first date"),
        ("2022-01-01", "expanding", DateRangeError, "after the last date"),
        ("2019-02-01", "expanding", InsufficientDataError, "window too short"),
        ("2020-06-10", 5, InsufficientDataError, "too short"),
        ("2019-08-01", 52, InsufficientDataError, "the window needs 52"),
    ],
)
def test_schedule_rejects_what_cannot_be_fitted(start, window, error, message):
    dates = pd.date_range("2019-01-04", periods=120, freq="W-FRI")
    with pytest.raises(error, match=message):
        refit_schedule(dates, start, "month", window, min_fit_dates=20)


# ---------------------------------------------------------------------------- (1) no look-ahead


def test_changing_later_data_leaves_earlier_segments_bit_identical(features, serial_run, tmp_path):
    _, base = serial_run
    second = base.segments[1]
    later = second.dates[-1] + pd.Timedelta(days=1)  # after the 2nd segment's scoring window
    changed = run_backtest(_with_changed_rows(features, later), _spec(), tmp_path, SerialExecutor())
    for before, after in zip(base.segments[:2], changed.segments[:2], strict=True):
        assert _comparable(after.record) == _comparable(before.record)
    for before, after in zip(base.segments[2:], changed.segments[2:], strict=True):
        assert not np.array_equal(after.log_predictive_density, before.log_predictive_density)


def test_a_segment_is_fitted_without_its_own_scoring_window(features, serial_run, tmp_path):
    _, base = serial_run
    third = base.segments[2]
    changed = run_backtest(
        _with_changed_rows(features, third.refit_date), _spec(), tmp_path, SerialExecutor()
    ).segments[2]
    # The forecast for the refit date uses the parameters and the data before it only.
    np.testing.assert_array_equal(changed.predicted["mean"][0], third.predicted["mean"][0])
    assert changed.record["n_fit_dates"] == third.record["n_fit_dates"]
    # The changed observations are scored, so the filter and the score do move.
    assert changed.log_predictive_density[0] != third.log_predictive_density[0]
    assert not np.array_equal(changed.filtered["mean"][0], third.filtered["mean"][0])


# ---------------------------------------------------------------------------- (2) = a hand-run fit


def test_stitched_scores_equal_a_hand_run_holdout_fit(features, tmp_path):
    config = {"model": "bayes-hmm", "n_regimes": 2, "sampler": "map", "seed": 0}
    result = run_backtest(features, _spec(config, start="2021-04-01"), tmp_path, SerialExecutor())
    first, second = result.segments
    assert second.refit_date > first.dates[-1]
    # By hand: the rows before the next refit, fitted before the refit date.
    frame = features.frame[features.frame.index < second.refit_date]
    hand = (
        BayesianHMM(2, sampler="map", seed=0, progressbar=False)
        .fit(
            FeatureSet(frame, features.groups, features.freq),
            COLUMNS,
            holdout_start=first.refit_date,
        )
        .result_
    )
    expected = hand.holdout_log_predictive()
    assert expected.index.equals(first.dates)
    stitched = result.log_predictive_density()
    np.testing.assert_array_equal(
        stitched.loc[first.dates, "log_predictive_density"].to_numpy(), expected.to_numpy()
    )
    filtered = hand.regime_probabilities("filtered").loc[first.dates]
    np.testing.assert_array_equal(
        result.probabilities("filtered").loc[first.dates, "risk_on"].to_numpy(),
        filtered[("risk_on", "mean")].to_numpy(),
    )


# ---------------------------------------------------------------------------- (3) resume


@pytest.fixture
def counted_fits(monkeypatch) -> list[str]:
    """Refit dates of every EM fit run in this process, in order."""
    fitted: list[str] = []
    original = EMHMM.fit

    def counting_fit(self, features, columns=None, holdout_start=None):
        fitted.append(pd.Timestamp(holdout_start).strftime("%Y-%m-%d"))
        return original(self, features, columns, holdout_start=holdout_start)

    monkeypatch.setattr(EMHMM, "fit", counting_fit)
    return fitted


def _outputs(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in OUTPUTS}


def test_resume_recomputes_only_the_missing_segment(features, serial_run, counted_fits, tmp_path):
    reference_directory, _ = serial_run
    out = tmp_path / "run"
    first = run_backtest(features, _spec(), out, SerialExecutor())
    save_backtest(first, out)
    assert len(counted_fits) == 4 and first.report.reused == []
    assert _outputs(out) == _outputs(reference_directory)

    segments = out / "segments"
    lost = first.segments[1].record["refit_date"]
    (segments / f"{lost}.json").unlink()
    # What an interrupted atomic write leaves behind: a partial temporary file.
    (segments / f".{lost}.json.x1y2z3.tmp").write_text('{"key": "0123", "result": {"refit_')
    counted_fits.clear()
    resumed = run_backtest(features, _spec(), out, SerialExecutor())
    save_backtest(resumed, out)
    assert counted_fits == [lost]
    assert resumed.report.computed == [lost] and len(resumed.report.reused) == 3
    assert _outputs(out) == _outputs(reference_directory)


def test_unreadable_or_foreign_results_are_recomputed(features, counted_fits, tmp_path):
    run_backtest(features, _spec(), tmp_path, SerialExecutor())
    broken = tmp_path / "segments" / "2021-04-02.json"
    broken.write_text(broken.read_text()[:100])  # truncated by something other than us
    counted_fits.clear()
    run_backtest(features, _spec(), tmp_path, SerialExecutor())
    assert counted_fits == ["2021-04-02"]

    counted_fits.clear()  # another model setting: no stored result applies (and the
    # directory of the first is replaced only when asked: force)
    other_spec = _spec({**EM_CONFIG, "seed": 1})
    other = run_backtest(features, other_spec, tmp_path, SerialExecutor(), force=True)
    assert len(counted_fits) == 4 and other.report.reused == []


def test_a_failed_refit_names_itself_and_keeps_the_others(features, tmp_path):
    def fail_on_second(task):
        if task.name == "2021-01-01":
            raise InsufficientDataError("no data today")
        return run_segment(task)

    with pytest.raises(BacktestError, match="refit 2021-01-01: no data today"):
        run_backtest(features, _spec(), tmp_path, SerialExecutor(), segment_function=fail_on_second)
    stored = sorted(path.name for path in (tmp_path / "segments").glob("*.json"))
    assert stored == ["2020-10-02.json", "2021-04-02.json", "2021-07-02.json"]


def test_store_ignores_results_of_other_inputs(features, tmp_path):
    task = plan_backtest(features, _spec())[0]
    store = ResultStore(tmp_path)
    store.save(task, {"value": 1.5})
    assert store.load(task) == {"value": 1.5}
    other = plan_backtest(features, _spec({**EM_CONFIG, "n_restarts": 4}))[0]
    assert other.name == task.name and store.load(other) is None
    with pytest.raises(ValueError):
        store.save(task, {"value": float("nan")})  # NaN must be stored as null


def test_an_edited_segment_is_recomputed_not_trusted(features, serial_run, tmp_path):
    """A stored result whose numbers were changed after it was written fails its content
    hash: the resumed backtest fits that refit again and gets the original numbers."""
    reference_directory, reference = serial_run
    out = tmp_path / "copy"
    shutil.copytree(reference_directory, out)
    path = out / "segments" / "2021-01-01.json"
    stored = json.loads(path.read_text())
    stored["result"]["log_predictive_density"][0] += 5.0  # an "improved" score
    path.write_text(json.dumps(stored))
    resumed = run_backtest(features, _spec(), out, SerialExecutor())
    assert resumed.report.computed == ["2021-01-01"]
    recomputed = json.loads(path.read_text())["result"]
    original = json.loads((reference_directory / "segments" / "2021-01-01.json").read_text())
    original = original["result"]
    for record in (recomputed, original):
        record.pop("fit_seconds")  # the one field that is not a function of the inputs
    assert recomputed == original


def test_a_worker_result_of_the_wrong_shape_is_not_stored(features, tmp_path):
    def lying(task):
        record = run_segment(task)
        record["filtered"]["mean"][0] = [1.7, -0.7]  # not probabilities
        return record

    with pytest.raises(BacktestError, match="probabilities outside"):
        run_backtest(features, _spec(), tmp_path, SerialExecutor(), segment_function=lying)
    assert not list((tmp_path / "segments").glob("*.json"))


# ---------------------------------------------------------------------------- warm starts

NUTPIE_CONFIG = {"model": "bayes-hmm", "n_regimes": 2, "draws": 200, "chains": 2, "seed": 0}


def test_a_nutpie_refit_follows_the_previous_refit_of_its_calendar_year(features):
    tasks = plan_backtest(features, _spec(NUTPIE_CONFIG))
    assert [task.name for task in tasks] == ["2020-10-02", "2021-01-01", "2021-04-02", "2021-07-02"]
    assert [task.after for task in tasks] == [None, None, "2021-01-01", "2021-04-02"]
    cold = plan_backtest(features, _spec(NUTPIE_CONFIG, warm_start=False))
    assert all(task.after is None for task in cold)
    # A follower's key covers its predecessor's; a year's first refit is the cold one.
    assert [a.key == b.key for a, b in zip(tasks, cold, strict=True)] == [True, True, False, False]
    em = plan_backtest(features, _spec())  # EM has nothing to start from: never chained
    assert all(task.after is None for task in em)


@dataclass(frozen=True)
class _Step:
    name: str
    key: str
    after: str | None = None
    previous: int = 0


def test_tasks_run_after_their_predecessor_with_its_result(tmp_path):
    """Waves: a follower runs once its predecessor's result is in (stored or new), given
    that result; a failure stops its followers (named, not run); a follower of a task that
    does not exist fails instead of waiting forever."""
    ran: list[str] = []

    def function(task: _Step) -> dict:
        ran.append(task.name)
        if task.name == "b1":
            raise RuntimeError("b1 broke")
        return {"value": task.previous + 1}

    tasks = [
        _Step("a1", "k-a1"),
        _Step("a2", "k-a2", "a1"),
        _Step("a3", "k-a3", "a2"),
        _Step("b1", "k-b1"),
        _Step("b2", "k-b2", "b1"),
        _Step("c2", "k-c2", "c1"),
    ]
    store = ResultStore(tmp_path)
    prepare = lambda task, result: replace(task, previous=result["value"])  # noqa: E731
    report = run_tasks(function, tasks, store, SerialExecutor(), prepare=prepare)
    assert ran == ["a1", "b1", "a2", "a3"]  # three waves
    assert [store.load(task)["value"] for task in tasks[:3]] == [1, 2, 3]
    assert sorted(report.failed) == ["b1", "b2", "c2"]
    assert "b1 failed" in str(report.failed["b2"]) and "no task c1" in str(report.failed["c2"])
    ran.clear()
    again = run_tasks(function, tasks[:3], store, SerialExecutor(), prepare=prepare)
    assert ran == [] and again.reused == ["a1", "a2", "a3"]


def test_a_warm_started_backtest_records_its_starts_and_resumes(features, tmp_path):
    result = run_backtest(features, _spec(NUTPIE_CONFIG), tmp_path, SerialExecutor())
    records = [segment.record for segment in result.segments]
    assert [r["fit_info"]["warm_started"] for r in records] == [False, False, True, True]
    assert [r["fit_info"]["tuning_steps"] for r in records] == [300, 300, 100, 100]
    assert all("warm_state" in record for record in records)
    # The predecessor's result lost: it is fitted again (the same, by its key), and its
    # follower's stored result stays valid.
    (tmp_path / "segments" / "2021-04-02.json").unlink()
    resumed = run_backtest(features, _spec(NUTPIE_CONFIG), tmp_path, SerialExecutor())
    assert resumed.report.computed == ["2021-04-02"]
    assert sorted(resumed.report.reused) == ["2020-10-02", "2021-01-01", "2021-07-02"]
    timings = ("sampling_seconds", "sample_call_seconds")
    for record in (resumed.segments[2].record, records[2]):
        for name in timings:
            record["fit_info"].pop(name)
    assert _comparable(resumed.segments[2].record) == _comparable(records[2])


# ---------------------------------------------------------------------------- (4) Dask


def _exit_once_then_run(marker: str, victim: str, task):
    """The segment task, except that the first attempt at ``victim`` kills its worker."""
    if task.name == victim:
        try:
            descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass  # a later attempt, on a fresh worker: run normally
        else:
            os.close(descriptor)
            os._exit(1)
    return run_segment(task)


def test_worker_killed_mid_run_gives_the_serial_result(features, serial_run, tmp_path):
    reference_directory, reference = serial_run
    marker = tmp_path / "killed-once"
    task = functools.partial(_exit_once_then_run, str(marker), "2021-01-01")
    out = tmp_path / "dask"
    result = run_backtest(features, _spec(), out, DaskExecutor(n_workers=2), segment_function=task)
    save_backtest(result, out)
    assert marker.exists()  # a worker did die mid-task
    assert sorted(result.report.computed) == [s.record["refit_date"] for s in reference.segments]
    assert _outputs(out) == _outputs(reference_directory)
    for ours, theirs in zip(result.segments, reference.segments, strict=True):
        assert _comparable(ours.record) == _comparable(theirs.record)


# ---------------------------------------------------------------------------- (5) CLI


def _backtest_arguments(features_file: Path, out: Path, *extra: str) -> list[str]:
    return [
        "backtest",
        "--features",
        str(features_file),
        "--columns",
        ",".join(COLUMNS),
        "--model",
        "em-hmm",
        "--restarts",
        "3",
        "--every",
        "quarter",
        "--out",
        str(out),
        *extra,
    ]


def test_cli_backtest_writes_the_outputs(features_file, serial_run, tmp_path, capsys):
    reference_directory, _ = serial_run
    out = tmp_path / "cli"
    code = main(_backtest_arguments(features_file, out, "--start", START, "--scheduler", "serial"))
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    assert "4 refits (4 fitted now, 0 reused)" in printed.out
    assert "Brier score" in printed.out
    assert "refits done: 4/4" in printed.err
    probabilities = pd.read_csv(out / "regime_probabilities.csv", parse_dates=["date"])
    assert list(probabilities.columns) == ["date", "regime", "kind", "mean", "lower", "upper"]
    assert set(probabilities["kind"]) == {"filtered"}
    assert probabilities["date"].min() >= pd.Timestamp(START)
    assert _outputs(out) == _outputs(reference_directory)  # same as the library's run
    scores = json.loads((out / "scores.json").read_text())
    density = pd.read_csv(out / "log_predictive_density.csv")
    assert scores["log_predictive_density"]["sum"] == pytest.approx(
        density["log_predictive_density"].sum()
    )
    by_year = {row["year"]: row["dates"] for row in scores["log_predictive_density_by_year"]}
    assert by_year == {2020: 13, 2021: 39}
    forecasts = scores["regime_forecasts"]
    assert 0 <= forecasts["brier_predicted"] <= 2 and forecasts["dates"] == len(density)
    calibration = pd.read_csv(out / "calibration.csv")
    assert calibration["forecasts"].sum() == len(density)
    refits = pd.read_csv(out / "refits.csv")
    assert list(refits["refit_date"]) == ["2020-10-02", "2021-01-01", "2021-04-02", "2021-07-02"]
    assert (refits["fit_end"] < refits["score_start"]).all()
    config = json.loads((out / "config.json").read_text())
    assert config["every"] == "quarter" and config["model"]["n_restarts"] == 3
    manifest = verify_run(out)  # the outputs as one unit, as a fit's run directory
    assert manifest["kind"] == "backtest" and manifest["refits"] == 4
    assert {"scores.json", "regime_probabilities.csv", "config.json"} <= set(manifest["files"])

    shutil.copy(out / "regime_probabilities.csv", tmp_path / "before.csv")
    assert main(_backtest_arguments(features_file, out, "--start", START, "--workers", "1")) == 0
    assert "(0 fitted now, 4 reused)" in capsys.readouterr().out  # resumed: nothing to run
    assert (out / "regime_probabilities.csv").read_bytes() == (tmp_path / "before.csv").read_bytes()
    scores_text = (out / "scores.json").read_text()
    (out / "scores.json").write_text(scores_text.replace('"sum"', '"sum" ', 1))
    with pytest.raises(IncompleteRunError, match="scores.json was changed"):
        verify_run(out)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2010-01-01"], "on or before the first date"),
        (["--start", "2030-01-01"], "after the last date"),
        (["--start", START, "--window", "5"], "window of 5 dates is too short"),
        (["--start", "2016-02-01"], "window too short"),
        (["--start", "someday"], "--start: cannot parse"),
        (["--start", START, "--scheduler", "tcp://x:1", "--workers", "2"], "--workers"),
    ],
)
def test_cli_backtest_bad_input_is_a_clear_error(features_file, tmp_path, capsys, extra, message):
    assert main(_backtest_arguments(features_file, tmp_path / "bad", *extra)) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", START, "--every", "week"], "invalid choice: 'week'"),
        (["--start", START, "--window", "long"], "window must be 'expanding'"),
    ],
)
def test_cli_backtest_rejects_unknown_options(features_file, tmp_path, capsys, extra, message):
    # main() returns argparse's exit status instead of raising SystemExit.
    assert main(_backtest_arguments(features_file, tmp_path / "bad", *extra)) == 2
    assert message in capsys.readouterr().err
