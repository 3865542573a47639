"""The stationarity priors' maps: the full VAR(1) matrix map is onto the stationary
matrices and only onto them, numpy and PyTensor agree, and its prior on a 1 x 1 matrix
is the one-feature AR(1)'s Uniform(-1, 1)."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import stats

from regime_model.models.stationarity import (
    VAR_PRIOR_NU,
    VAR_PRIOR_SCALE,
    unconstrained_from_var_coefficients,
    var_coefficients_from_unconstrained,
)


def _spectral_radius(matrix: np.ndarray) -> float:
    return float(np.abs(np.linalg.eigvals(matrix)).max())


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_every_unconstrained_matrix_maps_to_a_stationary_one_and_back(size):
    rng = np.random.default_rng(size)
    # Heavy tails reach the edge of the region (spectral radius near 1).
    free = 3.0 * rng.standard_t(2.0, (300, size, size))
    phi = var_coefficients_from_unconstrained(free, size)
    radii = [_spectral_radius(matrix) for matrix in phi]
    assert max(radii) < 1.0 and max(radii) > 0.99
    # Phi Gamma Phi^T + I = Gamma with Gamma = I + B B^T: the map's defining identity.
    gamma = np.eye(size) + free @ free.transpose(0, 2, 1)
    np.testing.assert_allclose(phi @ gamma @ phi.transpose(0, 2, 1) + np.eye(size), gamma)
    for matrix, original in zip(phi[:50], free[:50], strict=True):
        np.testing.assert_allclose(
            unconstrained_from_var_coefficients(matrix), original, rtol=1e-6, atol=1e-6
        )
    symbolic = var_coefficients_from_unconstrained(pt.as_tensor(free), size).eval()
    np.testing.assert_allclose(symbolic, phi, rtol=1e-12, atol=1e-14)


def test_stationary_matrices_outside_the_unit_norm_ball_are_reached():
    """Onto: a non-normal stationary matrix (eigenvalues 0.9, norm above 5) and a rotation
    (complex eigenvalues) come back from their unconstrained image."""
    for phi in (
        np.array([[0.9, 5.0], [0.0, 0.9]]),
        0.95 * np.array([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]]),
    ):
        free = unconstrained_from_var_coefficients(phi)
        np.testing.assert_allclose(var_coefficients_from_unconstrained(free, 2), phi, atol=1e-10)
    with pytest.raises(ValueError, match="not stationary"):
        unconstrained_from_var_coefficients(np.array([[1.01, 0.0], [0.0, 0.5]]))


def test_the_prior_on_a_one_by_one_matrix_is_uniform():
    """b ~ StudentT(2, 0, 1/sqrt 2) makes phi = b / sqrt(1 + b^2) Uniform(-1, 1); a
    Normal(0, 1) b would not (it leaves |phi| > 0.9 with 4% of the mass, not 10%)."""
    rng = np.random.default_rng(0)
    free = VAR_PRIOR_SCALE * rng.standard_t(VAR_PRIOR_NU, (20_000, 1, 1))
    phi = var_coefficients_from_unconstrained(free, 1).ravel()
    assert stats.kstest(phi, stats.uniform(-1.0, 2.0).cdf).pvalue > 0.01
    normal = var_coefficients_from_unconstrained(rng.standard_normal((20_000, 1, 1)), 1)
    assert stats.kstest(normal.ravel(), stats.uniform(-1.0, 2.0).cdf).pvalue < 1e-6
