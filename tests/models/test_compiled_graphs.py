"""compile_stored: a rewritten graph kept on disk and compiled back without rewrites by a
later compile of the same graph; keys that tell graphs apart; unreadable files redone."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph

import regime_model.models.compiled_graphs as compiled_graphs
from regime_model.models.compiled_graphs import compile_stored, graph_key
from regime_model.models.vectorised import compile_over_draws


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and the list of graphs compiled with rewrites."""
    monkeypatch.setattr(compiled_graphs, "CACHE_DIRECTORY", tmp_path / "graphs")
    rewritten = []
    original = compiled_graphs.compile_pymc

    def spy(inputs, outputs, **kwargs):
        rewritten.append(outputs)
        return original(inputs, outputs, **kwargs)

    monkeypatch.setattr(compiled_graphs, "compile_pymc", spy)
    return tmp_path / "graphs", rewritten


def _graph(scale: float = 2.0):
    """x (3,) -> a log-sum-exp and a softplus-like sum, built anew on each call."""
    x = pt.vector("x", shape=(3,))
    return [x], [pt.logsumexp(scale * x), pt.log1p(pt.exp(x)).sum()]


def test_a_second_compile_loads_the_rewritten_graph(cache):
    directory, rewritten = cache
    point = np.array([0.5, -1.0, 2.0])
    first = compile_stored(*_graph(), "NUMBA")
    assert len(rewritten) == 1 and len(list(directory.glob("*.pkl"))) == 1
    second = compile_stored(*_graph(), "NUMBA")  # the same graph, other variables
    assert len(rewritten) == 1  # no rewriting this time
    expected = [np.log(np.exp(2 * point).sum()), np.log1p(np.exp(point)).sum()]
    for function in (first, second):
        np.testing.assert_allclose(function(point), expected, rtol=1e-12)
    # The loaded graph is the rewritten one (fused, specialised), not the graph given.
    assert [str(node.op) for node in first.maker.fgraph.toposort()] == [
        str(node.op) for node in second.maker.fgraph.toposort()
    ]


def test_keys_tell_graphs_apart():
    key = graph_key(*_graph(), "NUMBA")
    assert key == graph_key(*_graph(), "NUMBA")
    assert key != graph_key(*_graph(3.0), "NUMBA")  # a constant's value
    assert key != graph_key(*_graph(), "FAST_RUN")
    assert key != graph_key(*_graph(), "NUMBA", "check_bounds=False")
    x = pt.vector("x", shape=(3,))
    product = [pt.logsumexp(2.0 * x), pt.log1p(pt.exp(x)).prod()]  # another Op
    assert key != graph_key([x], product, "NUMBA")
    wider = pt.vector("x", shape=(4,))
    outputs = [pt.logsumexp(2.0 * wider), pt.log1p(pt.exp(wider)).sum()]
    assert key != graph_key([wider], outputs, "NUMBA")


def test_a_graph_with_a_shared_variable_is_not_stored(cache):
    directory, rewritten = cache
    x = pt.vector("x", shape=(3,))
    shift = pytensor.shared(np.ones(3))
    assert graph_key([x], [(x + shift).sum()], "NUMBA") is None
    function = compile_stored([x], [(x + shift).sum()], "NUMBA")
    assert function(np.zeros(3))[0] == pytest.approx(3.0)
    assert not directory.exists() or not list(directory.glob("*.pkl"))


def test_an_unreadable_file_is_compiled_again_and_replaced(cache):
    directory, rewritten = cache
    compile_stored(*_graph(), "NUMBA")
    (path,) = directory.glob("*.pkl")
    path.write_bytes(b"truncated")
    function = compile_stored(*_graph(), "NUMBA")
    assert len(rewritten) == 2
    assert function(np.zeros(3))[1] == pytest.approx(3 * np.log(2.0))
    assert path.read_bytes() != b"truncated"
    assert not list(directory.glob("*.tmp"))  # written whole, renamed into place
    compile_stored(*_graph(), "NUMBA")
    assert len(rewritten) == 2


def test_functions_over_draws_share_one_graph_for_data_of_any_length(cache):
    directory, rewritten = cache
    results = []
    for n_data in (100, 150):
        theta = pt.vector("theta", shape=(2,))
        data = np.linspace(-1.0, 1.0, n_data)
        outputs = [(theta[0] + theta[1] * pt.as_tensor(data)).sum()]
        draws = pt.matrix("draws", shape=(None, 2))
        function = compile_over_draws([draws], vectorize_graph(outputs, {theta: draws}))
        results.append(function(np.array([[0.5, 2.0]]))[0][0])
    assert len(rewritten) == 1 and len(list(directory.glob("*.pkl"))) == 1
    np.testing.assert_allclose(results, [50.0, 75.0])
