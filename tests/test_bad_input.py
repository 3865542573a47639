"""Bad input gets a specific exception and a message naming file, column and date."""

from __future__ import annotations

import pandas as pd
import pytest

from regime_model.cli import main
from regime_model.data.features import build_features, read_features
from regime_model.data.sources import CsvDirectorySource
from regime_model.data.universe import load_universe
from regime_model.errors import (
    ConstantFeatureError,
    DateRangeError,
    DuplicateDateError,
    EmptySeriesError,
    InsufficientDataError,
    MalformedFileError,
    NonPositivePriceError,
    UniverseError,
    UnknownSeriesError,
    UnsortedDatesError,
)
from tests.conftest import SIMPLE_UNIVERSE, write_universe


def _build(csv_dir, universe_path, **kwargs):
    return build_features(load_universe(universe_path), CsvDirectorySource(csv_dir), **kwargs)


def _rewrite(path, edit):
    frame = pd.read_csv(path, dtype=str)
    edit(frame)
    frame.to_csv(path, index=False)


def test_duplicate_date(csv_dir, simple_universe):
    _rewrite(
        csv_dir / "equity.csv",
        lambda f: f.__setitem__("date", f["date"].where(f.index != 5, f["date"].iloc[4])),
    )
    with pytest.raises(
        DuplicateDateError, match=r"equity\.csv: column 'close': duplicate date 2020-01-07"
    ):
        _build(csv_dir, simple_universe)


def test_unsorted_dates(csv_dir, simple_universe):
    frame = pd.read_csv(csv_dir / "coin.csv", dtype=str)
    frame.iloc[[3, 4]] = frame.iloc[[4, 3]].to_numpy()
    frame.to_csv(csv_dir / "coin.csv", index=False)
    with pytest.raises(
        UnsortedDatesError,
        match=r"coin\.csv: column 'price': dates not ascending: 2020-01-04 follows 2020-01-05",
    ):
        _build(csv_dir, simple_universe)


def test_non_positive_price(csv_dir, simple_universe):
    _rewrite(csv_dir / "equity.csv", lambda f: f.loc.__setitem__((10, "close"), "0"))
    with pytest.raises(
        NonPositivePriceError,
        match=r"equity\.csv: column 'close': non-positive value 0 on 2020-01-15",
    ):
        _build(csv_dir, simple_universe)


def test_non_numeric_value(csv_dir, simple_universe):
    _rewrite(csv_dir / "equity.csv", lambda f: f.loc.__setitem__((3, "close"), "n/a!"))
    with pytest.raises(
        MalformedFileError,
        match=r"equity\.csv: column 'close': non-numeric value 'n/a!' on 2020-01-06",
    ):
        _build(csv_dir, simple_universe)


def test_unparseable_date(csv_dir, simple_universe):
    _rewrite(csv_dir / "equity.csv", lambda f: f.loc.__setitem__((2, "date"), "2020-13-45"))
    with pytest.raises(
        MalformedFileError,
        match=r"equity\.csv: column 'close': unparseable date '2020-13-45' in row 3",
    ):
        _build(csv_dir, simple_universe)


def test_all_missing_column(csv_dir, simple_universe):
    _rewrite(csv_dir / "coin.csv", lambda f: f.__setitem__("price", ""))
    with pytest.raises(EmptySeriesError, match=r"coin\.csv: column 'price': no values"):
        _build(csv_dir, simple_universe)


def test_constant_feature(csv_dir, simple_universe):
    _rewrite(csv_dir / "coin.csv", lambda f: f.__setitem__("price", "5"))
    with pytest.raises(
        ConstantFeatureError, match=r"feature 'coin_return': constant value 0 from 2020-01-02"
    ):
        _build(csv_dir, simple_universe)


def test_series_too_short(csv_dir, simple_universe):
    with pytest.raises(
        InsufficientDataError, match=r"feature 'equity_return': only 10 observations"
    ):
        _build(csv_dir, simple_universe, start=pd.Timestamp("2021-12-20"), min_observations=11)


