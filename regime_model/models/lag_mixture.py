"""An unknown lag, marginalised: the lead-lag likelihood summed over a set of lags with a
uniform prior, and each date's quantities mixed over the lags by what the data up to
that date say about them.

With lags L_1..L_m, prior pi_i = 1/m and p_i(y) the likelihood at lag L_i (one product
chain each, :mod:`~regime_model.models.coupled_chains`):

    p(y | theta) = sum_i pi_i p_i(y | theta),
    P(L_i | y, theta) = pi_i p_i(y | theta) / p(y | theta).

The sampler sees the sum (the lag is a discrete parameter summed out, as pymc-extras'
marginal models do); each draw's P(L_i | y_fitted, theta) is kept, and their mean over
draws is the posterior of the lag (Rao-Blackwellised). Per date, with
c_i(t) = log p_i(y_0..t | theta):

* filtered:  sum_i P(L_i | y_0..t) filtered_i(t)       (weights from dates <= t: no look-ahead)
* predicted: sum_i P(L_i | y_0..t-1) predicted_i(t)
* one-step density: log sum_i P(L_i | y_0..t-1) p_i(y_t | y_0..t-1), which sum to log p(y)
* smoothed and the forecast: sum_i P(L_i | y) (...)_i.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy.special import logsumexp


def padded(per_lag: list, lags: tuple[int, ...]):
    """Per-lag product emissions (T + L_i, S) -> (m, T + max L, S): each padded with
    unobserved steps at its end, which change nothing before them."""
    longest = max(lags)
    return pt.stack(
        [
            pt.concatenate([values, pt.zeros((longest - lag, values.shape[1]))], axis=0)
            for values, lag in zip(per_lag, lags, strict=True)
        ]
    )


def mixture_log_likelihood(log_likelihoods: list):
    """Per-lag log likelihoods (m scalars) -> (log of their mean, P(L_i | y, theta) (m,))."""
    stacked = pt.stack(log_likelihoods)
    total = pt.logsumexp(stacked) - np.log(len(log_likelihoods))
    return total, pt.exp(stacked - pt.logsumexp(stacked))


def date_weights(pointwise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lag one-step log densities (..., m, T) -> log P(L_i | y_0..t-1) and
    log P(L_i | y_0..t), each (..., m, T), under a uniform prior."""
    m = pointwise.shape[-2]
    after = np.cumsum(pointwise, axis=-1) - np.log(m)
    after = after - logsumexp(after, axis=-2, keepdims=True)
    first = np.full(pointwise.shape[:-1] + (1,), -np.log(m))
    before = np.concatenate([first, after[..., :-1]], axis=-1)
    return before, after


def mix_draws(filtered: np.ndarray, pointwise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-lag filtered probabilities (..., m, T, S) and one-step log densities
    (..., m, T) -> the mixture's (..., T, S) and (..., T); the leading axes are draws
    (or none, for one draw)."""
    before, after = date_weights(pointwise)
    mixed = (np.exp(after)[..., None] * filtered).sum(axis=-3)
    return mixed, logsumexp(before + pointwise, axis=-2)


def mix_date_quantities(
    per_lag: list, n_dates: int, forecasts: list[np.ndarray] | None = None
) -> tuple:
    """Per-lag quantities (each over n_dates dates, then any forecast dates) -> the
    mixture's over the n_dates dates, and the mixed forecast (..., horizon, S). One draw
    (DrawProbabilities (T, S), forecasts (horizon, S)) or many (ProbabilityDraws
    (N, T, S), forecasts (N, horizon, S)): the result is of the type given."""
    pointwise = np.stack([q.pointwise_loglik[..., :n_dates] for q in per_lag], axis=-2)
    before, after = date_weights(pointwise)  # (..., m, T)
    last = np.exp(after[..., -1])  # P(L_i | y), (..., m)

    def stacked(name: str) -> np.ndarray | None:
        if getattr(per_lag[0], name) is None:  # not computed (no bands)
            return None
        return np.stack([getattr(q, name)[..., :n_dates, :] for q in per_lag], axis=-3)

    def mix(name: str, weights: np.ndarray) -> np.ndarray | None:
        values = stacked(name)  # (..., m, T, S)
        return None if values is None else (weights[..., None] * values).sum(axis=-3)

    filtered, pointwise_loglik = mix_draws(stacked("filtered"), pointwise)
    mixed = type(per_lag[0])(
        filtered=filtered,
        predicted=mix("predicted", np.exp(before)),
        smoothed=mix("smoothed", np.broadcast_to(last[..., None], after.shape)),
        pointwise_loglik=pointwise_loglik,
    )
    forecast = None
    if forecasts is not None:
        forecast = np.einsum("...m,...mhs->...hs", last, np.stack(forecasts, axis=-3))
    return mixed, forecast
