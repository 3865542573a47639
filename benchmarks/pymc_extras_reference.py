"""The benchmark's pymc-extras reference: the package's default model written as a PyMC
user would with pymc-extras, the regime path a ``DiscreteMarkovChain`` summed out by
``pymc_extras.marginalize`` (its forward pass is a ``pytensor.scan`` with autodiff
gradients), sampled by PyMC's NUTS.

Same priors as ``BayesianHMM``'s defaults on the same standardised observations
(relabelled: exchangeable (K, D) means, Normal(0, 1); LogNormal scales; sticky Dirichlet
rows; the initial law the transition matrix's stationary distribution), started from the
same EM-based points per chain. Draws are sorted on the anchor's mean afterwards, as the
package's relabelling names them (not timed).

Only the benchmark imports this (pymc-extras is in the ``bench`` extra).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pymc as pm

from regime_model.inference import stationary_distribution
from regime_model.models.gaussian_emissions import LOG_SCALE_SD
from regime_model.models.observations import Observations


@dataclass
class PymcExtrasFit:
    """Posterior draws (chain, draw, ...) in standardised units, sorted on the anchor."""

    mean: np.ndarray  # (C, N, K, D)
    sigma: np.ndarray  # (C, N, K, D)
    transition: np.ndarray  # (C, N, K, K)
    initial: np.ndarray  # (C, N, K)
    diverging: np.ndarray  # (C, N)
    wall_seconds: float  # building, marginalising, compiling and sampling
    pymc_extras_version: str


def fit_pymc_extras(
    observations: Observations,
    n_regimes: int,
    initvals: list[dict[str, np.ndarray]],
    draws: int,
    tune: int,
    target_accept: float,
    seed: int = 1,
    stickiness: float = 10.0,
) -> PymcExtrasFit:
    import pymc_extras as pmx

    if not observations.observed[: observations.n_fit].all():
        raise ValueError("the pymc-extras reference takes data without missing values")
    k, d = n_regimes, observations.n_features
    values = observations.values[: observations.n_fit]
    concentration = np.ones((k, k)) + np.eye(k) * (stickiness - 1.0)
    started = time.perf_counter()
    with pm.Model() as model:
        mean = pm.Normal("regime_mean", 0.0, 1.0, shape=(k, d))
        sigma = pm.LogNormal("regime_scale", 0.0, LOG_SCALE_SD, shape=(k, d))
        transition = pm.Dirichlet("transition", concentration, shape=(k, k))
        initial = pm.Deterministic("initial", stationary_distribution(transition))
        regime = pmx.DiscreteMarkovChain(
            "regime",
            P=transition,
            init_dist=pm.Categorical.dist(p=initial),
            shape=(len(values),),
        )
        pm.Normal("y", mu=mean[regime], sigma=sigma[regime], observed=values)
    marginal = pmx.marginalize(model, ["regime"])
    # Its forward pass differentiates an unstabilised logsumexp inside the scan: past a
    # few dozen dates the messages underflow and the gradient is NaN (pymc-extras issue
    # #720, open), which NUTS turns into a divergence at every step. Said, not sampled.
    gradient = marginal.compile_dlogp()(marginal.initial_point())
    if not np.isfinite(gradient).all():
        raise FloatingPointError(
            f"pymc-extras {pmx.__version__}: the marginalised chain's gradient is NaN at the "
            f"model's initial point (T = {len(values)}; pymc-extras issue #720), so NUTS "
            "cannot sample it"
        )
    starts = [
        {name: start[name] for name in ("regime_mean", "regime_scale", "transition")}
        for start in initvals
    ]
    with marginal:
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=len(starts),
            cores=min(len(starts), 2),
            initvals=starts,
            target_accept=target_accept,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
    wall = time.perf_counter() - started
    posterior = idata.posterior
    mean_draws = posterior["regime_mean"].to_numpy()
    order = np.argsort(mean_draws[..., observations.anchor], axis=-1)  # (C, N, K)
    rows = order[..., :, None]
    transition_draws = np.take_along_axis(posterior["transition"].to_numpy(), rows, 2)
    return PymcExtrasFit(
        mean=np.take_along_axis(mean_draws, rows, 2),
        sigma=np.take_along_axis(posterior["regime_scale"].to_numpy(), rows, 2),
        transition=np.take_along_axis(transition_draws, order[..., None, :], 3),
        initial=np.take_along_axis(posterior["initial"].to_numpy(), order, 2),
        diverging=idata.sample_stats["diverging"].to_numpy(),
        wall_seconds=wall,
        pymc_extras_version=pmx.__version__,
    )
