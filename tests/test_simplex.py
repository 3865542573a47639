"""The simplex-rows Op behind Dirichlet transition rows: the same bijection and
log-Jacobian as PyMC's simplex transform, the log-Jacobian against the determinant of the
map's Jacobian, the gradient against finite differences, every mode against the others,
and the sampled graph differentiating the rows once."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.logprob.transforms import SimplexTransform
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import ancestors
from test_models import simulate_hmm

from regime_model.models import BayesianHMM
from regime_model.models.nutpie_sampler import frozen_model, log_density_graph
from regime_model.models.simplex import (
    SimplexRowsOp,
    SimplexRowsVJPOp,
    dirichlet,
    simplex_rows_numba,
    simplex_rows_transform,
    simplex_rows_vjp_numba,
)

MODES = ["FAST_COMPILE", None, "NUMBA"]  # Python, PyTensor's default (C), numba
PYMC_SIMPLEX = SimplexTransform()


def _unconstrained(seed: int, shape=(3, 3)) -> np.ndarray:
    return 2.0 * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3,), (2, 4, 3)])  # one row (an initial distribution), a stack
def test_rows_and_log_jacobian_equal_pymc_simplex_transform(mode, shape):
    values = pt.tensor("values", shape=(None,) * len(shape))
    function = pytensor.function(
        [values],
        [
            simplex_rows_transform.backward(values),
            simplex_rows_transform.log_jac_det(values),
            PYMC_SIMPLEX.backward(values),
            PYMC_SIMPLEX.log_jac_det(values),
        ],
        mode=mode,
    )
    rows, log_jacobian, pymc_rows, pymc_log_jacobian = function(_unconstrained(0, shape))
    assert rows.shape == (*shape[:-1], 4) and log_jacobian.shape == shape[:-1]
    np.testing.assert_allclose(rows, pymc_rows, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(log_jacobian, pymc_log_jacobian, rtol=1e-13)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, rtol=1e-14)


def test_log_jacobian_is_the_log_determinant_of_the_map():
    """Against the K-1 x K-1 Jacobian of y -> x[:-1], formed from softmax's derivative."""
    for seed, n_states in ((1, 2), (2, 3), (3, 5)):
        unconstrained = _unconstrained(seed, (1, n_states - 1))
        rows, log_jacobian = simplex_rows_numba(unconstrained)
        x = rows[0]
        # z = (y, -sum y); dx/dz = diag(x) - x x^T; dz/dy = [I; -1].
        dz_dy = np.vstack([np.eye(n_states - 1), -np.ones((1, n_states - 1))])
        jacobian = ((np.diag(x) - np.outer(x, x)) @ dz_dy)[:-1]
        np.testing.assert_allclose(
            log_jacobian[0], np.log(abs(np.linalg.det(jacobian))), rtol=1e-10
        )


def test_forward_inverts_backward_and_extreme_values_stay_finite():
    unconstrained = np.array([[700.0, -700.0], [0.0, 0.0], [-1e-300, 1e-300]])
    rows, log_jacobian = simplex_rows_numba(unconstrained)
    assert np.all(np.isfinite(rows)) and np.all(np.isfinite(log_jacobian))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-14)
    moderate = _unconstrained(4, (5, 3))
    rows = pt.as_tensor(simplex_rows_numba(moderate)[0])
    np.testing.assert_allclose(simplex_rows_transform.forward(rows).eval(), moderate, atol=1e-12)


@pytest.mark.parametrize("connected", ["both", "rows", "log_jacobian"])
def test_gradient_matches_finite_differences(connected):
    rng = np.random.default_rng(5)
    row_weights = rng.standard_normal((3, 4))
    jacobian_weights = rng.standard_normal(3)

    def weighted(unconstrained):
        rows = simplex_rows_transform.backward(unconstrained)
        log_jacobian = simplex_rows_transform.log_jac_det(unconstrained)
        terms = {
            "rows": pt.sum(pt.as_tensor(row_weights) * pt.log(rows)),
            "log_jacobian": pt.sum(pt.as_tensor(jacobian_weights) * log_jacobian),
        }
        return terms[connected] if connected != "both" else sum(terms.values())

    pytensor.gradient.verify_grad(weighted, [_unconstrained(6, (3, 3))], rng=rng, eps=1e-7)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_is_the_same_in_every_mode(mode):
    values = pt.matrix("values")
    loss = pt.sum(pt.log(simplex_rows_transform.backward(values)) * np.arange(1.0, 5.0))
    loss += pt.sum(simplex_rows_transform.log_jac_det(values) * np.array([1.0, -2.0, 0.5]))
    reference = pt.sum(pt.log(PYMC_SIMPLEX.backward(values)) * np.arange(1.0, 5.0))
    reference += pt.sum(PYMC_SIMPLEX.log_jac_det(values) * np.array([1.0, -2.0, 0.5]))
    function = pytensor.function(
        [values], [pt.grad(loss, values), pt.grad(reference, values)], mode=mode
    )
    gradient, pymc_gradient = function(_unconstrained(7, (3, 3)))
    np.testing.assert_allclose(gradient, pymc_gradient, rtol=1e-10, atol=1e-13)


def test_vjp_refuses_gradients_of_the_wrong_shape():
    rows = simplex_rows_numba(_unconstrained(8, (3, 2)))[0]
    with pytest.raises(ValueError, match="gradients must match"):
        simplex_rows_vjp_numba(rows, np.ones((1, 3)), np.ones(3))


def test_vectorised_over_draws_equals_per_draw():
    values = pt.matrix("values")
    rows = simplex_rows_transform.backward(values)
    draws = pt.tensor("draws", shape=(None, None, None))
    batched = vectorize_graph(rows, {values: draws})
    assert isinstance(batched.owner.op, SimplexRowsOp)
    stacked = _unconstrained(9, (4, 3, 2))
    result = batched.eval({draws: stacked})
    for index, draw in enumerate(stacked):
        np.testing.assert_allclose(result[index], simplex_rows_numba(draw)[0], rtol=1e-15)


def test_transition_prior_equals_pymc_dirichlet_at_the_same_point():
    """The model's log density and gradient in the sampled coordinates are PyMC's own."""
    concentration = np.array([[10.0, 1.0, 1.0], [1.0, 10.0, 1.0], [2.0, 1.0, 10.0]])
    with pm.Model() as ours:
        dirichlet("transition", concentration)
    with pm.Model() as reference:
        pm.Dirichlet("transition", a=concentration)
    point = {"transition_simplex__": _unconstrained(10, (3, 2))}
    for function in ("compile_logp", "compile_dlogp"):
        np.testing.assert_allclose(
            getattr(ours, function)()(point), getattr(reference, function)()(point), rtol=1e-12
        )


def test_sampled_graph_differentiates_the_transition_rows_once():
    """PyMC builds the rows once for the prior and once for the likelihood; the graph
    nutpie compiles has one rows node and one gradient node. The compiled graph drops
    PyMC's parameter checks (every prior parameter is validated when the model is built)."""
    features = simulate_hmm(60, seed=11)[0]
    model = BayesianHMM(2, sampler="nutpie", chains=1)
    observations = model.observations(features)
    frozen = frozen_model(model.build_model(observations))
    assert frozen.check_bounds is False
    logp, gradient, *_ = log_density_graph(frozen)
    nodes = {variable.owner for variable in ancestors([logp, gradient]) if variable.owner}
    ops = [type(node.op) for node in nodes]
    assert ops.count(SimplexRowsOp) == 1
    assert ops.count(SimplexRowsVJPOp) == 1
