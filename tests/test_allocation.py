"""The allocation report: hand-computed metrics, no look-ahead, costs, errors and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar

from regime_model.cli import main
from regime_model.errors import DateRangeError, UnknownSeriesError
from regime_model.evaluation.allocation import (
    BUY_AND_HOLD,
    CONSTANT,
    MissingReturnError,
    allocation_report,
    buy_and_hold_path,
    holding_periods,
    max_drawdown,
    performance,
    periods_per_year,
    rule_path,
    simple_returns,
)

FRIDAYS = pd.date_range("2020-01-03", periods=4, freq="W-FRI", name="date")


def _log_percent(simple: list[float]) -> list[float]:
    """Simple returns -> the features' units, log returns in percent."""
    return [100.0 * np.log1p(value) for value in simple]


def _features(simple: list[float], dates: pd.DatetimeIndex = FRIDAYS) -> pd.DataFrame:
    return pd.DataFrame(
        {"btc_return": _log_percent(simple), "vix_log": np.arange(len(dates), dtype=float)},
        index=dates,
    )


def _random_case(seed: int = 0, n: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2019-01-04", periods=n, freq="W-FRI", name="date")
    frame = pd.DataFrame({"btc_return": rng.normal(0.5, 8.0, n)}, index=dates)
    return frame, pd.Series(rng.uniform(0, 1, n), index=dates)


# ---------------------------------------------------------------------------- arithmetic


def test_log_returns_in_percent_become_simple_returns():
    values = simple_returns(pd.Series([100 * np.log(1.1), 100 * np.log(0.5), 0.0]))
    np.testing.assert_allclose(values, [0.1, -0.5, 0.0], atol=1e-12)


def test_rule_path_matches_a_hand_computation():
    # Asset: +10%, -20%, +5% over the weeks ending FRIDAYS[1..3]; decisions on [0..2].
    frame = _features([0.0, 0.10, -0.20, 0.05])
    periods = holding_periods(FRIDAYS, frame["btc_return"])
    assert list(periods.index) == list(FRIDAYS[1:])
    exposure = pd.Series([0.5, 1.0, 0.0, 0.7], index=FRIDAYS)  # the last one is never held
    path = rule_path(exposure, periods, cost_bps=100)
    np.testing.assert_allclose(path["exposure"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(path["turnover"], [0.5, 0.5, 1.0])  # entry from 0 included
    # Cost 1% per unit traded, taken before the period's return.
    growth = [(1 - 0.005) * (1 + 0.5 * 0.10), (1 - 0.005) * (1 - 0.20), (1 - 0.01) * 1.0]
    np.testing.assert_allclose(path["net_return"], np.array(growth) - 1, rtol=1e-12)
    np.testing.assert_allclose(path["wealth"], np.cumprod(growth), rtol=1e-12)

    metrics = performance(path, per_year=52)
    final = 0.995 * 1.05 * 0.995 * 0.8 * 0.99
    assert metrics["total_return"] == pytest.approx(final - 1)
    assert metrics["annual_return"] == pytest.approx(final ** (52 / 3) - 1)
    # Peak after the first week, then down by the second and third weeks' growth.
    assert metrics["max_drawdown"] == pytest.approx(0.995 * 0.8 * 0.99 - 1)
    assert metrics["annual_turnover"] == pytest.approx(2.0 * 52 / 3)
    assert metrics["mean_exposure"] == pytest.approx(0.5)
    returns = np.array(growth) - 1
    assert metrics["annual_volatility"] == pytest.approx(np.std(returns, ddof=1) * np.sqrt(52))
    assert metrics["sharpe"] == pytest.approx(
        returns.mean() / np.std(returns, ddof=1) * np.sqrt(52)
    )


def test_max_drawdown_of_known_paths():
    assert max_drawdown(np.array([1.1, 0.99, 1.21, 0.605])) == pytest.approx(-0.5)
    assert max_drawdown(np.array([0.8, 0.9, 1.2])) == pytest.approx(-0.2)  # from the start
    assert max_drawdown(np.array([1.0, 1.5, 2.0])) == 0.0


def test_always_in_cash_has_no_sharpe_and_no_drawdown():
    frame, _ = _random_case()
    periods = holding_periods(frame.index, frame["btc_return"])
    path = rule_path(pd.Series(0.0, index=frame.index), periods, cost_bps=10)
    metrics = performance(path, 52)
    assert metrics["total_return"] == 0 and metrics["max_drawdown"] == 0
    assert np.isnan(metrics["sharpe"])


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (pd.date_range("2018-01-05", "2021-12-31", freq="W-FRI"), 52),
        (pd.date_range("2018-01-02", "2018-03-30", freq="B"), 252),
        # US trading days: weekends and holidays off, still 252.
        (
            pd.date_range(
                "2018-01-02",
                "2019-12-31",
                freq=pd.offsets.CustomBusinessDay(calendar=USFederalHolidayCalendar()),
            ),
            252,
        ),
        (pd.date_range("2018-01-01", "2018-02-28", freq="D"), 365),  # crypto: every day
        (pd.date_range("2018-01-31", "2022-12-31", freq="ME"), 12),
    ],
)
def test_periods_per_year_follows_the_dates(dates, expected):
    assert periods_per_year(dates) == expected


# ---------------------------------------------------------------------------- timing


def test_the_first_position_earns_the_next_return_not_its_own():
    # A +100% week on the first decision date itself and +10% the week after.
    frame = _features([1.0, 0.10, 0.0, 0.0])
    periods = holding_periods(FRIDAYS, frame["btc_return"])
    path = rule_path(pd.Series([1.0, 0.0, 0.0, 0.0], index=FRIDAYS), periods, cost_bps=0)
    np.testing.assert_allclose(path["wealth"], [1.10, 1.10, 1.10])


def test_changing_later_data_leaves_the_wealth_up_to_the_next_date_unchanged():
    frame, probability = _random_case()
    t = 30  # decision date index
    base = rule_path(probability, holding_periods(frame.index, frame["btc_return"]), 10)

    changed_frame, changed_probability = frame.copy(), probability.copy()
    changed_probability.iloc[t + 1 :] = 1.0 - changed_probability.iloc[t + 1 :]
    changed_frame.iloc[t + 2 :] = -changed_frame.iloc[t + 2 :] * 3
    changed = rule_path(
        changed_probability, holding_periods(frame.index, changed_frame["btc_return"]), 10
    )
    up_to = frame.index[t + 1]  # the end of the period held from t
    pd.testing.assert_series_equal(base["wealth"][:up_to], changed["wealth"][:up_to])
    assert not np.allclose(base["wealth"][up_to:].iloc[1:], changed["wealth"][up_to:].iloc[1:])

    # And the position decided at t does move the wealth at t + 1.
    moved = probability.copy()
    moved.iloc[t] = 1.0 - moved.iloc[t]
    other = rule_path(moved, holding_periods(frame.index, frame["btc_return"]), 10)
    assert other["wealth"][up_to] != base["wealth"][up_to]
    pd.testing.assert_series_equal(
        other["wealth"][: frame.index[t]], base["wealth"][: frame.index[t]]
    )


# ---------------------------------------------------------------------------- buy-and-hold


def test_buy_and_hold_is_the_assets_compounded_return():
    frame, _ = _random_case()
    periods = holding_periods(frame.index, frame["btc_return"])
    path = buy_and_hold_path(periods)
    # The asset's own log returns after the first decision date, summed then exponentiated.
    expected = np.exp(frame["btc_return"].iloc[1:].sum() / 100) - 1
    assert path["wealth"].iloc[-1] - 1 == pytest.approx(expected, rel=1e-12)
    assert performance(path, 52)["annual_turnover"] == 0


def test_always_fully_invested_trails_buy_and_hold_by_the_entry_cost_only():
    frame, _ = _random_case()
    periods = holding_periods(frame.index, frame["btc_return"])
    hold = buy_and_hold_path(periods)
    always = rule_path(pd.Series(1.0, index=frame.index), periods, cost_bps=25)
    np.testing.assert_allclose(always["wealth"], hold["wealth"] * (1 - 0.0025), rtol=1e-12)
    assert performance(always, 52)["annual_turnover"] == pytest.approx(52 / len(periods))


def test_report_compares_every_strategy_over_the_same_periods(tmp_path):
    frame, probability = _random_case()
    frame["iwm_return"] = frame["btc_return"] / 3
    later = probability.iloc[5:] * 0.5  # a signal with fewer dates: the common ones count
    report = allocation_report(
        frame, {"rule:a": probability, "rule:b": later}, ["btc_return", "iwm_return"], 10
    )
    metrics = report.metrics
    assert list(metrics["strategy"]) == ["rule:a", "rule:b", BUY_AND_HOLD, CONSTANT] * 2
    assert (metrics["periods"] == len(frame) - 6).all()
    assert (metrics["start"] == frame.index[5]).all()
    assert list(metrics["cost_bps"]) == [10.0, 10.0, 0.0, 10.0] * 2
    # The constant exposure is rule:a's average, bought once: its timing removed.
    by = metrics.set_index(["asset", "strategy"])
    for asset in ("btc_return", "iwm_return"):
        assert by.loc[(asset, CONSTANT), "mean_exposure"] == pytest.approx(
            by.loc[(asset, "rule:a"), "mean_exposure"]
        )
        years = by.loc[(asset, CONSTANT), "periods"] / by.loc[(asset, CONSTANT), "periods_per_year"]
        assert by.loc[(asset, CONSTANT), "annual_turnover"] == pytest.approx(
            by.loc[(asset, CONSTANT), "mean_exposure"] / years
        )
    wealth = report.wealth
    assert list(wealth.columns) == ["date", "asset", "strategy", "wealth"]
    first = wealth.groupby(["asset", "strategy"]).first()
    assert (first["date"] == frame.index[5]).all() and (first["wealth"] == 1.0).all()
    last = wealth.groupby(["asset", "strategy"])["wealth"].last()
    np.testing.assert_allclose(
        last.loc[metrics.set_index(["asset", "strategy"]).index],
        metrics["total_return"] + 1,
    )


# ---------------------------------------------------------------------------- errors


def test_unknown_asset_names_itself_and_the_return_columns():
    frame = _features([0.0, 0.1, 0.1, 0.1])
    with pytest.raises(UnknownSeriesError, match=r"no feature column eth_return .*btc_return\)"):
        allocation_report(frame, {"rule": pd.Series(0.5, index=FRIDAYS)}, ["eth_return"])


def test_missing_returns_are_an_error_naming_the_dates():
    frame = _features([0.0, 0.1, np.nan, 0.1])
    with pytest.raises(MissingReturnError, match="no return on 1 of the 3 .*2020-01-17"):
        holding_periods(FRIDAYS, frame["btc_return"])


def test_signals_off_the_feature_dates_are_an_error():
    frame = _features([0.0, 0.1, 0.1, 0.1])
    with pytest.raises(DateRangeError, match="not dates of the features"):
        holding_periods(FRIDAYS + pd.Timedelta(days=1), frame["btc_return"])
    with pytest.raises(DateRangeError, match="skip feature dates after 2020-01-03"):
        holding_periods(FRIDAYS[[0, 2, 3]], frame["btc_return"])
    with pytest.raises(DateRangeError, match="share 1 dates"):
        holding_periods(FRIDAYS[-1:], frame["btc_return"])


# ---------------------------------------------------------------------------- CLI


def _arguments(features_file: Path, out: Path, *extra: str) -> list[str]:
    return [
        "backtest",
        "--features",
        str(features_file),
        "--columns",
        "iwm_return,btc_return",
        "--model",
        "em-hmm",
        "--restarts",
        "3",
        "--start",
        "2021-04-01",
        "--every",
        "quarter",
        "--scheduler",
        "serial",
        "--out",
        str(out),
        *extra,
    ]


def test_cli_allocation_report_with_a_baseline(features_file, tmp_path, capsys):
    out = tmp_path / "run"
    allocate = ("--allocate", "btc_return,iwm_return", "--cost-bps", "20")
    assert main(_arguments(features_file, out, *allocate)) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert not (out / "baseline").exists()  # the model is the default baseline already
    assert "rule:em-hmm" in printed and "buy-and-hold" in printed
    metrics = pd.read_csv(out / "allocation.csv")
    assert list(metrics["strategy"]) == ["rule:em-hmm", BUY_AND_HOLD, CONSTANT] * 2

    # The rule recomputed from the written probabilities and the feature file.
    features = pd.read_csv(features_file, index_col="date", parse_dates=True)
    filtered = pd.read_csv(out / "regime_probabilities.csv", parse_dates=["date"])
    risk_on = filtered[filtered["regime"] == "risk_on"].set_index("date")["mean"]
    held = risk_on.to_numpy()[:-1]
    asset = np.expm1(features["btc_return"].reindex(risk_on.index).to_numpy()[1:] / 100)
    turnover = np.abs(np.diff(held, prepend=0.0))
    wealth = np.prod((1 - 0.002 * turnover) * (1 + held * asset))
    row = metrics.set_index(["asset", "strategy"]).loc[("btc_return", "rule:em-hmm")]
    assert row["total_return"] + 1 == pytest.approx(wealth, rel=1e-4)
    assert row["cost_bps"] == 20 and row["periods"] == len(risk_on) - 1
    hold = metrics.set_index(["asset", "strategy"]).loc[("btc_return", BUY_AND_HOLD)]
    assert hold["total_return"] + 1 == pytest.approx(np.prod(1 + asset), rel=1e-5)

    baseline = ("--baseline-model", "bayes-hmm", "--sampler", "map")
    assert main(_arguments(features_file, out, *allocate, *baseline)) == 0
    printed = capsys.readouterr().out
    assert "2 refits (0 fitted now, 2 reused)" in printed  # the main run is resumed
    assert "baseline bayes-hmm, 2 refits (2 fitted now, 0 reused)" in printed
    assert (out / "baseline" / "regime_probabilities.csv").is_file()
    metrics = pd.read_csv(out / "allocation.csv")
    strategies = ["rule:em-hmm", "rule:bayes-hmm", BUY_AND_HOLD, CONSTANT]
    assert list(metrics["strategy"]) == strategies * 2
    wealth = pd.read_csv(out / "allocation_wealth.csv")
    assert len(wealth) == 8 * len(risk_on)

    assert main(_arguments(features_file, out, *allocate, *baseline)) == 0
    assert "baseline bayes-hmm, 2 refits (0 fitted now, 2 reused)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--allocate", "btc_return,gold_return"], "no feature column gold_return to allocate"),
        (["--cost-bps", "5"], "--cost-bps and --baseline-model need --allocate"),
        (["--allocate", "btc_return", "--cost-bps", "-1"], "--cost-bps must be zero or"),
    ],
)
def test_cli_allocation_bad_input_fails_before_fitting(
    features_file, tmp_path, capsys, extra, message
):
    assert main(_arguments(features_file, tmp_path / "bad", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad" / "segments").exists()
