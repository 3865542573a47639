"""Every model argument is range-checked in one place (regime_model/model_options.py),
for the CLI (one line, exit 2, naming the flag and the allowed range, before any data are
read) and the Python API (a ValueError naming the keyword) alike."""

from __future__ import annotations

import pytest

from regime_model.cli import main
from regime_model.models import EMHMM, BayesianHMM, LeadLagHMM

FIT = ["fit", "--features", "missing.csv", "--out", "out"]


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--regimes", "0", "argument --regimes: must be an integer from 2 to 5, got '0'"),
        ("--regimes", "two", "argument --regimes: must be an integer from 2 to 5, got 'two'"),
        ("--draws", "-5", "argument --draws: must be an integer >= 1, got '-5'"),
        ("--tune", "-10", "argument --tune: must be an integer >= 0, got '-10'"),
        ("--chains", "0", "argument --chains: must be an integer >= 1, got '0'"),
        ("--seed", "-1", "argument --seed: must be an integer >= 0, got '-1'"),
        ("--stickiness", "-1", "argument --stickiness: must be a number > 0, got '-1'"),
        ("--stickiness", "nan", "argument --stickiness: must be a number > 0, got 'nan'"),
        (
            "--lag",
            "-2",
            "argument --lag: lag must be an integer >= 0, a range such as 0-6 or a list "
            "such as 0,1,2,4, got '-2'",
        ),
    ],
)
def test_out_of_range_flags_are_one_line_errors(flag, value, expected, capsys):
    assert main([*FIT, flag, value]) == 2
    assert capsys.readouterr().err == f"regime: error: fit: {expected}\n"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["summary", "run", "--hdi", "1.5"], "must be a probability between 0 and 1"),
        (["calibrate", "--out", "o", "--replicates", "0"], "must be an integer >= 1"),
        ([*FIT, "--columns", ""], "--columns has an empty name"),
        ([*FIT, "--columns", "a,b,a"], "--columns lists a more than once"),
    ],
)
def test_other_bad_arguments_are_one_line_errors(arguments, expected, capsys, tmp_path):
    features = tmp_path / "f.csv"
    features.write_text("date,a,b\n2024-01-05,1.0,2.0\n")
    arguments = [str(features) if item == "missing.csv" else item for item in arguments]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1


def test_an_existing_output_is_refused_before_the_fit(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("a file")
    assert main(["fit", "--features", "missing.csv", "--out", str(target)]) == 2
    assert capsys.readouterr().err == f"regime: error: {target} is a file, not a run directory\n"


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: BayesianHMM(draws=-5), "draws must be an integer >= 1, got -5"),
        (lambda: BayesianHMM(draws=10.5), "draws must be an integer >= 1, got 10.5"),
        (lambda: BayesianHMM(n_regimes=1), "n_regimes must be an integer from 2 to 5, got 1"),
        (lambda: BayesianHMM(chains=True), "chains must be an integer >= 1, got True"),
        (lambda: BayesianHMM(stickiness=0), "stickiness must be a number > 0, got 0"),
        (lambda: BayesianHMM(target_accept=1.2), "target_accept must be between 0 and 1"),
        (lambda: BayesianHMM(band_draws=0), "band_draws must be an integer >= 1, got 0"),
        (lambda: EMHMM(n_restarts=0), "n_restarts must be an integer >= 1, got 0"),
        (lambda: LeadLagHMM(coupling_sd=-1.0), "coupling_sd must be a number > 0, got -1.0"),
    ],
)
def test_the_python_api_checks_the_same_ranges(build, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        build()
