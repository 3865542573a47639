"""Per-regime log densities with independent features (Gaussian or Student-t margins), as
PyTensor Ops with exact gradients.

With z = (y[t, d] - mean[k, d]) / sigma[k, d], o = observed[t, d] and G = dL/dlog_emission
(T, K), the Gaussian family is

    log_emission[t, k] = sum_d o (-z^2 / 2 - log sigma[k, d] - log(2 pi) / 2)
    dL/dmean[k, d]  = sum_t G[t, k] o z / sigma[k, d]
    dL/dsigma[k, d] = sum_t G[t, k] o (z^2 - 1) / sigma[k, d]

and the Student-t family, with degrees of freedom nu[d] and w = z^2 / nu,

    log_emission[t, k] = sum_d o (c(nu) - log sigma[k, d] - (nu + 1) / 2 log1p(w)),
        c(nu) = lgamma((nu + 1) / 2) - lgamma(nu / 2) - log(nu pi) / 2
    dL/dmean[k, d]  = sum_t G o (nu + 1) z / (nu + z^2) / sigma
    dL/dsigma[k, d] = sum_t G o ((nu + 1) z^2 / (nu + z^2) - 1) / sigma
    dL/dnu[d]       = sum_{t,k} G o (c'(nu) - log1p(w) / 2 + (nu + 1) w / (2 (nu + z^2))),
        c'(nu) = (psi((nu + 1) / 2) - psi(nu / 2) - 1 / nu) / 2.

Why Ops and not the elementwise graph: written as PyTensor operations, the (T, K, D)
density and its gradient are some fifteen nodes of the compiled log density (broadcasts,
sums over dates and features, their transposes; for Student-t also the digamma terms),
each a function numba compiles on a cold start and each a pass over a (T, K, D) temporary;
here they are two short jitted loops, and one pass over the data each. The same jitted
loops serve every mode (Python-mode ``perform`` calls them too), so each density has one
definition. Leading batch axes (posterior draws) go through ``Blockwise``
(``gufunc_signature``).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import grad_undefined
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

from regime_model.models import numba_special
from regime_model.models.numba_special import digamma, log_at_least_one
from regime_model.models.op_inputs import check_ranks, contiguous, float_inputs

_SOURCE_HASH = hashlib.sha256(
    Path(__file__).read_bytes() + Path(numba_special.__file__).read_bytes()
).hexdigest()[:16]
_HALF_LOG_2PI = 0.5 * float(np.log(2 * np.pi))
FAMILIES = ("gaussian", "student-t")


# ---------------------------------------------------------------------- Gaussian loops
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
    """(dL/dmean (K, D), dL/dsigma (K, D)) from dL/dlog_density ``output_grad`` (T, K).

    Each (k, d) sums over the dates in two local accumulators, in date order as before
    (the same bits): 2-3x faster than accumulating into the (K, D) arrays date by date,
    which kept every partial sum in memory (docs/performance.md, session thirteen)."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    inverse_sigma = 1.0 / sigma
    grad_mean = np.empty((n_regimes, n_features))
    grad_sigma = np.empty((n_regimes, n_features))
    for k in range(n_regimes):
        for d in range(n_features):
            centre = mean[k, d]
            scale = inverse_sigma[k, d]
            sum_z = 0.0
            sum_z2 = 0.0
            for t in range(n_dates):
                z = (y[t, d] - centre) * scale
                weighted = output_grad[t, k] * observed[t, d]
                sum_z += weighted * z
                sum_z2 += weighted * (z * z - 1.0)
            grad_mean[k, d] = sum_z * scale
            grad_sigma[k, d] = sum_z2 * scale
    return grad_mean, grad_sigma


# --------------------------------------------------------------------- Student-t loops
@numba.njit(cache=True)
def _student_t_constant(nu: float) -> float:
    return math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)


