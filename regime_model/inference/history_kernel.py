"""The HMM log-likelihood on a chain of regime histories, and its exact gradient, in
O(T K^(p+2)) rather than the general kernel's O(T K^(2p+2)).

A history h = (s_t, s_{t-1}, ..., s_{t-p}) of K regimes (state number sum_i s_{t-i}
K^(p-i), s_t the most significant digit; :func:`~regime_model.models.autoregression.
regime_histories`) can only move to (s', s_t, ..., s_{t-p+1}), with the regime chain's
probability P[s_t, s']: of its S = K^(p+1) successors K are possible. Write a history as
(r, o), r = (s_t, ..., s_{t-p+1}) its K^p most recent regimes and o the oldest; its
successors are (s', r). With alpha the normalised forward probabilities, e_t(h) =
exp(log_emission[t, h] - m_t) (m_t the date's largest entry) and P_t the matrix of the
move into date t,

    b_t(r)          = sum_o alpha_{t-1}(r, o)
    alpha_t(s', r)  = e_t(s', r) b_t(r) P_t[r_0, s'] / c_t,   c_t the normaliser,
    log p(y)        = sum_t (log c_t + m_t),

and backwards, with beta_{T-1} = 1 and w_t(h) = e_t(h) beta_t(h) / c_t,

    beta_{t-1}(r, o)        = sum_s' P_t[r_0, s'] w_t(s', r)     (the same for every o)
    dL/dlog_emission[t, h]  = alpha_t(h) beta_t(h)
    dL/dlog_P_t[i, j]       = sum_{r: r_0 = i} b_t(r) P_t[i, j] w_t(j, r)
    dL/dlog_initial[h]      = alpha_0(h) beta_0(h).

It runs in probability space with these scalings. If every path's probability underflows
on some date (c_t = 0) the log-likelihood is -inf and the gradient NaN, as the general
kernel returns for a zero likelihood. Inputs as the general kernel's
(:mod:`~regime_model.inference.forward_backward`) but for the transition, which is the
*regime* chain's: log_initial (S,), log_transition (K, K) or (T-1, K, K), log_emission
(T, S).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
from pytensor.graph.basic import Apply, Variable
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

from regime_model.inference.pytensor_op import KernelLikelihoodOp

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@numba.njit(cache=True)
def _normalise(alpha, t, total) -> None:
    if total > 0.0:
        inverse = 1.0 / total
        for h in range(alpha.shape[1]):
            alpha[t, h] *= inverse


@numba.njit(cache=True)
def _forward(log_initial, transition, log_emission, order):
    """(emission e (T, S), alpha (T, S), b (T, K^p), c (T,), shifts m (T,)) of the
    module docstring, for ``transition`` (n, K, K) probabilities, n = 1 (homogeneous)
    or T - 1."""
    n_dates, n_histories = log_emission.shape
    n_regimes = transition.shape[1]
    n_recent = n_regimes**order  # values of r
    lead = n_regimes ** (order - 1)  # r // lead = r_0, the current regime of (r, o)
    if n_recent * n_regimes != n_histories or log_initial.shape[0] != n_histories:
        raise ValueError("log_initial and log_emission must have K^(p+1) histories")
    if transition.shape[0] not in (1, n_dates - 1):
        raise ValueError("log_transition must be (1, K, K) or (T-1, K, K)")
    homogeneous = transition.shape[0] == 1
    # Element loops, not row slices or array expressions: at S = 4 those temporaries
    # cost as much as the arithmetic.
    emission = np.empty((n_dates, n_histories))
    shifts = np.empty(n_dates)
    for t in range(n_dates):
        shift = log_emission[t, 0]
        for h in range(1, n_histories):
            shift = max(shift, log_emission[t, h])
        shifts[t] = shift
        for h in range(n_histories):
            emission[t, h] = np.exp(log_emission[t, h] - shift)
    alpha = np.empty((n_dates, n_histories))
    recent = np.zeros((n_dates, n_recent))  # b_t (row 0 unused)
    scale = np.empty(n_dates)
    total = 0.0
    for h in range(n_histories):
        alpha[0, h] = np.exp(log_initial[h]) * emission[0, h]
        total += alpha[0, h]
    scale[0] = total
    _normalise(alpha, 0, total)
    for t in range(1, n_dates):
        move = transition[0] if homogeneous else transition[t - 1]
        for r in range(n_recent):
            acc = 0.0
            for o in range(n_regimes):
                acc += alpha[t - 1, r * n_regimes + o]
            recent[t, r] = acc
        total = 0.0
        for j in range(n_regimes):
            for i in range(n_regimes):  # r_0 = i for r in [i lead, (i + 1) lead)
                probability = move[i, j]
                for r in range(i * lead, (i + 1) * lead):
                    h = j * n_recent + r
                    alpha[t, h] = emission[t, h] * recent[t, r] * probability
                    total += alpha[t, h]
        _normalise(alpha, t, total)
        scale[t] = total
    return emission, alpha, recent, scale, shifts


@numba.njit(cache=True)
def history_filter_draws(log_initial, log_transition, log_emission, order):
    """(log predictive (N, T), filtered (N, T, S)) of N draws: log p(y_t | y_<t) and
    P(h_t | y_<=t) per date. Inputs (N, S), (N, n, K, K), (N, T, S); a date whose paths
    all underflow gets -inf and NaN probabilities."""
    n_draws, n_dates, n_histories = log_emission.shape
    log_predictive = np.empty((n_draws, n_dates))
    filtered = np.empty((n_draws, n_dates, n_histories))
    for n in range(n_draws):
        _, alpha, _, scale, shifts = _forward(
            log_initial[n], np.exp(log_transition[n]), log_emission[n], order
        )
        for t in range(n_dates):
            if scale[t] > 0.0:
                log_predictive[n, t] = np.log(scale[t]) + shifts[t]
                filtered[n, t] = alpha[t]
            else:
                log_predictive[n, t] = -np.inf
                filtered[n, t] = np.nan
    return log_predictive, filtered


def history_draw_inputs(log_initial, log_transition, log_emission):
    """Stacked draws as :func:`history_filter_draws` takes them: (N, S), (N, n, K, K),
    (N, T, S) contiguous float64, a homogeneous (N, K, K) transition given n = 1."""
    log_transition = np.asarray(log_transition, dtype=np.float64)
    if log_transition.ndim == 3:
        log_transition = log_transition[:, np.newaxis]
    return tuple(
        np.ascontiguousarray(value, dtype=np.float64)
        for value in (log_initial, log_transition, log_emission)
    )


@numba.njit(cache=True)
def history_loglik_and_grad(log_initial, log_transition, log_emission, order):
    """(log-likelihood, d/dlog_initial (S,), d/dlog_transition (n, K, K), d/dlog_emission
    (T, S)) for ``log_transition`` (n, K, K), n = 1 (homogeneous) or T - 1."""
    n_dates, n_histories = log_emission.shape
    n_regimes = log_transition.shape[1]
    n_recent = n_regimes**order
    lead = n_regimes ** (order - 1)
    homogeneous = log_transition.shape[0] == 1
    transition = np.exp(log_transition)
    emission, alpha, recent, scale, shifts = _forward(log_initial, transition, log_emission, order)
    if not (scale > 0.0).all():
        nan = np.nan
        return (
            -np.inf,
            np.full(n_histories, nan),
            np.full(log_transition.shape, nan),
            np.full((n_dates, n_histories), nan),
        )
    log_likelihood = shifts.sum()
    log_likelihood += np.log(scale).sum()
    grad_transition = np.zeros(log_transition.shape)
    grad_emission = np.empty((n_dates, n_histories))
    beta = np.ones(n_histories)
    weight = np.empty(n_histories)
    for t in range(n_dates - 1, 0, -1):
        for h in range(n_histories):
            grad_emission[t, h] = alpha[t, h] * beta[h]
            weight[h] = emission[t, h] * beta[h] / scale[t]
        index = 0 if homogeneous else t - 1
        move = transition[index]
        for r in range(n_recent):
            i = r // lead
            following = 0.0
            for j in range(n_regimes):
                contribution = move[i, j] * weight[j * n_recent + r]
                following += contribution
                grad_transition[index, i, j] += recent[t, r] * contribution
            for o in range(n_regimes):
                beta[r * n_regimes + o] = following
    for h in range(n_histories):
        grad_emission[0, h] = alpha[0, h] * beta[h]
    return log_likelihood, grad_emission[0].copy(), grad_transition, grad_emission


class HistoryLogLikelihoodOp(KernelLikelihoodOp):
    """log p(y) on the history chain and its gradients, one forward-backward pass.

    Inputs: log_initial (S,), log_transition (K, K) or (T-1, K, K), log_emission (T, S).
    Outputs: the log-likelihood () and its gradients, shaped as the inputs."""

    __props__ = ("order",)

    def __init__(self, order: int) -> None:
        self.order = order
        super().__init__()

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        values = _kernel(node)(*inputs, self.order)
        for storage, value in zip(output_storage, values, strict=True):
            storage[0] = np.asarray(value, dtype=np.float64)


@numba.njit(cache=True)
def history_homogeneous(log_initial, log_transition, log_emission, order):
    """The kernel on a (K, K) transition, its gradient (K, K)."""
    n_regimes = log_transition.shape[0]
    stacked = np.ascontiguousarray(log_transition).reshape((1, n_regimes, n_regimes))
    value, grad_initial, grad_transition, grad_emission = history_loglik_and_grad(
        np.ascontiguousarray(log_initial), stacked, np.ascontiguousarray(log_emission), order
    )
    return value, grad_initial, grad_transition[0], grad_emission


@numba.njit(cache=True)
def history_time_varying(log_initial, log_transition, log_emission, order):
    """The kernel on a (T-1, K, K) transition."""
    return history_loglik_and_grad(
        np.ascontiguousarray(log_initial),
        np.ascontiguousarray(log_transition),
        np.ascontiguousarray(log_emission),
        order,
    )


def _kernel(node: Apply):
    return history_time_varying if node.inputs[1].type.ndim == 3 else history_homogeneous


def history_log_likelihood(log_initial, log_transition, log_emission, order: int) -> Variable:
    """Symbolic log-likelihood (scalar) of the p = ``order`` history chain (module
    docstring); differentiable once."""
    return HistoryLogLikelihoodOp(order)(log_initial, log_transition, log_emission)


@register_funcify_and_cache_key(HistoryLogLikelihoodOp)
def _numba_funcify_history(op: HistoryLogLikelihoodOp, node: Apply, **kwargs):
    """NUMBA-mode implementation (used by nutpie): calls the jitted kernel directly."""
    order, kernel = op.order, _kernel(node)
    time_varying = node.inputs[1].type.ndim == 3

    @numba_njit
    def history_log_likelihood_numba(log_initial, log_transition, log_emission):
        value, grad_initial, grad_transition, grad_emission = kernel(
            log_initial, log_transition, log_emission, order
        )
        return np.asarray(value), grad_initial, grad_transition, grad_emission

    key = f"regime_model.HistoryLogLikelihoodOp_{order}_tv{int(time_varying)}_{_SOURCE_HASH}"
    return history_log_likelihood_numba, key
