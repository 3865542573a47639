"""Stationary distribution of a transition matrix, as a PyTensor Op with an exact gradient.

pi solves A pi = e_K, where A is P^T - I with its last row replaced by ones (the
constraint sum(pi) = 1). The vector-Jacobian product follows from dA pi + A dpi = 0: with
lambda = A^-T g, dL/dA = -lambda pi^T, and since A[i, j] = P[j, i] - [i == j] for i < K-1,
dL/dP[j, i] = -pi_j lambda_i for i < K-1 and 0 for the last column.

Why an Op and not ``pt.linalg.solve``: the general solve brings LU factorisation, pivoting
(an argsort) and triangular solves into the compiled log density, about 35 s of a cold
numba compile for a 2 x 2 system; here a K x K elimination (K <= 25) is a short jitted
loop. The Op also takes leading batch axes, so the post-processing, which
evaluates the model's graph over many draws at once, solves all of them in one batched
``numpy.linalg.solve`` instead of one call per draw.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.graph.replace import _vectorize_node
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _system(transition: np.ndarray) -> np.ndarray:
    """(..., K, K) transition -> (..., K, K) A = P^T - I with a last row of ones."""
    n_states = transition.shape[-1]
    system = np.swapaxes(transition, -1, -2) - np.eye(n_states)
    system[..., -1, :] = 1.0
    return system


def stationary_numpy(transition: np.ndarray) -> np.ndarray:
    """pi with pi P = pi, sum(pi) = 1, for a (..., K, K) stack of transition matrices."""
    system = _system(np.asarray(transition, dtype=np.float64))
    target = np.zeros(system.shape[:-1])
    target[..., -1] = 1.0
    return np.linalg.solve(system, target[..., None])[..., 0]


def stationary_vjp_numpy(transition: np.ndarray, stationary: np.ndarray, output_grad: np.ndarray):
    """dL/dP (..., K, K) from pi (..., K) and dL/dpi (..., K)."""
    system = _system(np.asarray(transition, dtype=np.float64))
    adjoint = np.linalg.solve(np.swapaxes(system, -1, -2), output_grad[..., None])[..., 0]
    adjoint[..., -1] = 0.0
    return -stationary[..., :, None] * adjoint[..., None, :]


@numba.njit(cache=True)
def _solve_small(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """x with matrix @ x = vector: Gaussian elimination with partial pivoting (small K)."""
    n = vector.shape[0]
    a = matrix.copy()
    b = vector.copy()
    for column in range(n):
        pivot = column
        for row in range(column + 1, n):
            if abs(a[row, column]) > abs(a[pivot, column]):
                pivot = row
        if pivot != column:
            for j in range(n):
                a[column, j], a[pivot, j] = a[pivot, j], a[column, j]
            b[column], b[pivot] = b[pivot], b[column]
        for row in range(column + 1, n):
            factor = a[row, column] / a[column, column]
            for j in range(column, n):
                a[row, j] -= factor * a[column, j]
            b[row] -= factor * b[column]
    x = np.empty(n)
    for row in range(n - 1, -1, -1):
        total = b[row]
        for j in range(row + 1, n):
            total -= a[row, j] * x[j]
        x[row] = total / a[row, row]
    return x


@numba.njit(cache=True)
def _system_numba(transition: np.ndarray) -> np.ndarray:
    n = transition.shape[0]
    system = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            system[i, j] = 1.0 if i == n - 1 else transition[j, i] - (1.0 if i == j else 0.0)
    return system


@numba.njit(cache=True)
def stationary_numba(transition: np.ndarray) -> np.ndarray:
    """:func:`stationary_numpy` for one (K, K) matrix, jitted."""
    n = transition.shape[0]
    target = np.zeros(n)
    target[n - 1] = 1.0
    return _solve_small(_system_numba(transition), target)


@numba.njit(cache=True)
def stationary_vjp_numba(
    transition: np.ndarray, stationary: np.ndarray, output_grad: np.ndarray
) -> np.ndarray:
    """:func:`stationary_vjp_numpy` for one (K, K) matrix, jitted."""
    n = transition.shape[0]
    adjoint = _solve_small(_system_numba(transition).T.copy(), output_grad)
    gradient = np.zeros((n, n))
    for j in range(n):
        for i in range(n - 1):
            gradient[j, i] = -stationary[j] * adjoint[i]
    return gradient


class StationaryDistributionOp(Op):
    """(..., K, K) transition matrices -> (..., K) stationary distributions."""

    __props__ = ()

    def make_node(self, transition) -> Apply:
        transition = pt.cast(pt.as_tensor_variable(transition), "float64")
        if transition.type.ndim < 2:
            raise TypeError("transition must have shape (..., K, K)")
        output = pt.tensor(dtype="float64", shape=transition.type.shape[:-1])
        return Apply(self, [transition], [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = stationary_numpy(inputs[0])

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [input_shapes[0][:-1]]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        return [_stationary_vjp_op(inputs[0], outputs[0], output_grads[0])]


class StationaryDistributionVJPOp(Op):
    """(transition (..., K, K), stationary (..., K), dL/dstationary (..., K)) -> dL/dP."""

    __props__ = ()

    def make_node(self, transition, stationary, output_grad) -> Apply:
        inputs = [
            pt.cast(pt.as_tensor_variable(value), "float64")
            for value in (transition, stationary, output_grad)
        ]
        return Apply(self, inputs, [inputs[0].type()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = stationary_vjp_numpy(*inputs)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [input_shapes[0]]


_stationary_op = StationaryDistributionOp()
_stationary_vjp_op = StationaryDistributionVJPOp()


def stationary_distribution(transition) -> Variable:
    """Symbolic pi with pi P = pi and sum(pi) = 1. (..., K, K) -> (..., K); differentiable."""
    return _stationary_op(transition)


# Both Ops broadcast over leading axes themselves: vectorising a graph over draws keeps them.
@_vectorize_node.register(StationaryDistributionOp)
@_vectorize_node.register(StationaryDistributionVJPOp)
def _vectorize_stationary(op: Op, node: Apply, *batched_inputs) -> list[Variable]:
    return op.make_node(*batched_inputs).outputs


@register_funcify_and_cache_key(StationaryDistributionOp)
def _numba_funcify_stationary(op: StationaryDistributionOp, node: Apply, **kwargs):
    @numba_njit
    def stationary_distribution_numba(transition):
        # Leading axes flattened into one loop (a single (K, K) matrix is a batch of one).
        matrices = np.ascontiguousarray(transition)
        n_states = matrices.shape[-1]
        flat = matrices.reshape((-1, n_states, n_states))
        result = np.empty((flat.shape[0], n_states))
        for index in range(flat.shape[0]):
            result[index] = stationary_numba(flat[index])
        return result.reshape(matrices.shape[:-1])

    return stationary_distribution_numba, f"regime_model.StationaryDistributionOp_{_SOURCE_HASH}"


@register_funcify_and_cache_key(StationaryDistributionVJPOp)
def _numba_funcify_stationary_vjp(op: StationaryDistributionVJPOp, node: Apply, **kwargs):
    @numba_njit
    def stationary_vjp_numba_node(transition, stationary, output_grad):
        matrices = np.ascontiguousarray(transition)
        n_states = matrices.shape[-1]
        flat = matrices.reshape((-1, n_states, n_states))
        flat_stationary = np.ascontiguousarray(stationary).reshape((-1, n_states))
        flat_grad = np.ascontiguousarray(output_grad).reshape((-1, n_states))
        result = np.empty_like(flat)
        for index in range(flat.shape[0]):
            result[index] = stationary_vjp_numba(
                flat[index], flat_stationary[index], flat_grad[index]
            )
        return result.reshape(matrices.shape)

    return stationary_vjp_numba_node, f"regime_model.StationaryDistributionVJPOp_{_SOURCE_HASH}"
