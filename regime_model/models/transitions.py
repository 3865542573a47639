"""Transition components: the priors of a model's regime dynamics and the kernel's
``log_initial`` (K,) and ``log_transition`` ((K, K), or (T-1, K, K) when time-varying).

A component holds its settings and, given the observations, builds its priors in the
current PyMC model and returns the two graphs; it gives the chains' starting values from
an EM estimate, declares how its variables carry regimes (``regime_axes``, which
relabelling permutes), and names what it reports. A model family picks one and composes
it with its emissions (:class:`~regime_model.models.BayesianHMM`); nothing is passed
between its methods through attributes.

* :class:`StickyDirichlet`: homogeneous rows, Dirichlet with ``stickiness`` on staying.
* :class:`CovariateLogit`: the multinomial logit of Diebold, Lee and Weinbach (1994) and
  Filardo (1994), one per origin regime; for a move from regime i to regime j != i on the
  step from date t-1 to date t,

      log P(z_t = j | z_{t-1} = i, x_{t-1}) - log P(z_t = i | z_{t-1} = i, x_{t-1})
          = intercept_ij + coefficient_ij . x_{t-1},

  staying being the reference. ``x`` are the covariates, standardised on the rows that
  drive the fitted transitions (:mod:`regime_model.models.covariates`) and lagged one
  step. Each intercept is Normal(digamma(1) - digamma(s), sqrt(trigamma(1) +
  trigamma(s))) with s = ``stickiness``: under the sticky Dirichlet row, log(p_ij / p_ii)
  = log G_j - log G_i with G ~ Gamma(1) and Gamma(s), whose mean and variance these are,
  so at average covariates the prior on the transition matrix matches the homogeneous
  one's in its first two moments on the logit scale. Each coefficient is Normal(0,
  ``coefficient_scale``) per standard deviation of its covariate (see docs/models.md for
  why 1). The reported ``transition`` is the matrix at average covariates (x = 0).

The initial distribution is the transition matrix's stationary one (for the logit, of the
matrix at average covariates, or with ``initial="stationary-first"`` of the first date's
matrix, as statsmodels and Filardo (1994) take it) or a flat Dirichlet
(``initial="dirichlet"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import digamma, log_softmax, polygamma

from regime_model.inference import stationary_distribution
from regime_model.models.covariate_link import full_logits, model_summary, move_labels, move_logits
from regime_model.models.covariates import (
    CONSTANT_GROUP,
    COVARIATE_VARIABLE,
    extreme_covariate_warnings,
    standardise_covariates,
)
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.logit_transitions import logit_log_transitions
from regime_model.models.observations import Observations
from regime_model.models.relabelling import RegimeAxes
from regime_model.models.simplex import dirichlet
from regime_model.results import RegimeResult

DEFAULT_COEFFICIENT_SCALE = 1.0
START_JITTER = 0.05  # sd of the chains' perturbation of the EM start, on the logit scale


def initial_log_probabilities(transition, initial: str, n_regimes: int) -> pt.TensorVariable:
    """log of the initial distribution (K,), registered as ``initial``: the stationary
    distribution of ``transition`` (K, K) (the component picks which matrix) or a flat
    Dirichlet."""
    if initial != "dirichlet":
        distribution = pm.Deterministic(
            "initial", stationary_distribution(transition), dims="regime"
        )
    else:
        distribution = dirichlet("initial", np.ones(n_regimes), dims="regime")
    return pt.log(distribution)


class StickyDirichlet:
    """Homogeneous transitions: each row ~ Dirichlet(1, ..., ``stickiness``, ..., 1)."""

    regime_axes: dict[str, RegimeAxes] = {
        "transition": (("regime", 0), ("regime", 1)),
        "initial": (("regime", 0),),
    }

    def __init__(self, n_regimes: int, stickiness: float, initial: str) -> None:
        self.n_regimes = n_regimes
        self.stickiness = stickiness
        self.initial = initial

    def coords(self) -> dict[str, list[str]]:
        return {}

    def concentration(self) -> np.ndarray:
        """(K, K) Dirichlet weights: ``stickiness`` on the diagonal, 1 elsewhere."""
        k = self.n_regimes
        return np.ones((k, k)) + np.eye(k) * (self.stickiness - 1.0)

    def build(self, observations: Observations):
        """Priors -> (log_initial (K,), log_transition (K, K))."""
        transition = dirichlet("transition", self.concentration(), dims=("regime", "regime_to"))
        return initial_log_probabilities(transition, self.initial, self.n_regimes), pt.log(
            transition
        )

    def log_transition_at(self, point: dict, observations: Observations) -> np.ndarray:
        """The kernel's log_transition (K, K) at one parameter point (by name)."""
        return np.log(point["transition"])

    def starts(self, estimate: EMEstimate, n_chains: int, seed: int) -> list[dict]:
        """Each chain's starting values: the EM transition matrix (and initial)."""
        point = {"transition": estimate.transition}
        if self.initial == "dirichlet":
            point["initial"] = estimate.initial
        return [dict(point) for _ in range(n_chains)]

    def reported(
        self, posterior: xr.Dataset, observations: Observations
    ) -> tuple[dict, dict, dict]:
        """(variables, dims, coords) beyond ``transition`` and ``initial``: none."""
        return {}, {}, {}

    def annotate(self, result: RegimeResult, observations: Observations) -> None:
        """Add what this component reports to a fitted result: nothing."""


