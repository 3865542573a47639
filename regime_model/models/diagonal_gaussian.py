"""Diagonal Gaussian log densities per regime, as a PyTensor Op with an exact gradient.

log_emission[t, k] = sum_d observed[t, d] * (-z^2 / 2 - log sigma[k, d] - log(2 pi) / 2),
z = (y[t, d] - mean[k, d]) / sigma[k, d]. With G = dL/dlog_emission (T, K):

    dL/dmean[k, d]  = sum_t G[t, k] observed[t, d] z / sigma[k, d]
    dL/dsigma[k, d] = sum_t G[t, k] observed[t, d] (z^2 - 1) / sigma[k, d]

Why an Op and not the elementwise graph: written as PyTensor operations, the (T, K, D)
density and its gradient are some fifteen nodes of the compiled log density (broadcasts,
sums over dates and features, their transposes), each a function numba compiles on a
cold start; here they are two short jitted loops, and one pass over the data each. The
same jitted loops serve every mode (Python-mode ``perform`` calls them too), so the
density has one definition. Leading batch axes (posterior draws) go through
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

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
_HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))


@numba.njit(cache=True)
def diagonal_gaussian_numba(
    y: np.ndarray, observed: np.ndarray, mean: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """(T, D), (T, D), (K, D), (K, D) -> (T, K) log densities, masked features skipped."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    inverse_sigma = 1.0 / sigma
    normaliser = np.log(sigma) + _HALF_LOG_2PI
    log_density = np.empty((n_dates, n_regimes))
    for t in range(n_dates):
        for k in range(n_regimes):
            total = 0.0
            for d in range(n_features):
                z = (y[t, d] - mean[k, d]) * inverse_sigma[k, d]
                total += observed[t, d] * (-0.5 * z * z - normaliser[k, d])
            log_density[t, k] = total
    return log_density


@numba.njit(cache=True)
def diagonal_gaussian_vjp_numba(
    y: np.ndarray,
    observed: np.ndarray,
    mean: np.ndarray,
    sigma: np.ndarray,
    output_grad: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dmean (K, D), dL/dsigma (K, D)) from dL/dlog_density ``output_grad`` (T, K)."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    inverse_sigma = 1.0 / sigma
    grad_mean = np.zeros((n_regimes, n_features))
    grad_sigma = np.zeros((n_regimes, n_features))
    for t in range(n_dates):
        for k in range(n_regimes):
            weight = output_grad[t, k]
            for d in range(n_features):
                z = (y[t, d] - mean[k, d]) * inverse_sigma[k, d]
                weighted = weight * observed[t, d]
                grad_mean[k, d] += weighted * z
                grad_sigma[k, d] += weighted * (z * z - 1.0)
    return grad_mean * inverse_sigma, grad_sigma * inverse_sigma


def _float_inputs(*values) -> list[Variable]:
    return [pt.cast(pt.as_tensor_variable(value), "float64") for value in values]


def _check_core_shapes(y, observed, mean, sigma) -> None:
    for name, value in (("y", y), ("observed", observed), ("mean", mean), ("sigma", sigma)):
        if value.type.ndim != 2:
            raise TypeError(f"{name} must be a matrix, not {value.type.ndim}-dimensional")


class DiagonalGaussianLogDensityOp(Op):
    """(y (T, D), observed (T, D), mean (K, D), sigma (K, D)) -> (T, K) log densities."""

    __props__ = ()
    gufunc_signature = "(t,d),(t,d),(k,d),(k,d)->(t,k)"

    def make_node(self, y, observed, mean, sigma) -> Apply:
        inputs = _float_inputs(y, observed, mean, sigma)
        _check_core_shapes(*inputs)
        y, _, mean, _ = inputs
        output = pt.tensor(dtype="float64", shape=(y.type.shape[0], mean.type.shape[0]))
        return Apply(self, inputs, [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = diagonal_gaussian_numba(*_contiguous(inputs))

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[0][0], input_shapes[2][0])]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        grad_mean, grad_sigma = _vjp_op(*inputs, output_grads[0])
        y, observed = inputs[:2]
        return [
            grad_undefined(self, 0, y, "the observations are data"),
            grad_undefined(self, 1, observed, "the mask of observed values is data"),
            grad_mean,
            grad_sigma,
        ]


class DiagonalGaussianVJPOp(Op):
    """(y, observed, mean, sigma, dL/dlog_density (T, K)) -> (dL/dmean, dL/dsigma)."""

    __props__ = ()
    gufunc_signature = "(t,d),(t,d),(k,d),(k,d),(t,k)->(k,d),(k,d)"

    def make_node(self, y, observed, mean, sigma, output_grad) -> Apply:
        inputs = _float_inputs(y, observed, mean, sigma, output_grad)
        _check_core_shapes(*inputs[:4])
        mean, sigma = inputs[2:4]
        return Apply(self, inputs, [mean.type(), sigma.type()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        for storage, value in zip(
            output_storage, diagonal_gaussian_vjp_numba(*_contiguous(inputs)), strict=True
        ):
            storage[0] = value

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [input_shapes[2], input_shapes[3]]


def _contiguous(inputs: list[np.ndarray]) -> list[np.ndarray]:
    # One compiled signature (C-contiguous float64) however the inputs were sliced.
    return [np.ascontiguousarray(value, dtype=np.float64) for value in inputs]


_log_density_op = DiagonalGaussianLogDensityOp()
_vjp_op = DiagonalGaussianVJPOp()


def diagonal_gaussian_log_density(y, observed, mean, sigma) -> Variable:
    """Symbolic (T, K) Gaussian log densities with independent features; differentiable
    in ``mean`` and ``sigma``. Shapes and the mask as in :mod:`regime_model.models.emissions`."""
    return _log_density_op(y, observed, mean, sigma)


@register_funcify_and_cache_key(DiagonalGaussianLogDensityOp)
def _numba_funcify_log_density(op: DiagonalGaussianLogDensityOp, node: Apply, **kwargs):
    @numba_njit
    def diagonal_gaussian_node(y, observed, mean, sigma):
        return diagonal_gaussian_numba(
            np.ascontiguousarray(y),
            np.ascontiguousarray(observed),
            np.ascontiguousarray(mean),
            np.ascontiguousarray(sigma),
        )

    return diagonal_gaussian_node, f"regime_model.DiagonalGaussianLogDensityOp_{_SOURCE_HASH}"


@register_funcify_and_cache_key(DiagonalGaussianVJPOp)
def _numba_funcify_vjp(op: DiagonalGaussianVJPOp, node: Apply, **kwargs):
    @numba_njit
    def diagonal_gaussian_vjp_node(y, observed, mean, sigma, output_grad):
        return diagonal_gaussian_vjp_numba(
            np.ascontiguousarray(y),
            np.ascontiguousarray(observed),
            np.ascontiguousarray(mean),
            np.ascontiguousarray(sigma),
            np.ascontiguousarray(output_grad),
        )

    return diagonal_gaussian_vjp_node, f"regime_model.DiagonalGaussianVJPOp_{_SOURCE_HASH}"
