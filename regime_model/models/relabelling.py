"""Consistent regime labels across posterior draws, then names from the anchor.

An HMM's likelihood does not change when its regimes are permuted, and under an
exchangeable prior neither does the posterior: every draw's labels are arbitrary. Sorting
each draw on one anchor feature fixes them only when the anchor separates the regimes in
every draw; where the anchor's regime means overlap, the sort swaps whole draws whose
regimes are told apart by other features, and the regime probabilities of different draws
then describe different regimes (bands from 0 to 1, posterior means outside their own
band).

This module labels by what the regimes *do* instead: each draw's per-date regime
probabilities are matched to a common pivot, the relabelling algorithm of Stephens (2000,
JRSS B 62, sec. 4.2 with the Kullback-Leibler loss). With P_n (T, K) draw n's
probabilities and Q (T, K) the pivot, draw n gets the permutation minimising
KL(P_n permuted || Q) = const - sum_t sum_k P_n[t, perm[k]] log Q[t, k]; Q is then the mean
of the relabelled draws, and the two steps repeat until no draw changes (each step lowers
the total loss, so this ends). Only after that are the labels *named*: by the posterior
mean of the anchor's regime means (or scales), one order for all draws, so the names never
change the posterior, and :func:`name_order` reports how sure that order is.

Permutations follow one convention everywhere: ``perm[k]`` is the old label that new label
``k`` takes, so a (K, ...) array ``values`` becomes ``values[perm]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_ITERATIONS = 100
CHUNK = 250  # draws per block when the (N, T, K) probabilities are permuted
# Labels are about which regime is which, not about timing: this many evenly spaced dates
# tell the regimes apart as well as all of them, at a fraction of the cost (T = 2,500:
# 0.7 s -> 0.15 s for 4,000 draws).
MAX_LABEL_DATES = 500


def label_dates(n_dates: int) -> np.ndarray:
    """The dates (indices, ascending) whose probabilities the labels are matched on."""
    return np.unique(np.linspace(0, n_dates - 1, min(n_dates, MAX_LABEL_DATES)).astype(int))


PIVOT_FLOOR = 1e-8  # log Q of a regime the pivot never visits stays finite


@dataclass(frozen=True)
class Labelling:
    """How a posterior's draws were labelled.

    ``permutations`` (N, K): per draw, new label k = old label ``permutations[n, k]``
    (the matching and the naming together); ``pivot`` (T', K): the mean relabelled regime
    probabilities on the dates matched (:func:`label_dates`), in the final (named) order;
    ``switched_share``: share of draws whose labels the matching changed (the sampler
    visited a permuted mode); ``separation`` (K-1,): P(anchor order holds) between
    adjacent named regimes; ``discordant_share``:
    share of draws that even after matching disagree with the pivot on most of the mass
    (mean total variation > 0.5), i.e. whose regimes are not the pivot's regimes.
    """

    permutations: np.ndarray
    pivot: np.ndarray
    switched_share: float
    separation: np.ndarray
    discordant_share: float
    iterations: int


def all_permutations(n_regimes: int) -> np.ndarray:
    """(K!, K) every permutation of range(K), the identity first."""
    return np.array(list(itertools.permutations(range(n_regimes))), dtype=np.int64)


def match_to_pivot(
    probabilities: np.ndarray, pivot: np.ndarray, candidates: np.ndarray | None = None
) -> np.ndarray:
    """(N, K) the permutation of each draw that minimises KL(draw || pivot).

    ``probabilities`` (N, T, K) per-draw state probabilities; ``pivot`` (T, K);
    ``candidates`` (P, K) the permutations a model allows (default: all, see
    :func:`all_permutations`; a model whose prior is invariant only under some of them
    passes those, the identity first). Ties go to the earliest candidate.
    """
    n_states = pivot.shape[1]
    candidates = all_permutations(n_states) if candidates is None else candidates
    log_pivot = np.log(np.clip(pivot, PIVOT_FLOOR, None))
    # cross[n, j, k] = sum_t P_n[t, j] log Q[t, k]: the score of giving old label j the
    # new label k; a permutation's score is the sum over k of cross[n, perm[k], k].
    cross = np.einsum("ntj,tk->njk", probabilities, log_pivot, dtype=np.float64)
    scores = cross[:, candidates, np.arange(n_states)].sum(axis=-1)  # (N, P)
    return candidates[np.argmax(scores, axis=1)]


def _relabelled_chunks(probabilities: np.ndarray, permutations: np.ndarray):
    """(start, (chunk, T, K) draws with their labels permuted) over the draws, a bounded
    block at a time (no copy of the whole (N, T, K) array; 4x faster than fancy
    indexing it at T = 2,500)."""
    for start in range(0, len(probabilities), CHUNK):
        block = probabilities[start : start + CHUNK]
        perms = permutations[start : start + CHUNK, None, :]
        yield start, np.take_along_axis(block, perms, axis=2)


def relabelled_mean(probabilities: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """(T, K) mean over draws of ``probabilities`` (N, T, K) with each draw's labels
    permuted."""
    total = np.zeros(probabilities.shape[1:])
    for _, block in _relabelled_chunks(probabilities, permutations):
        total += block.sum(axis=0, dtype=np.float64)
    return total / len(probabilities)


def consistent_labels(
    probabilities: np.ndarray,
    candidates: np.ndarray | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stephens' relabelling: (permutations (N, K), pivot (T, K), iterations).

    Starts from the labels as sampled (chains start from one EM fit, so they mostly agree
    already) and alternates pivot = mean of the relabelled draws and draw = its best
    permutation (among ``candidates``, see :func:`match_to_pivot`) against the pivot
    until nothing changes.
    """
    n_draws, _, n_regimes = probabilities.shape
    permutations = np.tile(np.arange(n_regimes), (n_draws, 1))
    for iteration in range(1, max_iterations + 1):
        pivot = relabelled_mean(probabilities, permutations)
        updated = match_to_pivot(probabilities, pivot, candidates)
        if np.array_equal(updated, permutations):
            return permutations, pivot, iteration
        permutations = updated
    raise RuntimeError(f"relabelling did not settle in {max_iterations} iterations")


def name_order(
    anchor_values: np.ndarray, descending: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One order of the (consistently labelled) regimes for every draw, and how sure it is.

    ``anchor_values`` (N, K): the anchor's regime means (ascending: risk_off first) or
    scales (``descending``: the calmest regime last, as risk_on). Returns ``order`` (K,),
    the old label of each named regime (risk_off ... risk_on), and ``separation`` (K-1,):
    the share of draws in which each named regime's anchor value is above (below, for
    scales) the previous one's.
    """
    sign = -1.0 if descending else 1.0
    values = sign * np.asarray(anchor_values, dtype=float)
    order = np.argsort(values.mean(axis=0), kind="stable")
    ordered = values[:, order]
    separation = (ordered[:, 1:] > ordered[:, :-1]).mean(axis=0)
    return order, separation


def name_check(anchor: str, order_by: str, lower: str, upper: str, separation: float) -> dict:
    """One adjacent pair of named regimes and how often the anchor orders them so (plain
    data for ``fit_info["labels"]["names"]``)."""
    return {
        "anchor": anchor,
        "order_by": order_by,
        "lower": lower,
        "upper": upper,
        "separation": round(float(separation), 4),
    }


def discordant_share(probabilities: np.ndarray, permutations: np.ndarray, pivot: np.ndarray):
    """Share of draws whose relabelled probabilities differ from the pivot by a mean total
    variation above 0.5: they put most of their mass on other regimes than the consensus."""
    distances = np.empty(len(probabilities))
    for start, block in _relabelled_chunks(probabilities, permutations):
        distance = 0.5 * np.abs(block - pivot[None]).sum(axis=-1).mean(axis=-1)
        distances[start : start + len(block)] = distance
    return float((distances > 0.5).mean())


def label_draws(
    probabilities: np.ndarray,
    anchor_values: np.ndarray,
    descending: bool = False,
    candidates: np.ndarray | None = None,
) -> Labelling:
    """Match every draw's labels to a common pivot, then name them on the anchor.

    ``probabilities`` (N, T, K): each draw's regime probabilities as sampled (filtered is
    enough: labels are about which regime is which, not about timing); ``anchor_values``
    (N, K): each draw's anchor means or scales (see :func:`name_order`); ``candidates``:
    the permutations the model allows (see :func:`match_to_pivot`).
    """

    def name(matched: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        matched_anchor = np.take_along_axis(np.asarray(anchor_values), matched, axis=1)
        return name_order(matched_anchor, descending)

    return label_states(probabilities, name, candidates)


def label_states(
    probabilities: np.ndarray,
    name: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    candidates: np.ndarray | None = None,
) -> Labelling:
    """:func:`label_draws` with the naming step given: ``name(matched)`` takes the
    matched permutations (N, S) and returns (``order`` (S,), the old label of each named
    state, and its ``separation``); a model whose states are not plain regimes (the
    lead-lag product states) names them its own way."""
    matched, pivot, iterations = consistent_labels(probabilities, candidates)
    switched = float(np.any(matched != np.arange(matched.shape[1]), axis=1).mean())
    discordant = discordant_share(probabilities, matched, pivot)
    order, separation = name(matched)
    return Labelling(
        permutations=matched[:, order],
        pivot=pivot[:, order],
        switched_share=switched,
        separation=separation,
        discordant_share=discordant,
        iterations=iterations,
    )


def take_regimes(values: np.ndarray, permutations: np.ndarray, axis: int) -> np.ndarray:
    """``values`` (N, ...) with regime ``axis`` (counted after the draw axis) reindexed by
    each draw's permutation (N, K)."""
    position = axis + 1
    shape = [len(permutations)] + [1] * (values.ndim - 1)
    shape[position] = permutations.shape[1]
    index = np.broadcast_to(permutations.reshape(shape), values.shape)
    return np.take_along_axis(values, index, axis=position)


