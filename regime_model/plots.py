"""Figures of fitted runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Figure objects, not pyplot: writing files needs no display and no global backend, so
# importing this module leaves a notebook's or an application's matplotlib setup alone.
from matplotlib.figure import Figure

from regime_model.results import RegimeResult

_COLOURS = ["#c0392b", "#7f8c8d", "#95a5a6", "#bdc3c7", "#27ae60"]
HOLDOUT_COLOUR = "#2c3e50"


def regime_colours(names: list[str]) -> dict[str, str]:
    """One colour per regime, the same in every figure: the first (risk_off) red, the
    last (risk_on) green, the ones between greys."""
    return dict(zip(names, [_COLOURS[0], *_COLOURS[1 : len(names) - 1], _COLOURS[-1]], strict=True))


def anchor_label(anchor: str) -> str:
    """The anchor's axis label with its unit (the package's feature conventions)."""
    if anchor.endswith("_return"):
        return f"{anchor}\ncumulative log return (%)"
    return anchor


def plot_regimes(
    result: RegimeResult, path: str | Path, kind: str = "filtered", hdi: float = 0.9
) -> Path:
    """Write :func:`regimes_figure` to ``path`` (PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    regimes_figure(result, kind, hdi).savefig(path, dpi=120)
    return path


def regimes_figure(result: RegimeResult, kind: str = "filtered", hdi: float = 0.9) -> Figure:
    """The anchor feature's path on top, shaded by the regime whose mean P is above 0.5;
    below, each regime's P with its HDI band; the held-out stretch (if any) marked and
    the last date's value annotated."""
    probabilities = result.regime_probabilities(kind, hdi)
    anchor = result.config.get("anchor") or result.columns[0]
    colours = regime_colours(result.regime_names)
    figure = Figure(figsize=(11, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    series = _anchor_path(result, anchor)
    if series is not None:
        top.plot(result.dates, series, color="black", linewidth=0.8, label=anchor)
        top.set_ylabel(anchor_label(anchor))
    title = f"{result.model}: {kind} regime probabilities"
    if kind == "smoothed":
        title += " (use data after each date: for describing history)"
    top.set_title(title)
    for name in result.regime_names:
        frame = probabilities[name]
        bottom.plot(
            result.dates,
            frame["mean"],
            color=colours[name],
            linewidth=0.9,
            label=f"P({name}), posterior mean",
        )
        if result.has_bands:
            bottom.fill_between(
                result.dates,
                frame["lower"],
                frame["upper"],
                color=colours[name],
                alpha=0.25,
                linewidth=0,
                label=f"{hdi:.0%} HDI",
            )
        top.fill_between(
            result.dates,
            0,
            1,
            where=frame["mean"] > 0.5,
            color=colours[name],
            alpha=0.12,
            transform=top.get_xaxis_transform(),
            linewidth=0,
            label=f"shaded: mean P({name}) > 0.5",
        )
    holdout = result.fit_info.get("holdout_start")
    if holdout:
        for axis in (top, bottom):
            axis.axvline(
                pd.Timestamp(holdout),
                color=HOLDOUT_COLOUR,
                linestyle="--",
                linewidth=0.9,
                label=f"held out from {holdout} (not fitted)",
            )
    last = result.regime_names[-1]
    value = probabilities[(last, "mean")].iloc[-1]
    bottom.scatter([result.dates[-1]], [value], color=colours[last], zorder=3)
    bottom.annotate(
        f"P({last}) = {value:.2f} on {result.dates[-1]:%Y-%m-%d}",
        (result.dates[-1], value),
        textcoords="offset points",
        xytext=(-170, 10),
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )
    bottom.set_ylim(0, 1)
    bottom.set_ylabel(f"P(regime), {kind}\n(probability, 0 to 1)")
    freq = result.config.get("features_freq")
    bottom.set_xlabel(f"date ({freq} data)" if freq else "date")
    top.legend(loc="upper left", fontsize=7)
    bottom.legend(loc="upper left", ncol=result.n_regimes, fontsize=7)
    figure.tight_layout()
    return figure


def reading_figure(table: pd.DataFrame, reading: dict, regime: str) -> Figure:
    """One page of ``regime now``: the filtered P(``regime``) over ``table``'s dates (mean,
    lower, upper) with its band, the fitted-through date and the as-of value marked, and
    the forecast fan (``reading`` from :func:`regime_model.reading.current_reading`)."""
    colour = regime_colours(list(reading["probability"]))[regime]
    figure = Figure(figsize=(11, 4.8))
    history, ahead = figure.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1]}, sharey=True)
    history.plot(
        table.index,
        table["mean"],
        color=colour,
        linewidth=1.0,
        label=f"P({regime}), filtered: posterior mean",
    )
    if reading["has_bands"]:
        history.fill_between(
            table.index,
            table["lower"],
            table["upper"],
            color=colour,
            alpha=0.25,
            linewidth=0,
            label=f"{reading['hdi']:.0%} HDI",
        )
    history.axvline(
        pd.Timestamp(reading["fitted_through"]),
        color=HOLDOUT_COLOUR,
        linestyle="--",
        linewidth=0.8,
        label=f"parameters fitted through {reading['fitted_through']}",
    )
    as_of = pd.Timestamp(reading["as_of"])
    value = reading["probability"][regime]["mean"]
    history.scatter([as_of], [value], color="black", zorder=3)
    history.annotate(
        f"{value:.2f} on {reading['as_of']}",
        (as_of, value),
        textcoords="offset points",
        xytext=(-120, 14),
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )
    history.set_ylim(0, 1)
    history.set_ylabel(f"P({regime}) (probability, 0 to 1)")
    history.set_title(f"{reading['model']}: P({regime}) as of {reading['as_of']}")
    history.legend(loc="lower left", fontsize=8)
    steps = [row["steps"] for row in reading["forecast"]]
    ahead.plot(
        steps, [row[regime]["mean"] for row in reading["forecast"]], marker="o", color=colour
    )
    if reading["has_bands"]:
        ahead.fill_between(
            steps,
            [row[regime]["lower"] for row in reading["forecast"]],
            [row[regime]["upper"] for row in reading["forecast"]],
            color=colour,
            alpha=0.25,
            linewidth=0,
        )
    ahead.set_xlabel(f"periods ahead ({reading['freq']})")
    ahead.set_title("forecast")
    figure.tight_layout()
    return figure


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


