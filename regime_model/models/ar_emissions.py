"""Regime-switching autoregressive emissions: the emission component for features that
depend on their own past (slow levels: breadth, log VIX, spreads).

For an autoregressive feature d, with p lags, in the intercept form (``form="intercept"``)

    y[t, d] = c[s_t, d] + sum_{i=1..p} phi[s_t, i, d] y[t-i, d] + e,  e ~ N(0, sigma[s_t, d]^2),

and in Hamilton's mean-adjusted form (``form="mean-adjusted"``)

    y[t, d] - mu[s_t, d] = sum_{i=1..p} phi[s_t, i, d] (y[t-i, d] - mu[s_{t-i}, d]) + e;

the other features are independent Gaussians, as in
:class:`~regime_model.models.gaussian_emissions.GaussianEmissions` (whose priors, starts
and ordering this component reuses: ``mean`` is the intercept c, or the level mu, for an
autoregressive feature and the mean for the others). In the intercept form only the
current regime enters, so the state space stays K; in the mean-adjusted form a switch
moves the level at once (not geometrically, as a switched intercept does), and the
density depends on the last p + 1 regimes, so the composition runs the kernel on the
K^(p+1) regime histories (:mod:`~regime_model.models.autoregression`, ``history_order``).
``switching_ar``: phi differs between regimes (K, p, A), or is shared (p, A).

``matrix="full"`` (p = 1 only): a VAR(1) among the A autoregressive features, each one's
prediction a weighted sum of all their lags, phi (K, 1, A, A) or (1, A, A) with entry
[.., a, b] the weight of feature b's lag in feature a (``ar_feature``, ``ar_source``); in
the mean-adjusted form y_t - mu[s_t] = Phi (y_{t-1} - mu[s_{t-1}]) + e_t. The noise stays
diagonal. ``"diagonal"`` (the default): each feature on its own lags.

Prior: every regime's AR(p) is stationary (:mod:`~regime_model.models.stationarity`).
phi is sampled through its partial autocorrelations r_1..r_p, each Uniform(-1, 1), mapped
to phi by the Durbin-Levinson recursion: a bijection between (-1, 1)^p and the stationary
region, so no draw is explosive. (A Normal prior on phi puts a third of its mass on
|phi| > 1 at p = 1: simulated series that explode within a few hundred dates, and a
posterior that cannot be calibrated.) Levels near a unit root stay reachable: r_1 close
to 1. A full VAR(1) matrix is sampled as an unconstrained matrix B (``ar_unconstrained``,
each entry StudentT(2, 0, 1/sqrt 2), which makes a 1 x 1 matrix Uniform(-1, 1)) mapped onto
the stationary matrices (Ansley & Kohn 1986; Heaps 2022).

Missing values and the first dates: an autoregressive feature's density at date t needs
its value and its p lags (with a full matrix, the lags of every autoregressive feature);
where any of them is missing (and on the first p dates) that
feature drops out of date t's likelihood: the date is conditioned on, not imputed, and the
regime chain runs through it. This is exact for what remains (the likelihood of the
observed values given observed lags); it discards the information in a value whose lag
is missing (both forms).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.models.autoregression import autoregressive_log_density
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.gaussian_emissions import START_JITTER, GaussianEmissions
from regime_model.models.observations import Observations
from regime_model.models.relabelling import RegimeAxes
from regime_model.models.stationarity import (
    VAR_PRIOR_NU,
    VAR_PRIOR_SCALE,
    coefficients_from_partial_autocorrelations,
    var_coefficients_from_unconstrained,
)


class AutoregressiveEmissions:
    """Gaussian emissions with AR(p) dynamics on some features (see the module docstring)."""

    def __init__(
        self,
        n_regimes: int,
        order: int,
        ar_features: list[int],
        switching_ar: bool = False,
        switching: str = "both",
        ordered: str | None = None,
        form: str = "intercept",  # or "mean-adjusted" (checked by the family, BayesianHMM)
        matrix: str = "diagonal",  # or "full", a VAR(1) (checked by the family)
    ) -> None:
        if order < 1:
            raise ValueError(f"an autoregressive emission needs order >= 1, not {order}")
        self.n_regimes = n_regimes
        self.order = order
        self.ar_features = np.asarray(ar_features, dtype=int)
        self.switching_ar = switching_ar
        self.form = form
        self.full = matrix == "full"  # a VAR(1): order 1 (checked by the family)
        # The stationarity prior's free variable: a full matrix's unconstrained B, or the
        # partial autocorrelations.
        self.free_name = "ar_unconstrained" if self.full else "ar_partial"
        # How many past regimes the density depends on besides the current one: the
        # composition runs the kernel on K^(history_order + 1) regime histories.
        self.history_order = order if form == "mean-adjusted" else 0
        self.gaussian = GaussianEmissions(n_regimes, "gaussian", switching, "diag", ordered)
        axes: dict[str, RegimeAxes] = {}
        if switching_ar:
            axes = {name: (("regime", 0),) for name in ("ar_coefficient", self.free_name)}
        self.regime_axes = {**self.gaussian.regime_axes, **axes}

    def coords(self, observations: Observations) -> dict[str, list[str]]:
        names = [observations.columns[d] for d in self.ar_features]
        coords = {"ar_lag": [f"lag{i + 1}" for i in range(self.order)], "ar_feature": names}
        return {**coords, "ar_source": names} if self.full else coords

    def _dims(self, *names: str) -> tuple[str, ...]:
        return ("regime", *names) if self.switching_ar else names

    def _coefficient_dims(self) -> tuple[str, ...]:
        return self._dims("ar_lag", "ar_feature", *(("ar_source",) if self.full else ()))

    def _coefficients(self):
        """The stationarity prior's free variable and the coefficients it maps to."""
        if self.full:
            free = pm.StudentT(
                self.free_name,
                nu=VAR_PRIOR_NU,
                mu=0.0,
                sigma=VAR_PRIOR_SCALE,
                dims=self._dims("ar_feature", "ar_source"),
            )
            matrix = var_coefficients_from_unconstrained(free, len(self.ar_features))
            return pt.expand_dims(matrix, -3)  # the one lag axis
        partial = pm.Uniform(self.free_name, -1.0, 1.0, dims=self._dims("ar_lag", "ar_feature"))
        return coefficients_from_partial_autocorrelations(partial, self.order)

    def build(self, observations: Observations) -> pt.TensorVariable:
        """Priors (``mean``, ``sigma``, ``ar_partial`` or, for a full matrix,
        ``ar_unconstrained``; ``ar_coefficient`` mapped from it) -> (T, K) log densities,
        or (T, K^(p+1)) over regime histories in the mean-adjusted form."""
        intercept, sigma, _, _ = self.gaussian.parameters(observations)
        coefficients = pm.Deterministic(
            "ar_coefficient", self._coefficients(), dims=self._coefficient_dims()
        )
        return autoregressive_log_density(
            observations.values,
            observations.observed,
            self.order,
            self.ar_features,
            self.n_regimes,
            intercept,
            sigma,
            coefficients,
            mean_adjusted=self.form == "mean-adjusted",
            full=self.full,
        )

    def starts(
        self, estimate: EMEstimate, observations: Observations, n_chains: int, seed: int
    ) -> list[dict[str, np.ndarray]]:
        """The Gaussian starts (intercepts at the EM means) with coefficients near 0."""
        points = self.gaussian.starts(estimate, observations, n_chains, seed)
        rng = np.random.default_rng([seed, 1])
        n_features = len(self.ar_features)
        shape = (n_features, n_features) if self.full else (self.order, n_features)
        if self.switching_ar:
            shape = (self.n_regimes, *shape)
        for point in points:
            point[self.free_name] = START_JITTER * rng.standard_normal(shape)
        return points

    def simulate(
        self, parameters: dict[str, np.ndarray], states: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(T, D) observations (model units) along ``states`` (T,), date by date; the
        first p dates have their missing lags at the regime's level (0 in the intercept
        form, the regime's mean in the mean-adjusted one)."""
        intercept, sigma = parameters["mean"], parameters["sigma"]
        coefficients = np.asarray(parameters["ar_coefficient"])
        n_dates, n_features = len(states), intercept.shape[1]
        y = np.zeros((n_dates, n_features))
        noise = rng.standard_normal((n_dates, n_features))
        states = np.asarray(states, dtype=int)
        features = self.ar_features
        for t, state in enumerate(states):
            phi = coefficients[state] if self.switching_ar else coefficients  # (p, A[, A])
            y[t] = intercept[state] + sigma[state] * noise[t]
            for i in range(min(self.order, t)):  # lags before date 0 left at the level
                lag = y[t - 1 - i, features]
                if self.form == "mean-adjusted":
                    lag = lag - intercept[states[t - 1 - i], features]
                y[t, features] += phi[i] @ lag if self.full else phi[i] * lag
        return y

    def reported(self, posterior: xr.Dataset, observations: Observations):
        """The Gaussian component's variables and the autoregressive coefficients
        (unit-free, on the standardised features). An autoregressive feature's
        ``emission_mean`` is its predicted value when its lags sit at the feature's
        average (the intercept, in the features' units)."""
        reported, dims, coords = self.gaussian.reported(posterior, observations)
        reported["ar_coefficient"] = posterior["ar_coefficient"].to_numpy()
        dims["ar_coefficient"] = list(self._coefficient_dims())
        coords.update(self.coords(observations))
        return reported, dims, coords

    def annotate(self, result, posterior: xr.Dataset, observations: Observations) -> None:
        """Add what this component reports to a fitted result: nothing."""
