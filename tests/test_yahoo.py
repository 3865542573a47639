"""Offline tests of the Yahoo source and its parquet cache.

Frame shape returned by yfinance 1.7.0 for::

    yf.download(tickers, start=..., end=..., auto_adjust=True, group_by="column",
                progress=False, multi_level_index=True)

with daily bars (``multi._download_impl``):

* one ``Ticker.history`` frame per ticker: columns ``Open, High, Low, Close, Volume``
  (``Volume`` int64), index named ``Date`` at local midnight, tz-aware in the exchange's
  zone;
* a ticker whose ``history`` raises becomes ``utils.empty_df()``: no rows, columns
  ``Open, High, Low, Close, Adj Close, Volume`` (so an ``Adj Close`` price level appears,
  all NaN), and yfinance logs ``"['BAD']: <repr of the exception>"`` on the ``yfinance``
  logger at ERROR level instead of raising;
* daily data use ``ignore_tz=True``: every index is made tz-naive (wall clock), all
  frames are reindexed on the union of their dates (NaN where a ticker did not trade, so
  int Volume turns float), concatenated with ``keys=tickers, names=['Ticker', 'Price']``,
  the levels swapped to ``['Price', 'Ticker']`` and the columns sorted by price
  (``Adj Close, Close, High, Low, Open, Volume``) then ticker;
* the index is a tz-naive ``DatetimeIndex`` named ``Date``; if every ticker failed it is
  an empty, unnamed ``DatetimeIndex``.

``assemble_like_yfinance`` below rebuilds that shape by hand and
``test_stand_in_matches_real_yfinance_download`` checks it against the real
``yf.download`` fed through a patched ``yfinance.Ticker.history``; that path makes no
network call (asserted by ``no_network``).  Nothing here sleeps or touches the network.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import yfinance as yf
from yfinance import utils as yf_utils
from yfinance.exceptions import YFTzMissingError

from regime_model.data.cache import read_frame, write_frame_atomic
from regime_model.data.yahoo import (
    CACHED,
    CACHED_STALE,
    DOWNLOADED,
    REDOWNLOADED,
    UNAVAILABLE,
    UPDATED,
    YahooSource,
    YFinanceDownloader,
    filename_ticker,
    shares_to_daily,
    ticker_filename,
)
from regime_model.errors import (
    DataUnavailableError,
    DuplicateDateError,
    MalformedFileError,
    NonPositivePriceError,
    UnknownSeriesError,
)

NY = "America/New_York"
DAYS = pd.bdate_range("2024-01-02", periods=30)  # tz-naive business days
START = "2024-01-02"


def day(timestamp: pd.Timestamp) -> str:
    return pd.Timestamp(timestamp).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- stand-ins


def history_frame(dates, closes, volumes=None, tz: str = NY) -> pd.DataFrame:
    """What ``Ticker.history(auto_adjust=True, actions=False)`` returns for daily bars."""
    index = pd.DatetimeIndex(pd.to_datetime(list(dates))).tz_localize(tz)
    index.name = "Date"
    closes = np.asarray(closes, dtype=float)
    if volumes is None:
        volumes = np.arange(1, len(closes) + 1) * 1000
    return pd.DataFrame(
        {
            "Open": closes * 0.99,
            "High": closes * 1.01,
            "Low": closes * 0.98,
            "Close": closes,
            "Volume": np.asarray(volumes, dtype=np.int64),
        },
        index=index,
    )


def assemble_like_yfinance(per_ticker: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Hand-built copy of yfinance 1.7.0 ``multi._download_impl`` for daily data.

    ``None`` stands for a ticker whose ``history`` raised (yfinance substitutes
    ``utils.empty_df()``).
    """
    dfs = {t: yf_utils.empty_df() if f is None else f.copy() for t, f in per_ticker.items()}
    for frame in dfs.values():
        if not frame.empty:
            frame.index = frame.index.tz_localize(None)
    index = None
    for frame in dfs.values():
        if not frame.empty:
            index = frame.index if index is None else index.union(frame.index)
    index = pd.DatetimeIndex([]) if index is None else index
    dfs = {t: frame.reindex(index) for t, frame in dfs.items()}
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


