"""Numba implementations of special functions: ones PyTensor's numba backend cannot cache
on disk, and a logarithm the compiler can vectorise.

PyTensor compiles ``Psi`` (digamma, the derivative of ``gammaln``: the gradient of the
Student-t density in its degrees of freedom) as a call through a function pointer into
scipy's Cython code, and a function that calls a pointer cannot be cached: every process
then recompiled the whole Student-t log density for nutpie, about 31 s of each fit of
the real daily design. This module registers a pure-numba digamma with a cache key
instead (imported by :mod:`~regime_model.models.nutpie_sampler` before it compiles).

Digamma: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 6, then the asymptotic
series ln x - 1/(2x) - sum B_2k / (2k x^2k) to k = 7 (truncation error below 1e-16 for
x >= 6), and the reflection psi(x) = psi(1 - x) - pi / tan(pi x) for x < 0. Checked
against scipy.special.psi in tests/inference/test_numba_special.py.

The logarithm (:func:`log_at_least_one`): numba calls libm's ``log`` once per element, which
no compiler vectorises, and on the Student-t emission (one log per date, regime and
feature, in the density and again in its gradient) those calls were most of the time of a
gradient evaluation. Written with integer and polynomial arithmetic only, the loops below
compile to AVX instructions: 4x faster on this machine (34,476 values: 43 us against
150-210 us). The algorithm is fdlibm's ``__ieee754_log``: x = 2^e m with m in
[sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f), log m = f - s (f - R(s^2)) with fdlibm's
degree-14 minimax polynomial R, accurate to 1 ulp. Numba's default "python" error model
checks every division for a zero divisor, a branch that stops vectorisation; these
functions use the numpy model (a zero divisor gives inf, as in numpy).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key
from pytensor.link.numba.dispatch.scalar import scalar_op_cache_key
from pytensor.scalar.math import Psi

# B_2k / (2k) for k = 1..7 (Bernoulli numbers 1/6, -1/30, 1/42, -1/30, 5/66, -691/2730, 7/6).
_SERIES = (
    1.0 / 12.0,
    -1.0 / 120.0,
    1.0 / 252.0,
    -1.0 / 240.0,
    1.0 / 132.0,
    -691.0 / 32760.0,
    1.0 / 12.0,
)


@numba.njit(cache=True)
def digamma(x: float) -> float:
    """psi(x) = d/dx ln Gamma(x); as scipy.special.psi: -inf at 0, NaN at the negative
    integers (poles)."""
    if np.isnan(x):
        return np.nan
    if x == 0.0:
        return -np.inf
    if x < 0.0:
        if x == math.floor(x):
            return np.nan
        return digamma(1.0 - x) - math.pi / math.tan(math.pi * x)
    result = 0.0
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    inverse_square = 1.0 / (x * x)
    series = 0.0
    power = inverse_square
    for coefficient in _SERIES:
        series += coefficient * power
        power *= inverse_square
    return result + math.log(x) - 0.5 / x - series


# fdlibm's log: ln 2 split in a high part exact in 32 bits and the rest, and the
# coefficients of R(z) = Lg1 z + Lg2 z^2 + ... + Lg7 z^7.
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
_SQRT2_MANTISSA = np.uint64(0x6A09E667F3BCD)  # mantissa bits of sqrt(2)
_EXPONENT_ONE = np.uint64(0x3FF0000000000000)  # 2^0
_EXPONENT_HALF = np.uint64(0x3FE0000000000000)  # 2^-1
_EXPONENT_SHIFT = np.uint64(52)


@numba.njit(cache=True, error_model="numpy")
def log_at_least_one(values: np.ndarray) -> np.ndarray:
    """(n,) -> (n,) natural logarithms of values >= 1 (and +inf, NaN passed through), in
    loops the compiler vectorises; as accurate as ``np.log`` to 1 ulp."""
    n = values.size
    bits = values.view(np.uint64)
    reduced = np.empty(n)  # m, then log(x)
    reduced_bits = reduced.view(np.uint64)
    exponent = np.empty(n)
    for i in range(n):  # x = 2^e m, m in [sqrt(2)/2, sqrt(2)): integer operations only
        mantissa = bits[i] & _MANTISSA
        above = mantissa > _SQRT2_MANTISSA
        biased = np.float64(np.int64(bits[i] >> _EXPONENT_SHIFT))
        exponent[i] = biased - (1022.0 if above else 1023.0)
        reduced_bits[i] = mantissa | (_EXPONENT_HALF if above else _EXPONENT_ONE)
    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = _LG
    for i in range(n):
        f = reduced[i] - 1.0
        k = exponent[i]
        half_square = 0.5 * f * f
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        odd = w * (lg2 + w * (lg4 + w * lg6))
        even = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)))
        result = k * _LN2_HI - ((half_square - (s * (half_square + even + odd) + k * _LN2_LO)) - f)
        x = values[i]
        reduced[i] = result if x < np.inf else x  # inf stays inf, NaN stays NaN
    return reduced


@register_funcify_and_cache_key(Psi)
def _numba_funcify_psi(op, node, **kwargs):
    @numba.njit
    def psi(x):
        return digamma(x)

    return psi, scalar_op_cache_key(op, implementation="regime_model.digamma", version=1)
