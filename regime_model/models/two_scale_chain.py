"""The two-scale chain (issue 20) as one HMM on the fine calendar: a slow *coarse* chain
(a liquidity regime, monthly) and one *fine* chain per market (small caps, crypto:
weekly or daily risk regimes) whose transitions depend on the coarse state.

The state at a fine date is z = (c, f_1, ..., f_M), c the coarse regime and f_m market
m's fine regime, numbered with c the most significant digit (:func:`state_grid`),
S = K_c prod_m K_m. The fine dates fall into coarse periods (months); ``opens[t]`` is
True where date t is the first of its period (date 0 always). The move into date t is

* where t opens a period: c' ~ Q[c, .], and every fine chain enters afresh from its
  entry law given the new coarse state, f'_m ~ pi_m(c') (fHMM's hierarchical HMM: within
  each coarse period the fine chain is an HMM of its own; ``log_entries`` given), or, in
  the *carry* form (``log_entries`` None), moves on from where it was by the new coarse
  state's matrix, f'_m ~ P_m(c')[f_m, .], so a fine regime can outlast its period;
* otherwise c' = c, and f'_m ~ P_m(c)[f_m, .] for each market independently.

At date t the emission is sum_m log p_m(y[t, market m] | f_m) plus, on the last fine date
of a coarse period, log g(x[period] | c): the coarse observation enters when it is
published (the period's end), so a filtered probability at t uses only what was known
at t. The likelihood of the whole is therefore the forward recursion over coarse periods
whose "emission" for state c is g(x | c) times each market's fine HMM likelihood over
the period (started from pi_m(c), moved by P_m(c)): the nested recursion of the
hierarchical HMM, computed exactly by the package's forward-backward kernel on
(T - 1, S, S) transitions, with its analytic gradient. (The carry form is no longer a
product of per-period HMMs; the same kernel gives its likelihood exactly.)

Every function takes PyTensor or numpy inputs and returns PyTensor graphs (``.eval()``
for numbers). Shapes: ``log_coarse_transition`` (K_c, K_c), rows the regime moved from;
``log_fine_transitions`` one (K_c, K_m, K_m) per market, [c] the matrix under coarse
state c; ``log_entries`` one (K_c, K_m) per market.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytensor.tensor as pt


def state_grid(n_coarse: int, fine_sizes: list[int]) -> np.ndarray:
    """(S, 1 + M) ints: row z is (c, f_1, ..., f_M) of state z, c most significant."""
    ranges = [range(n_coarse), *(range(size) for size in fine_sizes)]
    return np.array(list(itertools.product(*ranges)), dtype=int)


def two_scale_log_initial(log_coarse_initial, log_entries, grid: np.ndarray) -> pt.TensorVariable:
    """(S,) log P(z_0): the coarse regime from ``log_coarse_initial`` (K_c,) and every fine
    chain from its entry law under it (date 0 opens the first period); ``grid`` from
    :func:`state_grid`."""
    coarse = grid[:, 0]
    log_probability = pt.as_tensor(log_coarse_initial)[coarse]
    for market, entry in enumerate(log_entries):
        log_probability = log_probability + pt.as_tensor(entry)[coarse, grid[:, 1 + market]]
    return log_probability


def two_scale_moves(
    log_coarse_transition, log_fine_transitions, log_entries, grid: np.ndarray
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """((S, S) the opening move's log probabilities, (S, S) the within-period move's):
    the two matrices a date's transition is one of (module docstring); ``log_entries``
    None: the carry form. A coarse switch within a period is -inf, which the kernel
    handles exactly."""
    before, after = grid[:, None, :], grid[None, :, :]  # (S, 1, .) and (1, S, .)
    opening = pt.as_tensor(log_coarse_transition)[before[..., 0], after[..., 0]]
    within = 0.0
    for market, fine in enumerate(log_fine_transitions):
        column = 1 + market
        fine = pt.as_tensor(fine)
        if log_entries is None:  # on from f_m, by the new coarse state's matrix
            move = fine[after[..., 0], before[..., column], after[..., column]]
        else:
            move = pt.as_tensor(log_entries[market])[after[..., 0], after[..., column]]
        opening = opening + move
        within = within + fine[before[..., 0], before[..., column], after[..., column]]
    within = pt.where(before[..., 0] == after[..., 0], within, -np.inf)
    return opening, within


def two_scale_log_transition(
    log_coarse_transition, log_fine_transitions, log_entries, opens: np.ndarray, grid: np.ndarray
) -> pt.TensorVariable:
    """(T - 1, S, S) log transitions into dates 1..T-1 (module docstring): the opening
    move where ``opens[t]`` (T,), the within-period move elsewhere
    (:func:`two_scale_moves`; ``log_entries`` None: the carry form)."""
    opening, within = two_scale_moves(
        log_coarse_transition, log_fine_transitions, log_entries, grid
    )
    opens = np.asarray(opens, dtype=bool)[1:, None, None]
    return pt.where(opens, opening[None], within[None])


def two_scale_log_emission(
    fine_log_emissions, coarse_log_emission, grid: np.ndarray
) -> pt.TensorVariable:
    """(T, S) log densities: ``fine_log_emissions`` one (T, K_m) per market, and
    ``coarse_log_emission`` (T, K_c), the coarse observation's log density placed on the
    last fine date of its period and 0 on every other date."""
    log_density = pt.as_tensor(coarse_log_emission)[:, grid[:, 0]]
    for market, fine in enumerate(fine_log_emissions):
        log_density = log_density + pt.as_tensor(fine)[:, grid[:, 1 + market]]
    return log_density


def coarse_marginals(probabilities: np.ndarray, n_coarse: int) -> np.ndarray:
    """(..., S) state probabilities -> (..., K_c) of the coarse regime."""
    probabilities = np.asarray(probabilities)
    return probabilities.reshape(*probabilities.shape[:-1], n_coarse, -1).sum(axis=-1)


def fine_marginals(
    probabilities: np.ndarray, n_coarse: int, fine_sizes: list[int], market: int
) -> np.ndarray:
    """(..., S) state probabilities -> (..., K_m) of market ``market``'s fine regime."""
    probabilities = np.asarray(probabilities)
    shaped = probabilities.reshape(*probabilities.shape[:-1], n_coarse, *fine_sizes)
    others = tuple(
        probabilities.ndim - 1 + axis for axis in range(len(fine_sizes) + 1) if axis != 1 + market
    )
    return shaped.sum(axis=others)