@dataclass
class FakeYahoo:
    """Yahoo's full adjusted histories, served the way ``yf.download`` would."""

    histories: dict[str, pd.DataFrame]
    outages: list[BaseException] = field(default_factory=list)  # raised by the next calls
    blank_once: set[str] = field(default_factory=set)  # all-NaN on their next request
    calls: list[tuple[list[str], str, str | None]] = field(default_factory=list)
    last_errors: dict[str, str] = field(default_factory=dict)

    def history(self, ticker: str, start, end) -> pd.DataFrame | None:
        """Rows in [start, end) like Yahoo, or None for an unknown ticker."""
        frame = self.histories.get(ticker)
        if frame is None or ticker in self.blank_once:
            self.blank_once.discard(ticker)
            return None
        local = frame.index.tz_localize(None)
        keep = local >= pd.Timestamp(start)
        if end is not None:
            keep &= local < pd.Timestamp(end)
        return frame.loc[keep] if keep.any() else None

    def __call__(self, tickers: list[str], start: str, end: str | None) -> pd.DataFrame:
        self.calls.append((list(tickers), start, end))
        if self.outages:
            raise self.outages.pop(0)
        per_ticker = {ticker: self.history(ticker, start, end) for ticker in tickers}
        self.last_errors = {
            t: "YFTzMissingError('possibly delisted; no timezone found')"
            for t, frame in per_ticker.items()
            if frame is None
        }
        return assemble_like_yfinance(per_ticker)


def refuse_shares(ticker: str, start: str) -> None:
    pytest.fail(f"shares of {ticker} were not asked for")


@dataclass
class Rig:
    source: YahooSource
    yahoo: FakeYahoo
    messages: list[str]
    sleeps: list[float]


def make_rig(tmp_path, histories, shares=refuse_shares, **options) -> Rig:
    yahoo = FakeYahoo(histories)
    messages: list[str] = []
    sleeps: list[float] = []
    source = YahooSource(
        tmp_path / "cache",
        downloader=yahoo,
        shares_downloader=shares,
        sleep=sleeps.append,
        report=messages.append,
        **options,
    )
    return Rig(source, yahoo, messages, sleeps)


def iwm_history(n: int = 20, scale: float = 1.0) -> pd.DataFrame:
    return history_frame(DAYS[:n], (100 + np.arange(n)) * scale)


