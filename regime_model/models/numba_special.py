"""Numba implementations of scalar special functions that PyTensor's numba backend cannot
cache on disk.

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


@register_funcify_and_cache_key(Psi)
def _numba_funcify_psi(op, node, **kwargs):
    @numba.njit
    def psi(x):
        return digamma(x)

    return psi, scalar_op_cache_key(op, implementation="regime_model.digamma", version=1)