@numba.njit(cache=True, error_model="numpy")
def _one_plus_w(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray, nu: np.ndarray):
    """(u, z): u = 1 + z^2 / nu flat in (date, regime, feature) order, and z the same way,
    for every entry, masked or not (a masked entry has y = 0: finite, and skipped later)."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    inverse_sigma = 1.0 / sigma
    inverse_nu = 1.0 / nu
    u = np.empty(n_dates * n_regimes * n_features)
    z = np.empty(n_dates * n_regimes * n_features)
    index = 0
    for t in range(n_dates):
        for k in range(n_regimes):
            for d in range(n_features):
                value = (y[t, d] - mean[k, d]) * inverse_sigma[k, d]
                z[index] = value
                u[index] = 1.0 + value * value * inverse_nu[d]
                index += 1
    return u, z


@numba.njit(cache=True, error_model="numpy")
def diagonal_student_t_numba(
    y: np.ndarray, observed: np.ndarray, mean: np.ndarray, sigma: np.ndarray, nu: np.ndarray
) -> np.ndarray:
    """(T, D), (T, D), (K, D), (K, D), (D,) -> (T, K) log densities, masked features
    skipped."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    normaliser = np.empty((n_regimes, n_features))
    for k in range(n_regimes):
        for d in range(n_features):
            normaliser[k, d] = _student_t_constant(nu[d]) - math.log(sigma[k, d])
    half_power = 0.5 * (nu + 1.0)
    u, _ = _one_plus_w(y, mean, sigma, nu)
    log_u = log_at_least_one(u)
    log_density = np.empty((n_dates, n_regimes))
    index = 0
    for t in range(n_dates):
        for k in range(n_regimes):
            total = 0.0
            for d in range(n_features):
                # A masked entry has y = 0, so its term is finite and the mask zeroes it.
                total += observed[t, d] * (normaliser[k, d] - half_power[d] * log_u[index])
                index += 1
            log_density[t, k] = total
    return log_density


