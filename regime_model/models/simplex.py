"""Dirichlet rows on the simplex, with the simplex transform as a PyTensor Op.

NUTS samples a Dirichlet row x (K,) through K - 1 unconstrained values y. The map is
PyMC's own simplex transform: z = (y, -sum(y)) and x = softmax(z), whose log-Jacobian is
log K + sum_k log x_k (z sums to zero, so this equals PyMC's formula). With upstream
gradients gx (K,) and gj (scalar) for x and the log-Jacobian:

    dL/dz_j = x_j (gx_j - sum_k gx_k x_k) - K gj x_j,    dL/dy_j = dL/dz_j - dL/dz_K.

Why an Op: written as PyTensor operations, the transform, its Jacobian and their gradient
are some forty nodes of a transition matrix's compiled log density (a join with an
allocated zero column, softmax, logsumexp, splits in the gradient), and on a cold start
numba compiled them for about half the time of the whole model. Here they are two short
jitted loops. The transform is the same bijection as PyMC's, so a posterior, a start
point or a saved trace means the same thing with either.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numba
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.graph.replace import _vectorize_node
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@numba.njit(cache=True)
def simplex_rows_numba(unconstrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, K-1) unconstrained rows -> ((R, K) simplex rows, (R,) log-Jacobians)."""
    n_rows, n_free = unconstrained.shape
    n_states = n_free + 1
    simplex = np.empty((n_rows, n_states))
    log_jacobian = np.empty(n_rows)
    for row in range(n_rows):
        last = 0.0
        for j in range(n_free):
            last -= unconstrained[row, j]
        largest = last
        for j in range(n_free):
            largest = max(largest, unconstrained[row, j])
        total = 0.0
        for j in range(n_states):
            value = unconstrained[row, j] if j < n_free else last
            simplex[row, j] = math.exp(value - largest)
            total += simplex[row, j]
        for j in range(n_states):
            simplex[row, j] /= total
        log_jacobian[row] = math.log(n_states) - n_states * (largest + math.log(total))
    return simplex, log_jacobian


@numba.njit(cache=True)
def simplex_rows_vjp_numba(
    simplex: np.ndarray, simplex_grad: np.ndarray, log_jacobian_grad: np.ndarray
) -> np.ndarray:
    """dL/dy (R, K-1) from the rows x (R, K) and dL/dx (R, K), dL/dlog_jacobian (R,)."""
    n_rows, n_states = simplex.shape
    if simplex_grad.shape != simplex.shape or log_jacobian_grad.shape[0] != n_rows:
        # Reading a broadcast gradient as if full-sized would run past its end.
        raise ValueError("simplex rows VJP: gradients must match the rows' shape")
    gradient = np.empty((n_rows, n_states - 1))
    for row in range(n_rows):
        weighted = 0.0
        for k in range(n_states):
            weighted += simplex_grad[row, k] * simplex[row, k]
        jacobian_term = n_states * log_jacobian_grad[row]
        last = n_states - 1
        grad_last = simplex[row, last] * (simplex_grad[row, last] - weighted - jacobian_term)
        for j in range(n_states - 1):
            grad_j = simplex[row, j] * (simplex_grad[row, j] - weighted - jacobian_term)
            gradient[row, j] = grad_j - grad_last
    return gradient


def _as_rows(value: np.ndarray, width: int) -> np.ndarray:
    # Leading axes flattened into rows; one compiled signature however the input was sliced.
    return np.ascontiguousarray(value, dtype=np.float64).reshape((-1, width))


class SimplexRowsOp(Op):
    """(..., K-1) unconstrained -> ((..., K) simplex rows, (...) log-Jacobians)."""

    __props__ = ()

    def make_node(self, unconstrained) -> Apply:
        unconstrained = pt.cast(pt.as_tensor_variable(unconstrained), "float64")
        if unconstrained.type.ndim < 1:
            raise TypeError("the unconstrained values must have shape (..., K-1)")
        *batch, n_free = unconstrained.type.shape
        simplex = pt.tensor(dtype="float64", shape=(*batch, None if n_free is None else n_free + 1))
        log_jacobian = pt.tensor(dtype="float64", shape=tuple(batch))
        return Apply(self, [unconstrained], [simplex, log_jacobian])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        unconstrained = inputs[0]
        simplex, log_jacobian = simplex_rows_numba(_as_rows(unconstrained, unconstrained.shape[-1]))
        batch = unconstrained.shape[:-1]
        output_storage[0][0] = simplex.reshape((*batch, simplex.shape[-1]))
        output_storage[1][0] = log_jacobian.reshape(batch)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        *batch, n_free = input_shapes[0]
        return [(*batch, n_free + 1), tuple(batch)]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        simplex, log_jacobian = outputs
        simplex_grad, log_jacobian_grad = output_grads
        if isinstance(simplex_grad.type, DisconnectedType):
            simplex_grad = pt.zeros_like(simplex)
        if isinstance(log_jacobian_grad.type, DisconnectedType):
            log_jacobian_grad = pt.zeros_like(log_jacobian)
        return [_vjp_op(simplex, simplex_grad, log_jacobian_grad)]


