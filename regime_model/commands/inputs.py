"""From the parsed command line to a model's inputs: the feature set and columns, and the
model config (built from the flags the user gave, :mod:`regime_model.model_options`)."""

from __future__ import annotations

import argparse
from typing import Any

from regime_model.data.features import FeatureSet, read_features
from regime_model.errors import RegimeModelError
from regime_model.model_options import MODEL_OPTIONS, option_config


def model_inputs(args: argparse.Namespace) -> tuple[FeatureSet, list[str] | None]:
    """The feature set (with --group applied) and the --columns list (None: all)."""
    groups = dict(parse_group(item) for item in args.group)
    features = read_features(args.features, groups=groups)
    columns = None
    if args.columns is not None:
        columns = [c.strip() for c in args.columns.split(",")]
        if not all(columns):
            raise RegimeModelError(f"--columns has an empty name: {args.columns!r}")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise RegimeModelError(f"--columns lists {', '.join(repeated)} more than once")
    return features, columns


def model_config(args: argparse.Namespace, tolerated: tuple[str, ...] = ()) -> dict[str, Any]:
    """The model the flags describe, as its full config (every option resolved, as
    config.json records it). A flag the model does not take is an error unless one of the
    ``tolerated`` models takes it (a backtest's baseline model shares its flags)."""
    from regime_model.models import model_from_config

    given = {option.name: getattr(args, option.name, None) for option in MODEL_OPTIONS}
    try:
        return model_from_config(option_config(args.model, given, tolerated)).get_config()
    except ValueError as exc:
        raise RegimeModelError(str(exc)) from exc


def parse_group(item: str) -> tuple[str, str]:
    column, separator, group = item.partition("=")
    if not separator or not column or not group:
        raise RegimeModelError(f"--group takes COLUMN=GROUP, got {item!r}")
    return column, group
