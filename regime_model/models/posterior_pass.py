"""One pass over the posterior draws: the kernel's inputs of every draw, evaluated from
the graph the sampler used, and each draw's per-date quantities (log predictive densities
for all draws, regime probabilities for the band draws, filtered probabilities on the
labelling dates for matching labels)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.pytensorf import compile as compile_pymc
from pytensor.graph.replace import vectorize_graph

from regime_model.models.relabelling import label_dates
from regime_model.models.vectorised import compile_over_draws
from regime_model.results import KINDS, ProbabilityDraws

KERNEL_INPUT_CHUNK = 250  # draws per vectorised evaluation of the kernel's inputs


@dataclass(frozen=True)
class DrawPass:
    """``pointwise`` (N, T) log predictive densities of every draw; ``band`` (B,) the
    indices of the band draws and ``probabilities`` theirs; ``signal`` (N, T', S) every
    draw's filtered probabilities on the labelling dates (None unless asked); ``extras``
    what the composition's ``date_quantities`` returned beside them, per band draw."""

    pointwise: np.ndarray
    band: np.ndarray
    probabilities: ProbabilityDraws
    signal: np.ndarray | None
    extras: list


def draw_kernel_inputs(
    model: pm.Model, inputs: tuple, posterior: xr.Dataset
) -> Callable[[int], tuple[np.ndarray, ...]]:
    """index into the flattened chain x draw axis -> the numpy values of ``inputs`` (the
    composition's graphs over all dates) at that draw.

    The graph is vectorised over a leading draw axis and evaluated for
    ``KERNEL_INPUT_CHUNK`` draws at a time: one call instead of one per draw (a second
    for 4,000 draws), in bounded memory ((chunk, T, K) emissions). A graph PyTensor
    cannot vectorise is evaluated draw by draw."""
    free = list(model.free_RVs)
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    # An explicit length: a parameter can be empty (a chain with one feature has no
    # "other" columns), and -1 cannot be inferred from a size of 0.
    flat = {
        rv.name: (values := posterior[rv.name].to_numpy()).reshape(n_total, *values.shape[2:])
        for rv in free
    }
    batched = [pt.tensor(dtype=rv.dtype, shape=(None, *rv.type.shape), name=rv.name) for rv in free]
    try:
        vectorised = vectorize_graph(list(inputs), dict(zip(free, batched, strict=True)))
    except NotImplementedError:
        # e.g. the Cholesky factors of full covariance: evaluate one draw at a time.
        single = compile_pymc(free, list(inputs), on_unused_input="ignore")
        return lambda index: tuple(single(*(flat[rv.name][index] for rv in free)))
    evaluate = compile_over_draws(batched, vectorised)
    chunks: dict[int, list[np.ndarray]] = {}

    def kernel_inputs(index: int) -> tuple[np.ndarray, ...]:
        chunk, row = divmod(index, KERNEL_INPUT_CHUNK)
        if chunk not in chunks:
            chunks.clear()  # draws are visited in order: keep one chunk
            rows = slice(chunk * KERNEL_INPUT_CHUNK, (chunk + 1) * KERNEL_INPUT_CHUNK)
            chunks[chunk] = evaluate(*(flat[rv.name][rows] for rv in free))
        return tuple(values[row] for values in chunks[chunk])

    return kernel_inputs


def evaluate_draws(
    model: pm.Model,
    composition,
    inputs: tuple,
    posterior: xr.Dataset,
    band_draws: int,
    n_dates: int,
    with_signal: bool,
) -> DrawPass:
    """Forward-backward per draw (the composition's ``date_quantities``): per-date log
    predictive densities for every draw, regime probabilities for ``band_draws`` evenly
    spaced ones, and with ``with_signal`` every draw's filtered probabilities on up to
    MAX_LABEL_DATES evenly spaced dates (the relabelling's signal)."""
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    kernel_inputs = draw_kernel_inputs(model, inputs, posterior)
    band = np.unique(np.linspace(0, n_total - 1, min(band_draws, n_total)).astype(int))
    band_set = set(band.tolist())
    pointwise = np.empty((n_total, n_dates))
    dates = label_dates(n_dates)
    signal = None
    band_values, extras = [], []
    # Draws without bands need the filter alone: many at once when the composition can.
    filtered_draws = getattr(composition, "filtered_draws", None)
    waiting: list[tuple[int, tuple]] = []

    def keep(index: int, log_predictive: np.ndarray, filtered: np.ndarray) -> None:
        nonlocal signal
        pointwise[index] = log_predictive
        if with_signal:
            if signal is None:
                signal = np.empty((n_total, len(dates), filtered.shape[1]), np.float32)
            signal[index] = filtered[dates]

    def filter_waiting() -> None:
        if waiting:
            stacked = tuple(
                np.stack(parts) for parts in zip(*(values for _, values in waiting), strict=True)
            )
            for (index, _), log_predictive, filtered in zip(
                waiting, *filtered_draws(stacked), strict=True
            ):
                keep(index, log_predictive, filtered)
            waiting.clear()

    for index in range(n_total):
        with_bands = index in band_set
        if filtered_draws is not None and not with_bands:
            waiting.append((index, kernel_inputs(index)))
            if len(waiting) == KERNEL_INPUT_CHUNK:
                filter_waiting()
            continue
        values, extra = composition.date_quantities(kernel_inputs(index), with_bands)
        keep(index, values.pointwise_loglik, values.filtered)
        if with_bands:
            band_values.append(values)
            extras.append(extra)
    filter_waiting()
    probabilities = ProbabilityDraws(
        *(np.stack([getattr(draw, kind) for draw in band_values]) for kind in KINDS),
        np.stack([draw.pointwise_loglik for draw in band_values]),
    )
    return DrawPass(pointwise, band, probabilities, signal, extras)
