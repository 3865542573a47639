"""Exception types raised by regime-model.

Every data problem is a subclass of :class:`RegimeDataError` (itself a ``ValueError``) so
callers can catch the whole family, and the CLI turns any of them into a one-line message
with a non-zero exit.  Messages always name the file or ticker, the column and, where one
exists, the date that is wrong.
"""

from __future__ import annotations


class RegimeModelError(Exception):
    """Base class of every error this package raises on purpose."""


class RegimeDataError(RegimeModelError, ValueError):
    """Input data are unusable; the message says where and why."""


class MalformedFileError(RegimeDataError):
    """A CSV, TOML or parquet file cannot be parsed, or lacks a required column."""


class DuplicateDateError(RegimeDataError):
    """A series has the same date twice."""


class UnsortedDatesError(RegimeDataError):
    """A series' dates are not in ascending order."""


class NonPositivePriceError(RegimeDataError):
    """A price (or other quantity taken in logs) is zero or negative."""


class EmptySeriesError(RegimeDataError):
    """A series or feature column has no usable values at all."""


class ConstantFeatureError(RegimeDataError):
    """A feature column takes a single value, so it carries no information."""


class InsufficientDataError(RegimeDataError):
    """A series has fewer observations than the task needs."""


class UnknownSeriesError(RegimeDataError):
    """A ticker, file or column that the universe names does not exist."""


class UniverseError(RegimeDataError):
    """A universe file is well-formed TOML but declares something invalid."""


class DataUnavailableError(RegimeDataError):
    """A download failed and no cached copy exists to fall back on."""


class DateRangeError(RegimeDataError):
    """A start/end date is unparseable or the range is empty."""
