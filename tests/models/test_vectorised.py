"""compile_over_draws: the all-draws functions compiled in NUMBA mode, cacheable (no
array data in their code), without ViewOps, and C when numba would need object mode."""

from __future__ import annotations

import warnings

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.ops import view_op
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.variable import TensorConstant

import regime_model.models.vectorised as vectorised
from regime_model.models.vectorised import compile_over_draws, without_views


def _graph():
    """One draw's (2,) parameter -> a view of exp(theta) and a sum against 100 data."""
    theta = pt.vector("theta", shape=(2,))
    data = np.linspace(-1.0, 1.0, 100)
    outputs = [view_op(pt.exp(theta)), (theta[0] + theta[1] * pt.as_tensor(data)).sum()]
    return theta, outputs, data


def _compiled_with_spy(monkeypatch, warn_object_mode: bool = False):
    compiled = []
    original = vectorised.compile_stored

    def spy(inputs, outputs, mode, **kwargs):
        if warn_object_mode and mode == vectorised.MODE:
            warnings.warn("Numba will use object mode to run SomeOp's perform method", stacklevel=2)
        function = original(inputs, outputs, mode, **kwargs)
        compiled.append((mode, function))
        return function

    monkeypatch.setattr(vectorised, "compile_stored", spy)
    theta, outputs, data = _graph()
    draws = pt.matrix("draws", shape=(None, 2))
    function = compile_over_draws([draws], vectorize_graph(outputs, {theta: draws}))
    return function, compiled, data


def test_views_are_removed_and_values_kept():
    theta, outputs, _ = _graph()
    stripped = without_views(outputs)
    assert not any(
        variable.owner is not None and variable.owner.op == view_op for variable in stripped
    )
    point = np.array([0.3, -0.2])
    for before, after in zip(outputs, stripped, strict=True):
        np.testing.assert_array_equal(before.eval({theta: point}), after.eval({theta: point}))


def test_all_draws_in_numba_with_the_data_as_inputs(monkeypatch):
    function, compiled, data = _compiled_with_spy(monkeypatch)
    assert [mode for mode, _ in compiled] == ["NUMBA"]
    fgraph = compiled[0][1].maker.fgraph
    large = [
        variable
        for variable in graph_inputs(fgraph.outputs)
        if isinstance(variable, TensorConstant) and variable.data.size > 64
    ]
    assert large == []  # the 100 data points are an input, not code
    assert "ViewOp" not in str([node.op for node in fgraph.toposort()])
    draws = np.array([[0.1, 0.2], [-0.5, 1.5], [2.0, 0.0]])
    views, sums = function(draws)
    np.testing.assert_allclose(views, np.exp(draws))
    np.testing.assert_allclose(sums, [(a + b * data).sum() for a, b in draws])


def test_object_mode_falls_back_to_c(monkeypatch):
    function, compiled, _ = _compiled_with_spy(monkeypatch, warn_object_mode=True)
    assert [mode for mode, _ in compiled] == ["NUMBA", "FAST_RUN"]
    views, _ = function(np.zeros((2, 2)))
    np.testing.assert_array_equal(views, np.ones((2, 2)))
