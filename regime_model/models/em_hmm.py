"""Maximum-likelihood Gaussian HMM through hmmlearn, behind the common result interface.

hmmlearn cannot skip missing values, so EM is fitted on the dates where every feature is
observed, with the sequence cut at each incomplete date (hmmlearn's ``lengths``). The
regime probabilities of *all* dates then come from the shared kernel with missing values
masked. A point estimate has no bands; the result says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import xarray as xr
from hmmlearn.hmm import GaussianHMM

from regime_model.choices import COVARIANCES
from regime_model.data.features import FeatureSet
from regime_model.errors import InsufficientDataError
from regime_model.inference import hmm_smoother
from regime_model.model_options import check_option_values
from regime_model.models.emissions import diagonal_log_density, full_log_density, missing_patterns
from regime_model.models.estimator import RegimeEstimator
from regime_model.models.observations import (
    Observations,
    holdout_info,
    order_regimes,
    prepare_observations,
    regime_names,
    select_features,
)
from regime_model.results import (
    ProbabilityDraws,
    RegimeResult,
    build_inference_data,
    regime_probability_draws,
)


@dataclass(frozen=True)
class EMEstimate:
    """One ordered maximum-likelihood fit in standardised units."""

    initial: np.ndarray  # (K,)
    transition: np.ndarray  # (K, K)
    mean: np.ndarray  # (K, D)
    sigma: np.ndarray  # (K, D)
    correlation_cholesky: np.ndarray | None  # (K, D, D) for full covariance
    loglik_complete: float
    converged: bool
    n_iter: int
    n_complete: int


class EMHMM(RegimeEstimator):
    """Gaussian HMM by EM (hmmlearn) with random restarts.

    Hyperparameters are set here; :meth:`fit` returns the estimator, with the result in
    ``result_``, the best estimate in ``estimate_`` and information criteria in
    ``criteria_`` (:class:`~regime_model.models.estimator.RegimeEstimator`).
    """

    name = "em-hmm"

    def __init__(
        self,
        n_regimes: int = 2,
        covariance: str = "diag",
        n_restarts: int = 10,
        anchor: str | None = None,
        order_by: str = "mean",
        max_iter: int = 500,
        tol: float = 1e-6,
        seed: int = 0,
    ) -> None:
        if covariance not in COVARIANCES:
            raise ValueError(
                f"covariance must be one of {', '.join(COVARIANCES)}, not {covariance!r}"
            )
        check_option_values({"n_regimes": n_regimes, "n_restarts": n_restarts, "seed": seed})
        self.n_regimes = n_regimes
        self.covariance = covariance
        self.n_restarts = n_restarts
        self.anchor = anchor
        self.order_by = order_by
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    def observations(
        self,
        features: FeatureSet,
        columns: list[str] | None = None,
        holdout_start: str | pd.Timestamp | None = None,
    ) -> Observations:
        """``columns`` of ``features``, validated and standardised."""
        return prepare_observations(
            select_features(features, columns), self.n_regimes, self.anchor, holdout_start
        )

    def _fit_result(self, observations: Observations, warm_start=None) -> RegimeResult:
        if warm_start is not None:
            raise ValueError(
                "EMHMM starts from its own restarts: warm_start is for the Bayesian models"
            )
        """Fit by EM on the fitted part (the dates before ``holdout_start`` when given;
        the later dates are scored one step ahead with the filter, without refitting).
        Fitted attributes: ``estimate_`` (the best EM fit, standardised units) and
        ``criteria_`` (log-likelihood, AIC, BIC)."""
        n_fit = observations.n_fit
        estimate = self.estimate(observations.fitted_part())
        self.estimate_ = estimate
        draws = self._draws_at(estimate, observations)
        loglik = float(draws.pointwise_loglik[:, :n_fit].sum())
        n_parameters = self._n_parameters(observations.n_features)
        n_values = int(observations.observed[:n_fit].sum())
        self.criteria_ = {
            "loglik": loglik,
            "n_parameters": n_parameters,
            "aic": 2 * n_parameters - 2 * loglik,
            "bic": n_parameters * np.log(n_values) - 2 * loglik,
        }
        names = regime_names(self.n_regimes)
        posterior = {
            "transition": estimate.transition[None, None],
            "initial": estimate.initial[None, None],
            "emission_mean": (estimate.mean * observations.scale + observations.center)[None, None],
            "emission_scale": (estimate.sigma * observations.scale)[None, None],
        }
        data = build_inference_data(
            posterior,
            draws.pointwise_loglik[None, :, :n_fit],
            observations.dates[:n_fit],
            observations.columns,
            names,
            holdout_loglik=draws.pointwise_loglik[None, :, n_fit:],
            holdout_dates=observations.dates[n_fit:],
        )
        return RegimeResult(
            model="em-hmm",
            dates=observations.dates,
            columns=observations.columns,
            regime_names=names,
            inference_data=data,
            probabilities=draws,
            band_draws=np.zeros(1, dtype=int),
            config={**self.get_config(), "anchor": observations.columns[observations.anchor]},
            has_bands=False,
            fit_info={
                "note": "maximum-likelihood point estimate: no credible bands",
                "criteria": self.criteria_,
                "converged": estimate.converged,
                "n_iter": estimate.n_iter,
                "dates_used_by_em": estimate.n_complete,
                "dates": observations.n_dates,
                **holdout_info(observations),
            },
        )

    @staticmethod
    def _draws_at(estimate: EMEstimate, observations: Observations) -> ProbabilityDraws:
        """Forward-backward at the estimate over every date of ``observations``."""
        return regime_probability_draws(
            np.log(estimate.initial)[None],
            np.log(estimate.transition)[None],
            [em_log_emission(observations, estimate)],
        )

    def _probability_draws(self, observations: Observations) -> ProbabilityDraws:
        return self._draws_at(self.estimate_, observations)

    def _model_posterior(self) -> xr.Dataset:
        """The estimate in standardised units (with the correlation factor that the
        reported posterior lacks), and how it was reached."""
        estimate = self.estimate_
        arrays = {
            name: np.asarray(getattr(estimate, name))
            for name in ("initial", "transition", "mean", "sigma")
        }
        if estimate.correlation_cholesky is not None:
            arrays["correlation_cholesky"] = estimate.correlation_cholesky
        facts = {
            name: getattr(estimate, name)
            for name in ("loglik_complete", "converged", "n_iter", "n_complete")
        }
        return xr.Dataset(
            {
                name: (tuple(f"{name}_{axis}" for axis in range(value.ndim)), value)
                for name, value in arrays.items()
            },
            attrs={
                name: int(value) if isinstance(value, bool) else value
                for name, value in facts.items()
            },
        )

    def _restore_fitted(self, model_posterior: xr.Dataset) -> None:
        arrays = {name: model_posterior[name].to_numpy() for name in model_posterior.data_vars}
        attrs = model_posterior.attrs
        self.estimate_ = EMEstimate(
            initial=arrays["initial"],
            transition=arrays["transition"],
            mean=arrays["mean"],
            sigma=arrays["sigma"],
            correlation_cholesky=arrays.get("correlation_cholesky"),
            loglik_complete=float(attrs["loglik_complete"]),
            converged=bool(attrs["converged"]),
            n_iter=int(attrs["n_iter"]),
            n_complete=int(attrs["n_complete"]),
        )
        self.criteria_ = self.result_.fit_info["criteria"]

    def estimate(self, observations: Observations) -> EMEstimate:
        """Best of ``n_restarts`` EM runs on complete dates, regimes ordered and named."""
        complete = observations.observed.all(axis=1)
        values = observations.values[complete]
        lengths = _run_lengths(complete)
        if len(values) < 10 * self.n_regimes:
            raise InsufficientDataError(
                f"EM needs dates with every feature observed: only {len(values)} of "
                f"{observations.n_dates} are complete"
            )
        best, best_score = None, -np.inf
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_restarts):
            model = self._initialised_model(values, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # non-convergence is reported below
                model.fit(values, lengths)
                score = model.score(values, lengths)
            if np.isfinite(score) and score > best_score:
                best, best_score = model, score
        if best is None:
            raise InsufficientDataError("EM failed to produce a finite likelihood in any restart")
        covariances = best.covars_  # (K, D, D) whatever covariance_type is
        sigma = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
        order = order_regimes(
            best.means_[:, observations.anchor], sigma[:, observations.anchor], self.order_by
        )
        cholesky = None
        if self.covariance == "full":
            correlation = covariances / (sigma[:, :, None] * sigma[:, None, :])
            cholesky = np.linalg.cholesky(correlation)[order]
        return EMEstimate(
            initial=_floor(best.startprob_[order]),
            transition=_floor(best.transmat_[np.ix_(order, order)]),
            mean=best.means_[order],
            sigma=sigma[order],
            correlation_cholesky=cholesky,
            loglik_complete=float(best_score),
            converged=bool(best.monitor_.converged),
            n_iter=int(best.monitor_.iter),
            n_complete=int(complete.sum()),
        )

    def _initialised_model(self, values: np.ndarray, rng: np.random.Generator) -> GaussianHMM:
        """A GaussianHMM started from K random dates as means and sticky transitions.

        (hmmlearn's default k-means start is slow here and adds nothing over restarts.)
        """
        k, d = self.n_regimes, values.shape[1]
        model = GaussianHMM(
            n_components=k,
            covariance_type=self.covariance,
            n_iter=self.max_iter,
            tol=self.tol,
            init_params="",
            min_covar=1e-4,
        )
        model.startprob_ = np.full(k, 1.0 / k)
        model.transmat_ = np.full((k, k), 0.1 / (k - 1)) + np.eye(k) * (0.9 - 0.1 / (k - 1))
        model.means_ = values[rng.choice(len(values), size=k, replace=False)]
        variance = values.var(axis=0) * rng.uniform(0.5, 1.5, size=(k, d))
        model.covars_ = (
            variance if self.covariance == "diag" else np.stack([np.diag(row) for row in variance])
        )
        return model

    def _n_parameters(self, n_features: int) -> int:
        k, d = self.n_regimes, n_features
        per_regime = d + (d if self.covariance == "diag" else d * (d + 1) // 2)
        return (k - 1) + k * (k - 1) + k * per_regime


def em_log_emission(observations: Observations, estimate: EMEstimate) -> np.ndarray:
    """(T, K) log densities of all dates (missing values masked) at the EM estimate."""
    if estimate.correlation_cholesky is None:
        graph = diagonal_log_density(
            pt.as_tensor(observations.values),
            pt.as_tensor(observations.observed),
            pt.as_tensor(estimate.mean),
            pt.as_tensor(estimate.sigma),
        )
    else:
        graph = full_log_density(
            observations.values,
            missing_patterns(observations.observed),
            pt.as_tensor(estimate.mean),
            pt.as_tensor(estimate.sigma),
            pt.as_tensor(estimate.correlation_cholesky),
        )
    return graph.eval()


def _run_lengths(complete: np.ndarray) -> list[int]:
    """Lengths of the runs of consecutive complete dates (hmmlearn's ``lengths``)."""
    lengths, run = [], 0
    for is_complete in complete:
        if is_complete:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    if run:
        lengths.append(run)
    return lengths


def _floor(probabilities: np.ndarray) -> np.ndarray:
    # EM can set a probability to exactly zero; the log-space kernel accepts that, but a
    # zero would make the Bayesian sampler start on a boundary, so keep a tiny floor.
    floored = np.clip(probabilities, 1e-8, None)
    return floored / floored.sum(axis=-1, keepdims=True)


# Features observed on fewer of the fitted dates are left out of EM's own fit (it runs on
# complete dates only: a late-starting or monthly feature would cut it down to its dates).
EM_MIN_OBSERVED_SHARE = 0.8


def sparse_features(observations: Observations) -> np.ndarray:
    """(D,) bool: the features observed on fewer than ``EM_MIN_OBSERVED_SHARE`` of the
    dates (never the anchor)."""
    sparse = observations.observed.mean(axis=0) < EM_MIN_OBSERVED_SHARE
    sparse[observations.anchor] = False
    return sparse


def extended_to_features(
    start: EMEstimate, subset: Observations, observations: Observations
) -> EMEstimate:
    """An EM estimate on ``subset`` (some of the features), extended to every feature of
    ``observations``: each feature's regime mean and scale are its moments over its
    observed dates, weighted by the smoothed regime probabilities of ``start`` (a masked
    M-step). Diagonal covariance; standardised units."""
    occupancy = hmm_smoother(
        np.log(start.initial), np.log(start.transition), em_log_emission(subset, start)
    ).smoothed_probs  # (T, K)
    weights = occupancy.T[:, :, None] * observations.observed[None]  # (K, T, D)
    total = np.maximum(weights.sum(axis=1), 1e-9)  # (K, D)
    mean = (weights * observations.values[None]).sum(axis=1) / total
    squared = (weights * (observations.values[None] - mean[:, None]) ** 2).sum(axis=1) / total
    return replace(start, mean=mean, sigma=np.sqrt(np.maximum(squared, 1e-4)))
