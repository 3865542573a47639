"""Regime-switching autoregressive Gaussian densities, both forms, as one PyTensor Op with
an exact gradient (:mod:`~regime_model.models.ar_emissions` and
:mod:`~regime_model.models.autoregression` build its inputs).

In the mean-adjusted form the density depends on the history h = (s_t, s_{t-1}, ...,
s_{t-p}), state number sum_i s_{t-i} K^(p-i) (s_t the most significant digit, as
:func:`~regime_model.models.autoregression.regime_histories` numbers them), S = K^(p+1);
in the intercept form only on s = s_t, S = K. With u = usable[t, d] and
G = dL/dlog_density (T, S),

    r = y[t, d] - mean[s, d] - sum_i phi[s, i, d] (lag[t, i, d] - level_i)
    log_density[t, h] = sum_d u (-z^2 / 2 - log sigma[s, d] - log(2 pi) / 2),  z = r / sigma[s, d]

where level_i = mean[s_{t-1-i}, d] (mean-adjusted: ``mean`` is the level mu) or 0
(intercept: ``mean`` is the intercept c). Writing g = G[t, h] u z / sigma[s, d]
(minus dL/dr),

    dL/dmean[s, d]          += g
    dL/dmean[s_{t-1-i}, d]  -= g phi[s, i, d]        (mean-adjusted only)
    dL/dphi[s, i, d]        += g (lag[t, i, d] - level_i)
    dL/dsigma[s, d]         += G u (z^2 - 1) / sigma[s, d].

``coefficients`` is (K, p, D), zero for a feature that is not autoregressive (its
density is then the i.i.d. Gaussian of the current regime). A masked entry holds a
finite filler (0), so its term is finite and ``usable`` zeroes it.

Why an Op: as a PyTensor graph the (T, S, D) density is a dozen gathers and broadcasts,
each a pass over a (T, S, D) temporary in the value and again in the gradient; the
mean-adjusted one cost 1,040 us per gradient against the i.i.d. model's 279
(docs/performance.md, session eight). Here it is one pass over the data each way, with
dates innermost and contiguous so the compiler vectorises it (date-major loops were about
20 times slower at T = 2,500). Leading batch axes (posterior draws) go through
``Blockwise`` (``gufunc_signature``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import grad_undefined
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

from regime_model.models.op_inputs import check_ranks, contiguous, float_inputs

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
_HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


@numba.njit(cache=True)
def _states(n_regimes: int, order: int, mean_adjusted: bool) -> np.ndarray:
    """(S, p + 1) ints, row h the history (s_t, s_{t-1}, ..., s_{t-p}) of state h; (K, 1)
    in the intercept form, whose density depends on s_t alone."""
    depth = order + 1 if mean_adjusted else 1
    states = np.empty((n_regimes**depth, depth), dtype=np.int64)
    for h in range(states.shape[0]):
        rest = h
        for lag in range(depth - 1, -1, -1):
            states[h, lag] = rest % n_regimes
            rest //= n_regimes
    return states


@numba.njit(cache=True)
def _by_feature(y, usable, lags):
    """(D, T), (D, T), (p, D, T) copies of the data, for loops over contiguous dates."""
    n_dates, n_features = y.shape
    lags_by_feature = np.empty((lags.shape[1], n_features, n_dates))
    for i in range(lags.shape[1]):
        for d in range(n_features):
            for t in range(n_dates):
                lags_by_feature[i, d, t] = lags[t, i, d]
    return np.ascontiguousarray(y.T), np.ascontiguousarray(usable.T), lags_by_feature


@numba.njit(cache=True)
def _lag_level(mean, states, h, i, d) -> float:
    """level_i of the module docstring: the lag's regime level, or 0 (intercept form)."""
    return mean[states[h, i + 1], d] if states.shape[1] > 1 else 0.0


