"""Yahoo Finance source (through yfinance) with an on-disk parquet cache.

Layout under ``cache_dir``:

* ``prices/<file-safe ticker>.parquet``: adjusted daily ``open, high, low, close, volume``
  (float) indexed by tz-naive ``date``; the first date the history was requested from is
  kept in the frame's ``attrs`` so later runs know what the cache covers.
* ``shares/<file-safe ticker>.parquet``: one ``shares`` outstanding value per calendar day.

Locators: ``"IWM"`` or ``"IWM:close"`` (adjusted close), ``"IWM:open"``, ``"IWM:high"``,
``"IWM:low"``, ``"IWM:volume"`` and ``"IWM:shares"``.  Dates are inclusive at both ends.
"""

from __future__ import annotations

import ast
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote

import pandas as pd

from regime_model.data.cache import read_frame, write_frame_atomic
from regime_model.data.validation import check_date_range, check_dates, check_series, parse_date
from regime_model.errors import DataUnavailableError, MalformedFileError, UnknownSeriesError

_log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
FIELDS = (*PRICE_COLUMNS, "shares")
# Fields taken in logs downstream; volume may legitimately be zero (indices report none).
POSITIVE_FIELDS = frozenset({"open", "high", "low", "close", "shares"})
# Yahoo accepts pre-1970 starts (yfinance itself defaults to 99 years back).
DEFAULT_START = pd.Timestamp("1900-01-01")
# Yahoo's share counts start in the 2010s; a post-1970 start keeps that request unremarkable.
SHARES_DEFAULT_START = pd.Timestamp("2000-01-01")
RELATIVE_TOLERANCE = 1e-6
_START_ATTR = "requested_start"
_YAHOO_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
}
_NO_DATA = "no prices returned (unknown or delisted ticker, or nothing traded in the range)"
# Device names Windows refuses as file names, whatever the extension.
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)

DOWNLOADED = "downloaded"
UPDATED = "updated"
REDOWNLOADED = "redownloaded"
CACHED = "cached"
CACHED_STALE = "cached-stale"
UNAVAILABLE = "unavailable"

Downloader = Callable[[list[str], str, "str | None"], pd.DataFrame]
SharesDownloader = Callable[[str, str], "pd.Series | None"]
_T = TypeVar("_T")


def _day(timestamp: pd.Timestamp) -> str:
    return pd.Timestamp(timestamp).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- names


def ticker_filename(ticker: str) -> str:
    """File-safe, reversible cache file name: ``^RUT`` -> ``%5ERUT.parquet``."""
    stem = quote(ticker, safe="")
    if stem.split(".")[0].upper() in _RESERVED_NAMES:
        stem = f"%{ord(stem[0]):02X}{stem[1:]}"  # still decodes to the same ticker
    return f"{stem}.parquet"


def filename_ticker(filename: str) -> str:
    """Inverse of :func:`ticker_filename`."""
    return unquote(filename.removesuffix(".parquet"))


def parse_locator(locator: str) -> tuple[str, str]:
    """Split ``"IWM:volume"`` into ``("IWM", "volume")``; a bare ticker means its close."""
    ticker, colon, column = locator.partition(":")
    ticker = ticker.strip().upper()
    column = column.strip().lower() if colon else "close"
    if not ticker or column not in FIELDS:
        raise UnknownSeriesError(
            f"yahoo locator {locator!r}: expected TICKER or TICKER:FIELD with FIELD one of "
            f"{', '.join(FIELDS)}"
        )
    return ticker, column


def _normalise(tickers: Iterable[str]) -> list[str]:
    """Upper-case (as yfinance does) and de-duplicate, keeping order."""
    if isinstance(tickers, str):
        tickers = [tickers]
    names = [ticker.strip().upper() for ticker in tickers]
    if not all(names):
        raise UnknownSeriesError("yahoo: empty ticker name")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class TickerStatus:
    """What a fetch did for one ticker (prices or shares)."""

    ticker: str
    status: str
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    message: str = ""

    def __str__(self) -> str:
        span = f"{_day(self.first)}..{_day(self.last)}" if self.first is not None else "no data"
        text = f"{self.ticker}: {self.status}, {self.rows} rows, {span}"
        return f"{text} -- {self.message}" if self.message else text


