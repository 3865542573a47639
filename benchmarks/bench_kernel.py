"""Timing of the shared HMM kernel (regime_model.inference).

Prints the median time of one log-likelihood + gradient evaluation (after a warm-up call
that triggers compilation) for several (T, K), and the time of a compiled PyMC logp+dlogp
function built on the PyTensor Op, in PyTensor's default and NUMBA modes.  Prints figures,
asserts nothing.

    python benchmarks/bench_kernel.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from regime_model.inference import hmm_loglik_and_grad


def median_seconds(function: Callable[[], object], min_repeats: int = 50) -> float:
    """Median wall time of function() over at least min_repeats calls and ~1 s."""
    function()  # warm-up: compile / load caches
    timings = []
    start = time.perf_counter()
    while len(timings) < min_repeats or time.perf_counter() - start < 1.0:
        begin = time.perf_counter()
        function()
        timings.append(time.perf_counter() - begin)
    return float(np.median(timings))


def random_problem(rng: np.random.Generator, n_steps: int, n_states: int):
    log_initial = np.log(np.full(n_states, 1.0 / n_states))
    transition = 0.9 * np.eye(n_states) + 0.1 * rng.dirichlet(np.ones(n_states), size=n_states)
    log_emission = rng.normal(scale=2.0, size=(n_steps, n_states))
    return log_initial, np.log(transition), log_emission


def bench_kernel() -> None:
    rng = np.random.default_rng(0)
    print("hmm_loglik_and_grad (numpy in, value + all gradients out):")
    for n_steps, n_states in [(2500, 2), (2500, 3), (2500, 5), (10_000, 5)]:
        problem = random_problem(rng, n_steps, n_states)
        seconds = median_seconds(lambda problem=problem: hmm_loglik_and_grad(*problem))
        print(f"  T={n_steps:>6} K={n_states}: {seconds * 1e6:8.1f} us")

    n_steps, n_states = 10_000, 5
    log_initial, log_transition, _ = random_problem(rng, n_steps, n_states)
    extreme_emission = -rng.uniform(0.0, 1e4, size=(n_steps, n_states))
    seconds = median_seconds(
        lambda: hmm_loglik_and_grad(log_initial, log_transition, extreme_emission), 5
    )
    print(f"  T={n_steps:>6} K={n_states}, extreme emissions (log space): {seconds * 1e3:.2f} ms")


def bench_pymc(n_steps: int = 2500) -> None:
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.blocking import DictToArrayBijection

    from regime_model.inference import hmm_log_likelihood

    rng = np.random.default_rng(1)
    states = (rng.random(n_steps) < 0.3).astype(int)
    observations = rng.normal(np.array([-0.5, 1.0])[states], np.array([1.0, 2.0])[states])
    with pm.Model() as model:
        transition = pm.Dirichlet("transition", a=np.ones(2), shape=(2, 2))
        means = pm.Normal("means", mu=0.0, sigma=2.0, shape=2)
        sigmas = pm.HalfNormal("sigmas", sigma=2.0, shape=2)
        log_emission = pm.logp(pm.Normal.dist(means, sigmas), observations[:, None])
        pm.Potential(
            "hmm", hmm_log_likelihood(np.log([0.5, 0.5]), pt.log(transition), log_emission)
        )

    point = DictToArrayBijection.map(model.initial_point()).data
    print(f"PyMC logp+dlogp through the Op, T={n_steps} K=2 (Gaussian emissions):")
    for mode in [None, "NUMBA"]:
        begin = time.perf_counter()
        function = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
        function.set_extra_values({})
        function(point)
        compile_seconds = time.perf_counter() - begin
        seconds = median_seconds(lambda function=function: function(point))
        label = mode or "default"
        print(
            f"  {label:>7} mode: {seconds * 1e6:8.1f} us per call (compile {compile_seconds:.1f} s)"
        )


if __name__ == "__main__":
    bench_kernel()
    bench_pymc()
