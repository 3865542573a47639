"""The PyTensor Op: values and gradients in the default and NUMBA modes, and inside PyMC."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hmm_brute_force import random_hmm
from pytensor.gradient import NullTypeGradError

from regime_model.inference import (
    HMMLogLikelihoodOp,
    hmm_log_likelihood,
    hmm_loglik_and_grad,
)

MODES = [None, "NUMBA"]  # None: PyTensor's default mode


def symbolic_inputs(time_varying: bool):
    return (
        pt.vector("log_initial"),
        (pt.tensor3 if time_varying else pt.matrix)("log_transition"),
        pt.matrix("log_emission"),
    )


def compile_value_and_grad(time_varying: bool, mode):
    inputs = symbolic_inputs(time_varying)
    loglik = hmm_log_likelihood(*inputs)
    with warnings.catch_warnings():
        # PyTensor warns when it falls back to object mode for an Op without a numba
        # implementation; that fallback must not happen here.
        warnings.filterwarnings("error", message=".*object mode.*")
        function = pytensor.function(
            list(inputs), [loglik, *pytensor.grad(loglik, list(inputs))], mode=mode
        )
        return function


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("time_varying", [False, True])
def test_value_and_gradient_equal_kernel(time_varying, mode):
    rng = np.random.default_rng(17 + time_varying)
    values = random_hmm(rng, 30, 3, time_varying)
    function = compile_value_and_grad(time_varying, mode)

    outputs = function(*values)

    expected = hmm_loglik_and_grad(*values)
    for output, reference in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(output, reference, rtol=1e-12, atol=1e-12)
    # Value and gradient share one Apply node: the forward-backward pass runs once.
    nodes = function.maker.fgraph.toposort()
    assert sum(isinstance(node.op, HMMLogLikelihoodOp) for node in nodes) == 1


@pytest.mark.parametrize("time_varying", [False, True])
def test_verify_grad(time_varying):
    rng = np.random.default_rng(23)
    values = random_hmm(rng, 6, 2, time_varying)
    pytensor.gradient.verify_grad(
        hmm_log_likelihood, list(values), rng=np.random.default_rng(0), abs_tol=1e-6, rel_tol=1e-6
    )


def test_gradient_of_gradient_is_reported_as_not_implemented():
    inputs = symbolic_inputs(time_varying=False)
    gradient = pytensor.grad(hmm_log_likelihood(*inputs), inputs[2])
    with pytest.raises(NullTypeGradError, match="second derivatives"):
        pytensor.grad(gradient.sum(), inputs[2])


@pytest.fixture(scope="module")
def two_state_model():
    """Gaussian two-state HMM with free means and transition logits.

    Flat priors make the model's logp exactly the HMM log-likelihood, and keep the graph to
    a handful of operations: a cold compile (C or numba) costs seconds per operation."""
    rng = np.random.default_rng(29)
    observations = np.concatenate([rng.normal(-1, 1, 40), rng.normal(1.5, 1, 40)])
    with pm.Model() as model:
        logits = pm.Flat("logits", shape=(2, 2))
        means = pm.Flat("means", shape=2)
        log_transition = logits - pt.logsumexp(logits, axis=1, keepdims=True)
        log_emission = -0.5 * (observations[:, None] - means) ** 2
        pm.Potential("hmm", hmm_log_likelihood(np.log([0.5, 0.5]), log_transition, log_emission))
    return model, observations


@pytest.mark.parametrize("mode", MODES)
def test_pymc_model_compiles_logp_and_dlogp(two_state_model, mode):
    model, observations = two_state_model
    point = {"logits": np.array([[1.0, -0.5], [0.2, 0.4]]), "means": np.array([-0.8, 1.2])}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        # One function for both, as samplers compile it (and half the cold compile time).
        logp_and_dlogp = model.compile_fn([model.logp(), model.dlogp()], mode=mode)

    def logp(values):
        return logp_and_dlogp(values)[0]

    logits = point["logits"]
    log_transition = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_emission = -0.5 * (observations[:, None] - point["means"]) ** 2
    expected = hmm_loglik_and_grad(np.log([0.5, 0.5]), log_transition, log_emission)
    assert logp(point) == pytest.approx(expected.marginal_loglik, rel=1e-12)

    # dlogp against central differences of logp, in PyMC's flattening order.
    sizes = [point[value.name].size for value in model.value_vars]
    flat_point = np.concatenate([point[value.name].ravel() for value in model.value_vars])

    def logp_at(flat):
        pieces = np.split(flat, np.cumsum(sizes)[:-1])
        return logp(
            {
                value.name: piece.reshape(point[value.name].shape)
                for value, piece in zip(model.value_vars, pieces, strict=True)
            }
        )

    step = 1e-6
    numeric = np.array(
        [
            (logp_at(flat_point + step * unit) - logp_at(flat_point - step * unit)) / (2 * step)
            for unit in np.eye(flat_point.size)
        ]
    )
    gradient = logp_and_dlogp(point)[1]
    # |logp| ~ 1e2: rounding error ~1e-14 * 1e2 / 1e-6 = 1e-6, truncation ~1e-12.
    np.testing.assert_allclose(gradient, numeric, atol=1e-5)
    # Exact chain rule for the means: sum_t P(z_t = k | y) (y_t - mean_k).
    means_gradient = np.sum(
        expected.grad_log_emission * (observations[:, None] - point["means"]), axis=0
    )
    np.testing.assert_allclose(gradient[4:], means_gradient, rtol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_a_bank_of_moves_gives_the_time_varying_kernel_on_its_stack(mode):
    """Each move drawn from a bank of three matrices by an index (with a structural zero
    in one): the value is the time-varying kernel's on the stack those indices build, and
    each bank matrix's gradient is the sum of its moves' gradients; in NUMBA mode too."""
    from regime_model.inference import indexed_log_likelihood

    rng = np.random.default_rng(5)
    n_dates, n_states = 40, 4
    log_initial, _, log_emission = random_hmm(rng, n_dates, n_states, False)
    bank = rng.dirichlet(np.ones(n_states), size=(3, n_states))
    bank[2, 0, 1] = 0.0
    log_bank = np.log(bank / bank.sum(axis=-1, keepdims=True))
    sources = rng.integers(0, 3, size=n_dates - 1)
    expected = hmm_loglik_and_grad(log_initial, log_bank[sources], log_emission)
    inputs = [pt.vector("i"), pt.tensor3("b"), pt.matrix("e"), pt.lvector("s")]
    value = indexed_log_likelihood(*inputs)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        function = pytensor.function(inputs, [value, *pytensor.grad(value, inputs[:3])], mode=mode)
    loglik, grad_initial, grad_bank, grad_emission = function(
        log_initial, log_bank, log_emission, sources
    )
    np.testing.assert_allclose(loglik, expected.marginal_loglik, rtol=1e-12)
    np.testing.assert_allclose(grad_initial, expected.grad_log_initial, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_emission, expected.grad_log_emission, rtol=1e-10, atol=1e-12)
    summed = np.stack([expected.grad_log_transition[sources == b].sum(axis=0) for b in range(3)])
    np.testing.assert_allclose(grad_bank, summed, rtol=1e-10, atol=1e-12)


def test_the_bank_gradient_matches_finite_differences():
    from regime_model.inference import indexed_log_likelihood

    rng = np.random.default_rng(6)
    log_initial, _, log_emission = random_hmm(rng, 25, 3, False)
    sources = np.array([0, 1, 1, 0, 1] * 4 + [0, 0, 1, 1])

    def log_likelihood(initial_logits, bank_logits):
        return indexed_log_likelihood(
            pt.log(pt.special.softmax(initial_logits)),
            pt.log(pt.special.softmax(bank_logits, axis=-1)),
            log_emission,
            sources,
        )

    pytensor.gradient.verify_grad(
        log_likelihood,
        [rng.normal(size=3), rng.normal(size=(2, 3, 3))],
        rng=np.random.default_rng(7),
        eps=1e-6,
        abs_tol=1e-6,
        rel_tol=1e-6,
    )