@dataclass
class FetchReport:
    """Per-ticker outcome of :meth:`YahooSource.fetch`."""

    prices: dict[str, TickerStatus] = field(default_factory=dict)
    shares: dict[str, TickerStatus] = field(default_factory=dict)

    def messages(self) -> list[str]:
        """Every non-routine message (stale cache, re-download, shares unavailable)."""
        statuses = [*self.prices.values(), *self.shares.values()]
        return [status.message for status in statuses if status.message]

    def __str__(self) -> str:
        lines = [f"prices {status}" for status in self.prices.values()]
        lines += [f"shares {status}" for status in self.shares.values()]
        return "\n".join(lines)


def _status(
    ticker: str, status: str, frame: pd.DataFrame | None, message: str = ""
) -> TickerStatus:
    if frame is None or frame.empty:
        return TickerStatus(ticker, status, message=message)
    return TickerStatus(ticker, status, len(frame), frame.index[0], frame.index[-1], message)


# --------------------------------------------------------------------------- yfinance glue

_FAILED_LINE = re.compile(r"^(\[.*?\]): (.+)$", re.DOTALL)


class _FailureCapture(logging.Handler):
    """Collects yfinance's ``"['BAD', 'WORSE']: <reason>"`` summary lines per ticker."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _FAILED_LINE.match(record.getMessage().strip())
        if match is None:
            return
        try:
            symbols = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return
        for symbol in symbols:
            self.errors[str(symbol).upper()] = match.group(2).strip()


class YFinanceDownloader:
    """Default downloader: ``yfinance.download`` with the arguments this module parses.

    yfinance does not raise when a ticker fails: the ticker comes back as all-NaN columns
    and the reason only goes to the ``yfinance`` logger.  Those log lines are captured into
    :attr:`last_errors` (ticker -> reason) so failures can be explained.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.last_errors: dict[str, str] = {}

    def __call__(self, tickers: list[str], start: str, end: str | None) -> pd.DataFrame:
        import yfinance as yf  # heavy import, only needed when really downloading

        capture = _FailureCapture()
        logger = logging.getLogger("yfinance")
        logger.addHandler(capture)
        try:
            with warnings.catch_warnings():
                # yfinance 1.7 still passes pandas' deprecated inplace=; not ours to fix.
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="yfinance")
                frame = yf.download(
                    list(tickers),
                    start=start,
                    end=end,
                    auto_adjust=True,
                    group_by="column",
                    progress=False,
                    multi_level_index=True,
                    timeout=self.timeout,
                )
        finally:
            logger.removeHandler(capture)
        self.last_errors = capture.errors
        return frame


def yfinance_shares(ticker: str, start: str) -> pd.Series | None:
    """Default shares downloader: ``yf.Ticker(ticker).get_shares_full(start=start)``."""
    import yfinance as yf

    return yf.Ticker(ticker).get_shares_full(start=start)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions worth retrying: network trouble and Yahoo's rate limiting."""
    # OSError covers ConnectionError, TimeoutError and requests'/curl_cffi's request errors.
    errors: list[type[BaseException]] = [OSError]
    try:
        from curl_cffi.curl import CurlError

        errors.append(CurlError)
    except ImportError:
        pass
    try:
        from yfinance.exceptions import YFRateLimitError

        errors.append(YFRateLimitError)
    except ImportError:
        pass
    return tuple(errors)


# --------------------------------------------------------------------------- frames


