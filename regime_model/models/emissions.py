"""Per-regime log densities of the observations, written once in PyTensor.

The same functions build the PyMC model's graph and, compiled with symbolic parameter
inputs, evaluate posterior draws afterwards, so the likelihood has one definition.

Shapes: ``y`` (T, D) with missing entries set to 0, ``observed`` (T, D) 1.0 where a value
exists and 0.0 where it is missing; ``mean`` (K, D); ``sigma`` (K, D) scales;
``correlation_cholesky`` (K, D, D) lower-triangular factors of correlation matrices;
``nu`` (D,) or () Student-t degrees of freedom. Every function returns (T, K): a missing
value contributes nothing to the likelihood of its date (it is marginalised, not imputed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor import TensorVariable

from regime_model.models.diagonal_densities import (
    diagonal_gaussian_log_density,
    diagonal_student_t_log_density,
)
from regime_model.models.full_densities import full_gaussian_log_density

_LOG_2PI = float(np.log(2 * np.pi))


def normal_log_density(residual: TensorVariable, scale: TensorVariable) -> TensorVariable:
    """Elementwise log N(residual; 0, scale^2) (broadcasting), for densities whose mean
    depends on the date as well as the regime (autoregressive emissions)."""
    return -0.5 * (residual / scale) ** 2 - pt.log(scale) - 0.5 * _LOG_2PI


def diagonal_log_density(
    y: TensorVariable,
    observed: TensorVariable,
    mean: TensorVariable,
    sigma: TensorVariable,
    nu: TensorVariable | None = None,
) -> TensorVariable:
    """Independent Gaussian (``nu`` None) or Student-t margins per feature (``nu`` (D,) or
    (), one per feature or shared). -> (T, K).

    Both are compiled Ops with analytic gradients
    (:mod:`regime_model.models.diagonal_densities`)."""
    if nu is None:
        return diagonal_gaussian_log_density(y, observed, mean, sigma)
    nu = pt.broadcast_to(pt.as_tensor(nu), sigma.shape[-1:])
    return diagonal_student_t_log_density(y, observed, mean, sigma, nu)


@dataclass(frozen=True)
class MissingPattern:
    """Rows sharing one set of observed features (full covariance needs the subset)."""

    rows: np.ndarray  # (n,) row indices
    features: np.ndarray  # (d,) observed feature indices


def missing_patterns(observed: np.ndarray) -> list[MissingPattern]:
    """Group the rows of an (T, D) observed mask by which features they have."""
    patterns: dict[bytes, list[int]] = {}
    for row, mask in enumerate(observed.astype(bool)):
        patterns.setdefault(mask.tobytes(), []).append(row)
    groups = []
    for key, rows in patterns.items():
        features = np.flatnonzero(np.frombuffer(key, dtype=bool))
        if len(features):
            groups.append(MissingPattern(np.asarray(rows), features))
    return groups


def full_log_density(
    y: np.ndarray,
    patterns: list[MissingPattern],
    mean: TensorVariable,
    sigma: TensorVariable,
    correlation_cholesky: TensorVariable,
    nu: TensorVariable | None = None,
) -> TensorVariable:
    """Multivariate Gaussian (``nu`` None; the compiled Op of
    :mod:`~regime_model.models.full_densities`) or multivariate-t with full covariance.

    Covariance of regime k = diag(sigma_k) R_k diag(sigma_k), R_k = C_k C_k^T. Rows with
    missing features use the marginal of the observed subset. -> (T, K).
    """
    n_rows = y.shape[0]
    n_regimes = int(mean.type.shape[0]) if mean.type.shape[0] is not None else None
    if n_regimes is None:
        raise ValueError("full covariance needs the number of regimes in the mean's static shape")
    correlation = correlation_cholesky @ correlation_cholesky.transpose(0, 2, 1)
    covariance = correlation * sigma[:, :, None] * sigma[:, None, :]
    # Selections and the reassembly of rows are products with 0/1 matrices and one
    # permutation, not slices and set_subtensor: PyTensor vectorises these over posterior
    # draws, so the per-draw pass runs all draws in one call (the values are the same).
    pieces = []
    for pattern in patterns:
        d = len(pattern.features)
        selection = np.eye(y.shape[1])[pattern.features]  # (d, D)
        sub_covariance = selection @ covariance @ selection.T  # (K, d, d)
        y_rows = y[np.ix_(pattern.rows, pattern.features)]  # (n, d)
        if nu is None:  # the compiled Op: one Cholesky factor per regime, exact gradients
            pieces.append(full_gaussian_log_density(y_rows, mean @ selection.T, sub_covariance))
            continue
        residual = pt.as_tensor(y_rows)[None, :, :] - (mean @ selection.T)[:, None, :]  # (K, n, d)
        # The multivariate t as PyTensor operations, one regime at a time: numba compiles
        # a single matrix's Cholesky and triangular solve natively, not a batch of them.
        whitened, log_det = [], []
        for k in range(n_regimes):
            cholesky = pt.linalg.cholesky(sub_covariance[k])  # (d, d)
            whitened.append(pt.linalg.solve_triangular(cholesky, residual[k].T, lower=True))
            log_det.append(pt.log(pt.diagonal(cholesky)).sum())
        mahalanobis = (pt.stack(whitened) ** 2).sum(axis=1)  # (K, n)
        log_det = pt.stack(log_det)  # (K,)
        rows = (
            pt.gammaln((nu + d) / 2)
            - pt.gammaln(nu / 2)
            - 0.5 * d * pt.log(nu * np.pi)
            - log_det[:, None]
            - (nu + d) / 2 * pt.log1p(mahalanobis / nu)
        )
        pieces.append(rows.T)  # (n, K)
    order = np.concatenate([pattern.rows for pattern in patterns])
    unobserved = np.setdiff1d(np.arange(n_rows), order)  # no feature: density 1
    if len(unobserved):
        pieces.append(pt.zeros_like(pieces[0][:1]) + np.zeros((len(unobserved), 1)))
        order = np.concatenate([order, unobserved])
    return pt.concatenate(pieces, axis=0)[np.argsort(order)]


def sample_emissions(
    rng: np.random.Generator,
    states: np.ndarray,
    mean: np.ndarray,
    sigma: np.ndarray,
    correlation_cholesky: np.ndarray | None = None,
    nu: np.ndarray | float | None = None,
) -> np.ndarray:
    """Draw observations given a regime path, from the densities defined above (numpy).

    ``states`` (T,) ints; ``mean``, ``sigma`` (K, D); ``correlation_cholesky`` (K, D, D) or
    None (independent features); ``nu`` None (Gaussian), (D,) per-feature Student-t
    margins when diagonal, or () multivariate-t with full covariance. -> (T, D).
    """
    states = np.asarray(states, dtype=int)
    n_dates, n_features = len(states), mean.shape[1]
    noise = rng.standard_normal((n_dates, n_features))
    if correlation_cholesky is not None:
        noise = np.einsum("tij,tj->ti", correlation_cholesky[states], noise)
    if nu is not None:
        nu = np.asarray(nu, dtype=float)
        if correlation_cholesky is None:
            # Independent t margins: a chi-square mixing variable per feature.
            mixing = rng.chisquare(np.broadcast_to(nu, (n_dates, n_features))) / nu
        else:
            # Multivariate t: one mixing variable per date, shared by the features.
            mixing = (rng.chisquare(np.broadcast_to(nu, (n_dates,))) / nu)[:, None]
        noise = noise / np.sqrt(mixing)
    return mean[states] + sigma[states] * noise