@numba.njit(cache=True)
def _residuals(y, lags, mean, coefficients, states, h, d, out) -> None:
    """r (module docstring) of feature d in state h at every date, into ``out`` (T,);
    ``y`` (D, T) and ``lags`` (p, D, T) by feature."""
    state = states[h, 0]
    level = mean[state, d]
    for t in range(y.shape[1]):
        out[t] = y[d, t] - level
    for i in range(lags.shape[0]):
        coefficient, lag_level = coefficients[state, i, d], _lag_level(mean, states, h, i, d)
        for t in range(y.shape[1]):
            out[t] -= coefficient * (lags[i, d, t] - lag_level)


@numba.njit(cache=True)
def autoregressive_numba(y, usable, lags, mean, sigma, coefficients, mean_adjusted):
    """(T, D), (T, D), (T, p, D), (K, D), (K, D), (K, p, D) -> (T, S) log densities."""
    n_dates, n_features = y.shape
    states = _states(mean.shape[0], lags.shape[1], mean_adjusted)
    y, usable, lags = _by_feature(y, usable, lags)
    log_density = np.zeros((states.shape[0], n_dates))
    residual = np.empty(n_dates)
    for h in range(states.shape[0]):
        state = states[h, 0]
        for d in range(n_features):
            _residuals(y, lags, mean, coefficients, states, h, d, residual)
            inverse_sigma = 1.0 / sigma[state, d]
            normaliser = np.log(sigma[state, d]) + _HALF_LOG_2PI
            for t in range(n_dates):
                z = residual[t] * inverse_sigma
                log_density[h, t] += usable[d, t] * (-0.5 * z * z - normaliser)
    return np.ascontiguousarray(log_density.T)


@numba.njit(cache=True)
def autoregressive_vjp_numba(
    y, usable, lags, mean, sigma, coefficients, output_grad, mean_adjusted
):
    """(dL/dmean (K, D), dL/dsigma (K, D), dL/dcoefficients (K, p, D)) from
    ``output_grad`` (T, S)."""
    n_dates, n_features = y.shape
    order = lags.shape[1]
    states = _states(mean.shape[0], order, mean_adjusted)
    y, usable, lags = _by_feature(y, usable, lags)
    output_grad = np.ascontiguousarray(output_grad.T)  # (S, T)
    grad_mean = np.zeros(mean.shape)
    grad_sigma = np.zeros(sigma.shape)
    grad_coefficients = np.zeros(coefficients.shape)
    residual = np.empty(n_dates)
    score = np.empty(n_dates)  # g of the module docstring, per date
    for h in range(states.shape[0]):
        state = states[h, 0]
        for d in range(n_features):
            _residuals(y, lags, mean, coefficients, states, h, d, residual)
            inverse_sigma = 1.0 / sigma[state, d]
            sigma_term, score_total = 0.0, 0.0
            for t in range(n_dates):
                weighted = output_grad[h, t] * usable[d, t]
                z = residual[t] * inverse_sigma
                score[t] = weighted * z * inverse_sigma
                sigma_term += weighted * (z * z - 1.0)
                score_total += score[t]
            grad_sigma[state, d] += sigma_term * inverse_sigma
            grad_mean[state, d] += score_total
            for i in range(order):
                lag_level, lag_term = _lag_level(mean, states, h, i, d), 0.0
                for t in range(n_dates):
                    lag_term += score[t] * (lags[i, d, t] - lag_level)
                grad_coefficients[state, i, d] += lag_term
                if mean_adjusted:
                    grad_mean[states[h, i + 1], d] -= score_total * coefficients[state, i, d]
    return grad_mean, grad_sigma, grad_coefficients


_NAMES = ("y", "usable", "lags", "mean", "sigma", "coefficients")
_RANKS = (2, 2, 3, 2, 2, 3)


