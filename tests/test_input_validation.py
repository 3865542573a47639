"""Feature files and frames are checked once, strictly, for every entry point: a short
or truncated CSV row is an error naming its line (pandas would pad it with missing
values), and a feature frame with unsorted, repeated or unparseable dates, a repeated
column or a non-numeric or infinite value is an error naming it. Property-based: the
files and frames are generated (hypothesis), each with one defect placed at random."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regime_model.cli import main
from regime_model.data.features import FeatureSet, read_features, validated
from regime_model.errors import RegimeDataError

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda name: name != "date")


@st.composite
def feature_tables(draw, min_rows: int = 2):
    """(column names, (n, k) finite floats) of a valid feature table."""
    columns = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    n_rows = draw(st.integers(min_rows, 30))
    values = draw(
        st.lists(
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                min_size=len(columns),
                max_size=len(columns),
            ),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    return columns, np.array(values)


def _csv_lines(columns: list[str], values: np.ndarray) -> list[str]:
    dates = pd.bdate_range("2020-01-01", periods=len(values))
    rows = [
        ",".join([f"{d:%Y-%m-%d}", *(repr(float(v)) for v in row)])
        for d, row in zip(dates, values, strict=True)
    ]
    return [",".join(["date", *columns]), *rows]


@SETTINGS
@given(table=feature_tables())
def test_a_valid_feature_csv_reads_back_exactly(tmp_path_factory, table):
    columns, values = table
    path = tmp_path_factory.mktemp("csv") / "features.csv"
    path.write_text("\n".join(_csv_lines(columns, values)) + "\n")
    features = read_features(path)
    assert list(features.frame.columns) == columns
    np.testing.assert_array_equal(features.frame.to_numpy(), values)


@SETTINGS
@given(table=feature_tables(), data=st.data())
def test_a_short_or_truncated_row_is_an_error_naming_its_line(tmp_path_factory, table, data):
    columns, values = table
    lines = _csv_lines(columns, values)
    row = data.draw(st.integers(1, len(lines) - 1), label="row")
    fields = lines[row].split(",")
    if row == len(lines) - 1 and data.draw(st.booleans(), label="truncate the file"):
        # The file ends inside its last row: cut somewhere before the last separator.
        cut = data.draw(st.integers(1, lines[row].rindex(",")), label="cut")
        text = "\n".join([*lines[:row], lines[row][:cut]])
    else:
        kept = data.draw(st.integers(1, len(fields) - 1), label="fields kept")
        lines[row] = ",".join(fields[:kept])
        text = "\n".join(lines) + "\n"
    path = tmp_path_factory.mktemp("csv") / "features.csv"
    path.write_text(text)
    with pytest.raises(
        RegimeDataError, match=rf"line {row + 1} has \d+ fields, the header {len(fields)}"
    ):
        read_features(path)


def test_a_repeated_header_and_the_cli_name_the_problem(tmp_path, capsys):
    path = tmp_path / "features.csv"
    path.write_text("date,a,a\n2024-01-05,1,2\n")
    with pytest.raises(RegimeDataError, match="column a appears twice"):
        read_features(path)
    path.write_text("date,a,b\n2024-01-05,1,2\n2024-01-12,3\n")
    assert main(["fit", "--features", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "line 3 has 2 fields, the header 3" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


DEFECTS = (
    "unsorted",
    "repeated date",
    "integer index",
    "day-first strings",
    "infinite",
    "text",
    "repeated column",
)


@SETTINGS
@given(table=feature_tables(min_rows=3), defect=st.sampled_from(DEFECTS), data=st.data())
def test_a_feature_frame_with_a_defect_is_refused_naming_it(table, defect, data):
    columns, values = table
    frame = pd.DataFrame(
        values,
        columns=columns,
        index=pd.bdate_range("2020-01-01", periods=len(values), name="date"),
    )
    where = data.draw(st.integers(1, len(frame) - 1), label="row")
    column = data.draw(st.sampled_from(columns), label="column")
    expected: str
    if defect == "unsorted":
        order = list(range(len(frame)))
        order[where - 1], order[where] = order[where], order[where - 1]
        frame, expected = frame.iloc[order], "dates not ascending"
    elif defect == "repeated date":
        frame = frame.set_axis(
            frame.index.where(np.arange(len(frame)) != where, frame.index[where - 1])
        )
        expected = f"duplicate date {frame.index[where]:%Y-%m-%d}"
    elif defect == "integer index":
        frame, expected = frame.reset_index(drop=True), "the dates are numbers (0, ...), not dates"
    elif defect == "day-first strings":
        frame = frame.set_axis(frame.index.strftime("%d/%m/%Y"))
        expected = f"unparseable date '{frame.index[0]}' in row 1"
    elif defect == "infinite":
        frame = frame.copy()
        frame.iloc[where, columns.index(column)] = np.inf
        expected = f"column '{column}' is infinite on {frame.index[where]:%Y-%m-%d}"
    elif defect == "text":
        frame, expected = frame.assign(**{column: "1.5"}), f"column '{column}' is not numeric"
    else:
        frame = pd.concat([frame, frame[[column]]], axis=1)
        expected = f"column {column} appears twice"
    features = FeatureSet(frame, dict.fromkeys(columns, "equity"), "daily")
    with pytest.raises(RegimeDataError, match=re.escape(expected)):
        validated(features)


@SETTINGS
@given(table=feature_tables())
def test_a_valid_frame_passes_unchanged_and_iso_strings_become_dates(table):
    columns, values = table
    index = pd.bdate_range("2020-01-01", periods=len(values), name="date")
    features = FeatureSet(pd.DataFrame(values, columns=columns, index=index), {}, "daily")
    assert validated(features) is features
    as_text = FeatureSet(features.frame.set_axis(index.strftime("%Y-%m-%d")), {}, "daily")
    assert validated(as_text).frame.index.equals(pd.DatetimeIndex(index.to_numpy()))


def test_a_plain_dataframe_is_validated_as_a_feature_set():
    dates = pd.to_datetime(["2024-01-05", "2024-01-12", "2024-01-19"])
    frame = pd.DataFrame({"iwm_return": [1.0, 2.0, 0.5], "mine": [3.0, 1.0, 2.0]}, index=dates)
    features = validated(frame)
    assert features.frame.equals(frame.rename_axis("date"))
    assert features.freq == "weekly"
    assert features.groups == {"iwm_return": "equity", "mine": "unknown"}  # universe names
    frame.attrs["groups"] = {"mine": "crypto"}
    assert validated(frame).groups["mine"] == "crypto"
    as_read = frame.rename_axis("date").reset_index()  # what pd.read_csv gives
    as_read["date"] = as_read["date"].dt.strftime("%Y-%m-%d")
    assert validated(as_read).frame.index.equals(features.frame.index)
    # ... and checked like one: shuffled, repeated or dd/mm dates are refused.
    with pytest.raises(RegimeDataError, match="ascending"):
        validated(frame.iloc[[1, 0, 2]])
    with pytest.raises(RegimeDataError, match="2024-01-05"):
        validated(frame.iloc[[0, 0, 1]])
    with pytest.raises(RegimeDataError, match="05/01/2024"):
        validated(frame.set_axis(["05/01/2024", "12/01/2024", "19/01/2024"]))
    with pytest.raises(RegimeDataError, match="must be a pandas DataFrame"):
        validated(frame.to_numpy())


@pytest.mark.parametrize("locator", ["../outside.csv:close", "/etc/hosts.csv:close"])
def test_universe_locators_stay_inside_the_data_directory(tmp_path, locator):
    from regime_model.data.sources import CsvDirectorySource

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "outside.csv").write_text("date,close\n2024-01-05,1.0\n")
    with pytest.raises(RegimeDataError, match="outside the data directory"):
        CsvDirectorySource(data).load([locator])


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("tcp://127.0.0.1:8786", True), ("localhost:8786", True), ("tcp://[::1]:1", True)]
    + [("tcp://10.0.0.5:8786", False), ("tcp://example.com:8786", False)],
)
def test_a_scheduler_elsewhere_needs_an_explicit_trust_flag(address, loopback, tmp_path, capsys):
    from regime_model.commands.backtest import is_loopback

    assert is_loopback(address) is loopback
    if loopback:
        return
    arguments = ["calibrate", "--out", str(tmp_path / "sbc"), "--scheduler", address]
    assert main(arguments) == 2
    assert "pass --trust-scheduler" in capsys.readouterr().err
    assert not (tmp_path / "sbc").exists()


class _Holed:
    """A source whose series all lose the dates in [start, end): a hole in the data."""

    def __init__(self, source, start: str, end: str) -> None:
        self.source, self.start, self.end = source, pd.Timestamp(start), pd.Timestamp(end)
        self.name = source.name

    def describe(self, locator: str) -> str:
        return self.source.describe(locator)

    def load(self, locators, start=None, end=None):
        loaded = self.source.load(locators, start, end)
        return {
            key: series[(series.index < self.start) | (series.index >= self.end)]
            for key, series in loaded.items()
        }


@pytest.mark.parametrize("freq", ["weekly", "daily"])
def test_a_calendar_hole_is_left_missing_and_reported_not_bridged(freq):
    """Six months without data: the dates stay on the grid as missing rows, the first
    change after the hole is missing (not a six-month change presented as one period's),
    everything outside the hole is as without it, and a warning names the hole."""
    from regime_model.data.features import build_features
    from regime_model.data.synthetic import simulate_market
    from regime_model.data.universe import load_universe

    market = simulate_market(n_regimes=2, seed=3)
    whole = build_features(load_universe(), market.source(), freq)
    holed = build_features(
        load_universe(), _Holed(market.source(), "2019-03-01", "2019-09-01"), freq
    )
    # Weekly: the same Fridays. Daily: the same days, plus any holiday inside the hole
    # (which a hole in the data cannot tell from a trading day).
    extra = holed.frame.index.difference(whole.frame.index)
    assert whole.frame.index.isin(holed.frame.index).all()
    assert (
        extra.empty if freq == "weekly" else ((extra > "2019-03-01") & (extra < "2019-09-01")).all()
    )
    # From the first date whose period lies wholly in the hole (a weekly Friday of
    # 2019-03-01 still holds that week's earlier closes).
    inside = (holed.frame.index >= "2019-03-08") & (holed.frame.index < "2019-09-01")
    assert holed.frame.loc[inside, "iwm_return"].isna().all()
    first_after = holed.frame.index[~inside & (holed.frame.index >= "2019-09-01")][0]
    assert np.isnan(holed.frame.loc[first_after, "iwm_return"])
    pd.testing.assert_frame_equal(holed.frame.loc[:"2019-02-28"], whole.frame.loc[:"2019-02-28"])
    assert len(holed.warnings) == 1 and "calendar gap" in holed.warnings[0]
    assert "2019-03-0" in holed.warnings[0] and not whole.warnings


@pytest.mark.parametrize("date", ["1899-12-29", "2999-01-05"])
def test_dates_outside_a_sane_range_are_refused(tmp_path, date):
    path = tmp_path / "features.csv"
    path.write_text(
        f"date,a\n2024-01-05,1.0\n{date},2.0\n"
        if date > "2024"
        else f"date,a\n{date},1.0\n2024-01-05,2.0\n"
    )
    with pytest.raises(RegimeDataError, match=f"date {date} is outside 1900-01-01 to"):
        read_features(path)


@pytest.mark.parametrize("magnitude", [1e300, 1e-300])
def test_extreme_magnitudes_standardise_instead_of_crashing(magnitude):
    """A column of 1e300s (its variance overflows float64) or 1e-300s (underflows) used
    to crash inside hmmlearn; standardised in units of its largest value, it gives the
    same regime probabilities as the column at its own scale."""
    from regime_model.data.synthetic import simulate_tvtp_features
    from regime_model.models import EMHMM

    features, _ = simulate_tvtp_features(150, seed=1)
    columns = ["eq_return", "crypto_return"]
    scaled = FeatureSet(
        features.frame.assign(eq_return=features.frame["eq_return"] * magnitude),
        features.groups,
        features.freq,
    )
    reference = EMHMM(2, n_restarts=1).fit(features, columns).result_.probabilities.filtered
    probabilities = EMHMM(2, n_restarts=1).fit(scaled, columns).result_.probabilities.filtered
    np.testing.assert_allclose(probabilities, reference, atol=1e-9)


def test_unstandardised_extreme_values_are_refused_naming_the_column():
    from regime_model.data.synthetic import simulate_tvtp_features
    from regime_model.models.observations import prepare_observations

    features, _ = simulate_tvtp_features(150, seed=1)
    frame = features.frame[["eq_return", "crypto_return"]]
    huge = FeatureSet(frame.assign(eq_return=frame["eq_return"] * 1e300), {}, features.freq)
    with pytest.raises(RegimeDataError, match=r"'eq_return' has values beyond 1e\+100"):
        prepare_observations(huge, 2, standardise=False)
    prepare_observations(huge, 2)  # standardised: fine