def move_permutations(permutations: np.ndarray) -> np.ndarray:
    """(N, K(K-1)) the permutation of the off-diagonal moves i -> j (origin-major, as
    :func:`regime_model.models.covariate_link.move_labels`) implied by each regime permutation:
    new move (i, j) is old move (perm[i], perm[j])."""
    n_regimes = permutations.shape[1]
    moves = [(i, j) for i in range(n_regimes) for j in range(n_regimes) if i != j]
    index = {move: m for m, move in enumerate(moves)}
    unique, inverse = np.unique(permutations, axis=0, return_inverse=True)
    table = np.array(
        [[index[(perm[i], perm[j])] for i, j in moves] for perm in unique], dtype=np.int64
    ).reshape(len(unique), len(moves))
    return table[np.ravel(inverse)]


# How a variable carries regimes: (kind, axis) pairs, the axis counted after the draw
# axes. "regime": the axis is indexed by regime; "move": by the off-diagonal moves i -> j.
RegimeAxes = tuple[tuple[str, int], ...]


def permute_draws(values: np.ndarray, permutations: np.ndarray, axes: RegimeAxes) -> np.ndarray:
    """``values`` (N, ...) with every regime-carrying axis permuted by each draw's
    permutation (N, K)."""
    for kind, axis in axes:
        if kind == "regime":
            values = take_regimes(values, permutations, axis)
        elif kind == "move":
            values = take_regimes(values, move_permutations(permutations), axis)
        else:
            raise ValueError(f"unknown regime axis kind {kind!r}")
    return values