def sample_two_scale_path(
    coarse_initial: np.ndarray,
    coarse_transition: np.ndarray,
    fine_transitions: list[np.ndarray],
    entries: list[np.ndarray],
    opens: np.ndarray,
    rng: np.random.Generator,
    carry: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the chain (module docstring) in probabilities: (coarse (T,), fine (T, M))
    regime paths on the fine calendar of ``opens`` (T,). ``entries`` (one (K_c, K_m) per
    market) start every chain at date 0, and restart them at each opening unless
    ``carry``."""
    opens = np.asarray(opens, dtype=bool)
    n_dates, n_markets = len(opens), len(fine_transitions)
    coarse = np.zeros(n_dates, dtype=int)
    fine = np.zeros((n_dates, n_markets), dtype=int)
    for t in range(n_dates):
        if t == 0 or opens[t]:
            law = coarse_initial if t == 0 else coarse_transition[coarse[t - 1]]
            coarse[t] = rng.choice(len(law), p=law)
            for market in range(n_markets):
                if carry and t > 0:
                    law = fine_transitions[market][coarse[t], fine[t - 1, market]]
                else:
                    law = entries[market][coarse[t]]
                fine[t, market] = rng.choice(len(law), p=law)
            continue
        coarse[t] = coarse[t - 1]
        for market in range(n_markets):
            law = fine_transitions[market][coarse[t], fine[t - 1, market]]
            fine[t, market] = rng.choice(len(law), p=law)
    return coarse, fine