def test_unknown_file_and_column(csv_dir, tmp_path):
    body = SIMPLE_UNIVERSE.replace("coin.csv:price", "nosuch.csv:price")
    with pytest.raises(UnknownSeriesError, match=r"file not found: .*nosuch\.csv"):
        _build(csv_dir, write_universe(tmp_path / "a.toml", body))
    body = SIMPLE_UNIVERSE.replace("coin.csv:price", "coin.csv:close")
    with pytest.raises(
        UnknownSeriesError, match=r"coin\.csv: no column 'close' \(columns: price\)"
    ):
        _build(csv_dir, write_universe(tmp_path / "b.toml", body))


def test_malformed_csv(csv_dir, simple_universe):
    (csv_dir / "coin.csv").write_text('date,price\n2020-01-01,1\n2020-01-02,2,3,4\n"unclosed\n')
    with pytest.raises(MalformedFileError, match=r"coin\.csv: cannot parse as CSV"):
        _build(csv_dir, simple_universe)
    (csv_dir / "coin.csv").write_text("day,price\n2020-01-01,1\n")
    with pytest.raises(MalformedFileError, match=r"coin\.csv: no 'date' column"):
        _build(csv_dir, simple_universe)


def test_malformed_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[[series]\nname = 'x'\n")
    with pytest.raises(MalformedFileError, match=r"bad\.toml: not valid TOML"):
        load_universe(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('group = "equity"', 'group = "bonds"'), "group 'bonds' is not one of"),
        (('transform = "log_return"', 'transform = "magic"'), "transform 'magic' is not one of"),
        (('calendar = "crypto"', 'calendar = "lunar"'), "calendar 'lunar' is not one of"),
        (('csv = "coin.csv:price"', "csv = 3"), "csv locator must be a string"),
        (('name = "coin_return"', 'name = "equity_return"'), "series name used twice"),
        (('group = "crypto"', 'group = "crypto"\nwindow = -2'), "window must be a positive"),
        (('group = "crypto"', 'group = "crypto"\ncolour = 1'), "unknown key\\(s\\) colour"),
    ],
)
def test_invalid_universe(tmp_path, edit, message):
    body = SIMPLE_UNIVERSE.replace("    ", "").replace(*edit)
    with pytest.raises(UniverseError, match=message):
        load_universe(write_universe(tmp_path / "u.toml", body))


def test_bad_dates(csv_dir, simple_universe):
    with pytest.raises(DateRangeError, match="start date 2021-01-01 is after end date 2020-01-01"):
        _build(
            csv_dir,
            simple_universe,
            start=pd.Timestamp("2021-01-01"),
            end=pd.Timestamp("2020-01-01"),
        )


def test_read_features_rejects_malformed_files(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("when,a\n2020-01-01,1\n")
    with pytest.raises(MalformedFileError, match="no 'date' column"):
        read_features(path)
    path.write_text("date,a\n2020-01-02,1\n2020-01-01,2\n")
    with pytest.raises(UnsortedDatesError, match="f.csv: column 'a'"):
        read_features(path)


def test_cli_reports_one_line_and_exit_code(csv_dir, simple_universe, capsys, tmp_path):
    _rewrite(csv_dir / "equity.csv", lambda f: f.loc.__setitem__((10, "close"), "-1"))
    code = main(
        [
            "data",
            "build",
            "--universe",
            str(simple_universe),
            "--source",
            "csv",
            "--data-dir",
            str(csv_dir),
            "--out",
            str(tmp_path / "f.csv"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1
    assert "equity.csv: column 'close': non-positive value -1 on 2020-01-15" in error
    assert not (tmp_path / "f.csv").exists()
    code = main(
        [
            "data",
            "build",
            "--source",
            "csv",
            "--data-dir",
            str(csv_dir),
            "--start",
            "yesterday-ish",
            "--out",
            str(tmp_path / "f.csv"),
        ]
    )
    assert code == 2
    assert "--start: cannot parse 'yesterday-ish'" in capsys.readouterr().err
