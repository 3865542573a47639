"""The covariate-logit transition Op against the PyTensor graph it replaces and against
finite differences."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from regime_model.models.covariate_link import full_logits, move_logits
from regime_model.models.logit_transitions import logit_log_transitions


def _inputs(n_regimes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_moves = n_regimes * (n_regimes - 1)
    return [
        rng.standard_normal(n_moves),
        rng.standard_normal((n_moves, 3)),
        2.0 * rng.standard_normal((40, 3)),
    ]


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
@pytest.mark.parametrize("n_regimes", [2, 3])
def test_value_and_gradient_equal_the_graph_they_replace(n_regimes, mode):
    variables = [pt.vector("intercept"), pt.matrix("coefficient"), pt.matrix("drivers")]
    op = logit_log_transitions(*variables, n_regimes)
    graph = pt.special.log_softmax(full_logits(move_logits(*variables), n_regimes), axis=-1)
    weights = np.random.default_rng(1).standard_normal((40, n_regimes, n_regimes))
    outputs = [op, graph]
    for value in (op, graph):
        outputs += pytensor.grad((value * weights).sum(), variables)
    evaluate = pytensor.function(variables, outputs, mode=mode)
    values = evaluate(*_inputs(n_regimes))
    np.testing.assert_allclose(np.exp(values[0]).sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(values[0], values[1], atol=1e-12)
    for ours, theirs in zip(values[2:5], values[5:8], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_gradient_matches_finite_differences_at_extreme_logits():
    n_regimes = 3
    intercept, coefficient, drivers = _inputs(n_regimes, seed=2)
    intercept = 30.0 * intercept  # rows close to degenerate, where exp overflows naively
    variables = [pt.vector("intercept"), pt.matrix("coefficient"), pt.matrix("drivers")]
    weights = np.random.default_rng(3).standard_normal((40, n_regimes, n_regimes))
    objective = (logit_log_transitions(*variables, n_regimes) * weights).sum()
    evaluate = pytensor.function(variables, [objective, *pytensor.grad(objective, variables)])
    point = [intercept, coefficient, drivers]
    value, *gradients = evaluate(*point)
    assert np.isfinite(value)
    step = 1e-6
    for position, gradient in enumerate(gradients):
        numeric = np.zeros_like(gradient)
        for index in np.ndindex(gradient.shape):
            shifted = [array.copy() for array in point]
            shifted[position][index] += step
            upper = evaluate(*shifted)[0]
            shifted[position][index] -= 2 * step
            numeric[index] = (upper - evaluate(*shifted)[0]) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-5)


def test_a_wrong_rank_is_rejected():
    with pytest.raises(TypeError, match="coefficient must have 2 dimensions"):
        logit_log_transitions(pt.vector(), pt.vector(), pt.matrix(), 2)