# --------------------------------------------------------------------------- real yfinance


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every way yfinance could reach the network."""
    import curl_cffi.requests
    import requests

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:2]))
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(yf.data.YfData, "_make_request", refuse)
    monkeypatch.setattr(curl_cffi.requests.Session, "request", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    return attempts


@pytest.fixture
def patched_history(monkeypatch, no_network):
    """Make ``yfinance.Ticker.history`` serve a FakeYahoo; unknown tickers raise like Yahoo."""
    yahoo = FakeYahoo({})
    seen: list[dict] = []

    def history(self, *args, **kwargs):
        seen.append({"ticker": self.ticker, **kwargs})
        frame = yahoo.history(self.ticker, kwargs["start"], kwargs["end"])
        if frame is None:
            raise YFTzMissingError(self.ticker)
        return frame

    monkeypatch.setattr(yf.Ticker, "history", history)
    return yahoo, seen


# yfinance 1.7 passes pandas 3 a deprecated inplace=; noise from the library, not us.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:yfinance")
def test_stand_in_matches_real_yfinance_download(patched_history, no_network):
    yahoo, _ = patched_history
    yahoo.histories = {
        "IWM": iwm_history(5),
        "BTC-USD": history_frame(
            pd.date_range("2024-01-01", periods=8), np.arange(8) + 40e3, tz="UTC"
        ),
    }
    tickers = ["IWM", "BTC-USD", "NOPE"]
    real = yf.download(
        tickers,
        start=START,
        end=None,
        auto_adjust=True,
        group_by="column",
        progress=False,
        multi_level_index=True,
    )
    per_ticker = {t: yahoo.history(t, START, None) for t in tickers}
    pd.testing.assert_frame_equal(assemble_like_yfinance(per_ticker), real, check_freq=False)
    assert list(real.columns.names) == ["Price", "Ticker"]
    assert "Adj Close" in real.columns.get_level_values(0)  # from the failed ticker
    assert no_network == []


def test_default_downloader_parses_real_yfinance_output(tmp_path, patched_history, no_network):
    yahoo, seen = patched_history
    yahoo.histories = {
        "IWM": iwm_history(20),
        "^RUT": history_frame(DAYS[:18], 2000 + DAYS[:18].day),
    }
    sleeps: list[float] = []
    source = YahooSource(tmp_path, sleep=sleeps.append, report=lambda message: None)
    assert isinstance(source.downloader, YFinanceDownloader)

    report = source.fetch(["IWM", "^rut"], start=START, end=day(DAYS[19]))

    assert {t: s.status for t, s in report.prices.items()} == {
        "IWM": DOWNLOADED,
        "^RUT": DOWNLOADED,
    }
    assert {(c["ticker"], c["start"], c["end"]) for c in seen} == {
        ("IWM", START, day(DAYS[20])),  # inclusive end turned into yfinance's exclusive end
        ("^RUT", START, day(DAYS[20])),
    }
    assert all(c["auto_adjust"] and not c["actions"] for c in seen)
    rut = read_frame(tmp_path / "prices" / "%5ERUT.parquet")
    np.testing.assert_allclose(rut["close"], yahoo.histories["^RUT"]["Close"])
    assert list(rut.columns) == ["open", "high", "low", "close", "volume"]
    assert sleeps == [] and no_network == []

    with pytest.raises(DataUnavailableError, match=r"NOPE.*possibly delisted; no timezone found"):
        source.fetch(["IWM", "NOPE"], start=START)
    assert source.downloader.last_errors == {
        "NOPE": "YFTzMissingError('possibly delisted; no timezone found')"
    }
    assert sleeps == [1.0, 2.0, 4.0]
    assert no_network == []


# --------------------------------------------------------------------------- cache files


@pytest.mark.parametrize("ticker", ["^RUT", "BTC-USD", "EURUSD=X", "BRK.B", "CON", "A/B", "%"])
def test_ticker_filenames_are_safe_and_reversible(ticker):
    name = ticker_filename(ticker)
    assert filename_ticker(name) == ticker
    assert "/" not in name and "^" not in name and "=" not in name
    assert name.split(".")[0].upper() != "CON"


def test_first_download_writes_cache(tmp_path):
    rig = make_rig(tmp_path, {"^RUT": iwm_history(20), "BTC-USD": iwm_history(20, 400)})

    report = rig.source.fetch(["^RUT", "BTC-USD"], start=START)

    assert rig.yahoo.calls == [(["^RUT", "BTC-USD"], START, None)]
    status = report.prices["^RUT"]
    assert (status.status, status.rows, status.first, status.last) == (
        DOWNLOADED,
        20,
        DAYS[0],
        DAYS[19],
    )
    path = tmp_path / "cache" / "prices" / "%5ERUT.parquet"
    assert path.is_file() and (tmp_path / "cache" / "prices" / "BTC-USD.parquet").is_file()
    cached = read_frame(path)
    assert list(cached.columns) == ["open", "high", "low", "close", "volume"]
    assert cached.index.name == "date" and cached.index.tz is None
    assert all(dtype == np.float64 for dtype in cached.dtypes)
    np.testing.assert_allclose(cached["close"], 100 + np.arange(20))
    assert rig.messages == []


def test_cache_covering_the_request_needs_no_download(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)

    report = rig.source.fetch(["IWM"], start=day(DAYS[3]), end=day(DAYS[10]))

    assert len(rig.yahoo.calls) == 1
    assert report.prices["IWM"].status == CACHED


def test_incremental_update_requests_only_the_tail(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)
    # Sub-tolerance float noise in the overlap must not count as a re-adjustment.
    rig.yahoo.histories["IWM"] = history_frame(DAYS, (100 + np.arange(30)) * (1 + 1e-9))

    report = rig.source.fetch(["IWM"], start=START)

    assert rig.yahoo.calls[1] == (["IWM"], day(DAYS[19] - pd.Timedelta(days=7)), None)
    assert len(rig.yahoo.calls) == 2
    assert report.prices["IWM"].status == UPDATED
    assert (report.prices["IWM"].rows, report.prices["IWM"].last) == (30, DAYS[29])
    cached = read_frame(rig.source.price_path("IWM"))
    assert list(cached.index) == list(DAYS)
    np.testing.assert_allclose(cached["close"], 100 + np.arange(30), rtol=1e-8)


def test_caches_ending_on_different_days_update_in_one_call(tmp_path):
    btc_days = pd.date_range(DAYS[0], periods=30)
    rig = make_rig(
        tmp_path,
        {"IWM": iwm_history(20), "BTC-USD": history_frame(btc_days[:27], np.arange(27) + 4e4)},
    )
    rig.source.fetch(["IWM", "BTC-USD"], start=START)
    rig.yahoo.histories["IWM"] = iwm_history(30)
    rig.yahoo.histories["BTC-USD"] = history_frame(btc_days, np.arange(30) + 4e4)

    report = rig.source.fetch(["IWM", "BTC-USD"], start=START)

    earliest_tail = min(DAYS[19], btc_days[26]) - pd.Timedelta(days=7)
    assert rig.yahoo.calls[1:] == [(["IWM", "BTC-USD"], day(earliest_tail), None)]
    assert {t: (s.status, s.rows) for t, s in report.prices.items()} == {
        "IWM": (UPDATED, 30),
        "BTC-USD": (UPDATED, 30),
    }


def test_changed_adjustment_in_overlap_triggers_full_redownload(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)
    # A dividend: Yahoo scales all earlier closes, so the cache no longer matches.
    readjusted = (100 + np.arange(30)) * 0.98
    rig.yahoo.histories["IWM"] = history_frame(DAYS, readjusted)

    report = rig.source.fetch(["IWM"], start=START)

    assert [call[1:] for call in rig.yahoo.calls] == [
        (START, None),
        (day(DAYS[19] - pd.Timedelta(days=7)), None),
        (START, None),
    ]
    assert report.prices["IWM"].status == REDOWNLOADED
    assert "re-adjusted" in report.prices["IWM"].message
    assert any("IWM" in m and "re-downloading the full history" in m for m in rig.messages)
    cached = read_frame(rig.source.price_path("IWM"))
    np.testing.assert_allclose(cached["close"], readjusted)


# --------------------------------------------------------------------------- failures


def test_transient_failures_are_retried_with_backoff(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)}, backoff_seconds=0.5)
    rig.yahoo.outages = [ConnectionError("connection reset"), TimeoutError("timed out")]
    rig.yahoo.blank_once = {"IWM"}  # third call: columns all NaN; fourth succeeds

    report = rig.source.fetch(["IWM"], start=START)

    assert report.prices["IWM"].status == DOWNLOADED
    assert len(rig.yahoo.calls) == 4
    assert rig.sleeps == [0.5, 1.0, 2.0]
    assert "connection reset" in rig.messages[0]


def test_programming_errors_are_not_retried(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.yahoo.outages = [TypeError("bad argument")]

    with pytest.raises(TypeError):
        rig.source.fetch(["IWM"], start=START)
    assert rig.sleeps == []


def test_network_down_with_cache_serves_cache_and_says_so(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)
    rig.yahoo.outages = [ConnectionError("Failed to resolve query2.finance.yahoo.com")] * 4

    series = rig.source.load(["IWM"], start=START)["IWM"]

    np.testing.assert_allclose(series, 100 + np.arange(20))
    assert rig.sleeps == [1.0, 2.0, 4.0]
    status = rig.source.last_report.prices["IWM"]
    assert status.status == CACHED_STALE
    assert "download failed" in status.message and "Failed to resolve" in status.message
    assert f"up to {day(DAYS[19])}" in status.message
    assert status.message in rig.messages


def test_network_down_without_cache_raises_one_error_naming_all(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20), "^RUT": iwm_history(20)}, retries=1)
    rig.yahoo.outages = [ConnectionError("network unreachable")] * 2

    with pytest.raises(DataUnavailableError) as caught:
        rig.source.fetch(["IWM", "^RUT"], start=START)

    message = str(caught.value)
    assert "IWM" in message and "^RUT" in message and "network unreachable" in message
    assert rig.sleeps == [1.0]


def test_unknown_ticker_raises_naming_it_and_keeps_the_good_ones(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})

    with pytest.raises(DataUnavailableError, match=r"for XYZQ \(XYZQ: .*no timezone found"):
        rig.source.fetch(["IWM", "XYZQ"], start=START)

    assert [call[0] for call in rig.yahoo.calls] == [["IWM", "XYZQ"]] + [["XYZQ"]] * 3
    assert rig.source.price_path("IWM").is_file()
    assert not rig.source.price_path("XYZQ").exists()


def test_interrupted_cache_write_keeps_previous_file(tmp_path, monkeypatch):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)
    path = rig.source.price_path("IWM")
    before = path.read_bytes()
    rig.yahoo.histories["IWM"] = iwm_history(30)

    def crash_midway(self, target, *args, **kwargs):
        target.write(b"PAR1 half a parquet file")
        raise RuntimeError("simulated crash mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        rig.source.fetch(["IWM"], start=START)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert len(read_frame(path)) == 20


def test_write_frame_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "x.parquet"
    write_frame_atomic(pd.DataFrame({"a": [1.0]}), path)
    write_frame_atomic(pd.DataFrame({"a": [2.0, 3.0]}), path)
    assert read_frame(path)["a"].tolist() == [2.0, 3.0]
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("content", [b"not a parquet file", b""])
def test_corrupt_cache_file_raises_malformed_naming_path(tmp_path, content):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    path = rig.source.price_path("IWM")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with pytest.raises(MalformedFileError, match="IWM.parquet"):
        rig.source.fetch(["IWM"], start=START)
    assert rig.yahoo.calls == []


def test_a_cache_file_changed_after_it_was_written_is_refused(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    rig.source.fetch(["IWM"], start=START)
    path = rig.source.price_path("IWM")
    edited = pd.read_parquet(path)  # its attrs still hold the hash of the original
    edited.iloc[5, edited.columns.get_loc("close")] *= 1.01
    edited.to_parquet(path)
    with pytest.raises(MalformedFileError, match=r"IWM\.parquet: changed after it was written"):
        rig.source.load(["IWM"])
    edited.attrs = {}  # a parquet file from elsewhere: no hash at all
    edited.to_parquet(path)
    with pytest.raises(MalformedFileError, match=r"IWM\.parquet: not written by this cache"):
        rig.source.load(["IWM"])
    assert len(rig.yahoo.calls) == 1  # the first fetch; neither was replaced by a download


def test_cache_file_with_wrong_columns_is_malformed(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    path = rig.source.price_path("IWM")
    write_frame_atomic(pd.DataFrame({"price": [1.0]}, index=pd.DatetimeIndex(DAYS[:1])), path)

    with pytest.raises(MalformedFileError, match=r"IWM\.parquet.*close"):
        rig.source.load(["IWM"])


# --------------------------------------------------------------------------- validation


def test_nan_close_is_kept_missing_and_batch_alignment_rows_are_dropped(tmp_path):
    closes = 100 + np.arange(10, dtype=float)
    closes[4] = np.nan
    btc = history_frame(pd.date_range(DAYS[0], DAYS[9]), np.arange(14) + 40e3, tz="UTC")
    rig = make_rig(tmp_path, {"IWM": history_frame(DAYS[:10], closes), "BTC-USD": btc})

    loaded = rig.source.load(["IWM", "IWM:volume", "BTC-USD:close"], start=START)

    iwm = loaded["IWM"]
    assert list(iwm.index) == list(DAYS[:10])  # no weekend rows from BTC's calendar
    assert np.isnan(iwm.iloc[4]) and iwm.notna().sum() == 9
    assert loaded["IWM:volume"].iloc[4] == 5000.0
    assert len(loaded["BTC-USD:close"]) == 14
    assert len(rig.yahoo.calls) == 1  # one batched download


def test_non_positive_close_raises(tmp_path):
    closes = 100 + np.arange(10, dtype=float)
    closes[3] = 0.0
    rig = make_rig(tmp_path, {"IWM": history_frame(DAYS[:10], closes)})

    with pytest.raises(NonPositivePriceError, match=f"yahoo IWM close.*{day(DAYS[3])}"):
        rig.source.fetch(["IWM"], start=START)
    assert not rig.source.price_path("IWM").exists()


def test_duplicate_dates_in_download_raise(tmp_path):
    frame = history_frame([DAYS[0], DAYS[1], DAYS[1]], [1.0, 2.0, 3.0])

    def downloader(tickers, start, end):
        return assemble_like_yfinance({"IWM": frame.iloc[:2]}).pipe(
            lambda raw: pd.concat([raw, raw.iloc[-1:]])
        )

    source = YahooSource(tmp_path, downloader=downloader, sleep=lambda s: None)
    with pytest.raises(DuplicateDateError, match=f"yahoo IWM close: duplicate date {day(DAYS[1])}"):
        source.fetch(["IWM"], start=START)


def test_load_locators_describe_and_unknown_field(tmp_path):
    rig = make_rig(tmp_path, {"IWM": iwm_history(20)})
    source = rig.source
    assert source.name == "yahoo"
    assert source.describe("iwm") == "yahoo IWM close"
    assert source.describe("IWM:volume") == "yahoo IWM volume"

    with pytest.raises(UnknownSeriesError, match="dividends"):
        source.load(["IWM:dividends"])
    assert rig.yahoo.calls == []

    loaded = source.load(["IWM", "IWM:close", "IWM:volume"], start=day(DAYS[2]), end=day(DAYS[5]))
    assert rig.yahoo.calls == [(["IWM"], day(DAYS[2]), day(DAYS[6]))]
    pd.testing.assert_series_equal(loaded["IWM"], loaded["IWM:close"], check_names=False)
    assert list(loaded["IWM"].index) == list(DAYS[2:6])
    assert loaded["IWM"].dtype == float and loaded["IWM"].index.tz is None
    assert loaded["IWM:volume"].tolist() == [3000.0, 4000.0, 5000.0, 6000.0]


# --------------------------------------------------------------------------- shares


def shares_series() -> pd.Series:
    """Several counts a day, out of order, one late in the New York evening."""
    times = pd.DatetimeIndex(
        [
            "2024-01-02 16:00",
            "2024-01-02 09:00",
            "2024-01-03 23:30",  # 04:30 UTC on 2024-01-04
            "2024-01-05 08:00",
            "2024-01-05 07:00",
        ]
    ).tz_localize(NY)
    return pd.Series([2.0e8, 1.0e8, 3.0e8, 5.0e8, 4.0e8], index=times)


def test_shares_collapse_to_last_value_per_local_day():
    raw = shares_series()
    daily = shares_to_daily(raw.tz_convert("UTC").tz_convert(NY))  # same instants
    assert list(daily.index) == list(pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-05"]))
    assert daily.tolist() == [2.0e8, 3.0e8, 5.0e8]
    assert daily.index.tz is None and daily.index.name == "date"


def test_shares_are_cached_and_loaded(tmp_path):
    asked = []

    def shares(ticker, start):
        asked.append((ticker, start))
        return shares_series()

    rig = make_rig(tmp_path, {}, shares=shares)
    loaded = rig.source.load(["iwm:shares"])["iwm:shares"]

    assert asked == [("IWM", "2000-01-01")]
    assert rig.yahoo.calls == []
    assert loaded.tolist() == [2.0e8, 3.0e8, 5.0e8]
    assert rig.source.last_report.shares["IWM"].status == DOWNLOADED
    assert read_frame(tmp_path / "cache" / "shares" / "IWM.parquet")["shares"].tolist() == [
        2.0e8,
        3.0e8,
        5.0e8,
    ]


@pytest.mark.parametrize(
    "outcome",
    [None, pd.Series(dtype=float), KeyError("shares_out")],
    ids=["none", "empty", "raise"],
)
def test_unavailable_shares_are_reported_and_never_invented(tmp_path, outcome):
    def shares(ticker, start):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    rig = make_rig(tmp_path, {"IWM": iwm_history(20)}, shares=shares)

    report = rig.source.fetch(["IWM"], start=START, shares=["IWM"])
    assert report.prices["IWM"].status == DOWNLOADED
    assert report.shares["IWM"].status == UNAVAILABLE
    assert "IWM shares: unavailable" in report.shares["IWM"].message
    assert report.shares["IWM"].message in rig.messages

    with pytest.raises(DataUnavailableError, match="IWM shares"):
        rig.source.load(["IWM", "IWM:shares"], start=START)
    assert not rig.source.shares_path("IWM").exists()


def test_shares_network_failure_retries_then_serves_cache(tmp_path):
    outages = []

    def shares(ticker, start):
        if outages:
            raise outages.pop(0)
        return shares_series()

    rig = make_rig(tmp_path, {}, shares=shares)
    rig.source.fetch([], shares=["IWM"])
    outages.extend([ConnectionError("down")] * 4)

    report = rig.source.fetch([], shares=["IWM"])

    assert rig.sleeps == [1.0, 2.0, 4.0]
    assert report.shares["IWM"].status == CACHED_STALE
    assert "up to 2024-01-05" in report.shares["IWM"].message
    assert rig.source.load(["IWM:shares"])["IWM:shares"].tolist() == [2.0e8, 3.0e8, 5.0e8]
