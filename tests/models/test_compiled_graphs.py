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


def _flat_model(data: np.ndarray, scale: float = 2.0):
    """theta (2,) -> its mean and a sum over the data, with a small constant ``scale``."""
    theta = pt.vector("theta", shape=(2,))
    outputs = [theta.mean(), (theta[0] + scale * theta[1] * pt.as_tensor(data)).sum()]
    return theta, outputs


def test_a_function_over_draws_is_loaded_by_the_key_of_the_graph_it_came_from(cache, monkeypatch):
    """The second fit of a structure loads the vectorised function without building the
    vectorised graph, bound to its own data (of another length and other values)."""
    import regime_model.models.vectorised as vectorised

    built = []
    original = vectorised.vectorize_graph
    monkeypatch.setattr(
        vectorised, "vectorize_graph", lambda *a, **k: built.append(1) or original(*a, **k)
    )
    points = np.array([[0.5, 2.0], [1.0, -1.0]])
    values = []
    for n_data in (100, 150):
        data = np.linspace(0.0, 1.0, n_data)
        theta, outputs = _flat_model(data)
        values.append(vectorised.compile_flat_over_draws([theta], [(2,)], outputs)(points))
        expected = [points.mean(axis=1), [(p[0] + 2.0 * p[1] * data).sum() for p in points]]
        np.testing.assert_allclose(values[-1][0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(values[-1][1], expected[1], rtol=1e-12, atol=1e-12)
    assert len(built) == 1  # the second graph was not vectorised: loaded
    theta, outputs = _flat_model(np.linspace(0.0, 1.0, 120), scale=3.0)  # another constant
    vectorised.compile_flat_over_draws([theta], [(2,)], outputs)
    assert len(built) == 2


def test_derivation_keys_keep_small_constants_and_the_recipe():
    from regime_model.models.compiled_graphs import derivation

    def key(data, scale=2.0, recipe="r"):
        theta, outputs = _flat_model(data, scale)
        return derivation([theta], outputs, recipe, lambda c: c.data.size > 64)

    base = key(np.ones(100))
    assert len(base.constants) == 1 and base.key is not None
    assert base.key == key(np.zeros(300)).key  # data by kind: any length, any values
    assert base.key != key(np.ones(100), scale=3.0).key
    assert base.key != key(np.ones(100), recipe="s").key
    assert base.key != key(np.ones((100, 1))).key  # a length-1 axis is part of the kind


def test_the_log_density_is_loaded_for_a_second_data_set_of_one_structure(cache, monkeypatch):
    """nutpie's log density and gradient: derived once per model structure; a refit on
    other data loads it (no gradient graph built) and gives that data's values."""
    import pymc as pm

    import regime_model.models.nutpie_sampler as nutpie_sampler

    derived = []
    original = nutpie_sampler.log_density_graph
    monkeypatch.setattr(
        nutpie_sampler,
        "log_density_graph",
        lambda *a: derived.append(1) or original(*a),
    )
    mu, log_sigma = 0.3, -0.2
    for n_data in (50, 80):
        data = np.linspace(-1.0, 1.0, n_data)
        with pm.Model() as model:
            # The likelihood as a Potential, as the package's models have it (an observed
            # variable would put the data's length into the graph).
            location = pm.Normal("mu", 0.0, 1.0)
            scale = pm.math.exp(pm.Normal("log_sigma", 0.0, 1.0))
            pm.Potential("loglik", pm.logp(pm.Normal.dist(location, scale), data).sum())
        frozen = nutpie_sampler.frozen_model(model)
        values = [frozen.rvs_to_values[rv] for rv in frozen.free_RVs]
        function, bound = nutpie_sampler._logp_function(frozen, values, [(), ()])
        order = [value.name for value in values]  # the frozen model's order
        point = np.array([{"mu": mu, "log_sigma": log_sigma}[name] for name in order])
        logp, gradient = function(point, *bound)
        sigma = np.exp(log_sigma)
        expected = (
            -0.5 * mu**2
            - 0.5 * log_sigma**2
            - np.log(2 * np.pi)
            + (-0.5 * ((data - mu) / sigma) ** 2 - np.log(sigma)).sum()
            - 0.5 * n_data * np.log(2 * np.pi)
        )
        assert float(logp) == pytest.approx(expected, rel=1e-12)
        d_mu = -mu + ((data - mu) / sigma**2).sum()
        assert gradient[order.index("mu")] == pytest.approx(d_mu, rel=1e-12)
    assert len(derived) == 1
