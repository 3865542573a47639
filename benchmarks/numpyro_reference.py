"""The benchmark's hand-written numpyro reference: the package's default model, by hand.

Same priors and the same identification as ``BayesianHMM.build_model`` with its defaults
(Gaussian emissions, switching means and scales, diagonal covariance, sticky Dirichlet
rows, initial distribution = the transition matrix's stationary distribution), on the same
standardised observations, started from the same EM-based points per chain. Regimes are
identified on the anchor feature's mean either way the package does it: "ordered"
(anchored on the top regime, positive gaps below) or "relabelled" (exchangeable anchor
means, every draw sorted afterwards; the sorting is not timed). The regime
path is summed out by a forward pass in ``jax.lax.scan`` with a max-shifted logsumexp;
gradients come from JAX autodiff; NUTS is numpyro's. Float64 throughout, like the package.

Only the benchmark imports this (numpyro and jax are the ``bench`` extra).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from regime_model.models.gaussian_emissions import GAP_ALPHA, GAP_BETA, LOG_SCALE_SD
from regime_model.models.observations import Observations

LOG_2PI = float(np.log(2 * np.pi))


@dataclass
class NumpyroFit:
    """Posterior draws (chain, draw, ...) in standardised units, and timings."""

    mean: np.ndarray  # (C, N, K, D)
    sigma: np.ndarray  # (C, N, K, D)
    transition: np.ndarray  # (C, N, K, K)
    initial: np.ndarray  # (C, N, K)
    diverging: np.ndarray  # (C, N) bool
    wall_seconds: float  # the fit: model set-up, compiling and sampling
    compile_seconds: float  # estimated: a fresh 1-chain, 2 + 2 draw run of the same model
    chain_method: str


def _insert_column(jnp, others, column, position: int):
    """(K, D-1) and (K,) -> (K, D) with ``column`` at ``position``."""
    return jnp.concatenate([others[:, :position], column[:, None], others[:, position:]], axis=1)


def make_model(
    observations: Observations,
    n_regimes: int,
    stickiness: float = 10.0,
    identification: str = "ordered",
):
    """The numpyro model function (no arguments) for ``observations`` (fitted part)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    k, d, anchor = n_regimes, observations.n_features, observations.anchor
    values = jnp.asarray(observations.values[: observations.n_fit])
    observed = jnp.asarray(observations.observed[: observations.n_fit])
    concentration = jnp.asarray(np.ones((k, k)) + np.eye(k) * (stickiness - 1.0))
    unit_last = jnp.zeros(k).at[-1].set(1.0)

    def stationary(transition):
        system = (transition.T - jnp.eye(k)).at[-1].set(jnp.ones(k))
        return jnp.linalg.solve(system, unit_last)

    def forward_loglik(log_initial, log_transition, log_emission):
        def step(log_alpha, log_emission_t):
            scores = log_alpha[:, None] + log_transition
            peak = jnp.max(scores, axis=0)
            log_alpha = peak + jnp.log(jnp.sum(jnp.exp(scores - peak[None, :]), axis=0))
            return log_alpha + log_emission_t, None

        last, _ = jax.lax.scan(step, log_initial + log_emission[0], log_emission[1:])
        peak = jnp.max(last)
        return peak + jnp.log(jnp.sum(jnp.exp(last - peak)))

    def model():
        # The package's parameterisation: one exchangeable (K, D) mean for relabelled, an
        # ordered anchor column plus the other features' means for ordered; one (K, D) scale.
        if identification == "relabelled":
            mean = numpyro.sample("regime_mean", dist.Normal(0.0, 1.0).expand([k, d]).to_event(2))
        else:
            top = numpyro.sample("anchor_top", dist.Normal(0.0, 1.0))
            gaps = numpyro.sample(
                "anchor_gaps", dist.Gamma(GAP_ALPHA, GAP_BETA).expand([k - 1]).to_event(1)
            )
            below = jnp.cumsum(gaps[::-1])[::-1]
            anchor_mean = jnp.concatenate([top - below, top[None]])
            other_mean = numpyro.sample(
                "other_mean", dist.Normal(0.0, 1.0).expand([k, d - 1]).to_event(2)
            )
            mean = _insert_column(jnp, other_mean, anchor_mean, anchor)
        sigma = numpyro.sample(
            "regime_scale", dist.LogNormal(0.0, LOG_SCALE_SD).expand([k, d]).to_event(2)
        )
        transition = numpyro.sample("transition", dist.Dirichlet(concentration).to_event(1))
        initial = stationary(transition)
        numpyro.deterministic("mean", mean)
        numpyro.deterministic("sigma", sigma)
        numpyro.deterministic("initial", initial)
        z = (values[:, None, :] - mean[None]) / sigma[None]
        log_density = -0.5 * z**2 - jnp.log(sigma)[None] - 0.5 * LOG_2PI
        log_emission = (log_density * observed[:, None, :]).sum(axis=-1)
        numpyro.factor(
            "hmm_loglik", forward_loglik(jnp.log(initial), jnp.log(transition), log_emission)
        )

    return model


