"""Figures of fitted runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from regime_model.results import RegimeResult  # noqa: E402

_COLOURS = ["#c0392b", "#7f8c8d", "#95a5a6", "#bdc3c7", "#27ae60"]


def plot_regimes(result: RegimeResult, path: str | Path, kind: str = "filtered") -> Path:
    """Anchor feature path on top, each regime's probability with its HDI band below."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probabilities = result.regime_probabilities(kind)
    anchor = result.config.get("anchor") or result.columns[0]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}
    )
    series = _anchor_path(result, anchor)
    if series is not None:
        top.plot(result.dates, series, color="black", linewidth=0.8)
        top.set_ylabel(f"{anchor}\n(cumulative)" if anchor.endswith("_return") else anchor)
    top.set_title(f"{result.model}: {kind} regime probabilities")
    # risk_off red, risk_on green, neutral regimes grey.
    colours = [_COLOURS[0], *_COLOURS[1 : result.n_regimes - 1], _COLOURS[-1]]
    for name, colour in zip(result.regime_names, colours, strict=True):
        frame = probabilities[name]
        bottom.plot(result.dates, frame["mean"], color=colour, linewidth=0.9, label=name)
        if result.has_bands:
            bottom.fill_between(
                result.dates, frame["lower"], frame["upper"], color=colour, alpha=0.25, linewidth=0
            )
        top.fill_between(
            result.dates,
            0,
            1,
            where=frame["mean"] > 0.5,
            color=colour,
            alpha=0.12,
            transform=top.get_xaxis_transform(),
            linewidth=0,
        )
    bottom.set_ylim(0, 1)
    bottom.set_ylabel(f"P(regime), {kind}")
    bottom.legend(loc="upper left", ncol=result.n_regimes, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _anchor_path(result: RegimeResult, anchor: str) -> np.ndarray | None:
    """The anchor feature as stored with the run, accumulated when it is a return."""
    features_path = result.config.get("features_path")
    if not features_path or not Path(features_path).is_file():
        return None
    from regime_model.data.features import read_features

    frame = read_features(features_path).frame.reindex(result.dates)
    if anchor not in frame:
        return None
    values = frame[anchor]
    return values.fillna(0).cumsum().to_numpy() if anchor.endswith("_return") else values.to_numpy()
