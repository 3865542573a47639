"""Regime-switching autoregressive Gaussian densities, both forms, as one PyTensor Op with
an exact gradient (:mod:`~regime_model.models.ar_emissions` and
:mod:`~regime_model.models.autoregression` build its inputs).

In the mean-adjusted form the density depends on the history h = (s_t, s_{t-1}, ...,
s_{t-p}), state number sum_i s_{t-i} K^(p-i) (s_t the most significant digit, as
:func:`~regime_model.models.autoregression.regime_histories` numbers them), S = K^(p+1);
in the intercept form only on s = s_t, S = K. The coefficients sit on *links*: link l
= (d, e) lets feature d depend on the lags of feature e (a diagonal AR has the links
(d, d), a VAR(1) with a full matrix every pair of its features), so a model pays only for
the links it has. With u = usable[t, d] and G = dL/dlog_density (T, S),

    r = y[t, d] - mean[s, d] - sum_{l = (d, e)} sum_i phi[s, i, l] (lag[t, i, e] - level_(i, e))
    log_density[t, h] = sum_d u (-z^2 / 2 - log sigma[s, d] - log(2 pi) / 2),  z = r / sigma[s, d]

where level_(i, e) = mean[s_{t-1-i}, e] (mean-adjusted: ``mean`` is the level mu) or 0
(intercept: ``mean`` is the intercept c). Writing g = G[t, h] u z / sigma[s, d]
(minus dL/dr), for every link l = (d, e)

    dL/dmean[s, d]          += g
    dL/dmean[s_{t-1-i}, e]  -= g phi[s, i, l]        (mean-adjusted only)
    dL/dphi[s, i, l]        += g (lag[t, i, e] - level_(i, e))
    dL/dsigma[s, d]         += G u (z^2 - 1) / sigma[s, d].

``coefficients`` is (K, p, L); a feature that is the target of no link has the i.i.d.
Gaussian density of the current regime. A masked entry holds a finite filler (0), so its
term is finite and ``usable`` zeroes it.

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
def _residuals(y, lags, mean, coefficients, links, states, h, d, out) -> None:
    """r (module docstring) of feature d in state h at every date, into ``out`` (T,);
    ``y`` (D, T) and ``lags`` (p, D, T) by feature, ``links`` (L, 2) (target, source)."""
    state = states[h, 0]
    level = mean[state, d]
    for t in range(y.shape[1]):
        out[t] = y[d, t] - level
    for link in range(links.shape[0]):
        if links[link, 0] != d:
            continue
        source = links[link, 1]
        for i in range(lags.shape[0]):
            coefficient = coefficients[state, i, link]
            lag_level = _lag_level(mean, states, h, i, source)
            for t in range(y.shape[1]):
                out[t] -= coefficient * (lags[i, source, t] - lag_level)


@numba.njit(cache=True)
def autoregressive_numba(y, usable, lags, mean, sigma, coefficients, links, mean_adjusted):
    """(T, D), (T, D), (T, p, D), (K, D), (K, D), (K, p, L), links (L, 2) -> (T, S) log
    densities."""
    n_dates, n_features = y.shape
    states = _states(mean.shape[0], lags.shape[1], mean_adjusted)
    y, usable, lags = _by_feature(y, usable, lags)
    log_density = np.zeros((states.shape[0], n_dates))
    residual = np.empty(n_dates)
    for h in range(states.shape[0]):
        state = states[h, 0]
        for d in range(n_features):
            _residuals(y, lags, mean, coefficients, links, states, h, d, residual)
            inverse_sigma = 1.0 / sigma[state, d]
            normaliser = np.log(sigma[state, d]) + _HALF_LOG_2PI
            for t in range(n_dates):
                z = residual[t] * inverse_sigma
                log_density[h, t] += usable[d, t] * (-0.5 * z * z - normaliser)
    return np.ascontiguousarray(log_density.T)


@numba.njit(cache=True)
def autoregressive_vjp_numba(
    y, usable, lags, mean, sigma, coefficients, output_grad, links, mean_adjusted
):
    """(dL/dmean (K, D), dL/dsigma (K, D), dL/dcoefficients (K, p, L)) from
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
            _residuals(y, lags, mean, coefficients, links, states, h, d, residual)
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
            for link in range(links.shape[0]):
                if links[link, 0] != d:
                    continue
                source = links[link, 1]
                for i in range(order):
                    lag_level, lag_term = _lag_level(mean, states, h, i, source), 0.0
                    for t in range(n_dates):
                        lag_term += score[t] * (lags[i, source, t] - lag_level)
                    grad_coefficients[state, i, link] += lag_term
                    if mean_adjusted:
                        coefficient = coefficients[state, i, link]
                        grad_mean[states[h, i + 1], source] -= score_total * coefficient
    return grad_mean, grad_sigma, grad_coefficients


_NAMES = ("y", "usable", "lags", "mean", "sigma", "coefficients")
_RANKS = (2, 2, 3, 2, 2, 3)


