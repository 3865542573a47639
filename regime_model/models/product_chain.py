"""The product chain of two coupled regime chains (:mod:`~regime_model.models.
coupled_chains`): its state names, coupled and product transition and emission graphs
(PyTensor or numpy inputs), and the per-date quantities from the product kernel's
inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import (
    fixed_lag_draws,
    hmm_filter,
    hmm_filter_draws,
    hmm_smoother,
    hmm_smoother_draws,
)
from regime_model.inference.fixed_lag import fixed_lag_joint, log_sum_exp
from regime_model.models.observations import Observations, regime_names
from regime_model.results import DrawProbabilities, ProbabilityDraws


def state_names(n_regimes: int, lead_group: str, lag_group: str) -> list[str]:
    """Product-state names, lead regime major: index = lead * K + lag."""
    names = regime_names(n_regimes)
    return [f"{lead_group}:{a}|{lag_group}:{b}" for a in names for b in names]


def chain_emissions(
    posterior: xr.Dataset, observations: Observations, chains: list[tuple[str, Any, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each product state's emission means and scales (chain, draw, S, D) in the features'
    units, and each feature's Student-t degrees of freedom (chain, draw, D; NaN where
    Gaussian), from the chains' own variables: ``chains`` lists (prefix of the chain's
    variables, its observations view, (S,) its regime in each product state)."""
    draws = (posterior.sizes["chain"], posterior.sizes["draw"])
    n_states = len(chains[0][2])
    mean_out = np.empty((*draws, n_states, observations.n_features))
    scale_out = np.empty_like(mean_out)
    nu_out = np.full((*draws, observations.n_features), np.nan)
    for prefix, view, regime_of_state in chains:
        columns = [observations.columns.index(c) for c in view.columns]
        mean = posterior[f"{prefix}::mean"].to_numpy() * view.scale + view.center
        scale = posterior[f"{prefix}::sigma"].to_numpy() * view.scale
        mean_out[..., columns] = mean[:, :, regime_of_state, :]
        scale_out[..., columns] = scale[:, :, regime_of_state, :]
        if f"{prefix}::nu" in posterior and posterior[f"{prefix}::nu"].ndim == 3:
            nu_out[..., columns] = posterior[f"{prefix}::nu"].to_numpy()
    return mean_out, scale_out, nu_out


def chain_anchor(columns: list[str]) -> str:
    """A chain's default anchor: its first ``*_return`` column, else its first column."""
    returns = [column for column in columns if column.endswith("_return")]
    return (returns or columns)[0]


def coupled_log_transition(log_base, coupling_enter, coupling_stay, n_regimes: int):
    """log P_c(e)[j, j'] for every lead regime e (K per chain): the base rows (K, K) tilted
    by the lead score s(e) in [-1/2, 1/2] times +coupling_enter on upward moves and
    -coupling_stay on downward ones, renormalised. -> (K, K, K), lead regime first.
    PyTensor or numpy inputs."""
    upward = np.triu(np.ones((n_regimes, n_regimes)), 1)
    downward = np.tril(np.ones((n_regimes, n_regimes)), -1)
    direction = coupling_enter * upward - coupling_stay * downward  # (K, K)
    score = np.linspace(-0.5, 0.5, n_regimes)[:, None, None]
    logits = pt.as_tensor(log_base)[None] + score * direction[None]
    return logits - pt.logsumexp(logits, axis=2, keepdims=True)


def product_log_transition(lead_log_transition, lag_log_transition):
    """(K_e, K_e) or (N, K_e, K_e) time-varying, and (K_e, K_c, K_c) -> (S, S) or
    (N, S, S), S = K_e K_c, lead major:
    log P(x_s = (i', j') | x_{s-1} = (i, j)) = log P_e[i, i'] + log P_c(i')[j, j']."""
    lead = pt.as_tensor(lead_log_transition)
    lag = pt.as_tensor(lag_log_transition)
    n_states = lead.shape[-1] * lag.shape[1]
    if lead.ndim == 3:
        joint = lead[:, :, None, :, None] + lag.dimshuffle(1, 0, 2)[None, None]
        return joint.reshape((lead.shape[0], n_states, n_states))
    joint = lead[:, None, :, None] + lag.dimshuffle(1, 0, 2)[None]  # (i, j, i', j')
    return joint.reshape((n_states, n_states))