def ticker_frame(raw: pd.DataFrame, ticker: str) -> pd.DataFrame | None:
    """One ticker's OHLCV out of a batched ``yf.download`` frame, or None if it has no prices.

    Rows where every field is missing are dropped: they only exist because the batch
    aligns all tickers on the union of their dates.  Rows with a missing close but other
    values stay, with the close missing (never filled).
    """
    columns = getattr(raw, "columns", None)
    if not isinstance(columns, pd.MultiIndex) or columns.nlevels != 2:
        raise MalformedFileError(
            f"yahoo download: expected columns indexed by (Price, Ticker), got {columns!r}"
        )
    if ticker not in columns.get_level_values(1):
        return None
    sub = raw.xs(ticker, axis=1, level=1)
    missing = [name for name in _YAHOO_COLUMNS if name not in sub.columns]
    if missing:
        raise MalformedFileError(f"yahoo download: {ticker} lacks column(s) {', '.join(missing)}")
    frame = sub[list(_YAHOO_COLUMNS)].rename(columns=_YAHOO_COLUMNS).astype(float)
    frame.columns.name = None
    index = pd.DatetimeIndex(frame.index)
    frame.index = (index.tz_localize(None) if index.tz is not None else index).normalize()
    frame.index.name = "date"
    frame = frame.dropna(how="all")
    if frame["close"].notna().sum() == 0:
        return None
    # Duplicate or unsorted dates and non-positive closes are errors, not retries.
    check_series(frame["close"], f"yahoo {ticker} close", positive=True)
    return frame


def shares_to_daily(raw: pd.Series) -> pd.Series:
    """Collapse yfinance share counts to one value per calendar day.

    yfinance returns the counts with a tz-aware index in the exchange's time zone and
    sometimes several values per day (filings, revisions).  Each timestamp becomes its
    calendar date in that zone (converting to UTC first would move evening values to the
    next day) and the day's last value in time is kept.  Missing values are dropped.
    """
    index = pd.DatetimeIndex(raw.index)
    local = index.tz_localize(None) if index.tz is not None else index  # exchange wall clock
    values = pd.Series(raw.to_numpy(dtype=float), index=local).sort_index(kind="stable")
    daily = values.groupby(values.index.normalize()).last().dropna()
    daily.index.name = "date"
    return daily.rename("shares")


def _first_mismatch(cached: pd.DataFrame, fresh: pd.DataFrame) -> str | None:
    """Why ``fresh`` cannot be spliced onto ``cached``; None when the overlap agrees."""
    common = cached.index.intersection(fresh.index)
    old = cached["close"].reindex(common)
    new = fresh["close"].reindex(common)
    both = (old.notna() & new.notna()).to_numpy()
    if not both.any():
        # Nothing to compare: splicing blind could mix two adjustment bases.
        return "no overlapping close to check the cache against"
    differs = both & ((new - old).abs() > RELATIVE_TOLERANCE * old.abs()).to_numpy()
    if not differs.any():
        return None
    day = common[differs][0]
    return (
        f"close on {_day(day)} is {new[day]:.10g} now but {old[day]:.10g} in the cache "
        "(history re-adjusted after a dividend or split)"
    )