class SimplexRowsVJPOp(Op):
    """(x (..., K), dL/dx (..., K), dL/dlog_jacobian (...)) -> dL/dy (..., K-1)."""

    __props__ = ()

    def make_node(self, simplex, simplex_grad, log_jacobian_grad) -> Apply:
        inputs = [
            pt.cast(pt.as_tensor_variable(value), "float64")
            for value in (simplex, simplex_grad, log_jacobian_grad)
        ]
        *batch, n_states = inputs[0].type.shape
        gradient = pt.tensor(
            dtype="float64", shape=(*batch, None if n_states is None else n_states - 1)
        )
        return Apply(self, inputs, [gradient])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        simplex, simplex_grad, log_jacobian_grad = inputs
        n_states = simplex.shape[-1]
        # No broadcasting here: the kernel refuses mismatched gradients in every mode alike.
        gradient = simplex_rows_vjp_numba(
            _as_rows(simplex, n_states),
            _as_rows(simplex_grad, n_states),
            _as_rows(log_jacobian_grad, 1)[:, 0],
        )
        output_storage[0][0] = gradient.reshape((*simplex.shape[:-1], n_states - 1))

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        *batch, n_states = input_shapes[0]
        return [(*batch, n_states - 1)]


_simplex_rows_op = SimplexRowsOp()
_vjp_op = SimplexRowsVJPOp()


def simplex_rows(unconstrained) -> tuple[Variable, Variable]:
    """Symbolic ((..., K) simplex rows, (...) log-Jacobians) of (..., K-1) values."""
    unconstrained = pt.as_tensor_variable(unconstrained)
    # PyMC asks the transform for the rows and for the log-Jacobian separately; one Apply
    # per input keeps them one node with one gradient node (two Applies merged later
    # would still get one vector-Jacobian product each). The tag survives cloning, hence
    # the check that the remembered node is this variable's own.
    applied = getattr(unconstrained.tag, "simplex_rows", None)
    if applied is None or applied[0].owner.inputs[0] is not unconstrained:
        applied = tuple(_simplex_rows_op(unconstrained))
        unconstrained.tag.simplex_rows = applied
    return applied


class SimplexRowsTransform(Transform):
    """PyMC's simplex transform, with the backward map and log-Jacobian as one Op."""

    name = "simplex"
    ndim_supp = 1

    def forward(self, value, *inputs) -> Variable:
        # Only used for start points, never inside the sampled log density.
        log_value = pt.log(pt.as_tensor_variable(value))
        shift = pt.mean(log_value, axis=-1, keepdims=True)
        return log_value[..., :-1] - shift

    def backward(self, value, *inputs) -> Variable:
        return simplex_rows(value)[0]

    def log_jac_det(self, value, *inputs) -> Variable:
        return simplex_rows(value)[1]


simplex_rows_transform = SimplexRowsTransform()


def dirichlet(name: str, concentration: np.ndarray, **kwargs) -> Variable:
    """``pm.Dirichlet`` sampled through :class:`SimplexRowsTransform` (use inside a model)."""
    return pm.Dirichlet(name, a=concentration, default_transform=simplex_rows_transform, **kwargs)


# The Ops take leading batch axes themselves: vectorising a graph over draws keeps them.
@_vectorize_node.register(SimplexRowsOp)
@_vectorize_node.register(SimplexRowsVJPOp)
def _vectorize_simplex(op: Op, node: Apply, *batched_inputs) -> list[Variable]:
    return op.make_node(*batched_inputs).outputs


@register_funcify_and_cache_key(SimplexRowsOp)
def _numba_funcify_simplex_rows(op: SimplexRowsOp, node: Apply, **kwargs):
    @numba_njit
    def simplex_rows_node(unconstrained):
        values = np.ascontiguousarray(unconstrained)
        n_free = values.shape[-1]
        simplex, log_jacobian = simplex_rows_numba(values.reshape((-1, n_free)))
        batch = values.shape[:-1]
        return simplex.reshape(batch + (n_free + 1,)), log_jacobian.reshape(batch)

    return simplex_rows_node, f"regime_model.SimplexRowsOp_{_SOURCE_HASH}"


@register_funcify_and_cache_key(SimplexRowsVJPOp)
def _numba_funcify_simplex_rows_vjp(op: SimplexRowsVJPOp, node: Apply, **kwargs):
    @numba_njit
    def simplex_rows_vjp_node(simplex, simplex_grad, log_jacobian_grad):
        values = np.ascontiguousarray(simplex)
        n_states = values.shape[-1]
        gradient = simplex_rows_vjp_numba(
            values.reshape((-1, n_states)),
            np.ascontiguousarray(simplex_grad).reshape((-1, n_states)),
            np.ascontiguousarray(log_jacobian_grad).reshape(-1),
        )
        return gradient.reshape(values.shape[:-1] + (n_states - 1,))

    return simplex_rows_vjp_node, f"regime_model.SimplexRowsVJPOp_{_SOURCE_HASH}"