def product_log_emission(lead_log_emission, lag_log_emission, lag: int):
    """(T, K_e) and (T, K_c) -> (T + L, S): product step s holds the lag chain's date s
    (s < T) and the lead chain's date s - L (s >= L); the missing side contributes 0."""
    lead = pt.as_tensor(lead_log_emission)
    lagging = pt.as_tensor(lag_log_emission)
    lead_steps = pt.concatenate([pt.zeros((lag, lead.shape[1])), lead], axis=0)
    lag_steps = pt.concatenate([lagging, pt.zeros((lag, lagging.shape[1]))], axis=0)
    joint = lead_steps[:, :, None] + lag_steps[:, None, :]
    return joint.reshape((lead_steps.shape[0], lead.shape[1] * lagging.shape[1]))


def lead_lag_date_quantities(
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    lead_log_emission: np.ndarray,
    lag: int,
    n_lag_regimes: int,
    with_bands: bool,
) -> DrawProbabilities:
    """Per-DATE quantities of one draw from the product kernel's inputs.

    Shapes: log_initial (S,); log_transition (S, S), or (T+L-1, S, S) per step (row r:
    the move into step r+1); log_emission (T+L, S) the product emission;
    lead_log_emission (T+L, S) its lead-only part. Returns, over the T dates,
    P(e_t, c_t | data) as (T, S) states (lead major) for the filtered (data of dates
    <= t; always) and the predicted (dates < t) and smoothed (all) kinds (when
    ``with_bands``), and pointwise log p(y_t | y_0..t-1) over both chains' observations
    of date t.

    Date t's data are the product steps <= t plus the lead observations of steps
    t+1..t+L, and e_t sits at step t + L: so each quantity is the joint of the lag regime
    at step t and the state at step t + L (fixed_lag_joint, tagged by the lag regime).
    """
    n_steps, n_states = log_emission.shape
    n_dates = n_steps - lag
    tags = np.arange(n_states) % n_lag_regimes
    product = (hmm_smoother if with_bands else hmm_filter)(
        log_initial, log_transition, log_emission
    )
    cumulative_steps = np.cumsum(product.log_predictive)
    window = np.arange(n_dates)[:, None] + 1 + np.arange(lag)[None, :]  # (T, L) steps
    lead_window = lead_log_emission[window]  # (T, L, S)
    # The transitions into the window's steps: (S, S), or (T, L, S, S) when they vary.
    steps = log_transition if log_transition.ndim == 2 else log_transition[window - 1]
    with np.errstate(divide="ignore"):
        log_filtered = np.log(product.filtered_probs[:n_dates])
        log_predicted = np.log(product.predicted_probs[:n_dates])
    filtered_joint = fixed_lag_joint(log_filtered, steps, lead_window, tags, n_lag_regimes)
    log_norm = log_sum_exp(filtered_joint, axis=(1, 2))
    cumulative = cumulative_steps[:n_dates] + log_norm
    filtered = _date_states(np.exp(filtered_joint - log_norm[:, None, None]), n_lag_regimes)
    if not with_bands:  # the filtered states still serve to match labels across draws
        return DrawProbabilities(filtered, None, None, np.diff(cumulative, prepend=0.0))

    # Before date t: the product prediction of step t, the lead observation of step t
    # (date t - L, known before t when L >= 1) and those of steps t+1..t+L-1 (not date t's).
    predicted_start = log_predicted + (lead_log_emission[:n_dates] if lag else 0.0)
    predicted_window = lead_window.copy()
    if lag:
        predicted_window[:, -1] = 0.0
    predicted_joint = fixed_lag_joint(predicted_start, steps, predicted_window, tags, n_lag_regimes)
    predicted_joint -= log_sum_exp(predicted_joint, axis=(1, 2))[:, None, None]
    predicted = _date_states(np.exp(predicted_joint), n_lag_regimes)

    # All data: P(c_t | x_{t+L}, data to step t+L) (later data add nothing given x_{t+L})
    # times the smoothed P(x_{t+L}).
    smoothed_joint = fixed_lag_joint(log_filtered, steps, log_emission[window], tags, n_lag_regimes)
    with np.errstate(invalid="ignore"):
        conditional = np.exp(smoothed_joint - log_sum_exp(smoothed_joint, axis=1, keepdims=True))
    weights = np.nan_to_num(conditional * product.smoothed_probs[lag:][:, None, :])
    smoothed = _date_states(weights, n_lag_regimes)
    return DrawProbabilities(
        filtered,
        smoothed,
        predicted,
        np.diff(cumulative, prepend=0.0),
    )


