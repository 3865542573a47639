"""Universe files: which series to load, from where, and how to turn them into features.

A universe is a TOML file with one ``[[series]]`` table per feature::

    [[series]]
    name = "btc_return"            # feature column name
    group = "crypto"               # equity | crypto | breadth | flows | macro
    transform = "log_return"       # see regime_model.data.transforms.TRANSFORMS
    calendar = "crypto"            # equity | crypto | release
    yahoo = "BTC-USD"              # one locator per source this series can come from
    csv = ["btc_usd_yf.csv:close", "btc_usd_coingecko.csv:price_usd"]  # list = splice
    synthetic = "btc"

A transform with several inputs (``net_liquidity_change`` needs ``assets`` and
``reverse_repo``) takes a table of locators per source instead of a string, keyed by the
transform's input roles; ``[series.input_options.<role>]`` overrides the calendar settings
(release lag, staleness, unit scale) of one input.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from regime_model.data.transforms import TRANSFORMS, input_roles
from regime_model.data.validation import parse_date
from regime_model.errors import MalformedFileError, UniverseError, UnknownSeriesError

SOURCES = ("yahoo", "csv", "synthetic")
GROUPS = ("equity", "crypto", "breadth", "flows", "macro")
CALENDARS = ("equity", "crypto", "release")
STANDARDIZE = ("none", "expanding", "trailing")

# Keys a [[series]] table may hold besides the source locators.
_SERIES_KEYS = {
    "name",
    "group",
    "transform",
    "calendar",
    "description",
    "window",
    "multiplier",
    "standardize",
    "standardize_window",
    "standardize_min_periods",
    "release_lag_days",
    "max_staleness_days",
    "optional",
    "input_options",
    *SOURCES,
}
_INPUT_OPTION_KEYS = {"calendar", "release_lag_days", "max_staleness_days", "scale", "valid_from"}


@dataclass(frozen=True)
class InputSpec:
    """One raw input of a feature, e.g. the ``price`` of ``iwm_return``.

    ``locators`` maps a source name to the locators to try, first one preferred; when
    several are given their histories are spliced (see ``features.splice_levels``).
    ``release_lag_days`` delays an observation until it was published;
    ``max_staleness_days`` is how long a value may be carried forward on the target
    calendar (0 = only on its own date). ``scale`` converts units (e.g. bn -> mn);
    values observed before ``valid_from`` are treated as missing (a vendor history known
    to be unreliable before some date), per source.
    """

    role: str
    locators: dict[str, tuple[str, ...]]
    calendar: str
    release_lag_days: int = 0
    max_staleness_days: int = 0
    scale: float = 1.0
    valid_from: dict[str, pd.Timestamp] | None = None


@dataclass(frozen=True)
class SeriesSpec:
    """One feature of the universe: its inputs, transform and standardisation."""

    name: str
    group: str
    transform: str
    inputs: tuple[InputSpec, ...]
    description: str = ""
    window: int | None = None
    multiplier: float | None = None
    standardize: str = "none"
    standardize_window: int | None = None
    standardize_min_periods: int | None = None
    optional: bool = False
    variadic: bool = False

    def inputs_for(self, source: str) -> tuple[InputSpec, ...]:
        """The inputs that ``source`` provides (a basket uses whichever members it has)."""
        return tuple(spec for spec in self.inputs if source in spec.locators)

    def has_source(self, source: str) -> bool:
        """True when ``source`` can provide this feature: all inputs, or for a basket any."""
        available = self.inputs_for(source)
        return bool(available) and (self.variadic or len(available) == len(self.inputs))


@dataclass(frozen=True)
class Universe:
    """A parsed universe file."""

    name: str
    series: tuple[SeriesSpec, ...]
    path: str
    description: str = ""
    start: pd.Timestamp | None = None
    calendar_series: str | None = None

    @property
    def groups(self) -> dict[str, str]:
        """Feature name -> group."""
        return {spec.name: spec.group for spec in self.series}

    def select(self, names: list[str]) -> Universe:
        """A universe restricted to the named features, in the given order."""
        by_name = {spec.name: spec for spec in self.series}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise UnknownSeriesError(
                f"{self.path}: no series named {', '.join(unknown)} "
                f"(available: {', '.join(by_name)})"
            )
        return Universe(
            self.name,
            tuple(by_name[n] for n in names),
            self.path,
            self.description,
            self.start,
            self.calendar_series,
        )


def default_universe_path() -> Path:
    """Path of the universe file shipped with the package."""
    return Path(str(resources.files("regime_model") / "universes" / "default.toml"))


def load_universe(path: str | Path | None = None) -> Universe:
    """Read and validate a universe TOML file (the packaged default when ``path`` is None)."""
    path = Path(path) if path is not None else default_universe_path()
    if not path.is_file():
        raise UnknownSeriesError(f"universe file not found: {path}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MalformedFileError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"{path}: not a UTF-8 text file") from exc
    header = document.get("universe", {})
    tables = document.get("series")
    if not isinstance(tables, list) or not tables:
        raise UniverseError(f"{path}: no [[series]] tables")
    series = tuple(
        _parse_series(table, f"{path}: series #{i + 1}") for i, table in enumerate(tables)
    )
    names = [spec.name for spec in series]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UniverseError(f"{path}: series name used twice: {', '.join(duplicated)}")
    calendar_series = header.get("calendar_series")
    if calendar_series is not None and calendar_series not in names:
        raise UniverseError(f"{path}: calendar_series {calendar_series!r} is not a series name")
    return Universe(
        name=str(header.get("name", path.stem)),
        series=series,
        path=str(path),
        description=str(header.get("description", "")),
        start=parse_date(header.get("start"), f"{path}: [universe] start"),
        calendar_series=header.get("calendar_series"),
    )


def _parse_series(table: dict[str, Any], where: str) -> SeriesSpec:
    if "name" in table:
        where = f"{where.rsplit(':', 1)[0]}: series '{table['name']}'"
    unknown = set(table) - _SERIES_KEYS
    if unknown:
        raise UniverseError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "group", "transform"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise UniverseError(f"{where}: '{key}' is required and must be a string")
    _check_choice(table["group"], GROUPS, "group", where)
    if table["transform"] not in TRANSFORMS:
        _check_choice(table["transform"], tuple(TRANSFORMS), "transform", where)
    calendar = table.get("calendar", "equity")
    _check_choice(calendar, CALENDARS, "calendar", where)
    standardize = table.get("standardize", "none")
    _check_choice(standardize, STANDARDIZE, "standardize", where)
    if standardize == "trailing" and not table.get("standardize_window"):
        raise UniverseError(f"{where}: standardize = 'trailing' needs standardize_window")

    variadic = input_roles(table["transform"]) == ("*",)
    roles = _roles(table, input_roles(table["transform"]), where)
    options = table.get("input_options", {})
    if not isinstance(options, dict) or set(options) - set(roles):
        raise UniverseError(
            f"{where}: input_options must be tables named after the inputs {', '.join(roles)}"
        )
    inputs = []
    for role in roles:
        locators = {}
        for source in SOURCES:
            value = table.get(source)
            # A basket member that this source does not name is simply not provided by it.
            if value is None or (variadic and role not in value):
                continue
            locators[source] = _locators(value, role, len(roles), where, source)
        role_options = options.get(role, {})
        unknown = set(role_options) - _INPUT_OPTION_KEYS
        if unknown:
            raise UniverseError(f"{where}: input_options.{role}: unknown key(s) {sorted(unknown)}")
        role_calendar = role_options.get("calendar", calendar)
        _check_choice(role_calendar, CALENDARS, f"input_options.{role}.calendar", where)
        inputs.append(
            InputSpec(
                role=role,
                locators=locators,
                calendar=role_calendar,
                release_lag_days=_non_negative_int(
                    role_options.get("release_lag_days", table.get("release_lag_days", 0)),
                    "release_lag_days",
                    where,
                ),
                max_staleness_days=_non_negative_int(
                    role_options.get("max_staleness_days", table.get("max_staleness_days", 0)),
                    "max_staleness_days",
                    where,
                ),
                scale=float(role_options.get("scale", 1.0)),
                valid_from=_valid_from(role_options.get("valid_from"), f"{where}: {role}"),
            )
        )
    if not any(source in table for source in SOURCES):
        raise UniverseError(f"{where}: no source locator (one of {', '.join(SOURCES)})")
    return SeriesSpec(
        name=table["name"],
        group=table["group"],
        transform=table["transform"],
        inputs=tuple(inputs),
        description=str(table.get("description", "")),
        window=_positive_int_or_none(table.get("window"), "window", where),
        multiplier=float(table["multiplier"]) if "multiplier" in table else None,
        standardize=standardize,
        standardize_window=_positive_int_or_none(
            table.get("standardize_window"), "standardize_window", where
        ),
        standardize_min_periods=_positive_int_or_none(
            table.get("standardize_min_periods"), "standardize_min_periods", where
        ),
        optional=bool(table.get("optional", False)),
        variadic=variadic,
    )


def _roles(table: dict[str, Any], declared: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Input roles of a series: fixed by the transform, or read from the table (``*``)."""
    if declared != ("*",):
        return declared
    # Variadic transforms (an equal-weight basket) take whatever roles the locators name.
    roles: list[str] = []
    for source in SOURCES:
        value = table.get(source)
        if value is None:
            continue
        if not isinstance(value, dict) or not value:
            raise UniverseError(
                f"{where}: transform '{table['transform']}' takes a table of named inputs "
                f'for \'{source}\', e.g. {source} = {{ sol = "...", xrp = "..." }}'
            )
        roles.extend(role for role in value if role not in roles)
    return tuple(roles)


def _locators(value: Any, role: str, n_roles: int, where: str, source: str) -> tuple[str, ...]:
    if isinstance(value, dict):
        if role not in value:
            raise UniverseError(f"{where}: {source} locators lack input '{role}'")
        value = value[role]
    elif n_roles > 1:
        raise UniverseError(
            f"{where}: transform needs inputs {role!r} and others; give {source} as a table"
        )
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise UniverseError(f"{where}: {source} locator must be a string or list of strings")
    return tuple(value)


def _valid_from(value: Any, where: str) -> dict[str, pd.Timestamp] | None:
    """``valid_from`` is a table {source: date}: vendor quirks belong to one source."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(SOURCES):
        raise UniverseError(f'{where}: valid_from must be a table such as {{ csv = "2020-01-01" }}')
    return {
        source: parse_date(date, f"{where}: valid_from.{source}") for source, date in value.items()
    }


def _check_choice(value: Any, choices: tuple[str, ...], key: str, where: str) -> None:
    if value not in choices:
        raise UniverseError(f"{where}: {key} {value!r} is not one of {', '.join(choices)}")


def _non_negative_int(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UniverseError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _positive_int_or_none(value: Any, key: str, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UniverseError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value
