"""The benchmark's Stan reference: the package's default model in Stan, with Stan's
built-in ``hmm_marginal`` summing out the regime path (pystan 3, the ``bench`` extra).

Same model as benchmarks/numpyro_reference.py with ``identification="relabelled"``:
exchangeable Normal(0, 1) regime means and LogNormal(0, LOG_SCALE_SD) scales on the
standardised observations, sticky Dirichlet transition rows, the initial distribution the
transition matrix's stationary one; started from the package's EM-based points; draws
sorted on the anchor's mean afterwards (not timed). Stan's NUTS with a diagonal mass
matrix, as the package's samplers use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpyro_reference import sorted_on_anchor  # no jax at import: it imports it lazily

from regime_model.models.gaussian_emissions import LOG_SCALE_SD
from regime_model.models.observations import Observations

PROGRAM = """
functions {
  vector stationary(matrix transition, int K) {
    matrix[K, K] system = transition' - diag_matrix(rep_vector(1, K));
    system[K] = rep_row_vector(1, K);
    vector[K] unit_last = rep_vector(0, K);
    unit_last[K] = 1;
    return system \\ unit_last;
  }
}
data {
  int<lower=1> T;
  int<lower=1> K;
  int<lower=1> D;
  matrix[T, D] y;
  matrix[T, D] observed;
  real<lower=0> stickiness;
  real<lower=0> log_scale_sd;
}
parameters {
  matrix[K, D] regime_mean;
  matrix<lower=0>[K, D] regime_scale;
  array[K] simplex[K] transition_row;
}
model {
  matrix[K, K] transition;
  matrix[K, T] log_omega;
  for (k in 1:K) {
    vector[K] concentration = rep_vector(1, K);
    concentration[k] = stickiness;
    transition_row[k] ~ dirichlet(concentration);
    transition[k] = transition_row[k]';
    matrix[T, D] z = (y - rep_matrix(regime_mean[k], T)) ./ rep_matrix(regime_scale[k], T);
    matrix[T, D] log_density = -0.5 * square(z) - rep_matrix(log(regime_scale[k]), T)
                               - 0.5 * log(2 * pi());
    log_omega[k] = (rows_dot_product(log_density, observed))';
  }
  to_vector(regime_mean) ~ normal(0, 1);
  to_vector(regime_scale) ~ lognormal(0, log_scale_sd);
  target += hmm_marginal(log_omega, transition, stationary(transition, K));
}
"""


@dataclass
class StanFit:
    """Posterior draws (chain, draw, ...) in standardised units, and timings."""

    mean: np.ndarray  # (C, N, K, D)
    sigma: np.ndarray  # (C, N, K, D)
    transition: np.ndarray  # (C, N, K, K)
    diverging: np.ndarray  # (C, N) bool
    leapfrog_steps: int  # gradient evaluations of all chains' kept draws
    wall_seconds: float  # the sample call: adaptation and sampling, the model built
    build_seconds: float  # stan.build: compiling, or loading httpstan's cached model


def _by_chain(flat: np.ndarray, n_chains: int) -> np.ndarray:
    """pystan's (..., N * C) draws (chain index fastest) -> (C, N, ...)."""
    values = flat.reshape(*flat.shape[:-1], -1, n_chains)
    return np.moveaxis(values, (-1, -2), (0, 1))


def fit_stan(
    observations: Observations,
    n_regimes: int,
    initvals: list[dict[str, np.ndarray]],
    draws: int = 1000,
    tune: int = 1000,
    target_accept: float = 0.9,
    seed: int = 1,
    stickiness: float = 10.0,
) -> StanFit:
    """Stan's NUTS on the model above, one chain per entry of ``initvals`` (the package's
    relabelled starts: ``regime_mean``, ``regime_scale``, ``transition``)."""
    import stan

    n_fit = observations.n_fit
    data = {
        "T": n_fit,
        "K": n_regimes,
        "D": observations.n_features,
        "y": observations.values[:n_fit],
        "observed": observations.observed[:n_fit].astype(float),
        "stickiness": stickiness,
        "log_scale_sd": LOG_SCALE_SD,
    }
    init = [
        {
            "regime_mean": np.asarray(point["regime_mean"]),
            "regime_scale": np.asarray(point["regime_scale"]),
            "transition_row": np.asarray(point["transition"]),
        }
        for point in initvals
    ]
    started = time.perf_counter()
    posterior = stan.build(PROGRAM, data=data, random_seed=seed)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fit = posterior.sample(
        num_chains=len(initvals),
        num_samples=draws,
        num_warmup=tune,
        delta=target_accept,
        init=init,
    )
    wall = time.perf_counter() - started
    n_chains = len(initvals)
    draws = {
        "mean": _by_chain(fit["regime_mean"], n_chains),
        "sigma": _by_chain(fit["regime_scale"], n_chains),
        # transition_row is (K rows, K entries, draws): row k is the move from regime k.
        "transition": _by_chain(fit["transition_row"], n_chains),
    }
    draws = sorted_on_anchor(draws, observations.anchor)
    return StanFit(
        mean=draws["mean"],
        sigma=draws["sigma"],
        transition=draws["transition"],
        diverging=_by_chain(fit["divergent__"][0], n_chains).astype(bool),
        leapfrog_steps=int(fit["n_leapfrog__"].sum()),
        wall_seconds=wall,
        build_seconds=build_seconds,
    )