def lead_lag_filtered_draws(
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    lead_log_emission: np.ndarray,
    lag: int,
    n_lag_regimes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`lead_lag_date_quantities` gives without bands, for N draws in compiled
    loops: (filtered (N, T, S) per date, pointwise (N, T) log p(y_t | y_0..t-1)).

    Shapes: the per-draw ones of :func:`lead_lag_date_quantities` with a leading axis of
    N draws."""
    log_predictive, filtered = hmm_filter_draws(log_initial, log_transition, log_emission)
    return _filtered_dates(
        log_predictive, filtered, log_transition, lead_log_emission, lag, n_lag_regimes
    )


def _filtered_dates(log_predictive, filtered, log_transition, lead_log_emission, lag, n_tags):
    """Each date's filtered states (N, T, S) and one-step log densities (N, T) from the
    product filter's (N, T+L) log predictive densities and (N, T+L, S) probabilities: each
    step carried L steps forward with the lead observations alone."""
    n_dates = filtered.shape[1] - lag
    tags = np.arange(filtered.shape[2]) % n_tags
    log_total, joint = fixed_lag_draws(
        filtered, log_transition, lead_log_emission, tags, n_tags, n_dates
    )
    cumulative = np.cumsum(log_predictive, axis=1)[:, :n_dates] + log_total
    return _date_states(joint, n_tags), np.diff(cumulative, axis=1, prepend=0.0)


def lead_lag_band_draws(
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    lead_log_emission: np.ndarray,
    lag: int,
    n_lag_regimes: int,
) -> ProbabilityDraws:
    """What :func:`lead_lag_date_quantities` gives with bands (filtered, smoothed and
    predicted (N, T, S) per date, pointwise (N, T)), for N draws in compiled loops.

    Shapes: the per-draw ones of :func:`lead_lag_date_quantities` with a leading axis of
    N draws. The same joints, carried in probability space by
    :func:`~regime_model.inference.fixed_lag_draws` instead of in logs."""
    n_steps, n_states = log_emission.shape[1:]
    n_dates = n_steps - lag
    tags = np.arange(n_states) % n_lag_regimes
    log_predictive, filtered, predicted, smoothed = hmm_smoother_draws(
        log_initial, log_transition, log_emission
    )
    filtered_dates, pointwise = _filtered_dates(
        log_predictive, filtered, log_transition, lead_log_emission, lag, n_lag_regimes
    )

    # Before date t: the prediction of step t times its lead observation (date t - L),
    # carried through the lead observations of steps t+1..t+L-1, then one move into step
    # t + L with nothing observed there (date t's own lead observation).
    start, window, moves = predicted, lead_log_emission, log_transition
    if lag:
        peak = lead_log_emission.max(axis=2, keepdims=True)
        start = predicted * np.exp(lead_log_emission - np.where(np.isfinite(peak), peak, 0.0))
        start, window = start[:, :-1], lead_log_emission[:, :-1]
        moves = log_transition if log_transition.ndim == 3 else log_transition[:, :-1]
    _, predicted_joint = fixed_lag_draws(start, moves, window, tags, n_lag_regimes, n_dates)
    if lag:
        last = log_transition[:, None] if log_transition.ndim == 3 else log_transition[:, lag - 1 :]
        predicted_joint = predicted_joint @ np.exp(last)
        with np.errstate(invalid="ignore"):
            predicted_joint /= predicted_joint.sum(axis=(2, 3), keepdims=True)

    # All data: P(c_t | x_{t+L}, data to step t+L) times the smoothed P(x_{t+L}).
    _, smoothed_joint = fixed_lag_draws(
        filtered, log_transition, log_emission, tags, n_lag_regimes, n_dates
    )
    with np.errstate(invalid="ignore"):
        conditional = smoothed_joint / smoothed_joint.sum(axis=2, keepdims=True)
    weights = np.nan_to_num(conditional * smoothed[:, lag:, None, :])
    return ProbabilityDraws(
        filtered_dates,
        _date_states(weights, n_lag_regimes),
        _date_states(predicted_joint, n_lag_regimes),
        pointwise,
    )


def _date_states(joint: np.ndarray, n_lag_regimes: int) -> np.ndarray:
    """(..., G, S) weights of (lag regime at step t, state at step t+L) -> (..., S) over
    (lead regime at t+L = e_t, lag regime c_t), lead major."""
    *leading, _, n_states = joint.shape
    n_lead = n_states // n_lag_regimes
    by_lead = joint.reshape(*leading, n_lag_regimes, n_lead, n_lag_regimes).sum(axis=-1)
    return np.swapaxes(by_lead, -1, -2).reshape(*leading, n_states)
