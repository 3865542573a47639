"""The numba digamma that lets the Student-t log density be cached on disk matches scipy,
and PyTensor now has a cache key for every node of that density."""

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
    assert Psi in scalar_ops  # the gradient in nu needs digamma: the case this is about
    keys = [numba_funcify_and_cache_key(node.op, node=node)[1] for node in nodes]
    assert [str(node.op) for node, key in zip(nodes, keys, strict=True) if key is None] == []
