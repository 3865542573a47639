"""The Gaussian / Student-t emission component: per-regime means and scales, diagonal or
full covariance, and the (T, K) log densities the kernel takes.

Priors, in units of each feature's standard deviation (the data are standardised):
means Normal(0, 1), scales LogNormal(0, 0.75), correlations LKJ(2) per regime (full
covariance), Student-t degrees of freedom Gamma(2, 0.1) (Juarez & Steel 2010), one per
feature (diagonal) or one per model (full). ``switching`` says what differs between
regimes: "both", "mean" (one shared scale and correlation) or "variance" (one common
mean). With ``ordered`` ("mean" or "volatility") the anchor's means (scales) are ordered
in the parameterisation, anchored on the best-identified regime: risk_on has a free
anchor mean and every lower regime sits a positive Gamma(2, 4) gap below it (or, by
volatility, risk_on has the smallest scale and each other regime a positive log-gap
above). Otherwise (``ordered=None``, relabelled identification) every regime's
parameters are drawn alike, one (K, D) variable each.

Like a transition component (:mod:`regime_model.models.transitions`) it builds its priors
in the current PyMC model, gives chain starts from an EM estimate, declares how its
variables carry regimes and names what it reports; it also simulates.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.models.em_hmm import EMEstimate
from regime_model.models.emissions import (
    diagonal_log_density,
    full_log_density,
    missing_patterns,
    sample_emissions,
)
from regime_model.models.observations import Observations
from regime_model.models.relabelling import RegimeAxes

GAP_ALPHA, GAP_BETA = 2.0, 4.0  # ordered gaps: mean 0.5, no mass at 0
LOG_SCALE_SD = 0.75
LKJ_ETA = 2.0
NU_ALPHA, NU_BETA = 2.0, 0.1  # Juarez & Steel (2010) prior on Student-t degrees of freedom
START_JITTER = 0.05  # sd of the chains' perturbation of the EM start (standardised units)
START_NU = 10.0


def correlation_matrix(packed: pt.TensorVariable, n_features: int) -> pt.TensorVariable:
    """LKJCorr's packed upper triangle (D(D-1)/2,) -> the (D, D) correlation matrix, as
    ``LKJCorr(return_matrix=True)`` builds it but by a product with a 0/1 placement matrix
    rather than set_subtensor, which PyTensor cannot vectorise over posterior draws (the
    per-draw pass then loops over draws in Python)."""
    rows, columns = np.triu_indices(n_features, 1)
    placement = np.zeros((len(rows), n_features * n_features))
    placement[np.arange(len(rows)), rows * n_features + columns] = 1.0
    placement[np.arange(len(rows)), columns * n_features + rows] = 1.0
    off_diagonal = (packed @ placement).reshape((n_features, n_features))
    return off_diagonal + np.eye(n_features)


class GaussianEmissions:
    """Per-regime Gaussian or Student-t emissions (see the module docstring)."""

    regime_axes: dict[str, RegimeAxes] = {
        name: (("regime", 0),)
        for name in (
            "regime_mean",
            "regime_scale",
            "mean",
            "sigma",
            "correlation_cholesky",
            "emission_mean",
            "emission_scale",
        )
    }

    def __init__(
        self,
        n_regimes: int,
        emission: str = "gaussian",
        switching: str = "both",
        covariance: str = "diag",
        ordered: str | None = None,
    ) -> None:
        self.n_regimes = n_regimes
        self.emission = emission
        self.switching = switching
        self.covariance = covariance
        self.ordered = ordered

    def coords(self, observations: Observations) -> dict[str, list[str]]:
        return {}

    # ------------------------------------------------------------------ priors
    def build(
        self,
        observations: Observations,
        dims: tuple[str, str] = ("regime", "feature"),
        report_correlation: bool = True,
    ) -> pt.TensorVariable:
        """Priors (``mean``, ``sigma`` registered with ``dims``, and
        ``correlation_cholesky`` when ``report_correlation``) -> (T, K) log densities."""
        return log_density(observations, *self.parameters(observations, dims, report_correlation))

    def parameters(
        self,
        observations: Observations,
        dims: tuple[str, str] = ("regime", "feature"),
        report_correlation: bool = True,
    ) -> tuple:
        """The priors, registered as :meth:`build` says -> (mean (K, D), sigma (K, D),
        correlation_cholesky (K, D, D) or None, nu or None)."""
        n_features = observations.n_features
        mean = self._means(observations)
        sigma = self._scales(observations)
        correlation_cholesky = self._correlations(n_features)
        nu = None
        if self.emission == "student-t":
            shape = n_features if self.covariance == "diag" else ()
            nu = pm.Gamma("nu", alpha=NU_ALPHA, beta=NU_BETA, shape=shape)
        pm.Deterministic("mean", mean, dims=dims)
        pm.Deterministic("sigma", sigma, dims=dims)
        if correlation_cholesky is not None and report_correlation:
            pm.Deterministic("correlation_cholesky", correlation_cholesky)
        return mean, sigma, correlation_cholesky, nu

    def _means(self, observations: Observations) -> pt.TensorVariable:
        k, d, anchor = self.n_regimes, observations.n_features, observations.anchor
        if self.switching == "variance":
            common = pm.Normal("common_mean", 0.0, 1.0, shape=d)
            return pt.broadcast_to(common[None, :], (k, d))
        if self.ordered != "mean":
            # Exchangeable: one (K, D) variable (splitting off the anchor column would
            # only add concatenations to the compiled graph).
            return pm.Normal("regime_mean", 0.0, 1.0, shape=(k, d))
        top = pm.Normal("anchor_top", 0.0, 1.0)
        gaps = pm.Gamma("anchor_gaps", alpha=GAP_ALPHA, beta=GAP_BETA, shape=k - 1)
        below = pt.cumsum(gaps[::-1])[::-1]  # distance of regime j < K-1 below the top
        anchor_mean = pt.concatenate([top - below, top[None]])
        other = pm.Normal("other_mean", 0.0, 1.0, shape=(k, d - 1))
        return _insert_column(other, anchor_mean, anchor)

    def _scales(self, observations: Observations) -> pt.TensorVariable:
        k, d, anchor = self.n_regimes, observations.n_features, observations.anchor
        if self.switching == "mean":
            shared = pm.LogNormal("shared_scale", 0.0, LOG_SCALE_SD, shape=d)
            return pt.broadcast_to(shared[None, :], (k, d))
        if self.ordered != "volatility":
            return pm.LogNormal("regime_scale", 0.0, LOG_SCALE_SD, shape=(k, d))
        calm = pm.Normal("anchor_log_scale_calm", 0.0, LOG_SCALE_SD)
        gaps = pm.Gamma("anchor_log_scale_gaps", alpha=GAP_ALPHA, beta=GAP_BETA, shape=k - 1)
        above = pt.cumsum(gaps[::-1])[::-1]
        anchor_scale = pt.exp(pt.concatenate([calm + above, calm[None]]))
        other = pm.LogNormal("other_scale", 0.0, LOG_SCALE_SD, shape=(k, d - 1))
        return _insert_column(other, anchor_scale, anchor)

    def _correlations(self, n_features: int) -> pt.TensorVariable | None:
        if self.covariance == "diag":
            return None
        if n_features < 2:
            raise ValueError("covariance='full' needs at least two features")
        k = self.n_regimes
        if self.switching == "mean":
            shared = pm.LKJCorr("correlation", n=n_features, eta=LKJ_ETA)
            factor = pt.linalg.cholesky(correlation_matrix(shared, n_features))
            return pt.broadcast_to(factor[None], (k, n_features, n_features))
        factors = [
            pt.linalg.cholesky(
                correlation_matrix(
                    pm.LKJCorr(f"correlation_{r}", n=n_features, eta=LKJ_ETA), n_features
                )
            )
            for r in range(k)
        ]
        return pt.stack(factors)

    # ------------------------------------------------------------------ starts
    def starts(
        self, estimate: EMEstimate, observations: Observations, n_chains: int, seed: int
    ) -> list[dict[str, np.ndarray]]:
        """Each chain's starting values: the EM estimate (standardised units), perturbed
        a little, in the parameterisation of the priors."""
        anchor = observations.anchor
        rng = np.random.default_rng(seed)
        points = []
        for _ in range(n_chains):
            mean = estimate.mean + START_JITTER * rng.standard_normal(estimate.mean.shape)
            sigma = estimate.sigma * np.exp(
                START_JITTER * rng.standard_normal(estimate.sigma.shape)
            )
            others = np.delete(np.arange(mean.shape[1]), anchor)
            point: dict[str, np.ndarray] = {}
            if self.switching == "variance":
                point["common_mean"] = mean.mean(axis=0)
            elif self.ordered == "mean":
                anchor_mean = np.sort(mean[:, anchor])
                point["anchor_top"] = np.asarray(anchor_mean[-1])
                point["anchor_gaps"] = np.maximum(np.diff(anchor_mean), 0.05)
                point["other_mean"] = mean[:, others]
            else:
                point["regime_mean"] = mean
            if self.switching == "mean":
                point["shared_scale"] = sigma.mean(axis=0)
            elif self.ordered == "volatility":
                log_scale = np.sort(np.log(sigma[:, anchor]))[::-1]
                point["anchor_log_scale_calm"] = np.asarray(log_scale[-1])
                point["anchor_log_scale_gaps"] = np.maximum(-np.diff(log_scale), 0.05)
                point["other_scale"] = sigma[:, others]
            else:
                point["regime_scale"] = sigma
            if self.emission == "student-t":
                shape = () if self.covariance == "full" else mean.shape[1]
                point["nu"] = np.full(shape, START_NU)
            points.append(point)
        return points

    # ------------------------------------------------------------------ outputs
    def simulate(
        self, parameters: dict[str, np.ndarray], states: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(T, D) observations (model units) along ``states`` (T,) at one parameter draw."""
        return sample_emissions(
            rng,
            states,
            parameters["mean"],
            parameters["sigma"],
            parameters.get("correlation_cholesky"),
            parameters.get("nu"),
        )

    def reported(self, posterior: xr.Dataset, observations: Observations):
        """(variables, dims, coords): means and scales (chain, draw, K, D) in the
        features' units, and the per-feature degrees of freedom of a diagonal Student-t."""
        reported = {
            "emission_mean": posterior["mean"].to_numpy() * observations.scale
            + observations.center,
            "emission_scale": posterior["sigma"].to_numpy() * observations.scale,
        }
        if "nu" in posterior and posterior["nu"].ndim == 3:
            reported["emission_nu"] = posterior["nu"].to_numpy()
        return reported, {}, {}

    def annotate(self, result, posterior: xr.Dataset, observations: Observations) -> None:
        """Add what this component reports to a fitted result: nothing."""


def log_density(observations: Observations, mean, sigma, correlation_cholesky=None, nu=None):
    """(T, K) log densities of the observations (missing values masked): one definition
    for sampling and for posterior draws."""
    if correlation_cholesky is None:
        return diagonal_log_density(
            pt.as_tensor(observations.values),
            pt.as_tensor(observations.observed),
            mean,
            sigma,
            nu,
        )
    return full_log_density(
        observations.values,
        missing_patterns(observations.observed),
        mean,
        sigma,
        correlation_cholesky,
        nu,
    )


def _insert_column(others: pt.TensorVariable, column: pt.TensorVariable, position: int):
    """(K, D-1) and (K,) -> (K, D) with ``column`` at ``position``."""
    return pt.concatenate([others[:, :position], column[:, None], others[:, position:]], axis=1)
