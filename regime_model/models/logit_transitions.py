"""Covariate-driven log transition matrices as one compiled Op with an analytic gradient.

The multinomial logit of :mod:`~regime_model.models.covariate_link`: from origin i, the
move to j != i has logit intercept[m] + drivers[n] . coefficient[m] against staying
(logit 0), m the move's origin-major index, and row i is the log-softmax of its logits:

    log_transition[n, i, j] = logit[n, i, j] - logsumexp_j' logit[n, i, j'].

Written as a PyTensor graph this is a matrix product, a scatter onto (N, K, K) and a
log-softmax, each a separate loop with its own (N, K, K) temporaries, and their gradient
as many again; on the weekly tvtp benchmark (N = 562, K = 2, one covariate) that graph
cost more than the HMM kernel itself. Here the value is one loop over (n, i, j), and the
vector-Jacobian product another, given the upstream gradient G (N, K, K):

    dlogit[n, i, j] = G[n, i, j] - P[n, i, j] * sum_j' G[n, i, j'],   P = exp(log_transition),
    d intercept[m] = sum_n dlogit[n, i_m, j_m],
    d coefficient[m, c] = sum_n dlogit[n, i_m, j_m] * drivers[n, c],
    d drivers[n, c] = sum_m dlogit[n, i_m, j_m] * coefficient[m, c].

Shapes: intercept (M,), coefficient (M, C), drivers (N, C), M = K(K-1).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

from regime_model.models.op_inputs import check_ranks, contiguous, float_inputs

_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@numba.njit(cache=True)
def logit_log_transitions_numba(intercept, coefficient, drivers, k):
    """(M,), (M, C), (N, C), K -> (N, K, K) log transition matrices."""
    n_covariates = coefficient.shape[1]
    n_steps = drivers.shape[0]
    out = np.empty((n_steps, k, k))
    for n in range(n_steps):
        move = 0
        for i in range(k):
            largest = 0.0  # the staying logit
            for j in range(k):
                logit = 0.0
                if j != i:
                    logit = intercept[move]
                    for c in range(n_covariates):
                        logit += drivers[n, c] * coefficient[move, c]
                    move += 1
                out[n, i, j] = logit
                largest = max(largest, logit)
            total = 0.0
            for j in range(k):
                total += math.exp(out[n, i, j] - largest)
            normaliser = largest + math.log(total)
            for j in range(k):
                out[n, i, j] -= normaliser
    return out


@numba.njit(cache=True)
def logit_log_transitions_vjp_numba(coefficient, drivers, log_transition, output_grad):
    """(d intercept (M,), d coefficient (M, C), d drivers (N, C)) for the upstream
    gradient ``output_grad`` (N, K, K) at the Op's output ``log_transition``."""
    n_moves, n_covariates = coefficient.shape
    n_steps, k, _ = log_transition.shape
    d_intercept = np.zeros(n_moves)
    d_coefficient = np.zeros((n_moves, n_covariates))
    d_drivers = np.zeros((n_steps, n_covariates))
    for n in range(n_steps):
        move = 0
        for i in range(k):
            row_total = 0.0
            for j in range(k):
                row_total += output_grad[n, i, j]
            for j in range(k):
                if j == i:
                    continue
                d_logit = output_grad[n, i, j] - math.exp(log_transition[n, i, j]) * row_total
                d_intercept[move] += d_logit
                for c in range(n_covariates):
                    d_coefficient[move, c] += d_logit * drivers[n, c]
                    d_drivers[n, c] += d_logit * coefficient[move, c]
                move += 1
    return d_intercept, d_coefficient, d_drivers


class LogitTransitionsOp(Op):
    """(intercept (M,), coefficient (M, C), drivers (N, C)) -> (N, K, K)."""

    __props__ = ("n_regimes",)

    def __init__(self, n_regimes: int) -> None:
        self.n_regimes = n_regimes
        # K is the Op's, so the output's core shape is known when it is vectorised.
        self.gufunc_signature = f"(m),(m,c),(n,c)->(n,{n_regimes},{n_regimes})"
        super().__init__()

    def make_node(self, intercept, coefficient, drivers) -> Apply:
        inputs = float_inputs(intercept, coefficient, drivers)
        check_ranks(inputs, ("intercept", "coefficient", "drivers"), (1, 2, 2))
        k = self.n_regimes
        output = pt.tensor(dtype="float64", shape=(inputs[2].type.shape[0], k, k))
        return Apply(self, inputs, [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        output_storage[0][0] = logit_log_transitions_numba(*contiguous(inputs), self.n_regimes)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[2][0], self.n_regimes, self.n_regimes)]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        _, coefficient, drivers = inputs
        return list(_vjp_op(coefficient, drivers, outputs[0], output_grads[0]))


class LogitTransitionsVJPOp(Op):
    """(coefficient, drivers, log_transition, dL/dlog_transition) -> dL/d each input."""

    __props__ = ()
    gufunc_signature = "(m,c),(n,c),(n,k,k),(n,k,k)->(m),(m,c),(n,c)"

    def make_node(self, coefficient, drivers, log_transition, output_grad) -> Apply:
        inputs = float_inputs(coefficient, drivers, log_transition, output_grad)
        coefficient, drivers = inputs[:2]
        intercept = pt.tensor(dtype="float64", shape=(coefficient.type.shape[0],))
        return Apply(self, inputs, [intercept, coefficient.type(), drivers.type()])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        gradients = logit_log_transitions_vjp_numba(*contiguous(inputs))
        for storage, value in zip(output_storage, gradients, strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[0][0],), input_shapes[0], input_shapes[1]]


_vjp_op = LogitTransitionsVJPOp()


def logit_log_transitions(intercept, coefficient, drivers, n_regimes: int) -> Variable:
    """Symbolic (N, K, K) log transition matrices of the covariate logit (module
    docstring); differentiable in every input."""
    return LogitTransitionsOp(n_regimes)(intercept, coefficient, drivers)


# ----------------------------------------------------- numba mode (nutpie's log density)
@register_funcify_and_cache_key(LogitTransitionsOp)
def _numba_funcify_logit_transitions(op: LogitTransitionsOp, node: Apply, **kwargs):
    n_regimes = op.n_regimes

    @numba_njit
    def logit_transitions_node(intercept, coefficient, drivers):
        return logit_log_transitions_numba(
            np.ascontiguousarray(intercept),
            np.ascontiguousarray(coefficient),
            np.ascontiguousarray(drivers),
            n_regimes,
        )

    key = f"regime_model.LogitTransitionsOp_{n_regimes}_{_SOURCE_HASH}"
    return logit_transitions_node, key


@register_funcify_and_cache_key(LogitTransitionsVJPOp)
def _numba_funcify_logit_transitions_vjp(op: LogitTransitionsVJPOp, node: Apply, **kwargs):
    @numba_njit
    def logit_transitions_vjp_node(coefficient, drivers, log_transition, output_grad):
        return logit_log_transitions_vjp_numba(
            np.ascontiguousarray(coefficient),
            np.ascontiguousarray(drivers),
            np.ascontiguousarray(log_transition),
            np.ascontiguousarray(output_grad),
        )

    return logit_transitions_vjp_node, f"regime_model.LogitTransitionsVJPOp_{_SOURCE_HASH}"