def plot_probability_over_prices(
    result: RegimeResult,
    prices: dict[str, pd.Series],
    path: str | Path,
    regime: str = "risk_on",
    hdi: float = 0.9,
) -> Path:
    """Log prices on top (shaded where the smoothed P(regime) > 0.5); below, the filtered
    (real-time) and smoothed P(regime) with their HDI bands."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(12, 2.4 * (len(prices) + 1.4)))
    axes = figure.subplots(len(prices) + 1, 1, sharex=True)
    smoothed = result.regime_probabilities("smoothed", hdi)[regime]
    filtered = result.regime_probabilities("filtered", hdi)[regime]
    for axis, (name, series) in zip(axes[:-1], prices.items(), strict=True):
        series = series[(series.index >= result.dates[0]) & (series.index <= result.dates[-1])]
        axis.semilogy(series.index, series.to_numpy(), color="black", linewidth=0.8)
        axis.set_ylabel(f"{name} (log scale)")
        axis.fill_between(
            result.dates,
            0,
            1,
            where=smoothed["mean"].to_numpy() > 0.5,
            color=regime_colours(result.regime_names).get(regime, _COLOURS[-1]),
            alpha=0.15,
            transform=axis.get_xaxis_transform(),
            linewidth=0,
        )
    axes[0].set_title(
        f"{result.model}: P({regime}) with {hdi:.0%} bands; shaded where smoothed P > 0.5"
    )
    bottom = axes[-1]
    for frame, label, colour in (
        (filtered, "filtered (real-time)", "#2c3e50"),
        (smoothed, "smoothed (uses later data)", _COLOURS[-1]),
    ):
        bottom.plot(result.dates, frame["mean"], color=colour, linewidth=0.9, label=label)
        if result.has_bands:
            bottom.fill_between(
                result.dates, frame["lower"], frame["upper"], color=colour, alpha=0.2, linewidth=0
            )
    bottom.set_ylim(0, 1)
    bottom.set_ylabel(f"P({regime})")
    bottom.legend(loc="upper left", fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def rank_histograms(ranks: pd.DataFrame, rank_draws: int, bins: int) -> Figure:
    """Simulation-based calibration: one histogram of ranks (0..rank_draws) per parameter,
    with the band that holds 99% of a bin's count when ranks are uniform (Talts et al.
    2018, fig. 1). ``ranks`` (replicates, parameters)."""
    from scipy import stats

    n_parameters, n_replicates = ranks.shape[1], ranks.shape[0]
    n_columns = min(4, n_parameters)
    n_rows = int(np.ceil(n_parameters / n_columns))
    figure = Figure(figsize=(3.2 * n_columns, 2.2 * n_rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_columns, squeeze=False)).ravel()
    low, high = stats.binom.ppf([0.005, 0.995], n_replicates, 1.0 / bins)
    edges = np.linspace(0, rank_draws + 1, bins + 1)
    largest = max(np.histogram(ranks[name], bins=edges)[0].max() for name in ranks.columns)
    top = 1.1 * max(high, largest)  # one scale for every panel, from zero
    for axis, name in zip(axes, ranks.columns, strict=False):
        axis.axhspan(low, high, color="#bdc3c7", alpha=0.6, linewidth=0)
        axis.axhline(n_replicates / bins, color="#7f8c8d", linewidth=0.8)
        axis.hist(ranks[name], bins=edges, color="#2c3e50", alpha=0.85)
        axis.set_title(name, fontsize=8)
        axis.set_ylim(0, top)
        axis.set_yticks([0, int(n_replicates / bins)])
        axis.set_xticks([0, rank_draws + 1])
    for axis in axes[n_parameters:]:
        axis.set_visible(False)
    figure.suptitle(
        f"SBC rank histograms: {n_replicates} replicates; grey: 99% band of a uniform bin"
    )
    return figure