def _links_array(links: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(L, 2) int64 array of an Op's ``links`` prop (a tuple, so the Op is hashable)."""
    return np.array(links, dtype=np.int64).reshape(-1, 2)


class AutoregressiveLogDensityOp(Op):
    """(y (T, D), usable (T, D), lags (T, p, D), mean (K, D), sigma (K, D),
    coefficients (K, p, L)) -> (T, S) log densities, S = K^(p+1) mean-adjusted, else K;
    ``links``: the L (target, source) feature pairs the coefficients sit on."""

    __props__ = ("n_states", "mean_adjusted", "links")

    def __init__(self, n_states: int, mean_adjusted: bool, links: tuple) -> None:
        # S is the Op's, so the output's core shape is known when it is vectorised.
        self.n_states = n_states
        self.mean_adjusted = mean_adjusted
        self.links = links
        self.gufunc_signature = f"(t,d),(t,d),(t,p,d),(k,d),(k,d),(k,p,l)->(t,{n_states})"
        super().__init__()

    def make_node(self, *inputs) -> Apply:
        inputs = float_inputs(*inputs)
        check_ranks(inputs, _NAMES, _RANKS)
        output = pt.tensor(dtype="float64", shape=(inputs[0].type.shape[0], self.n_states))
        return Apply(self, inputs, [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = autoregressive_numba(
            *contiguous(inputs), _links_array(self.links), self.mean_adjusted
        )

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[0][0], self.n_states)]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        y, usable, lags = inputs[:3]
        return [
            grad_undefined(self, 0, y, "the observations are data"),
            grad_undefined(self, 1, usable, "the mask of usable values is data"),
            grad_undefined(self, 2, lags, "the lagged observations are data"),
            *AutoregressiveVJPOp(self.mean_adjusted, self.links)(*inputs, output_grads[0]),
        ]


class AutoregressiveVJPOp(Op):
    """(the density's inputs, dL/dlog_density (T, S)) -> dL/d mean, sigma, coefficients."""

    __props__ = ("mean_adjusted", "links")
    gufunc_signature = "(t,d),(t,d),(t,p,d),(k,d),(k,d),(k,p,l),(t,s)->(k,d),(k,d),(k,p,l)"

    def __init__(self, mean_adjusted: bool, links: tuple) -> None:
        self.mean_adjusted = mean_adjusted
        self.links = links
        super().__init__()

    def make_node(self, *inputs) -> Apply:
        inputs = float_inputs(*inputs)
        return Apply(self, inputs, [value.type() for value in inputs[3:6]])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        gradients = autoregressive_vjp_numba(
            *contiguous(inputs), _links_array(self.links), self.mean_adjusted
        )
        for storage, value in zip(output_storage, gradients, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return list(input_shapes[3:6])


def autoregressive_density(
    y,
    usable,
    lags: np.ndarray,
    mean,
    sigma,
    coefficients,
    links: np.ndarray,
    n_regimes: int,
    mean_adjusted: bool,
) -> Variable:
    """Symbolic (T, S) log densities (module docstring) for K = ``n_regimes``, p the
    number of ``lags`` and ``links`` (L, 2) the (target, source) pairs of the (K, p, L)
    ``coefficients``; differentiable in ``mean``, ``sigma`` and ``coefficients``."""
    n_states = n_regimes ** (np.shape(lags)[1] + 1) if mean_adjusted else n_regimes
    links = tuple((int(target), int(source)) for target, source in np.reshape(links, (-1, 2)))
    return AutoregressiveLogDensityOp(n_states, mean_adjusted, links)(
        y, usable, lags, mean, sigma, coefficients
    )


# ----------------------------------------------------- numba mode (nutpie's log density)
@register_funcify_and_cache_key(AutoregressiveLogDensityOp)
def _numba_funcify_log_density(op: AutoregressiveLogDensityOp, node: Apply, **kwargs):
    mean_adjusted, links = op.mean_adjusted, _links_array(op.links)

    @numba_njit
    def log_density_node(y, usable, lags, mean, sigma, coefficients):
        return autoregressive_numba(
            np.ascontiguousarray(y),
            np.ascontiguousarray(usable),
            np.ascontiguousarray(lags),
            np.ascontiguousarray(mean),
            np.ascontiguousarray(sigma),
            np.ascontiguousarray(coefficients),
            links,
            mean_adjusted,
        )

    key = f"regime_model.AutoregressiveLogDensityOp_{mean_adjusted}_{op.links}_{_SOURCE_HASH}"
    return log_density_node, key


@register_funcify_and_cache_key(AutoregressiveVJPOp)
def _numba_funcify_vjp(op: AutoregressiveVJPOp, node: Apply, **kwargs):
    mean_adjusted, links = op.mean_adjusted, _links_array(op.links)

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
            links,
            mean_adjusted,
        )

    key = f"regime_model.AutoregressiveVJPOp_{mean_adjusted}_{op.links}_{_SOURCE_HASH}"
    return vjp_node, key