class CovariateLogit:
    """Time-varying transitions: a multinomial logit of lagged covariates per origin
    regime (see the module docstring)."""

    # The intercepts and coefficients carry regimes through their moves i -> j; their
    # prior is the same for every move, so the prior stays exchangeable.
    regime_axes: dict[str, RegimeAxes] = {
        **StickyDirichlet.regime_axes,
        "transition_intercept": (("move", 0),),
        "transition_coefficient": (("move", 0),),
    }

    def __init__(
        self,
        n_regimes: int,
        stickiness: float,
        initial: str,
        covariates: list[str],
        coefficient_scale: float = DEFAULT_COEFFICIENT_SCALE,
    ) -> None:
        self.n_regimes = n_regimes
        self.stickiness = stickiness
        self.initial = initial
        self.covariates = list(covariates)
        self.coefficient_scale = coefficient_scale

    def coords(self) -> dict[str, list[str]]:
        return {"move": move_labels(self.n_regimes), "covariate": self.covariates}

    def intercept_prior(self) -> tuple[float, float]:
        """(mean, sd) of each intercept: the moments of log(p_ij / p_ii) under the
        homogeneous model's sticky Dirichlet row."""
        mean = float(digamma(1.0) - digamma(self.stickiness))
        sd = float(np.sqrt(polygamma(1, 1.0) + polygamma(1, self.stickiness)))
        return mean, sd

    def build(self, observations: Observations):
        """Priors -> (log_initial (K,), log_transition (T-1, K, K)); registers the
        average-covariate ``transition`` (K, K)."""
        covariates = standardise_covariates(observations).values
        drivers = pt.as_tensor(covariates[:-1])  # row t drives the move from t to t+1
        intercept, coefficient, transition = self.priors()
        log_transition = self.log_transitions(intercept, coefficient, drivers)
        source = pt.exp(log_transition[0]) if self.initial == "stationary-first" else transition
        return initial_log_probabilities(source, self.initial, self.n_regimes), log_transition

    def priors(self, dims: tuple[str, str, str] = ("regime", "regime_to", "move")):
        """(intercept (M,), coefficient (M, C), average-covariate ``transition`` (K, K)),
        registered in the current model with ``dims`` (rows, columns, moves)."""
        prior_mean, prior_sd = self.intercept_prior()
        intercept = pm.Normal("transition_intercept", prior_mean, prior_sd, dims=dims[2])
        coefficient = pm.Normal(
            "transition_coefficient", 0.0, self.coefficient_scale, dims=(dims[2], "covariate")
        )
        average = pt.special.softmax(full_logits(intercept, self.n_regimes), axis=-1)
        return intercept, coefficient, pm.Deterministic("transition", average, dims=dims[:2])

    def log_transitions(self, intercept, coefficient, drivers) -> pt.TensorVariable:
        """(N, K, K) log transition matrices driven by the N rows of ``drivers`` (N, C),
        as one compiled Op with its analytic gradient (the graph of :meth:`log_transition_at`
        cost more than the HMM kernel; :mod:`~regime_model.models.logit_transitions`)."""
        return logit_log_transitions(intercept, coefficient, drivers, self.n_regimes)

    def log_transition_at(self, point: dict, observations: Observations) -> np.ndarray:
        """The kernel's log_transition (T-1, K, K) at one parameter point (by name), from
        the observations' covariates: the same link as :meth:`build`, in numpy."""
        drivers = standardise_covariates(observations).values[:-1]
        logits = move_logits(
            np.asarray(point["transition_intercept"]),
            np.asarray(point["transition_coefficient"]),
            drivers,
        )
        return log_softmax(full_logits(logits, self.n_regimes), axis=-1)

    def starts(self, estimate: EMEstimate, n_chains: int, seed: int) -> list[dict]:
        """Every chain at the homogeneous EM fit: its transition matrix as intercepts,
        coefficients near zero, each perturbed a little."""
        rng = np.random.default_rng(seed + 1)
        log_ratio = np.log(np.clip(estimate.transition, 1e-4, None))
        log_ratio = log_ratio - np.diag(log_ratio).copy()[:, None]
        intercept = log_ratio[~np.eye(self.n_regimes, dtype=bool)]  # origin-major moves
        shape = (len(intercept), len(self.covariates))
        points = []
        for _ in range(n_chains):
            point = {}
            if self.initial == "dirichlet":
                point["initial"] = estimate.initial
            point["transition_intercept"] = intercept + START_JITTER * rng.standard_normal(
                len(intercept)
            )
            point["transition_coefficient"] = START_JITTER * rng.standard_normal(shape)
            points.append(point)
        return points

    def reported(
        self, posterior: xr.Dataset, observations: Observations
    ) -> tuple[dict, dict, dict]:
        """The intercepts (move) and coefficients (move, covariate)."""
        reported = {
            name: posterior[name].to_numpy()
            for name in ("transition_intercept", "transition_coefficient")
        }
        dims = {
            "transition_intercept": ["move"],
            "transition_coefficient": ["move", "covariate"],
        }
        return reported, dims, self.coords()

    def annotate(self, result: RegimeResult, observations: Observations) -> None:
        """The covariates (:meth:`record_covariates`) and the coefficient and duration
        tables (``fit_info["model_summary"]``)."""
        self.record_covariates(result, observations)
        summary: dict[str, Any] = result.fit_info.setdefault("model_summary", {})
        summary.update(model_summary(result))

    def record_covariates(self, result: RegimeResult, observations: Observations) -> None:
        """The standardised covariates (``constant_data``), what was trimmed and the
        priors (``fit_info["covariates"]``) and warnings for extreme covariate values."""
        standardised = standardise_covariates(observations)
        result.inference_data.add_groups(
            {
                CONSTANT_GROUP: xr.Dataset(
                    {COVARIATE_VARIABLE: (("covariate_date", "covariate"), standardised.values)},
                    coords={
                        "covariate_date": observations.dates.to_numpy(),
                        "covariate": self.covariates,
                    },
                )
            }
        )
        trimming = observations.covariate_trimming
        result.fit_info["covariates"] = {
            "names": self.covariates,
            "center": standardised.center.tolist(),
            "scale": standardised.scale.tolist(),
            "lag": 1,
            "trimmed_leading_dates": trimming.leading_dates,
            "trimmed_trailing_dates": trimming.trailing_dates,
            "first_date": trimming.first_date,
            "last_date": trimming.last_date,
            "intercept_prior": list(self.intercept_prior()),
            "coefficient_prior_sd": self.coefficient_scale,
        }
        warnings = extreme_covariate_warnings(
            pd.DataFrame(
                standardised.values[:-1],
                index=observations.dates[:-1],
                columns=self.covariates,
            )
        )
        if warnings:
            result.fit_info["warnings"] = [*result.fit_info.get("warnings", []), *warnings]
