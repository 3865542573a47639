"""The numba digamma (the Student-t Op's gradient in nu, and PyTensor's Psi in numba mode)
matches scipy, and PyTensor has a cache key for every node of the Student-t log density
and of a graph that calls digamma itself (the multivariate-t's)."""

from __future__ import annotations

import numpy as np
import scipy.special
from pytensor.scalar.math import Psi

from regime_model.models.numba_special import digamma


def test_digamma_matches_scipy_on_positive_and_negative_arguments():
    positive = np.geomspace(1e-8, 1e10, 4000)
    negative = -np.linspace(0.05, 20.95, 300)
    negative = negative[np.abs(negative - np.round(negative)) > 0.05]  # away from the poles
    for xs in (positive, negative):
        ours = np.array([digamma(x) for x in xs])
        reference = scipy.special.psi(xs)
        np.testing.assert_allclose(ours, reference, rtol=5e-13, atol=1e-13)
    assert digamma(0.0) == -np.inf and np.isnan(digamma(-3.0)) and np.isnan(digamma(np.nan))


def test_the_student_t_log_density_is_cacheable_by_pytensors_numba_backend():
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    from regime_model.data.synthetic import simulate_tvtp_features
    from regime_model.models import BayesianHMM
    from regime_model.models.nutpie_sampler import frozen_model, log_density_graph

    features, _ = simulate_tvtp_features(120, seed=1)
    model = BayesianHMM(2, emission="student-t")
    _, pymc_model, _ = model.compose(model.observations(features, ["eq_return", "crypto_return"]))
    frozen = frozen_model(pymc_model)
    logp, gradient, _, data_inputs = log_density_graph(frozen)
    values = [frozen.rvs_to_values[rv] for rv in frozen.free_RVs]
    function = compile_pymc([*values, *data_inputs], [logp, gradient], mode="NUMBA")
    nodes = function.maker.fgraph.toposort()
    scalar_ops = [type(node.op.scalar_op) for node in nodes if hasattr(node.op, "scalar_op")]
    for node in nodes:  # and the scalar ops fused inside Composites
        inner = getattr(getattr(node.op, "scalar_op", None), "fgraph", None)
        scalar_ops += [type(part.op) for part in inner.toposort()] if inner else []
    assert Psi not in scalar_ops  # nu's gradient is inside the Op, in jitted code
    assert any(getattr(node.op, "family", None) == "student-t" for node in nodes)
    keys = [numba_funcify_and_cache_key(node.op, node=node)[1] for node in nodes]
    assert [str(node.op) for node, key in zip(nodes, keys, strict=True) if key is None] == []


def test_a_graph_calling_digamma_compiles_to_numba_with_a_cache_key():
    import pytensor
    import pytensor.tensor as pt
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    import regime_model.models.numba_special  # noqa: F401  (registers Psi)

    x = pt.vector("x")
    function = pytensor.function([x], pt.psi(x), mode="NUMBA")
    values = np.array([0.3, 2.5, 40.0])
    np.testing.assert_allclose(function(values), scipy.special.psi(values), rtol=1e-13)
    psi_nodes = [
        node
        for node in function.maker.fgraph.toposort()
        if isinstance(getattr(node.op, "scalar_op", None), Psi)
    ]
    assert psi_nodes
    assert all(numba_funcify_and_cache_key(node.op, node=node)[1] for node in psi_nodes)


def test_the_vectorised_logarithm_matches_numpy_to_an_ulp_and_passes_inf_and_nan():
    from regime_model.models.numba_special import log_at_least_one

    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            1.0 + rng.random(5000) ** 12,  # just above 1, where log(1 + w) ~ w
            1.0 + rng.exponential(3.0, 5000),
            np.geomspace(1.0, 1e308, 2000),
            [1.0, np.nextafter(1.0, 2.0), np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 2.0), 2.0],
            [np.finfo(float).max],
        ]
    )
    expected = np.log(values)
    np.testing.assert_allclose(log_at_least_one(values), expected, rtol=2.3e-16, atol=2.3e-16)
    assert log_at_least_one(np.array([1.0]))[0] == 0.0
    special = log_at_least_one(np.array([np.inf, np.nan]))
    assert special[0] == np.inf and np.isnan(special[1])
