"""Universe + source -> model-ready feature table, without look-ahead.

:func:`build_features` is the one place where raw series become features:

1. load every input the selected series need from the source (one batched call);
2. check positivity where the transform takes logs, splice vendor histories, scale units;
3. build the target calendar and sample each input as of each date (``calendar.py``);
4. apply the transform and the standardisation (``transforms.py``), all causal;
5. trim to the requested dates and check every column (enough data, not constant).

The result is a :class:`FeatureSet`: a ``date``-indexed frame with one column per feature
(missing values stay missing; models mask them), the group of each column, and a report of
series that could not be built and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from regime_model.data.cache import write_text_atomic
from regime_model.data.calendar import align_to_calendar, build_grid, coarse_observations
from regime_model.data.sources import SeriesSource, read_dated_csv
from regime_model.data.transforms import TRANSFORMS, TransformContext, standardize
from regime_model.data.universe import InputSpec, SeriesSpec, Universe
from regime_model.data.validation import (
    check_date_range,
    check_dates,
    check_feature_frame,
    check_series,
)
from regime_model.errors import (
    EmptySeriesError,
    MalformedFileError,
    RegimeDataError,
    UniverseError,
)

DEFAULT_MIN_OBSERVATIONS = 30
# Expanding/trailing z-scores need about a year of history before they are shown.
_STANDARDIZE_MIN_PERIODS = {"daily": 252, "weekly": 52}


@dataclass
class FeatureSet:
    """Features on one calendar plus what is needed to interpret them.

    ``frame``: (T, D) floats indexed by ``date``; NaN = not observed on that date.
    ``groups``: column -> group (equity, crypto, breadth, flows, macro).
    ``skipped``: series of the universe that were not built, with the reason.
    ``warnings``: what the build noticed and handled (e.g. a calendar gap left missing).
    ``coarse_columns``, ``coarse_freq``: the columns observed on a coarse calendar (a
    two-scale model's slow features), each present only on the last date of an ended
    coarse period (:meth:`with_coarse`).
    """

    frame: pd.DataFrame
    groups: dict[str, str]
    freq: str
    source: str = ""
    universe: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    coarse_columns: list[str] = field(default_factory=list)
    coarse_freq: str = ""

    def with_coarse(self, columns: list[str], freq: str = "M") -> FeatureSet:
        """A copy whose ``columns`` hold their values only on each ended coarse period's
        last date (:func:`~regime_model.data.calendar.coarse_observations`)."""
        try:
            frame = coarse_observations(self.frame, columns, freq)
        except ValueError as exc:
            raise RegimeDataError(str(exc)) from exc
        return replace(self, frame=frame, coarse_columns=list(columns), coarse_freq=freq)

    @property
    def mask(self) -> np.ndarray:
        """(T, D) booleans, True where a value is observed."""
        return self.frame.notna().to_numpy()

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (CSV with a ``date`` column) and its metadata beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = self.frame.copy()
        frame.index = frame.index.strftime("%Y-%m-%d")
        write_text_atomic(frame.to_csv(index_label="date", float_format="%.10g"), path)
        meta = {
            "freq": self.freq,
            "source": self.source,
            "universe": self.universe,
            "groups": self.groups,
            "skipped": self.skipped,
            "warnings": self.warnings,
        }
        if self.coarse_columns:
            meta["coarse"] = {"freq": self.coarse_freq, "columns": self.coarse_columns}
        write_text_atomic(json.dumps(meta, indent=2) + "\n", metadata_path(path))
        return path


def metadata_path(features_path: str | Path) -> Path:
    """``features.csv`` -> ``features.meta.json``: where groups and frequency are kept."""
    features_path = Path(features_path)
    return features_path.with_name(features_path.stem + ".meta.json")


def read_features(path: str | Path, groups: dict[str, str] | None = None) -> FeatureSet:
    """Read a feature CSV (a ``date`` column plus numeric columns) and its metadata.

    Groups come from the metadata file written by :meth:`FeatureSet.save`, updated by
    ``groups``; columns without a known group get ``"unknown"``.
    """
    path = Path(path)
    raw = read_dated_csv(path, missing="feature file not found")
    if len(raw.columns) < 2:
        raise MalformedFileError(f"{path}: no feature columns besides 'date'")
    columns = {
        column: check_series(
            pd.Series(raw[column].to_numpy(), index=raw["date"].to_numpy()),
            f"{path}: column '{column}'",
        )
        for column in raw.columns
        if column != "date"
    }
    frame = pd.DataFrame(columns)
    frame.index.name = "date"
    meta: dict = {}
    meta_file = metadata_path(path)
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MalformedFileError(f"{meta_file}: not valid JSON: {exc}") from exc
    known = {**meta.get("groups", {}), **(groups or {})}
    return FeatureSet(
        frame=frame,
        groups={column: known.get(column, "unknown") for column in frame.columns},
        freq=meta.get("freq", infer_frequency(frame.index)),
        source=meta.get("source", ""),
        universe=meta.get("universe", ""),
        skipped=meta.get("skipped", {}),
        warnings=meta.get("warnings", []),
        coarse_columns=meta.get("coarse", {}).get("columns", []),
        coarse_freq=meta.get("coarse", {}).get("freq", ""),
    )


# A daily equity calendar may skip this many business days in a row (the longest US
# market closure since 1900 not counted in weeks: 11-14 September 2001, four days); a
# longer run of missing days is a hole in the data, not a holiday.
MAX_CLOSED_BUSINESS_DAYS = 4


def fill_calendar_gaps(
    grid: pd.DatetimeIndex, freq: str, calendar: str, series: list[str]
) -> tuple[pd.DatetimeIndex, list[str]]:
    """The grid with the dates a hole in the calendar series left out put back (as rows
    whose values will be missing), and a warning per hole. Without them, every change
    across the hole would be one multi-period change presented as one period's.

    Weekly: every Friday between the first and the last. Daily crypto: every day. Daily
    equity: the business days of any run of more than MAX_CLOSED_BUSINESS_DAYS missing
    ones (holidays stay off the grid)."""
    if len(grid) < 2:
        return grid, []
    if freq == "weekly":
        full = pd.date_range(grid[0], grid[-1], freq="W-FRI")
    elif calendar == "crypto":
        full = pd.date_range(grid[0], grid[-1], freq="D")
    else:
        business = pd.bdate_range(grid[0], grid[-1])
        missing = np.flatnonzero(~business.isin(grid))
        runs = np.split(missing, np.flatnonzero(np.diff(missing) > 1) + 1)
        long = [run for run in runs if len(run) > MAX_CLOSED_BUSINESS_DAYS]
        full = grid.union(business[np.concatenate(long)] if long else business[:0])
    added = full.difference(grid)
    if added.empty:
        return grid, []
    # One warning per run of consecutive added dates.
    positions = np.flatnonzero(full.isin(added))
    breaks = np.flatnonzero(np.diff(positions) > 1) + 1
    warnings = []
    for run in np.split(positions, breaks):
        first, last = full[run[0]], full[run[-1]]
        warnings.append(
            f"calendar gap: {', '.join(series)} has no dates from {first:%Y-%m-%d} to "
            f"{last:%Y-%m-%d} ({len(run)} {freq} dates): those dates are kept as missing, "
            "and no change across the gap is presented as one period's"
        )
    return pd.DatetimeIndex(full.to_numpy(), name="date").as_unit(grid.unit), warnings


def infer_frequency(index: pd.DatetimeIndex) -> str:
    """``weekly`` when the median gap between dates is about a week, else ``daily``."""
    if len(index) < 2:
        return "daily"
    return "weekly" if index.to_series().diff().median() >= pd.Timedelta(days=5) else "daily"


def build_features(
    universe: Universe,
    source: SeriesSource,
    freq: str = "daily",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
    bridge_gaps: bool = False,
) -> FeatureSet:
    """Build the features of ``universe`` from ``source`` on a daily or weekly calendar.

    Inputs are read in full (earlier history warms up rolling windows and expanding
    standardisation); the output covers ``start``..``end``. Every value at date t depends
    on raw data at dates <= t only. A hole in the calendar series is kept as missing dates
    (:func:`fill_calendar_gaps`, with a warning); ``bridge_gaps=True`` takes the calendar
    series' dates as they are (for hand-made calendars that skip stretches on purpose).
    """
    start = start if start is not None else universe.start
    check_date_range(start, end)
    skipped = {
        spec.name: f"no {source.name} locator in the universe"
        for spec in universe.series
        if not spec.has_source(source.name)
    }
    candidates = [spec for spec in universe.series if spec.has_source(source.name)]
    if not candidates:
        raise UniverseError(f"{universe.path}: no series has a '{source.name}' locator")

    raw = _load_inputs(candidates, source, skipped)
    selected = [spec for spec in candidates if spec.name not in skipped]
    prepared = {spec.name: _prepare_inputs(spec, raw, source) for spec in selected}

    dates_by_calendar: dict[str, list[pd.DatetimeIndex]] = {}
    # Vendor files sometimes carry rows on exchange holidays; a declared calendar series
    # (IWM in the default universe) keeps those dates off the grid.
    anchors = [spec for spec in selected if spec.name == universe.calendar_series] or selected
    for spec in anchors:
        for input_spec, series in zip(
            _effective_inputs(spec, source.name), prepared[spec.name].values(), strict=True
        ):
            dates_by_calendar.setdefault(input_spec.calendar, []).append(series.dropna().index)
    grid = build_grid(dates_by_calendar, freq)
    calendar = "equity" if "equity" in dates_by_calendar else "crypto"
    warnings: list[str] = []
    if not bridge_gaps:
        names = [spec.name for spec in anchors]
        grid, warnings = fill_calendar_gaps(grid, freq, calendar, names)
    if freq == "weekly":
        periods_per_year = 52.0
    else:
        periods_per_year = 252.0 if "equity" in dates_by_calendar else 365.0

    columns = {}
    for spec in selected:
        transform = TRANSFORMS[spec.transform]
        aligned = {
            role: align_to_calendar(
                series, grid, freq, input_spec.release_lag_days, input_spec.max_staleness_days
            )
            for (role, series), input_spec in zip(
                prepared[spec.name].items(), _effective_inputs(spec, source.name), strict=True
            )
        }
        window = spec.window or (transform.default_window or {}).get(freq, 1)
        values = transform.compute(aligned, TransformContext(window, periods_per_year))
        multiplier = spec.multiplier if spec.multiplier is not None else transform.multiplier
        min_periods = spec.standardize_min_periods or _STANDARDIZE_MIN_PERIODS[freq]
        values = standardize(
            values * multiplier, spec.standardize, spec.standardize_window, min_periods
        )
        columns[spec.name] = values.replace([np.inf, -np.inf], np.nan)

    frame = pd.DataFrame(columns, index=grid)
    frame.index.name = "date"
    frame = _trim(frame, start, end)
    if frame.empty:
        raise EmptySeriesError(
            f"no feature values between {start or 'the first date'} and {end or 'the last date'}"
        )
    check_feature_frame(frame, min_observations)
    return FeatureSet(
        frame=frame,
        groups={spec.name: spec.group for spec in selected},
        freq=freq,
        source=source.name,
        universe=universe.name,
        skipped=skipped,
        warnings=warnings,
    )


def _load_inputs(
    candidates: list[SeriesSpec], source: SeriesSource, skipped: dict[str, str]
) -> dict[str, pd.Series]:
    """Load required series in one call; optional ones one by one, recording failures."""
    required = [spec for spec in candidates if not spec.optional]
    raw = source.load(_unique_locators(required, source.name)) if required else {}
    for spec in candidates:
        if not spec.optional:
            continue
        try:
            raw.update(source.load(_unique_locators([spec], source.name)))
        except RegimeDataError as exc:
            skipped[spec.name] = f"optional input unavailable: {exc}"
    return raw


def _unique_locators(specs: list[SeriesSpec], source_name: str) -> list[str]:
    locators = [
        locator
        for spec in specs
        for item in spec.inputs_for(source_name)
        for locator in item.locators[source_name]
    ]
    return list(dict.fromkeys(locators))


def _prepare_inputs(
    spec: SeriesSpec, raw: dict[str, pd.Series], source: SeriesSource
) -> dict[str, pd.Series]:
    """Positivity checks, vendor splices, unit scaling and any native-calendar step."""
    transform = TRANSFORMS[spec.transform]
    prepared = {}
    for input_spec in spec.inputs_for(source.name):
        positive = "*" in transform.positive_roles or input_spec.role in transform.positive_roles
        chain = [
            check_series(raw[locator], source.describe(locator), positive=positive)
            for locator in input_spec.locators[source.name]
        ]
        values = splice_levels(chain, spec.name) * input_spec.scale
        valid_from = (input_spec.valid_from or {}).get(source.name)
        if valid_from is not None:
            values = values[values.index >= valid_from]
        prepared[input_spec.role] = values
    if transform.native is not None:
        prepared = transform.native(prepared)
    return prepared


def _effective_inputs(spec: SeriesSpec, source_name: str) -> tuple[InputSpec, ...]:
    """Calendar settings per transform role (a native step merges inputs into one)."""
    inputs = spec.inputs_for(source_name)
    return inputs if TRANSFORMS[spec.transform].native is None else inputs[:1]


def splice_levels(chain: list[pd.Series], name: str) -> pd.Series:
    """Join vendor histories of one level series, the first one preferred.

    Before the preferred series starts, the next one is used, rescaled by the ratio of
    the two on their first common date, so returns are the older vendor's and levels
    connect without a jump. Gaps inside the preferred history are not filled.
    """
    spliced = chain[0]
    for older in chain[1:]:
        first = spliced.first_valid_index()
        common = spliced.dropna().index.intersection(older.dropna().index)
        if len(common) == 0:
            raise UniverseError(f"series '{name}': cannot splice histories with no common date")
        anchor = common[0]
        ratio = spliced[anchor] / older[anchor]
        earlier = older[older.index < first].dropna() * ratio
        spliced = pd.concat([earlier, spliced[spliced.index >= first]])
    return spliced


def _trim(
    frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
    """Restrict to start..end and drop leading/trailing dates where no feature has a value."""
    if start is not None:
        frame = frame[frame.index >= start]
    if end is not None:
        frame = frame[frame.index <= end]
    return trim_unobserved(frame)


def trim_unobserved(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the leading and trailing dates on which no column has a value."""
    observed = frame.notna().any(axis=1).to_numpy()
    if not observed.any():
        return frame.iloc[0:0]
    first, last = observed.argmax(), len(observed) - observed[::-1].argmax()
    return frame.iloc[first:last]


def coverage_table(features: FeatureSet) -> pd.DataFrame:
    """Per column: group, first and last date with a value, count and missing share."""
    frame = features.frame
    rows = {}
    for column in frame.columns:
        observed = frame[column].dropna()
        rows[column] = {
            "group": features.groups.get(column, "unknown"),
            "first": observed.index[0].strftime("%Y-%m-%d") if len(observed) else "-",
            "last": observed.index[-1].strftime("%Y-%m-%d") if len(observed) else "-",
            "values": len(observed),
            "missing": f"{frame[column].isna().mean():.1%}",
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def as_feature_set(frame: pd.DataFrame, where: str = "features") -> FeatureSet:
    """A plain DataFrame as a feature set: dates from its index, or from a ``date``
    column when the index is the default RangeIndex (as ``pd.read_csv`` gives it);
    groups from ``frame.attrs["groups"]`` when set, else from the default universe for
    the columns it names (``iwm_return`` is equity), else "unknown"; the frequency
    inferred from the dates (checked by :func:`validated`)."""
    if "date" in frame.columns and isinstance(frame.index, pd.RangeIndex):
        frame = frame.set_index("date")
    from regime_model.data.universe import load_universe

    known = {**load_universe().groups, **frame.attrs.get("groups", {})}
    index = check_dates(frame.index, where)
    frame = frame.set_axis(index)
    frame.index.name = "date"
    return FeatureSet(
        frame,
        {str(column): known.get(column, "unknown") for column in frame.columns},
        infer_frequency(index),
        source="DataFrame",
    )


def validated(features: FeatureSet, where: str = "features") -> FeatureSet:
    """``features`` checked as a model input, with its index as a clean DatetimeIndex:
    a FeatureSet or a DataFrame (:func:`as_feature_set`), unique column names, dates
    parseable (strings ISO only), unique and ascending, values numeric and finite (NaN:
    not observed). The one check every entry point (CLI, Python API, backtest,
    calibration) goes through."""
    if isinstance(features, pd.DataFrame):
        features = as_feature_set(features, where)
    if not isinstance(features, FeatureSet):
        raise MalformedFileError(
            f"{where} must be a pandas DataFrame with a DatetimeIndex or a FeatureSet, got "
            f"{type(features).__name__}"
        )
    frame = features.frame
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise MalformedFileError(f"{where}: column {', '.join(repeated)} appears twice")
    index = check_dates(frame.index, where)
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise MalformedFileError(f"{where}: column '{column}' is not numeric ({values.dtype})")
        infinite = np.isinf(values.to_numpy(dtype=float))
        if infinite.any():
            raise MalformedFileError(
                f"{where}: column '{column}' is infinite on {index[infinite][0]:%Y-%m-%d}"
            )
    if index is frame.index:
        return features
    return FeatureSet(
        frame.set_axis(index),
        features.groups,
        features.freq,
        features.source,
        features.universe,
        features.skipped,
        features.warnings,
    )
