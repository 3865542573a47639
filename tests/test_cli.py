"""The ``regime`` command line: help texts, build/show round trip, demo."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from regime_model.cli import build_parser, main


@pytest.mark.parametrize(
    "command",
    [[], ["data"], ["data", "fetch"], ["data", "build"], ["data", "show"], ["backtest"], ["demo"]],
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: regime" in text
    assert len(text.splitlines()) > 4


def test_build_synthetic_writes_features_truth_and_metadata(tmp_path, capsys):
    out = tmp_path / "features.csv"
    code = main(
        [
            "data",
            "build",
            "--source",
            "synthetic",
            "--freq",
            "weekly",
            "--seed",
            "4",
            "--crypto-lag-days",
            "14",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    features = pd.read_csv(out, parse_dates=["date"])
    truth = pd.read_csv(tmp_path / "features.truth.csv", parse_dates=["date"])
    assert list(truth.columns) == ["date", "regime", "crypto_regime"]
    assert (features["date"] == truth["date"]).all()
    assert (features["date"].dt.day_of_week == 4).all()
    assert (tmp_path / "features.meta.json").is_file()
    printed = capsys.readouterr().out
    assert "skipped rut_return: no synthetic locator" in printed

    assert main(["data", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "weekly features" in shown
    row = next(line for line in shown.splitlines() if line.startswith("btc_return"))
    assert row.split()[1] == "crypto"
    assert int(row.split()[-2]) == len(features) - 1  # all but the first date (no return)


def test_build_csv_needs_data_dir(tmp_path, capsys):
    assert main(["data", "build", "--source", "csv", "--out", str(tmp_path / "f.csv")]) == 2
    assert "--source csv needs --data-dir" in capsys.readouterr().err


def test_show_missing_file(capsys, tmp_path):
    assert main(["data", "show", str(tmp_path / "none.csv")]) == 2
    assert "feature file not found" in capsys.readouterr().err


def test_console_script_demo_runs_offline():
    result = subprocess.run(
        [sys.executable, "-m", "regime_model.cli", "demo", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Filtered regime probabilities on 2023-12-29" in result.stdout
    accuracy = [
        float(line.split("on ")[-1].split("%")[0])
        for line in result.stdout.splitlines()
        if "matches the true regime" in line
    ]
    assert len(accuracy) == 2 and min(accuracy) > 90.0  # filtered and smoothed recovery
    assert "Diagnostics: PASS" in result.stdout


def test_console_script_exit_keeps_status_and_all_output(tmp_path, capsys):
    """The console script ends the process without tearing down the interpreter: the
    exit status is main()'s and no buffered output is lost (stdout to a pipe is block
    buffered, so a skipped flush would cut the help text short)."""
    command = [sys.executable, "-m", "regime_model.cli"]
    missing = subprocess.run(
        [*command, "data", "show", str(tmp_path / "none.csv")], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("feature file not found: " + str(tmp_path / "none.csv"))
    shown = subprocess.run([*command, "fit", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert main(["fit", "--help"]) == 0
    assert shown.stdout == capsys.readouterr().out