class AutoregressiveLogDensityOp(Op):
    """(y (T, D), usable (T, D), lags (T, p, D), mean (K, D), sigma (K, D),
    coefficients (K, p, D)) -> (T, S) log densities, S = K^(p+1) mean-adjusted, else K."""

    __props__ = ("n_states", "mean_adjusted")

    def __init__(self, n_states: int, mean_adjusted: bool) -> None:
        # S is the Op's, so the output's core shape is known when it is vectorised.
        self.n_states = n_states
        self.mean_adjusted = mean_adjusted
        self.gufunc_signature = f"(t,d),(t,d),(t,p,d),(k,d),(k,d),(k,p,d)->(t,{n_states})"
        super().__init__()

    def make_node(self, *inputs) -> Apply:
        inputs = float_inputs(*inputs)
        check_ranks(inputs, _NAMES, _RANKS)
        output = pt.tensor(dtype="float64", shape=(inputs[0].type.shape[0], self.n_states))
        return Apply(self, inputs, [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = autoregressive_numba(*contiguous(inputs), self.mean_adjusted)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[0][0], self.n_states)]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        y, usable, lags = inputs[:3]
        return [
            grad_undefined(self, 0, y, "the observations are data"),
            grad_undefined(self, 1, usable, "the mask of usable values is data"),
            grad_undefined(self, 2, lags, "the lagged observations are data"),
            *_VJP_OPS[self.mean_adjusted](*inputs, output_grads[0]),
        ]


class AutoregressiveVJPOp(Op):
    """(the density's inputs, dL/dlog_density (T, S)) -> dL/d mean, sigma, coefficients."""

    __props__ = ("mean_adjusted",)
    gufunc_signature = "(t,d),(t,d),(t,p,d),(k,d),(k,d),(k,p,d),(t,s)->(k,d),(k,d),(k,p,d)"

    def __init__(self, mean_adjusted: bool) -> None:
        self.mean_adjusted = mean_adjusted
        super().__init__()

    def make_node(self, *inputs) -> Apply:
        inputs = float_inputs(*inputs)
        return Apply(self, inputs, [value.type() for value in inputs[3:6]])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        gradients = autoregressive_vjp_numba(*contiguous(inputs), self.mean_adjusted)
        for storage, value in zip(output_storage, gradients, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return list(input_shapes[3:6])


_VJP_OPS = {form: AutoregressiveVJPOp(form) for form in (False, True)}


def autoregressive_density(
    y, usable, lags: np.ndarray, mean, sigma, coefficients, n_regimes: int, mean_adjusted: bool
) -> Variable:
    """Symbolic (T, S) log densities (module docstring) for K = ``n_regimes`` and p the
    number of ``lags``; differentiable in ``mean``, ``sigma`` and ``coefficients``."""
    n_states = n_regimes ** (np.shape(lags)[1] + 1) if mean_adjusted else n_regimes
    return AutoregressiveLogDensityOp(n_states, mean_adjusted)(
        y, usable, lags, mean, sigma, coefficients
    )


# ----------------------------------------------------- numba mode (nutpie's log density)
@register_funcify_and_cache_key(AutoregressiveLogDensityOp)
def _numba_funcify_log_density(op: AutoregressiveLogDensityOp, node: Apply, **kwargs):
    mean_adjusted = op.mean_adjusted

    @numba_njit
    def log_density_node(y, usable, lags, mean, sigma, coefficients):
        return autoregressive_numba(
            np.ascontiguousarray(y),
            np.ascontiguousarray(usable),
            np.ascontiguousarray(lags),
            np.ascontiguousarray(mean),
            np.ascontiguousarray(sigma),
            np.ascontiguousarray(coefficients),
            mean_adjusted,
        )

    key = f"regime_model.AutoregressiveLogDensityOp_{mean_adjusted}_{_SOURCE_HASH}"
    return log_density_node, key


@register_funcify_and_cache_key(AutoregressiveVJPOp)
def _numba_funcify_vjp(op: AutoregressiveVJPOp, node: Apply, **kwargs):
    mean_adjusted = op.mean_adjusted

    @numba_njit
    def vjp_node(y, usable, lags, mean, sigma, coefficients, output_grad):
        return autoregressive_vjp_numba(
            np.ascontiguousarray(y),
            np.ascontiguousarray(usable),
            np.ascontiguousarray(lags),
            np.ascontiguousarray(mean),
            np.ascontiguousarray(sigma),
            np.ascontiguousarray(coefficients),
            np.ascontiguousarray(output_grad),
            mean_adjusted,
        )

    return vjp_node, f"regime_model.AutoregressiveVJPOp_{mean_adjusted}_{_SOURCE_HASH}"