def sorted_on_anchor(samples: dict[str, np.ndarray], anchor: int) -> dict[str, np.ndarray]:
    """Each draw's regimes in increasing order of the anchor's mean (as the package's
    relabelling does): mean, sigma, initial (where present) and both axes of transition
    permuted alike. Draws are (C, N, ...); also used by the Stan reference."""
    order = np.argsort(samples["mean"][..., anchor], axis=-1)  # (C, N, K)
    rows = order[..., :, None]
    by_regime = {
        name: np.take_along_axis(samples[name], rows if samples[name].ndim == 4 else order, 2)
        for name in ("mean", "sigma", "initial")
        if name in samples
    }
    transition = np.take_along_axis(samples["transition"], rows, 2)
    transition = np.take_along_axis(transition, order[..., None, :], 3)
    return {**samples, **by_regime, "transition": transition}


def fit_numpyro(
    observations: Observations,
    n_regimes: int,
    initvals: list[dict[str, np.ndarray]],
    draws: int = 1000,
    tune: int = 1000,
    target_accept: float = 0.9,
    seed: int = 1,
    chain_method: str = "sequential",
    identification: str = "ordered",
) -> NumpyroFit:
    """NUTS on the hand-written model, one chain per entry of ``initvals`` (the package's
    EM-based starting points, constrained space, for the same ``identification``)."""
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.util import unconstrain_fn

    numpyro.enable_x64()
    if chain_method == "parallel":
        numpyro.set_host_device_count(len(initvals))  # before jax's backend starts

    def run(model, num_chains, num_warmup, num_samples, params):
        mcmc = MCMC(
            NUTS(model, target_accept_prob=target_accept),
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method=chain_method if num_chains > 1 else "sequential",
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(seed), init_params=params, extra_fields=("diverging",))
        return mcmc

    def setup():
        model = make_model(observations, n_regimes, identification=identification)
        unconstrained = [
            unconstrain_fn(model, (), {}, {name: np.asarray(v) for name, v in point.items()})
            for point in initvals
        ]
        params = {
            name: np.stack([np.asarray(point[name]) for point in unconstrained])
            for name in unconstrained[0]
        }
        return model, params

    started = time.perf_counter()
    model, params = setup()
    mcmc = run(model, len(initvals), tune, draws, params)
    samples = {
        name: np.asarray(value) for name, value in mcmc.get_samples(group_by_chain=True).items()
    }
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    wall = time.perf_counter() - started
    if identification == "relabelled":
        samples = sorted_on_anchor(samples, observations.anchor)

    # Compile time, estimated afterwards: a fresh model and sampler, 1 chain x (2 + 2) draws.
    started = time.perf_counter()
    model, params = setup()
    run(model, 1, 2, 2, {name: value[0] for name, value in params.items()})
    compile_seconds = time.perf_counter() - started

    return NumpyroFit(
        mean=samples["mean"],
        sigma=samples["sigma"],
        transition=samples["transition"],
        initial=samples["initial"],
        diverging=diverging,
        wall_seconds=wall,
        compile_seconds=compile_seconds,
        chain_method=chain_method,
    )