def permuted_correlations(
    arrays: dict[str, np.ndarray], permutations: np.ndarray, n_regimes: int, prefix: str = ""
) -> dict[str, np.ndarray]:
    """Full covariance keeps one LKJ variable per regime (``{prefix}correlation_{k}``,
    each (N, ...)): the same variables with their regimes permuted (empty when absent)."""
    names = [f"{prefix}correlation_{k}" for k in range(n_regimes)]
    if names[0] not in arrays:
        return {}
    stacked = take_regimes(np.stack([arrays[name] for name in names], axis=1), permutations, 0)
    return {name: stacked[:, k] for k, name in enumerate(names)}


def permute_posterior(posterior, permutations: np.ndarray, permute: Callable):
    """An xarray posterior with its draws permuted by ``permutations`` (chain, draw, S)
    through ``permute`` (a composition's: name -> (N, ...) arrays, (N, S) -> arrays)."""
    n_chains, n_draws = permutations.shape[:2]
    shapes = {name: posterior[name].shape for name in posterior.data_vars}
    arrays = {
        name: posterior[name].to_numpy().reshape(n_chains * n_draws, *shape[2:])
        for name, shape in shapes.items()
    }
    permuted = posterior.copy()
    for name, values in permute(arrays, permutations.reshape(n_chains * n_draws, -1)).items():
        permuted[name] = (posterior[name].dims, values.reshape(shapes[name]))
    return permuted


def permute_point(point: dict[str, np.ndarray], perm: np.ndarray, permute: Callable) -> dict:
    """One parameter point (name -> array, no draw axes) permuted by ``perm`` (1, S)."""
    arrays = {name: np.asarray(value)[None] for name, value in point.items()}
    return {name: values[0] for name, values in permute(arrays, perm).items()}
