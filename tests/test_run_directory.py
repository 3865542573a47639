"""A run directory is one unit: written whole or not at all, never overwritten without
--force, never a non-run replaced, refused on load when incomplete or changed; an
interrupted fit (PyMC returns the draws taken so far) writes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from regime_model.cli import main
from regime_model.data.synthetic import simulate_tvtp_features
from regime_model.models import EMHMM, BayesianHMM
from regime_model.models import samplers as sampler_registry
from regime_model.models.samplers import Sampled
from regime_model.provenance import file_sha256
from regime_model.results import RegimeResult
from regime_model.run_directory import (
    MANIFEST,
    IncompleteRunError,
    RunExistsError,
    check_writable,
    verify_run,
)


@pytest.fixture(scope="module")
def em_result():
    features, _ = simulate_tvtp_features(200, seed=2)
    return EMHMM(2, n_restarts=2, seed=0).fit(features, ["eq_return", "crypto_return"]).result_


def _interruptible() -> None:
    """preexec_fn of the children these tests interrupt: SIGINT at its default, so that
    Python installs its KeyboardInterrupt handler even when the suite runs as a
    background job of a shell without job control, whose children inherit SIGINT
    ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _snapshot(directory: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


def _weekly_features(directory: Path) -> Path:
    """A synthetic weekly feature file built by the CLI in ``directory``."""
    features = directory / "features.csv"
    build = ["data", "build", "--source", "synthetic", "--freq", "weekly", "--out", str(features)]
    assert main(build) == 0
    return features


def _assert_group_exits(group: int, seconds: float, message: str) -> None:
    """Wait until every process of ``group`` has ended; fail with ``message`` if one is
    still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail(message)


def _leftovers(parent: Path) -> list[str]:
    return sorted(
        p.name for p in parent.iterdir() if ".partial-" in p.name or ".replaced-" in p.name
    )


def test_a_saved_run_lists_every_file_and_loads(em_result, tmp_path):
    run = em_result.save(tmp_path / "run")
    manifest = json.loads((run / MANIFEST).read_text())
    written = {p.name for p in run.iterdir()} - {MANIFEST}
    assert set(manifest["files"]) == written
    assert manifest["files"]["config.json"]["sha256"] == file_sha256(run / "config.json")
    assert manifest["chains"] == 1 and manifest["draws_per_chain"] == 1
    assert RegimeResult.load(run).columns == em_result.columns
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["changed", "missing", "no manifest"])
def test_a_damaged_run_is_refused_naming_what_is_wrong(em_result, tmp_path, damage, capsys):
    run = em_result.save(tmp_path / "run")
    if damage == "changed":
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "columns": ["x", "y"]}))
        message = "config.json was changed after the run was written"
    elif damage == "missing":
        (run / "regime_draws.nc").unlink()
        message = "regime_draws.nc is missing"
    else:
        (run / MANIFEST).unlink()
        message = "not a complete run (no manifest.json)"
    with pytest.raises(IncompleteRunError, match=re.escape(message)):
        RegimeResult.load(run)
    assert main(["summary", str(run)]) == 2
    assert message in capsys.readouterr().err


def test_an_existing_run_is_replaced_only_with_force(em_result, tmp_path):
    run = em_result.save(tmp_path / "run")
    (run / "plot.png").write_bytes(b"a stale plot")
    before = _snapshot(run)
    with pytest.raises(RunExistsError, match="pass --force"):
        em_result.save(run)
    assert _snapshot(run) == before  # untouched
    em_result.save(run, force=True)
    assert not (run / "plot.png").exists()  # the old run went as a whole
    verify_run(run)
    assert _leftovers(tmp_path) == []


def test_something_that_is_not_a_run_is_never_replaced(em_result, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(RunExistsError, match="is not a run directory"):
            em_result.save(notes, force=force)
    assert (notes / "todo.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunExistsError, match="is a file"):
        check_writable(tmp_path / "file", force=True)
    check_writable(tmp_path / "absent")  # nothing there: fine


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_save_leaves_the_old_run_or_nothing(
    em_result, tmp_path, monkeypatch, existing
):
    run = tmp_path / "run"
    if existing:
        em_result.save(run)
    before = _snapshot(run) if existing else None
    real = RegimeResult._write_files

    def interrupted(self, directory):
        real(self, directory)
        assert (directory / "posterior.nc").is_file()  # half the run is on disk
        raise KeyboardInterrupt

    monkeypatch.setattr(RegimeResult, "_write_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        em_result.save(run, force=True)
    assert (_snapshot(run) == before) if existing else not run.exists()
    assert _leftovers(tmp_path) == []


def test_a_fit_whose_sampling_was_interrupted_raises_instead_of_returning(monkeypatch):
    # PyMC catches Ctrl-C and returns the draws so far; the model must not pass them off.
    real = sampler_registry.SAMPLERS["nuts"]

    def interrupted(model, initvals, settings):
        sampled = real(model, initvals, settings)
        return Sampled(
            sampled.posterior.isel(draw=slice(0, 7)), sampled.sample_stats.isel(draw=slice(0, 7))
        )

    monkeypatch.setitem(sampler_registry.SAMPLERS, "nuts", interrupted)
    features, _ = simulate_tvtp_features(120, seed=1)
    model = BayesianHMM(2, sampler="nuts", draws=30, tune=30, chains=2, cores=1, progressbar=False)
    with pytest.raises(KeyboardInterrupt, match="after 7 of 30 draws"):
        model.fit(features, ["eq_return", "crypto_return"])


# The line each sampler writes to stderr once it samples: PyMC logs "NUTS: [...]" after
# compiling; nutpie's fit says so in its phase line, after compiling.
SAMPLING_STARTED = {"nuts": "NUTS:", "nutpie": "regime: sampling with nutpie"}


@pytest.mark.parametrize("sampler", sorted(SAMPLING_STARTED))
def test_ctrl_c_during_sampling_writes_nothing_and_keeps_the_old_run(tmp_path, sampler):
    """A real fit in a child process, interrupted (SIGINT to its process group, as a
    terminal's Ctrl-C) once sampling has started: exit 130, the old run unchanged. With
    either sampler: nutpie's own blocking call would return the draws taken so far."""
    features = _weekly_features(tmp_path)
    run = tmp_path / "run"
    fit = [sys.executable, "-m", "regime_model.cli", "fit", "--features", str(features)]
    fit += ["--columns", "iwm_return,btc_return", "--out", str(run), "--chains", "2"]
    quick = subprocess.run([*fit, "--sampler", "map"], capture_output=True, text=True)
    assert quick.returncode == 0, quick.stderr
    before = _snapshot(run)
    process = subprocess.Popen(
        [*fit, "--sampler", sampler, "--draws", "200000", "--tune", "100", "--force"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=_interruptible,
    )
    started = time.monotonic()
    for line in process.stderr:
        if SAMPLING_STARTED[sampler] in line or time.monotonic() - started > 240:
            break
    time.sleep(6)  # well inside the draws
    os.killpg(process.pid, signal.SIGINT)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130, errors
    assert "regime: interrupted" in errors
    if sampler == "nuts":  # PyMC returned the draws so far; the fit refused them
        assert "draws" in errors
    # No sampler worker outlives it: its process group empties (within a few seconds).
    _assert_group_exits(process.pid, 20, "a process of the interrupted fit is still running")
    assert _snapshot(run) == before
    assert _leftovers(tmp_path) == []


def test_a_many_fit_output_directory_is_resumed_or_refused_never_mixed(tmp_path):
    from regime_model.run_directory import claim_store

    out = tmp_path / "backtest"
    identity = {"model": {"model": "em-hmm", "n_regimes": 2}, "every": "quarter"}
    claim_store(out, identity)  # absent: fine
    out.mkdir()
    (out / "config.json").write_text(json.dumps({**identity, "command": "regime ..."}))
    (out / "scores.json").write_text("{}")
    claim_store(out, identity)  # the same run (provenance aside): resumed, untouched
    assert (out / "scores.json").exists()
    other = {**identity, "every": "month"}
    with pytest.raises(RunExistsError, match=r"other settings \(every differ\).*--force"):
        claim_store(out, other)
    assert (out / "scores.json").exists()
    claim_store(out, other, force=True)
    assert not any(out.iterdir())  # emptied for the new run
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(RunExistsError, match="holds no run of this command"):
        claim_store(notes, identity, force=True)
    assert (notes / "todo.txt").read_text() == "keep me"


def test_cli_backtest_refuses_an_output_of_other_settings(tmp_path, capsys):
    features = _weekly_features(tmp_path)
    out = tmp_path / "bt"
    backtest = ["backtest", "--features", str(features), "--columns", "iwm_return,btc_return"]
    backtest += ["--model", "em-hmm", "--restarts", "2", "--scheduler", "serial"]
    backtest += ["--start", "2022-01-01", "--out", str(out)]
    assert main([*backtest, "--every", "quarter"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*backtest, "--every", "month"]) == 2
    assert "other settings (every differ)" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert main([*backtest, "--every", "month", "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["every"] == "month"


# A child process that runs `regime fit` and sends itself a real SIGINT once the run's
# files are in the temporary directory and before its manifest and rename: mid-save.
_SIGINT_MID_SAVE = """
import os, signal, sys, time
from regime_model.cli import main
from regime_model.results import RegimeResult

real = RegimeResult._write_files

def write_then_interrupt(self, directory):
    real(self, directory)
    print("PARTIAL", directory, sorted(p.name for p in directory.iterdir()), file=sys.stderr)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # the signal arrives here
    raise SystemExit("the interrupt was not delivered")

RegimeResult._write_files = write_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("existing", [False, True])
def test_a_real_sigint_mid_save_leaves_the_old_run_or_nothing(tmp_path, existing):
    features = _weekly_features(tmp_path)
    run = tmp_path / "run"
    fit = ["fit", "--features", str(features), "--columns", "iwm_return,btc_return"]
    fit += ["--out", str(run), "--sampler", "map", "--force"]
    if existing:
        assert main([*fit, "--seed", "1"]) == 0
    before = _snapshot(run) if existing else None
    child = subprocess.run(
        [sys.executable, "-c", _SIGINT_MID_SAVE, *fit, "--seed", "2"],
        capture_output=True,
        preexec_fn=_interruptible,
        text=True,
        timeout=300,
    )
    assert child.returncode == 130, child.stderr
    partial = re.search(r"PARTIAL (\S+) (.*)", child.stderr)
    assert partial and "posterior.nc" in partial.group(2)  # interrupted with files on disk
    assert not Path(partial.group(1)).exists()  # ... which were removed
    assert "regime: interrupted" in child.stderr
    assert _leftovers(tmp_path) == []
    if existing:
        assert _snapshot(run) == before
        assert main(["summary", str(run)]) == 0  # the old run is whole and loads
    else:
        assert not run.exists()
        assert main(["summary", str(run)]) == 2


def test_ctrl_c_during_a_dask_backtest_leaves_no_worker_and_a_resumable_store(tmp_path):
    """A backtest on a local Dask cluster (two worker processes), interrupted like a
    terminal's Ctrl-C once refits are coming back: exit 130, every process of its group
    gone, no manifest (the outputs are not a finished set), and the segments stored so far
    are reused by the next run."""
    features = _weekly_features(tmp_path)
    out = tmp_path / "backtest"
    backtest = [sys.executable, "-m", "regime_model.cli", "backtest", "--features", str(features)]
    backtest += ["--columns", "iwm_return,btc_return", "--model", "em-hmm", "--restarts", "40"]
    backtest += ["--every", "month", "--start", "2021-07-01", "--out", str(out)]
    process = subprocess.Popen(
        [*backtest, "--workers", "2"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=_interruptible,
    )
    started = time.monotonic()
    for line in process.stderr:
        if re.search(r"refits done: [3-9]/", line) or time.monotonic() - started > 240:
            break
    os.killpg(process.pid, signal.SIGINT)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130, errors
    _assert_group_exits(
        process.pid, 30, "a Dask worker or nanny of the interrupted backtest is still running"
    )
    assert not (out / MANIFEST).exists()
    stored = len(list((out / "segments").glob("*.json")))
    assert 3 <= stored < 30
    resumed = subprocess.run(
        [*backtest, "--scheduler", "serial"], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stored} reused" in resumed.stdout
    assert verify_run(out)["kind"] == "backtest"
