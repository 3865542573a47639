"""The researcher's API: a plain DataFrame in, a fitted estimator out (scikit-learn
conventions), new dates filtered through the fitted posterior without refitting, and the
`regime update` / `regime now` commands on top of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from regime_model import EMHMM, BayesianHMM, RegimeResult, load_run
from regime_model.cli import main
from regime_model.errors import RegimeDataError
from regime_model.models import samplers as sampler_registry
from regime_model.models.estimator import NotFittedError

COLUMNS = ["iwm_return", "btc_return"]
SETTINGS = {"draws": 60, "tune": 80, "chains": 2, "seed": 3, "progressbar": False}
SPLIT = -26  # the last 26 weeks are "new data"


@pytest.fixture(scope="module")
def frame(features_file) -> pd.DataFrame:
    """The synthetic weekly feature file read as a user would: pd.read_csv."""
    return pd.read_csv(features_file)


@pytest.fixture(scope="module")
def head_file(features_file, frame, tmp_path_factory):
    """The feature file without its last 26 weeks (with the same metadata)."""
    directory = tmp_path_factory.mktemp("head")
    path = directory / "head.csv"
    frame.iloc[:SPLIT].to_csv(path, index=False)
    meta = features_file.with_name(features_file.stem + ".meta.json")
    (directory / "head.meta.json").write_text(meta.read_text())
    return path


@pytest.fixture(scope="module")
def fitted_head(frame):
    return BayesianHMM(2, **SETTINGS).fit(frame.iloc[:SPLIT], COLUMNS)


def test_a_plain_dataframe_fit_matches_the_cli_on_the_same_data_and_seed(
    frame, features_file, tmp_path
):
    model = BayesianHMM(n_regimes=2, **SETTINGS).fit(frame, COLUMNS)
    assert model.fit is not None and isinstance(model.result_, RegimeResult)
    assert model.inference_data_ is model.result_.inference_data
    arguments = ["fit", "--features", str(features_file), "--columns", ",".join(COLUMNS)]
    arguments += ["--draws", "60", "--tune", "80", "--chains", "2", "--seed", "3"]
    assert main([*arguments, "--out", str(tmp_path / "run")]) == 0
    cli = RegimeResult.load(tmp_path / "run")
    for kind in ("filtered", "smoothed"):
        ours = model.predict_proba(frame, kind=kind)
        theirs = cli.regime_probabilities(kind).xs("mean", axis=1, level="statistic")
        assert list(ours.columns) == ["risk_off", "risk_on"]
        assert ours.index.equals(theirs.index)
        np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-12)
    banded = model.predict_proba(frame, hdi=0.9)
    assert (banded[("risk_on", "lower")] <= banded[("risk_on", "upper")]).all()
    # ... and the CLI's CSV says the same (rounded to 6 significant digits there).
    csv = pd.read_csv(tmp_path / "run" / "regime_probabilities.csv")
    rows = csv[(csv["kind"] == "filtered") & (csv["regime"] == "risk_on")]
    np.testing.assert_allclose(rows["mean"], model.predict_proba()["risk_on"], atol=1e-5)


def test_filtering_appended_rows_equals_the_forward_pass_over_all_data_without_sampling(
    frame, fitted_head, monkeypatch
):
    # The reference: the same posterior (a fit on the same first dates, same seed) run
    # forward over every date, the later ones as a held-out stretch.
    whole = BayesianHMM(2, **SETTINGS).fit(frame, COLUMNS, holdout_start=frame["date"].iloc[SPLIT])
    np.testing.assert_array_equal(
        whole.parameter_draws_["transition"], fitted_head.parameter_draws_["transition"]
    )

    def no_sampling(*args, **kwargs):
        raise AssertionError("filter() must not sample")

    for name in list(sampler_registry.SAMPLERS):
        monkeypatch.setitem(sampler_registry.SAMPLERS, name, no_sampling)
    for new in (frame.iloc[SPLIT:], frame):  # the new rows alone, or everything
        filtered = fitted_head.filter(new)
        assert filtered.dates.equals(pd.DatetimeIndex(pd.to_datetime(frame["date"].iloc[SPLIT:])))
        reference = whole.result_.probabilities
        np.testing.assert_allclose(
            filtered.filtered, reference.filtered[:, SPLIT:], rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            filtered.predicted, reference.predicted[:, SPLIT:], rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            filtered.log_predictive_density(), whole.result_.holdout_log_predictive(), atol=1e-8
        )
    assert filtered.fitted_through == pd.Timestamp(frame["date"].iloc[SPLIT - 1])
    # A filtered value depends on nothing after its date: changing the last week leaves
    # every earlier one as it was.
    changed = frame.copy()
    changed.loc[changed.index[-1], COLUMNS] = [0.2, -0.4]
    again = fitted_head.filter(changed.iloc[SPLIT:])
    np.testing.assert_array_equal(again.filtered[:, :-1], filtered.filtered[:, :-1])
    assert not np.allclose(again.filtered[:, -1], filtered.filtered[:, -1])


def test_new_data_that_do_not_extend_the_fit_are_refused(frame, fitted_head):
    revised = frame.copy()
    revised.loc[10, "btc_return"] += 0.01
    with pytest.raises(RegimeDataError, match=r"'btc_return' on .* but the model was fitted"):
        fitted_head.filter(revised)
    with pytest.raises(RegimeDataError, match="X has no column btc_return"):
        fitted_head.filter(frame.drop(columns="btc_return"))
    shifted = frame.iloc[SPLIT - 40 :].copy()
    shifted["date"] = (pd.to_datetime(shifted["date"]) + pd.Timedelta(days=1)).dt.strftime(
        "%Y-%m-%d"
    )
    with pytest.raises(RegimeDataError, match="not one of its dates"):
        fitted_head.filter(shifted)
    with pytest.raises(RegimeDataError, match="nothing to filter"):
        fitted_head.filter(frame.iloc[:SPLIT])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BayesianHMM(2).predict_proba(frame)


def test_regime_update_and_now_on_a_saved_run(frame, head_file, features_file, tmp_path, capsys):
    run = tmp_path / "run"
    arguments = ["fit", "--features", str(head_file), "--columns", ",".join(COLUMNS)]
    assert (
        main(
            [
                *arguments,
                "--draws",
                "60",
                "--tune",
                "80",
                "--chains",
                "2",
                "--seed",
                "3",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    in_memory = load_run(run).filter(frame)  # what the Python API says
    out = tmp_path / "update.csv"
    capsys.readouterr()
    assert main(["update", str(run), "--features", str(features_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "26 dates after the fit" in printed and "not refitted" in printed
    rows = pd.read_csv(out)
    risk_on = rows[(rows["kind"] == "filtered") & (rows["regime"] == "risk_on")]
    np.testing.assert_allclose(risk_on["mean"], in_memory.filtered[:, :, 1].mean(axis=0), rtol=1e-5)
    assert (
        main(
            [
                "now",
                str(run),
                "--features",
                str(features_file),
                "--format",
                "json",
                "--figure",
                str(tmp_path / "now.png"),
            ]
        )
        == 0
    )
    reading = json.loads(capsys.readouterr().out.split("\nwrote ")[0])
    assert reading["as_of"] == frame["date"].iloc[-1] and reading["appended_dates"] == 26
    assert reading["is_real_time"] and all(reading["real_time"].values())
    last = in_memory.filtered[:, -1, 1]
    assert reading["probability"]["risk_on"]["mean"] == pytest.approx(last.mean(), abs=1e-12)
    assert [row["periods"] for row in reading["changes"]] == [4, 13]
    assert [row["steps"] for row in reading["forecast"]] == [1, 4, 13]
    assert (tmp_path / "now.png").stat().st_size > 20_000
    # Without new data, the reading is the fit's own last date: the earlier values shown
    # were read with parameters fitted on later data, and the text says so.
    assert main(["now", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"as of {frame['date'].iloc[SPLIT - 1]}" in text
    assert "not real-time:" in text and "regime backtest" in text


def test_now_flags_a_feature_that_stopped_before_the_end(frame, tmp_path, capsys):
    stale = frame.copy()
    stale.loc[stale.index[-6:], "btc_return"] = np.nan  # the last 6 weeks not published
    model = EMHMM(2, n_restarts=2).fit(stale, COLUMNS)
    model.result_.save(tmp_path / "run")
    assert main(["now", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert f"btc_return: last observed {frame['date'].iloc[-7]}, 6 periods before" in text
    assert "no bands: point estimate" in text


def test_the_estimator_api_of_a_maximum_likelihood_fit(frame, tmp_path):
    model = EMHMM(2, n_restarts=2).fit(frame.iloc[:SPLIT], COLUMNS)
    assert repr(model) == "EMHMM(n_restarts=2)"
    assert len(repr(model.result_)) < 300
    whole = EMHMM(2, n_restarts=2).fit(frame, COLUMNS, holdout_start=frame["date"].iloc[SPLIT])
    filtered = model.filter(frame)
    np.testing.assert_allclose(
        filtered.filtered[0], whole.result_.probabilities.filtered[0, SPLIT:], atol=1e-10
    )
    assert model.score() == pytest.approx(model.criteria_["loglik"], abs=1e-8)
    loaded = load_run(model.result_.save(tmp_path / "run"))  # a saved EM fit comes back whole
    assert loaded.criteria_ == model.criteria_
    for name in ("initial", "transition", "mean", "sigma"):
        np.testing.assert_array_equal(
            getattr(loaded.estimate_, name), getattr(model.estimate_, name)
        )
    np.testing.assert_array_equal(loaded.filter(frame).filtered, filtered.filtered)
    assert model.score(frame) < model.score()  # more dates, more (negative) log density
    forecast = model.forecast(4)
    assert forecast.shape == (4, 6) and np.isnan(forecast[("risk_on", "lower")]).all()


def test_the_html_report_is_one_offline_page(frame, head_file, features_file, tmp_path):
    import re

    run = tmp_path / "run"
    arguments = ["fit", "--features", str(head_file), "--columns", ",".join(COLUMNS)]
    arguments += ["--sampler", "map", "--out", str(run)]
    assert main(arguments) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--html", str(page), "--features", str(features_file)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert len(re.findall(r'<img alt="figure" src="data:image/png;base64,', text)) == 3
    assert "<script" not in text and "http" not in text  # nothing fetched when opened
    assert f"as of {frame['date'].iloc[-1]}" in text and "26 dates appended" in text
    for heading in ("Transition matrix", "Expected durations", "Emission parameters"):
        assert f"<h2>{heading}</h2>" in text


def test_a_holdout_fit_says_where_the_fit_stopped(frame):
    from regime_model.report_text import format_summary

    cut = frame["date"].iloc[SPLIT]
    result = EMHMM(2, n_restarts=2).fit(frame, COLUMNS, holdout_start=cut).result_
    text = format_summary(result.summary())
    assert f"fitted on the dates before {cut}; the 26 dates from it on are held out" in text
    assert "held out" not in format_summary(EMHMM(2, n_restarts=2).fit(frame).result_.summary())