def _splice(cached: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """Cached rows, replaced by the fresh ones wherever both have the date."""
    kept = cached.loc[~cached.index.isin(fresh.index)]
    return pd.concat([kept, fresh]).sort_index()


# --------------------------------------------------------------------------- source


@dataclass(frozen=True)
class _Plan:
    """What to download for one ticker."""

    ticker: str
    cached: pd.DataFrame | None
    history_start: pd.Timestamp  # the date the cached history is requested from
    download_from: pd.Timestamp | None  # None: the cache already covers the request
    download_end: pd.Timestamp | None  # inclusive; None: up to the latest bar
    tail: bool = False  # splice onto the cache after checking the overlap
    reason: str = ""  # why a full download replaces an existing cache


class YahooSource:
    """Daily Yahoo Finance prices and shares outstanding, cached per ticker.

    ``downloader(tickers, start, end)`` must return a frame shaped like
    ``yf.download(..., auto_adjust=True, group_by="column", multi_level_index=True)``
    (``end`` exclusive, as yfinance has it).  ``shares_downloader(ticker, start)`` returns a
    Series with a tz-aware index, or None.  Failed downloads are retried ``retries`` times,
    sleeping ``backoff_seconds * 2**k`` before retry ``k`` (0-based).  ``report`` receives
    every non-routine message (retries, stale cache, re-downloads, missing shares).
    """

    name = "yahoo"

    def __init__(
        self,
        cache_dir: str | Path,
        downloader: Downloader | None = None,
        shares_downloader: SharesDownloader | None = None,
        retries: int = 3,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], object] = time.sleep,
        overlap_days: int = 7,
        report: Callable[[str], object] | None = None,
    ) -> None:
        if retries < 0 or backoff_seconds < 0 or overlap_days < 0:
            raise ValueError("retries, backoff_seconds and overlap_days must be >= 0")
        self.cache_dir = Path(cache_dir)
        self.downloader = downloader if downloader is not None else YFinanceDownloader()
        self.shares_downloader = shares_downloader or yfinance_shares
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.overlap = pd.Timedelta(days=overlap_days)
        self.report = report if report is not None else _log.warning
        self.last_report: FetchReport | None = None
        self._transient = _transient_errors()

    # ----------------------------------------------------------------- public API

    def describe(self, locator: str) -> str:
        """Origin label used in error messages, e.g. ``"yahoo IWM close"``."""
        ticker, column = parse_locator(locator)
        return f"{self.name} {ticker} {column}"

    def price_path(self, ticker: str) -> Path:
        """Cache file of one ticker's prices."""
        return self.cache_dir / "prices" / ticker_filename(ticker.upper())

    def shares_path(self, ticker: str) -> Path:
        """Cache file of one ticker's shares outstanding."""
        return self.cache_dir / "shares" / ticker_filename(ticker.upper())

    def load(
        self,
        locators: list[str],
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
    ) -> dict[str, pd.Series]:
        """Fetch what the locators need and return validated float series.

        Tickers are downloaded in one batch per date range (one for new tickers, one for
        cache updates).  Raises :class:`DataUnavailableError` when shares are asked for but
        Yahoo has none and nothing is cached.
        """
        wanted = {locator: parse_locator(locator) for locator in locators}
        start_day, end_day = parse_date(start, "start"), parse_date(end, "end")
        check_date_range(start_day, end_day)
        prices = [ticker for ticker, column in wanted.values() if column != "shares"]
        shares = [ticker for ticker, column in wanted.values() if column == "shares"]
        report = self.fetch(prices, start_day, end_day, shares=shares)
        missing = [s for s in report.shares.values() if s.status == UNAVAILABLE]
        if missing:
            raise DataUnavailableError("; ".join(status.message for status in missing))
        return {
            locator: self._series(locator, ticker, column, start_day, end_day)
            for locator, (ticker, column) in wanted.items()
        }

    def fetch(
        self,
        tickers: Iterable[str],
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        shares: Iterable[str] = (),
    ) -> FetchReport:
        """Bring the cache of ``tickers`` up to date (and of ``shares``' share counts).

        Raises one :class:`DataUnavailableError` naming every ticker that could be neither
        downloaded nor served from the cache.
        """
        start_day, end_day = parse_date(start, "start"), parse_date(end, "end")
        check_date_range(start_day, end_day)
        report = FetchReport()
        self.last_report = report
        plans = [self._plan(ticker, start_day, end_day) for ticker in _normalise(tickers)]
        for plan in plans:
            if plan.download_from is None:
                report.prices[plan.ticker] = _status(plan.ticker, CACHED, plan.cached)
        failures: dict[str, str] = {}
        pending = [plan for plan in plans if plan.download_from is not None]
        redo = self._download(pending, report, failures)
        self._download(redo, report, failures)
        self._fall_back(plans, failures, report)
        for ticker in _normalise(shares):
            report.shares[ticker] = self._fetch_shares(ticker, start_day or SHARES_DEFAULT_START)
        return report

    # ----------------------------------------------------------------- prices

    def _plan(self, ticker: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> _Plan:
        cached = self._read_prices(ticker)
        if cached is None:
            first = start if start is not None else DEFAULT_START
            return _Plan(ticker, None, first, first, end)
        cached_start = self._cached_start(cached)
        if start is not None and start < cached_start:
            # Download up to today so that replacing the cache loses none of its rows.
            reason = f"cache began on {_day(cached_start)}; downloaded again from {_day(start)}"
            return _Plan(ticker, cached, start, start, None, reason=reason)
        last = cached.index[-1]
        if end is not None and end <= last:
            return _Plan(ticker, cached, cached_start, None, None)
        return _Plan(ticker, cached, cached_start, last - self.overlap, end, tail=True)

    @staticmethod
    def _cached_start(cached: pd.DataFrame) -> pd.Timestamp:
        recorded = cached.attrs.get(_START_ATTR)
        return pd.Timestamp(recorded) if recorded else cached.index[0]

    def _download(
        self, plans: list[_Plan], report: FetchReport, failures: dict[str, str]
    ) -> list[_Plan]:
        """Download plans batched by date range; returns plans needing a full re-download."""
        groups: dict[tuple[object, pd.Timestamp | None], list[_Plan]] = {}
        for plan in plans:
            # Tails share one call from the earliest tail start: a longer overlap costs
            # nothing, while caches ending on different days (crypto trades on weekends)
            # would otherwise each need their own request.
            first = "tail" if plan.tail else plan.download_from
            groups.setdefault((first, plan.download_end), []).append(plan)
        redo = []
        for (_, last), members in groups.items():
            first = min(plan.download_from for plan in members)
            frames, errors = self._download_with_retries([p.ticker for p in members], first, last)
            failures.update(errors)
            for plan in members:
                if plan.ticker in frames:
                    again = self._store(plan, frames[plan.ticker], report)
                    if again is not None:
                        redo.append(again)
        return redo

    def _download_with_retries(
        self, tickers: list[str], first: pd.Timestamp, last: pd.Timestamp | None
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        frames: dict[str, pd.DataFrame] = {}
        errors: dict[str, str] = {}
        remaining = list(tickers)
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                failed = "; ".join(f"{ticker}: {reason}" for ticker, reason in errors.items())
                self.report(
                    f"yahoo: attempt {attempt} of {self.retries + 1} failed ({failed}); "
                    f"retrying in {delay:g}s"
                )
                self.sleep(delay)
            got, errors = self._download_once(remaining, first, last)
            frames.update(got)
            remaining = [ticker for ticker in remaining if ticker not in got]
            if not remaining:
                return frames, {}
        return frames, errors

    def _download_once(
        self, tickers: list[str], first: pd.Timestamp, last: pd.Timestamp | None
    ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        # yfinance's end is exclusive, ours inclusive.
        end = None if last is None else _day(last + pd.Timedelta(days=1))
        try:
            raw = self.downloader(list(tickers), _day(first), end)
        except self._transient as exc:
            return {}, dict.fromkeys(tickers, f"download failed: {type(exc).__name__}: {exc}")
        known = getattr(self.downloader, "last_errors", None) or {}
        frames, errors = {}, {}
        for ticker in tickers:
            frame = ticker_frame(raw, ticker)
            if frame is None:
                errors[ticker] = known.get(ticker) or _NO_DATA
            else:
                frames[ticker] = frame
        return frames, errors

    def _store(self, plan: _Plan, fresh: pd.DataFrame, report: FetchReport) -> _Plan | None:
        """Write a successful download; returns a full re-download plan if it can't splice."""
        if plan.tail:
            mismatch = _first_mismatch(plan.cached, fresh)
            if mismatch is not None:
                reason = (
                    f"yahoo {plan.ticker}: {mismatch}; re-downloading the full history "
                    f"from {_day(plan.history_start)} instead of updating the cache"
                )
                self.report(reason)
                start = plan.history_start
                return replace(
                    plan, download_from=start, download_end=None, tail=False, reason=reason
                )
            frame, status, message = _splice(plan.cached, fresh), UPDATED, ""
        else:
            frame, message = fresh, plan.reason
            status = DOWNLOADED if plan.cached is None else REDOWNLOADED
        self._write_prices(plan.ticker, frame, plan.history_start)
        report.prices[plan.ticker] = _status(plan.ticker, status, frame, message)
        return None

    def _fall_back(self, plans: list[_Plan], failures: dict[str, str], report: FetchReport) -> None:
        """Serve failed tickers from their cache; raise for those without one."""
        missing = {}
        for plan in plans:
            reason = failures.get(plan.ticker)
            if reason is None:
                continue
            if plan.cached is None:
                missing[plan.ticker] = reason
                continue
            message = (
                f"yahoo {plan.ticker}: download failed after {self.retries + 1} attempt(s) "
                f"({reason}); using cached data from {_day(plan.cached.index[0])} up to "
                f"{_day(plan.cached.index[-1])} ({self.price_path(plan.ticker)})"
            )
            self.report(message)
            report.prices[plan.ticker] = _status(plan.ticker, CACHED_STALE, plan.cached, message)
        if missing:
            details = "; ".join(f"{ticker}: {reason}" for ticker, reason in missing.items())
            # yfinance reports an unreachable host as "possibly delisted" for most tickers;
            # when nothing at all came back, the network is the likelier cause.
            hint = (
                "; every ticker failed, so Yahoo is probably unreachable (network down)"
                if len(failures) == len(plans) > 1
                else ""
            )
            raise DataUnavailableError(
                f"yahoo: no data and no cached copy in {self.cache_dir / 'prices'} for "
                f"{', '.join(missing)}{hint} ({details})"
            )

    def _write_prices(self, ticker: str, frame: pd.DataFrame, history_start: pd.Timestamp) -> None:
        frame = frame.copy()
        frame.attrs = {_START_ATTR: _day(history_start)}  # pandas keeps attrs in parquet
        write_frame_atomic(frame, self.price_path(ticker))

    def _read_prices(self, ticker: str) -> pd.DataFrame | None:
        return self._read_cache(self.price_path(ticker), PRICE_COLUMNS)

    @staticmethod
    def _read_cache(path: Path, columns: tuple[str, ...]) -> pd.DataFrame | None:
        """A validated cache file, or None when there is none yet."""
        if not path.exists():
            return None
        frame = read_frame(path)
        missing = [name for name in columns if name not in frame.columns]
        if missing or frame.empty or not isinstance(frame.index, pd.DatetimeIndex):
            raise MalformedFileError(
                f"{path}: not a yahoo cache file (needs a date index and column(s) "
                f"{', '.join(columns)}); delete it to download afresh"
            )
        check_dates(frame.index, str(path))
        return frame

    # ----------------------------------------------------------------- shares

    def _fetch_shares(self, ticker: str, start: pd.Timestamp) -> TickerStatus:
        cached = self._read_cache(self.shares_path(ticker), ("shares",))
        daily, reason = self._download_shares(ticker, start)
        if daily is not None:
            frame = daily.to_frame()
            if cached is not None:
                frame = _splice(cached[["shares"]], frame)
            write_frame_atomic(frame, self.shares_path(ticker))
            return _status(ticker, DOWNLOADED, frame)
        if cached is None:
            message = f"yahoo {ticker} shares: unavailable ({reason}); no cached copy"
            self.report(message)
            return TickerStatus(ticker, UNAVAILABLE, message=message)
        message = (
            f"yahoo {ticker} shares: download failed ({reason}); using cached shares up to "
            f"{_day(cached.index[-1])}"
        )
        self.report(message)
        return _status(ticker, CACHED_STALE, cached, message)

    def _download_shares(self, ticker: str, start: pd.Timestamp) -> tuple[pd.Series | None, str]:
        """Daily share counts, or None and the reason they are unavailable."""
        try:
            raw = self._retry(
                lambda: self.shares_downloader(ticker, _day(start)), f"{ticker} shares"
            )
            daily = None if raw is None else shares_to_daily(raw)
        except Exception as exc:  # shares are optional: any failure means "unavailable"
            return None, f"{type(exc).__name__}: {exc}"
        if daily is None or daily.empty:
            return None, "Yahoo returned no shares-outstanding data"
        return daily, ""

    def _retry(self, call: Callable[[], _T], what: str) -> _T:
        """``call()``, retried with exponential backoff on transient errors."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except self._transient as exc:
                if attempt == self.retries:
                    raise
                delay = self.backoff_seconds * 2**attempt
                self.report(f"yahoo {what}: {type(exc).__name__}: {exc}; retrying in {delay:g}s")
                self.sleep(delay)
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- loading

    def _series(
        self,
        locator: str,
        ticker: str,
        column: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> pd.Series:
        path = self.shares_path(ticker) if column == "shares" else self.price_path(ticker)
        frame = self._read_cache(path, (column,))
        if frame is None:  # fetch() always leaves a cache or raises; guard anyway
            raise DataUnavailableError(f"{self.describe(locator)}: no cached data in {path}")
        series = frame[column].loc[start:end].rename(locator)
        return check_series(series, self.describe(locator), positive=column in POSITIVE_FIELDS)
