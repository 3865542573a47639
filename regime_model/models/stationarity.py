"""Priors that keep every regime's autoregression stationary: maps from an unconstrained
(or box-constrained) space onto the stationary region, so no draw is explosive.

* AR(p) of one feature: partial autocorrelations r_1..r_p in (-1, 1) -> coefficients, by
  the Durbin-Levinson recursion (Barndorff-Nielsen & Schou 1973; Jones 1987).
* VAR(1) with a full (A, A) matrix: an unconstrained matrix B -> Phi = B L^-1, with L
  the lower Cholesky factor of I + B B^T (Ansley & Kohn 1986; Heaps 2022, at p = 1 with
  a unit innovation covariance). Why it is stationary and onto: I + B B^T is the
  stationary covariance Gamma of y_t = Phi y_{t-1} + e_t, e_t ~ N(0, I), since
  Phi Gamma Phi^T + I = B B^T + I; so every B gives a stationary Phi, and every stationary
  Phi comes from exactly one B = Phi chol(Gamma), Gamma solving Gamma = Phi Gamma Phi^T + I
  (:func:`unconstrained_from_var_coefficients`). The stationary region does not depend
  on the innovation covariance, so fixing it at I loses nothing. At A = 1 the map is
  phi = b / sqrt(1 + b^2), and b ~ StudentT(2, 0, 1/sqrt(2)) makes phi Uniform(-1, 1),
  the prior of the one-feature AR(1): the matrix prior puts that law on each entry of B.

Both work on numpy arrays and on PyTensor variables. The matrix map is written out entry
by entry (A is a handful of features), so it is elementwise arithmetic only: PyTensor
vectorises it over posterior draws and compiles it in numba mode, where a batched
Cholesky or triangular solve is not available.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy import linalg

# b ~ StudentT(VAR_PRIOR_NU, 0, VAR_PRIOR_SCALE) makes b / sqrt(1 + b^2) Uniform(-1, 1).
VAR_PRIOR_NU = 2.0
VAR_PRIOR_SCALE = float(np.sqrt(0.5))


def _library(value):
    return pt if isinstance(value, pt.Variable) else np


def coefficients_from_partial_autocorrelations(partial, order: int):
    """AR coefficients (..., p, A) of a stationary AR(p) from its partial
    autocorrelations (..., p, A) in (-1, 1), by the Durbin-Levinson recursion:
    phi^(k)_j = phi^(k-1)_j - r_k phi^(k-1)_(k-j) for j < k, and phi^(k)_k = r_k.
    ``order`` = p, given because a PyTensor variable's shape is symbolic."""
    phi = [partial[..., 0, :]]
    for k in range(1, order):
        r = partial[..., k, :]
        phi = [phi[j] - r * phi[k - 1 - j] for j in range(k)] + [r]
    return _library(partial).stack(phi, axis=-2)


def var_coefficients_from_unconstrained(free, size: int):
    """(..., A, A) stationary VAR(1) matrices Phi = B L^-1, L = chol(I + B B^T), from
    unconstrained (..., A, A) ``free`` = B (module docstring); ``size`` = A."""
    lib = _library(free)
    b = [[free[..., i, j] for j in range(size)] for i in range(size)]
    # Cholesky of I + B B^T, entry by entry (Cholesky-Banachiewicz).
    chol = [[None] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1):
            gram = sum(b[i][m] * b[j][m] for m in range(size)) + (1.0 if i == j else 0.0)
            rest = gram - sum(chol[i][m] * chol[j][m] for m in range(j))
            chol[i][j] = lib.sqrt(rest) if i == j else rest / chol[j][j]
    # Phi L = B: row by row, x L = b_i, i.e. sum_{m >= j} x_m L[m, j] = b_i[j] (back
    # substitution, last column first).
    rows = []
    for i in range(size):
        x = [None] * size
        for j in reversed(range(size)):
            rest = b[i][j] - sum(x[m] * chol[m][j] for m in range(j + 1, size))
            x[j] = rest / chol[j][j]
        rows.append(lib.stack(x, axis=-1))
    return lib.stack(rows, axis=-2)


def unconstrained_from_var_coefficients(coefficients: np.ndarray) -> np.ndarray:
    """The inverse map (numpy, one (A, A) matrix): B = Phi chol(Gamma), Gamma the
    stationary covariance under unit innovations. ValueError if Phi is not stationary."""
    coefficients = np.asarray(coefficients, dtype=float)
    if np.abs(np.linalg.eigvals(coefficients)).max() >= 1.0:
        raise ValueError("the VAR(1) matrix is not stationary (an eigenvalue on or outside 1)")
    gamma = linalg.solve_discrete_lyapunov(coefficients, np.eye(len(coefficients)))
    return coefficients @ np.linalg.cholesky(gamma)
