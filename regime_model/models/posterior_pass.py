"""One pass over the posterior draws: the kernel's inputs of every draw, evaluated from
the graph the sampler used, and each draw's per-date quantities (log predictive densities
for all draws, regime probabilities for the band draws, filtered probabilities on the
labelling dates for matching labels)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import xarray as xr
from pymc.pytensorf import compile as compile_pymc

from regime_model.models.relabelling import label_dates
from regime_model.models.vectorised import compile_flat_over_draws
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


def kernel_input_chunks(
    model: pm.Model, inputs: tuple, posterior: xr.Dataset, draws: Sequence[int] | None = None
) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
    """(indices, the numpy values of ``inputs`` at them with a leading axis of draws) for
    ``KERNEL_INPUT_CHUNK`` draws at a time: ``draws`` (indices into the flattened chain x
    draw axis; default all) in their order.

    The graph is vectorised over a leading draw axis: one call per chunk instead of one
    per draw (a second for 4,000 draws), in bounded memory ((chunk, T, K) emissions). A
    graph PyTensor cannot vectorise is evaluated draw by draw and stacked."""
    free = list(model.free_RVs)
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    # One (draws, parameters) matrix holds every free variable, as nutpie's flat points
    # do: with one input per variable, each would bring its own draw axis, and the checks
    # that they broadcast come out of PyTensor's rewrites in an order that changes from
    # process to process, and with it the compiled function's cache key.
    shapes = [posterior[rv.name].shape[2:] for rv in free]
    flat = np.concatenate(
        [
            posterior[rv.name].to_numpy().reshape(n_total, int(np.prod(shape)))
            for rv, shape in zip(free, shapes, strict=True)
        ],
        axis=1,
        dtype=np.float64,
    )
    try:
        evaluate = compile_flat_over_draws(free, shapes, list(inputs))
    except NotImplementedError:
        # e.g. the Cholesky factors of full covariance: evaluate one draw at a time.
        single = compile_pymc(free, list(inputs), on_unused_input="ignore")
        bounds = np.cumsum([0, *(int(np.prod(shape)) for shape in shapes)])
        parts = list(zip(shapes, bounds[:-1], bounds[1:], strict=True))

        def evaluate(values: np.ndarray) -> list[np.ndarray]:
            per_draw = [
                single(*(row[low:high].reshape(shape) for shape, low, high in parts))
                for row in values
            ]
            return [np.stack(part) for part in zip(*per_draw, strict=True)]

    draws = np.arange(n_total) if draws is None else np.asarray(draws, dtype=int)
    for first in range(0, len(draws), KERNEL_INPUT_CHUNK):
        indices = draws[first : first + KERNEL_INPUT_CHUNK]
        yield indices, tuple(evaluate(flat[indices]))


def draw_kernel_inputs(
    model: pm.Model, inputs: tuple, posterior: xr.Dataset, draws: Sequence[int]
) -> Iterator[tuple[np.ndarray, ...]]:
    """The numpy values of ``inputs`` at each of ``draws`` (indices into the flattened
    chain x draw axis), one draw at a time."""
    for indices, chunk in kernel_input_chunks(model, inputs, posterior, draws):
        for row in range(len(indices)):
            yield tuple(values[row] for values in chunk)


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
    band = np.unique(np.linspace(0, n_total - 1, min(band_draws, n_total)).astype(int))
    is_band = np.zeros(n_total, bool)
    is_band[band] = True
    pointwise = np.empty((n_total, n_dates))
    dates = label_dates(n_dates)
    signal = None
    band_parts: list[ProbabilityDraws] = []
    extras: list = []
    # Many draws in one call where the composition can (it returns None where it
    # cannot), else one draw at a time.
    draw_quantities = getattr(composition, "draw_quantities", None)

    def keep(rows: np.ndarray, log_predictive: np.ndarray, filtered: np.ndarray) -> None:
        nonlocal signal
        pointwise[rows] = log_predictive
        if with_signal:
            if signal is None:
                signal = np.empty((n_total, len(dates), filtered.shape[-1]), np.float32)
            signal[rows] = filtered[..., dates, :]

    for indices, chunk in kernel_input_chunks(model, inputs, posterior):
        for with_bands in (False, True):
            rows = np.flatnonzero(is_band[indices] == with_bands)
            answer = None
            if draw_quantities is not None and len(rows):
                answer = draw_quantities(tuple(part[rows] for part in chunk), with_bands)
            if answer is not None:
                values, stacked_extras = answer
                keep(indices[rows], values.pointwise_loglik, values.filtered)
                if with_bands:
                    band_parts.append(values)
                    extras.extend([None] * len(rows) if stacked_extras is None else stacked_extras)
                continue
            for row in rows:
                draw, extra = composition.date_quantities(
                    tuple(part[row] for part in chunk), with_bands
                )
                keep(indices[row], draw.pointwise_loglik, draw.filtered)
                if with_bands:
                    band_parts.append(ProbabilityDraws(*(value[np.newaxis] for value in draw)))
                    extras.append(extra)
    probabilities = ProbabilityDraws(
        *(np.concatenate([getattr(part, kind) for part in band_parts]) for kind in KINDS),
        np.concatenate([part.pointwise_loglik for part in band_parts]),
    )
    return DrawPass(pointwise, band, probabilities, signal, extras)
