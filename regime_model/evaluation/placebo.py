"""How often do random dates do as well as the events? Placebo tests for event studies,
and the multiple-comparison corrections a grid of event rules needs.

The effect of a set of events on a series of returns r_0..r_{T-1} (T, A) at horizon h is
the mean over the events of the forward return (the sum of the h returns after the
event date, averaged over the A assets) minus its mean over every date. A placebo draws
the same events shifted together by a random number of dates along a circle (the returns
joined end to start): the events keep their number and their spacing, the returns keep
their autocorrelation and volatility clustering, and only their alignment with each other
is broken (the circular-shift test of e.g. Ebisuzaki 1997, Lahiri 2003). Its one-sided
p-value is the share of shifts whose effect is at least the observed one, counting the
observed one (so never 0). The shift that would move no event (0) is left out.

Across a grid of rules (series x base x horizon), many p-values are read at once:
:func:`holm` adjusts them for the family-wise error, :func:`benjamini_hochberg` for the
false discovery rate, and :func:`max_statistic_p_value` asks once whether *any* rule
beats chance, from the placebo distribution of the largest standardised effect (the
shifts applied to every rule at once, as Westfall and Young 1993 resample), so the
dependence between overlapping rules is kept.
"""

from __future__ import annotations

import numpy as np


def circular_forward_sums(returns: np.ndarray, horizon: int) -> np.ndarray:
    """(T,) the mean over assets of the sum of the ``horizon`` returns after each date,
    on a circle (date t's window is t+1..t+h modulo T). ``returns`` (T, A), complete."""
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 2 or not np.isfinite(returns).all():
        raise ValueError("returns must be a complete (T, A) array")
    n_dates = len(returns)
    if not 1 <= horizon < n_dates:
        raise ValueError(f"horizon must be between 1 and {n_dates - 1}, got {horizon}")
    per_date = returns.mean(axis=1)
    extended = np.concatenate([per_date, per_date[:horizon]])
    cumulative = np.concatenate([[0.0], np.cumsum(extended)])
    starts = np.arange(n_dates)
    return cumulative[starts + 1 + horizon] - cumulative[starts + 1]


def event_effect(forward: np.ndarray, positions: np.ndarray) -> float:
    """Mean forward return at ``positions`` minus its mean over every date."""
    return float(forward[np.asarray(positions, dtype=int)].mean() - forward.mean())


def placebo_shifts(n_dates: int, n_shifts: int, seed: int) -> np.ndarray:
    """(n_shifts,) random circular shifts in 1..T-1 (one draw of them serves every rule,
    so the rules' placebo effects are joint)."""
    return np.random.default_rng(seed).integers(1, n_dates, size=n_shifts)


def placebo_effects(forward: np.ndarray, positions: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(S,) the effect of the events moved by each shift around the circle."""
    positions = np.asarray(positions, dtype=int)
    moved = (positions[None, :] + np.asarray(shifts)[:, None]) % len(forward)
    return forward[moved].mean(axis=1) - forward.mean()


def placebo_p_value(observed: float, placebo: np.ndarray) -> float:
    """One-sided: (1 + #{placebo >= observed}) / (1 + S)."""
    placebo = np.asarray(placebo)
    return float((1 + np.sum(placebo >= observed)) / (1 + len(placebo)))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values)
    n = len(p_values)
    adjusted = np.maximum.accumulate((n - np.arange(n)) * p_values[order])
    result = np.empty(n)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values: false discovery rate), in order."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values)
    n = len(p_values)
    scaled = p_values[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty(n)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def max_statistic_p_value(observed: np.ndarray, placebo: np.ndarray) -> float:
    """One p-value for "the best of the rules beats chance": each rule's effect
    standardised by its placebo mean and sd, and the observed largest compared with the
    largest of every shift. ``observed`` (R,), ``placebo`` (S, R) from common shifts."""
    placebo = np.asarray(placebo, dtype=float)
    centre, spread = placebo.mean(axis=0), placebo.std(axis=0)
    spread = np.where(spread > 0, spread, np.inf)
    largest = ((np.asarray(observed) - centre) / spread).max()
    placebo_largest = ((placebo - centre) / spread).max(axis=1)
    return placebo_p_value(largest, placebo_largest)


def stratified_placebo_effects(
    forward: np.ndarray, positions: np.ndarray, strata: np.ndarray, n_draws: int, seed: int
) -> tuple[float, np.ndarray]:
    """(observed effect, (n_draws,) placebo effects) measured within strata: each event
    against the mean forward return of the dates in its own stratum (say, the same phase
    of the Bitcoin halving cycle), and placebos that draw, for every event, a date of the
    same stratum at random. What is left of the effect at equal strata."""
    forward = np.asarray(forward, dtype=float)
    strata = np.asarray(strata)
    positions = np.asarray(positions, dtype=int)
    labels = strata[positions]
    means = {label: forward[strata == label].mean() for label in np.unique(labels)}
    baseline = np.array([means[label] for label in labels])
    observed = float((forward[positions] - baseline).mean())
    rng = np.random.default_rng(seed)
    draws = np.empty((n_draws, len(positions)))
    for label in np.unique(labels):
        members = np.flatnonzero(strata == label)
        columns = np.flatnonzero(labels == label)
        draws[:, columns] = forward[rng.choice(members, size=(n_draws, len(columns)))]
    return observed, (draws - baseline[None, :]).mean(axis=1)
