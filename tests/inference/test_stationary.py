"""The stationary-distribution Op: values against the eigenvector, gradient against finite
differences, the NUMBA mode against the default, and batching over draws."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph

from regime_model.inference import stationary_distribution
from regime_model.inference.stationary import StationaryDistributionOp

MODES = [None, "NUMBA"]  # None: PyTensor's default mode


def _random_transition(rng: np.random.Generator, n_states: int, stickiness: float = 10.0):
    concentration = np.ones((n_states, n_states)) + (stickiness - 1.0) * np.eye(n_states)
    return np.stack([rng.dirichlet(row) for row in concentration])


def _eigenvector_stationary(transition: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(transition.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return vector / vector.sum()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n_states", [2, 3, 5, 9])
def test_values_equal_the_unit_eigenvector(n_states, mode):
    rng = np.random.default_rng(n_states)
    transition = pt.matrix("transition")
    function = pytensor.function([transition], stationary_distribution(transition), mode=mode)
    for _ in range(5):
        matrix = _random_transition(rng, n_states)
        np.testing.assert_allclose(function(matrix), _eigenvector_stationary(matrix), atol=1e-12)
    # A very sticky chain (P(stay) = 1 - 1e-9) is still solved accurately: pivoting matters.
    sticky = np.full((n_states, n_states), 1e-9 / (n_states - 1)) + np.eye(n_states) * (1 - 2e-9)
    sticky /= sticky.sum(axis=1, keepdims=True)
    sticky[0] = np.r_[1 - 3e-9, np.full(n_states - 1, 3e-9 / (n_states - 1))]
    np.testing.assert_allclose(function(sticky), _eigenvector_stationary(sticky), rtol=1e-6)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(4)

    def weighted(transition):
        return pt.sum(pt.as_tensor(weights) * stationary_distribution(transition))

    pytensor.gradient.verify_grad(weighted, [_random_transition(rng, 4)], rng=rng, eps=1e-7)


@pytest.mark.parametrize("n_states", [2, 3, 5])
def test_numba_gradient_equals_default_mode_gradient(n_states):
    rng = np.random.default_rng(10 + n_states)
    transition = pt.matrix("transition")
    weights = rng.standard_normal(n_states)
    objective = pt.sum(pt.log(stationary_distribution(transition)) * weights)
    gradient = pytensor.grad(objective, transition)
    matrix = _random_transition(rng, n_states)
    default, numba = (
        pytensor.function([transition], [objective, gradient], mode=mode)(matrix) for mode in MODES
    )
    np.testing.assert_allclose(numba[0], default[0], rtol=1e-12)
    np.testing.assert_allclose(numba[1], default[1], rtol=1e-10, atol=1e-12)
    assert np.all(default[1][:, -1] == 0.0)  # the last column only enters through sum(P) = 1


@pytest.mark.parametrize("mode", MODES)
def test_vectorising_over_draws_keeps_one_batched_op(mode):
    """The post-processing vectorises the model's graph over draws; the Op must stay one
    node that solves the whole stack, and agree with the per-draw solve."""
    rng = np.random.default_rng(3)
    transition = pt.matrix("transition")
    stacked = pt.tensor3("stacked")
    objective = pt.sum(stationary_distribution(transition) ** 2)
    outputs = [stationary_distribution(transition), pytensor.grad(objective, transition)]
    batched = vectorize_graph(outputs, {transition: stacked})
    function = pytensor.function([stacked], batched, mode=mode)
    ops = {type(node.op).__name__ for node in function.maker.fgraph.apply_nodes}
    assert "Blockwise" not in ops and "StationaryDistributionOp" in ops
    matrices = np.stack([_random_transition(rng, 3) for _ in range(6)])
    values, gradients = function(matrices)
    single = pytensor.function([transition], outputs)
    for matrix, value, gradient in zip(matrices, values, gradients, strict=True):
        expected_value, expected_gradient = single(matrix)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-14)


def test_rejects_a_vector():
    with pytest.raises(TypeError, match=r"\(\.\.\., K, K\)"):
        StationaryDistributionOp()(pt.vector("not_a_matrix"))
