"""Where raw series come from: the source protocol, a CSV directory and in-memory frames.

A source turns *locators* (strings from the universe file) into validated raw series on
their own dates. The Yahoo source lives in ``yahoo.py``; the synthetic generator hands its
output to :class:`FrameSource`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import pandas as pd

from regime_model.data.validation import check_series
from regime_model.errors import MalformedFileError, UnknownSeriesError


class SeriesSource(Protocol):
    """Anything that can load raw series by locator."""

    name: str

    def load(
        self,
        locators: list[str],
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> dict[str, pd.Series]:
        """Locator -> float series indexed by ascending, unique, tz-naive dates."""
        ...

    def describe(self, locator: str) -> str:
        """Human-readable origin of a locator, used in error messages."""
        ...


class FrameSource:
    """Series held in memory under their locator names (tests, synthetic data)."""

    def __init__(self, series: Mapping[str, pd.Series], name: str = "synthetic") -> None:
        self.name = name
        self._series = dict(series)

    def describe(self, locator: str) -> str:
        return f"{self.name} series '{locator}'"

    def load(
        self,
        locators: list[str],
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> dict[str, pd.Series]:
        unknown = [locator for locator in locators if locator not in self._series]
        if unknown:
            raise UnknownSeriesError(
                f"{self.name}: unknown series {', '.join(unknown)} "
                f"(available: {', '.join(sorted(self._series))})"
            )
        return {
            locator: check_series(self._series[locator], self.describe(locator))
            for locator in locators
        }


class CsvDirectorySource:
    """One CSV per series family with a ``date`` column; locators are ``file.csv:column``.

    This reads data such as the repository's ``../shared/data`` snapshot by path; nothing
    is copied. Each file is parsed once per :meth:`load` call.
    """

    name = "csv"

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise UnknownSeriesError(f"data directory not found: {self.data_dir}")

    def describe(self, locator: str) -> str:
        file_name, column = _split_locator(locator)
        return f"{self.data_dir / file_name}: column '{column}'"

    def load(
        self,
        locators: list[str],
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> dict[str, pd.Series]:
        frames = {
            name: self._read(name) for name in _unique(_split_locator(x)[0] for x in locators)
        }
        loaded = {}
        for locator in locators:
            file_name, column = _split_locator(locator)
            frame = frames[file_name]
            if column not in frame.columns:
                available = ", ".join(c for c in frame.columns if c != "date")
                raise UnknownSeriesError(
                    f"{self.data_dir / file_name}: no column '{column}' (columns: {available})"
                )
            series = pd.Series(frame[column].to_numpy(), index=frame["date"].to_numpy())
            loaded[locator] = check_series(series.rename(column), self.describe(locator))
        return loaded

    def _read(self, file_name: str) -> pd.DataFrame:
        # A universe file names the files; it must not reach outside the data directory
        # (an absolute path, "..", or a symlink pointing away).
        root = self.data_dir.resolve()
        path = (self.data_dir / file_name).resolve()
        if not path.is_relative_to(root):
            raise UnknownSeriesError(
                f"csv locator file {file_name!r} is outside the data directory {self.data_dir}"
            )
        return read_dated_csv(path)


def read_dated_csv(path: Path, missing: str = "file not found") -> pd.DataFrame:
    """A CSV with a ``date`` column, as strings (validation happens per column later)."""
    if not path.is_file():
        raise UnknownSeriesError(f"{missing}: {path}")
    check_csv_shape(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MalformedFileError(f"{path}: cannot parse as CSV: {exc}") from exc
    if "date" not in frame.columns:
        raise MalformedFileError(
            f"{path}: no 'date' column (columns: {', '.join(map(str, frame.columns))})"
        )
    if frame["date"].isna().any():
        row = int(frame["date"].isna().to_numpy().nonzero()[0][0]) + 2
        raise MalformedFileError(f"{path}: empty date on line {row}")
    return frame


def check_csv_shape(path: Path) -> None:
    """Every row has as many fields as the header, whose names are unique: pandas would
    pad a short row (or a truncated last line) with missing values, or rename a repeated
    column, without a word. Blank lines are skipped, as pandas does."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = csv.reader(stream)
            header = next(rows, None)
            if header is None:
                raise MalformedFileError(f"{path}: empty file")
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise MalformedFileError(f"{path}: column {', '.join(repeated)} appears twice")
            for row in rows:
                if row and len(row) != len(header):
                    raise MalformedFileError(
                        f"{path}: cannot parse as CSV: line {rows.line_num} has {len(row)} "
                        f"fields, the header {len(header)} (a short, long or truncated row)"
                    )
    except (csv.Error, UnicodeDecodeError) as exc:
        raise MalformedFileError(f"{path}: cannot parse as CSV: {exc}") from exc


def _split_locator(locator: str) -> tuple[str, str]:
    file_name, separator, column = locator.rpartition(":")
    if not separator or not file_name or not column:
        raise UnknownSeriesError(f"csv locator {locator!r} must look like 'file.csv:column'")
    return file_name, column


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