@numba.njit(cache=True, error_model="numpy")
def diagonal_student_t_vjp_numba(
    y: np.ndarray,
    observed: np.ndarray,
    mean: np.ndarray,
    sigma: np.ndarray,
    nu: np.ndarray,
    output_grad: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dL/dmean (K, D), dL/dsigma (K, D), dL/dnu (D,)) from ``output_grad`` (T, K)."""
    n_dates, n_features = y.shape
    n_regimes = mean.shape[0]
    u, z = _one_plus_w(y, mean, sigma, nu)
    log_u = log_at_least_one(u)
    # (nu + 1) / (nu + z^2) = (1 + 1/nu) / u: the weight of z in the score.
    one_plus_inverse_nu = 1.0 + 1.0 / nu
    half_inverse_nu = 0.5 / nu
    grad_mean = np.zeros((n_regimes, n_features))
    grad_sigma = np.zeros((n_regimes, n_features))
    grad_nu = np.zeros(n_features)
    weight_total = np.zeros(n_features)  # sum_{t,k} G o: multiplies c'(nu)
    index = 0
    for t in range(n_dates):
        for k in range(n_regimes):
            weight = output_grad[t, k]
            for d in range(n_features):
                if observed[t, d] != 0.0:
                    weighted = weight * observed[t, d]
                    value = z[index]
                    ratio_z = one_plus_inverse_nu[d] / u[index] * value
                    ratio_z2 = ratio_z * value
                    grad_mean[k, d] += weighted * ratio_z
                    grad_sigma[k, d] += weighted * (ratio_z2 - 1.0)
                    grad_nu[d] += weighted * (half_inverse_nu[d] * ratio_z2 - 0.5 * log_u[index])
                    weight_total[d] += weighted
                index += 1
    inverse_sigma = 1.0 / sigma
    for d in range(n_features):
        nu_d = nu[d]
        derivative = 0.5 * (digamma(0.5 * (nu_d + 1.0)) - digamma(0.5 * nu_d) - 1.0 / nu_d)
        grad_nu[d] += weight_total[d] * derivative
    return grad_mean * inverse_sigma, grad_sigma * inverse_sigma, grad_nu


# ------------------------------------------------------------------------------ the Ops
# Each family's parameters after (y, observed), with their number of axes.
_PARAMETERS = {"gaussian": {"mean": 2, "sigma": 2}, "student-t": {"mean": 2, "sigma": 2, "nu": 1}}


class DiagonalLogDensityOp(Op):
    """(y (T, D), observed (T, D), mean (K, D), sigma (K, D)[, nu (D,)]) -> (T, K)."""

    __props__ = ("family",)

    def __init__(self, family: str) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        self.family = family
        inputs = "(t,d),(t,d),(k,d),(k,d)" + (",(d)" if family == "student-t" else "")
        self.gufunc_signature = f"{inputs}->(t,k)"
        super().__init__()

    def make_node(self, y, observed, *parameters) -> Apply:
        inputs = float_inputs(y, observed, *parameters)
        check_ranks(
            inputs,
            ("y", "observed", *_PARAMETERS[self.family]),
            (2, 2, *_PARAMETERS[self.family].values()),
        )
        output = pt.tensor(
            dtype="float64", shape=(inputs[0].type.shape[0], inputs[2].type.shape[0])
        )
        return Apply(self, inputs, [output])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        kernel = diagonal_gaussian_numba if self.family == "gaussian" else diagonal_student_t_numba
        output_storage[0][0] = kernel(*contiguous(inputs))

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return [(input_shapes[0][0], input_shapes[2][0])]

    def L_op(self, inputs: list[Variable], outputs: list[Variable], output_grads):
        parameter_grads = _VJP_OPS[self.family](*inputs, output_grads[0])
        y, observed = inputs[:2]
        return [
            grad_undefined(self, 0, y, "the observations are data"),
            grad_undefined(self, 1, observed, "the mask of observed values is data"),
            *parameter_grads,
        ]


class DiagonalVJPOp(Op):
    """(y, observed, parameters..., dL/dlog_density (T, K)) -> dL/dparameter for each."""

    __props__ = ("family",)

    def __init__(self, family: str) -> None:
        self.family = family
        if family == "gaussian":
            self.gufunc_signature = "(t,d),(t,d),(k,d),(k,d),(t,k)->(k,d),(k,d)"
        else:
            self.gufunc_signature = "(t,d),(t,d),(k,d),(k,d),(d),(t,k)->(k,d),(k,d),(d)"
        super().__init__()

    def make_node(self, y, observed, *parameters_and_grad) -> Apply:
        inputs = float_inputs(y, observed, *parameters_and_grad)
        parameters = inputs[2:-1]
        return Apply(self, inputs, [value.type() for value in parameters])

    def perform(self, node: Apply, inputs: list[np.ndarray], output_storage) -> None:
        kernel = (
            diagonal_gaussian_vjp_numba
            if self.family == "gaussian"
            else diagonal_student_t_vjp_numba
        )
        for storage, value in zip(output_storage, kernel(*contiguous(inputs)), strict=True):
            storage[0] = value

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        return list(input_shapes[2:-1])


_LOG_DENSITY_OPS = {family: DiagonalLogDensityOp(family) for family in FAMILIES}
_VJP_OPS = {family: DiagonalVJPOp(family) for family in FAMILIES}


def diagonal_gaussian_log_density(y, observed, mean, sigma) -> Variable:
    """Symbolic (T, K) Gaussian log densities with independent features; differentiable
    in ``mean`` and ``sigma``. Shapes and the mask as in :mod:`regime_model.models.emissions`."""
    return _LOG_DENSITY_OPS["gaussian"](y, observed, mean, sigma)


def diagonal_student_t_log_density(y, observed, mean, sigma, nu) -> Variable:
    """Symbolic (T, K) Student-t log densities with independent features and degrees of
    freedom ``nu`` (D,) per feature; differentiable in ``mean``, ``sigma`` and ``nu``."""
    return _LOG_DENSITY_OPS["student-t"](y, observed, mean, sigma, nu)


# ----------------------------------------------------- numba mode (nutpie's log density)
@register_funcify_and_cache_key(DiagonalLogDensityOp)
def _numba_funcify_log_density(op: DiagonalLogDensityOp, node: Apply, **kwargs):
    if op.family == "gaussian":

        @numba_njit
        def log_density_node(y, observed, mean, sigma):
            return diagonal_gaussian_numba(
                np.ascontiguousarray(y),
                np.ascontiguousarray(observed),
                np.ascontiguousarray(mean),
                np.ascontiguousarray(sigma),
            )

    else:

        @numba_njit
        def log_density_node(y, observed, mean, sigma, nu):
            return diagonal_student_t_numba(
                np.ascontiguousarray(y),
                np.ascontiguousarray(observed),
                np.ascontiguousarray(mean),
                np.ascontiguousarray(sigma),
                np.ascontiguousarray(nu),
            )

    return log_density_node, f"regime_model.DiagonalLogDensityOp_{op.family}_{_SOURCE_HASH}"


@register_funcify_and_cache_key(DiagonalVJPOp)
def _numba_funcify_vjp(op: DiagonalVJPOp, node: Apply, **kwargs):
    if op.family == "gaussian":

        @numba_njit
        def vjp_node(y, observed, mean, sigma, output_grad):
            return diagonal_gaussian_vjp_numba(
                np.ascontiguousarray(y),
                np.ascontiguousarray(observed),
                np.ascontiguousarray(mean),
                np.ascontiguousarray(sigma),
                np.ascontiguousarray(output_grad),
            )

    else:

        @numba_njit
        def vjp_node(y, observed, mean, sigma, nu, output_grad):
            return diagonal_student_t_vjp_numba(
                np.ascontiguousarray(y),
                np.ascontiguousarray(observed),
                np.ascontiguousarray(mean),
                np.ascontiguousarray(sigma),
                np.ascontiguousarray(nu),
                np.ascontiguousarray(output_grad),
            )

    return vjp_node, f"regime_model.DiagonalVJPOp_{op.family}_{_SOURCE_HASH}"
