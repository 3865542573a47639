"""PyTensor Op for the HMM marginal log-likelihood, with an exact analytic gradient.

The Op has four outputs: the log-likelihood and its gradients with respect to the three
inputs, all produced by one forward-backward pass.  Calling the Op returns only the
log-likelihood (``default_output = 0``); its ``L_op`` multiplies the gradient *outputs* of
the same node, so when logp and dlogp are compiled together (as PyMC and nutpie do) the
node appears once and the pass runs once per evaluation.

Usage inside a PyMC model::

    pm.Potential("hmm", hmm_log_likelihood(log_initial, log_transition, log_emission))
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

from regime_model.inference import forward_backward
from regime_model.inference.forward_backward import (
    loglik_and_grad_homogeneous,
    loglik_and_grad_indexed,
    loglik_and_grad_time_varying,
)

# PyTensor caches the compiled graph on disk, and numba does not invalidate a cached caller
# when a jitted callee in another file changes; keying on the kernel's source avoids
# silently running a stale kernel after an edit.
_KERNEL_SOURCE_HASH = hashlib.sha256(
    Path(forward_backward.__file__).read_bytes() + Path(__file__).read_bytes()
).hexdigest()[:16]


class KernelLikelihoodOp(Op):
    """What every forward-backward likelihood Op shares: inputs (log_initial,
    log_transition (2 or 3 axes), log_emission), outputs the log-likelihood and its
    gradients shaped as the inputs, and the gradient read off those outputs. A kernel
    defines ``perform`` (and its numba dispatch)."""

    default_output = 0

    def make_node(self, log_initial, log_transition, log_emission) -> Apply:
        inputs = [
            pt.cast(pt.as_tensor_variable(value), "float64")
            for value in (log_initial, log_transition, log_emission)
        ]
        log_initial, log_transition, log_emission = inputs
        if log_initial.type.ndim != 1 or log_emission.type.ndim != 2:
            raise TypeError("log_initial must be a vector and log_emission a matrix")
        if log_transition.type.ndim not in (2, 3):
            raise TypeError("log_transition must have shape (K, K) or (T-1, K, K)")
        outputs = [pt.scalar(dtype="float64")] + [value.type() for value in inputs]
        return Apply(self, inputs, outputs)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(), *input_shapes]

    def L_op(
        self, inputs: list[Variable], outputs: list[Variable], output_grads: list[Variable]
    ) -> list[Variable]:
        loglik_grad, *gradient_output_grads = output_grads
        if any(not isinstance(grad.type, DisconnectedType) for grad in gradient_output_grads):
            # Differentiating the gradient outputs would need second derivatives.
            return [
                grad_not_implemented(
                    self, position, value, "second derivatives of the HMM are not implemented"
                )
                for position, value in enumerate(inputs)
            ]
        if isinstance(loglik_grad.type, DisconnectedType):
            return [disconnected_type() for _ in inputs]
        return [loglik_grad * gradient for gradient in outputs[1:]]


class HMMLogLikelihoodOp(KernelLikelihoodOp):
    """log p(y_1..T) of an HMM plus its gradient.

    Inputs: log_initial (K,), log_transition (K, K) or (T-1, K, K), log_emission (T, K).
    Outputs: marginal_loglik (), grad_log_initial (K,), grad_log_transition (as input),
    grad_log_emission (T, K).
    """

    __props__ = ()

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        # The jitted entry points check shapes themselves; make_node already fixed dtype and
        # rank, so the public function's Python validation would only add overhead.
        time_varying = node.inputs[1].type.ndim == 3
        kernel = loglik_and_grad_time_varying if time_varying else loglik_and_grad_homogeneous
        for storage, value in zip(output_storage, kernel(*inputs), strict=True):
            storage[0] = np.asarray(value, dtype=np.float64)


_hmm_log_likelihood_op = HMMLogLikelihoodOp()


def hmm_log_likelihood(log_initial, log_transition, log_emission) -> Variable:
    """Symbolic marginal log-likelihood (scalar) of an HMM; shapes as in
    :func:`regime_model.inference.hmm_loglik_and_grad`.  Differentiable once."""
    return _hmm_log_likelihood_op(log_initial, log_transition, log_emission)


@register_funcify_and_cache_key(HMMLogLikelihoodOp)
def _numba_funcify_hmm_log_likelihood(op: HMMLogLikelihoodOp, node: Apply, **kwargs):
    """NUMBA-mode implementation (used by nutpie): calls the jitted kernel directly."""
    time_varying = node.inputs[1].type.ndim == 3
    kernel = loglik_and_grad_time_varying if time_varying else loglik_and_grad_homogeneous

    @numba_njit
    def hmm_log_likelihood_numba(log_initial, log_transition, log_emission):
        marginal_loglik, grad_initial, grad_transition, grad_emission = kernel(
            log_initial, log_transition, log_emission
        )
        return np.asarray(marginal_loglik), grad_initial, grad_transition, grad_emission

    cache_key = f"regime_model.HMMLogLikelihoodOp_{_KERNEL_SOURCE_HASH}_tv{int(time_varying)}"
    return hmm_log_likelihood_numba, cache_key


class IndexedHMMLogLikelihoodOp(Op):
    """log p(y_1..T) of an HMM whose moves each use one matrix of a small bank, plus its
    gradient (:func:`~regime_model.inference.forward_backward.loglik_and_grad_indexed`).

    Inputs: log_initial (K,), log_bank (B, K, K), log_emission (T, K), sources (T-1,) ints
    (the matrix of each move; data, not differentiable). Outputs: marginal_loglik (), and
    the gradients with respect to the first three inputs."""

    __props__ = ()
    default_output = 0

    def make_node(self, log_initial, log_bank, log_emission, sources) -> Apply:
        floats = [
            pt.cast(pt.as_tensor_variable(value), "float64")
            for value in (log_initial, log_bank, log_emission)
        ]
        sources = pt.cast(pt.as_tensor_variable(sources), "int64")
        if floats[0].type.ndim != 1 or floats[1].type.ndim != 3 or floats[2].type.ndim != 2:
            raise TypeError("log_initial (K,), log_bank (B, K, K) and log_emission (T, K)")
        if sources.type.ndim != 1:
            raise TypeError("sources must be a vector of ints (T-1,)")
        outputs = [pt.scalar(dtype="float64")] + [value.type() for value in floats]
        return Apply(self, [*floats, sources], outputs)

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(), *input_shapes[:3]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True] * 4] * 3 + [[False] * 4]

    def L_op(
        self, inputs: list[Variable], outputs: list[Variable], output_grads: list[Variable]
    ) -> list[Variable]:
        floats = KernelLikelihoodOp.L_op(self, inputs[:3], outputs, output_grads)
        return [*floats, disconnected_type()]

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        values = loglik_and_grad_indexed(*inputs[:3], inputs[3])
        for storage, value in zip(output_storage, values, strict=True):
            storage[0] = np.asarray(value, dtype=np.float64)


_indexed_log_likelihood_op = IndexedHMMLogLikelihoodOp()


def indexed_log_likelihood(log_initial, log_bank, log_emission, sources) -> Variable:
    """Symbolic marginal log-likelihood of an HMM whose move into date t+1 uses matrix
    ``sources[t]`` of ``log_bank`` (B, K, K); differentiable once in the float inputs."""
    return _indexed_log_likelihood_op(log_initial, log_bank, log_emission, sources)


@register_funcify_and_cache_key(IndexedHMMLogLikelihoodOp)
def _numba_funcify_indexed_log_likelihood(op: IndexedHMMLogLikelihoodOp, node: Apply, **kwargs):
    @numba_njit
    def indexed_log_likelihood_numba(log_initial, log_bank, log_emission, sources):
        marginal_loglik, grad_initial, grad_bank, grad_emission = loglik_and_grad_indexed(
            log_initial, log_bank, log_emission, sources
        )
        return np.asarray(marginal_loglik), grad_initial, grad_bank, grad_emission

    return (
        indexed_log_likelihood_numba,
        f"regime_model.IndexedHMMLogLikelihoodOp_{_KERNEL_SOURCE_HASH}",
    )
