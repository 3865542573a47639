"""Bayesian HMM with time-varying transition probabilities driven by lagged covariates.

Transitions follow the multinomial logit of Diebold, Lee and Weinbach (1994) and Filardo
(1994), one per origin regime: for a move from regime i to regime j != i on the step from
date t-1 to date t,

    log P(z_t = j | z_{t-1} = i, x_{t-1}) - log P(z_t = i | z_{t-1} = i, x_{t-1})
        = intercept_ij + coefficient_ij . x_{t-1},

staying is the reference category. ``x`` are the user's covariate columns, standardised
with the mean and standard deviation of the rows that drive the fitted transitions (no
look-ahead into a held-out stretch), and lagged one step: the transition into date t uses
the value known on date t-1. Covariates are transition drivers only, never emissions.

Priors. Each intercept is Normal(digamma(1) - digamma(s), sqrt(trigamma(1) + trigamma(s)))
with s = ``stickiness``: under BayesianHMM's sticky Dirichlet row (s on the diagonal, 1
elsewhere) log(p_ij / p_ii) = log G_j - log G_i with G ~ Gamma(1) and Gamma(s), whose mean
and variance these are, so at average covariates the prior on the transition matrix matches
the homogeneous model's in its first two moments on the logit scale (s = 10: mean stay
probability 0.90 against the Dirichlet's 10/11). Each coefficient is Normal(0,
``coefficient_scale``) per standard deviation of its covariate. The default 1 is the usual
weakly informative scale for a logit on standardised inputs (a little tighter than Gelman
et al. 2008's Cauchy(0, 2.5) per two standard deviations, because weekly history holds only
a handful of switches): with 95% prior probability a one-standard-deviation move multiplies
the odds of a switch by less than e^1.96 = 7, so near-deterministic switching needs the
data's support. A tighter 0.5 halved a true effect of 1.2 on a 400-date synthetic chain
with 30 switches (posterior mean 0.58, truth outside the 90% HDI); 1 gives 0.87 (0.26 to
1.58).

The reported ``transition`` (and so ``RegimeResult.transition_matrix()``,
``expected_durations()`` and ``forecast()``) is the matrix at average covariates (x = 0);
:func:`time_varying_durations` gives the expected durations implied by each date's
covariates, recomputed from a saved run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.special import digamma, logsumexp, polygamma

from regime_model.data.features import FeatureSet, trim_unobserved
from regime_model.errors import (
    ConstantFeatureError,
    InsufficientDataError,
    RegimeDataError,
    UnknownSeriesError,
)
from regime_model.inference import stationary_distribution
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.observations import Observations, regime_names, select_features
from regime_model.models.simplex import dirichlet
from regime_model.results import RegimeResult

DEFAULT_COEFFICIENT_SCALE = 1.0
SUMMARY_HDI = 0.9
# Beyond this many standard deviations a covariate value is flagged in fit_info["warnings"].
EXTREME_Z = 5.0
# Name of the InferenceData group and variable holding the standardised covariates.
CONSTANT_GROUP = "constant_data"
COVARIATE_VARIABLE = "covariate_standardised"


@dataclass(frozen=True)
class CovariateTrimming:
    """Dates dropped from the emission sample because a covariate was not yet (leading)
    or no longer (trailing) observed."""

    leading_dates: int
    trailing_dates: int
    first_date: str
    last_date: str


class TVTPHMM(BayesianHMM):
    """Bayesian HMM whose transition matrix depends on lagged covariates.

    Parameters as :class:`BayesianHMM`, plus
    covariates: feature columns that drive the transitions (at least one; never emissions).
    coefficient_scale: prior standard deviation of each coefficient, per standard deviation
        of its covariate.
    ``stickiness`` sets the intercepts' prior (see the module docstring).
    """

    name = "tvtp"
    # The intercepts and coefficients carry regimes through their moves i -> j; their
    # prior is the same for every move, so the prior stays exchangeable.
    regime_axes = BayesianHMM.regime_axes | {
        "transition_intercept": (("move", 0),),
        "transition_coefficient": (("move", 0),),
    }

    def __init__(
        self,
        n_regimes: int = 2,
        *,
        covariates: list[str],
        coefficient_scale: float = DEFAULT_COEFFICIENT_SCALE,
        **base_options: Any,
    ) -> None:
        super().__init__(n_regimes, **base_options)
        if not covariates:
            raise ValueError("the tvtp model needs at least one covariate column")
        if isinstance(covariates, str):
            raise ValueError("covariates must be a list of column names, not one string")
        duplicated = sorted({name for name in covariates if list(covariates).count(name) > 1})
        if duplicated:
            raise ValueError(f"covariate listed twice: {', '.join(duplicated)}")
        if not coefficient_scale > 0:
            raise ValueError("coefficient_scale must be positive")
        self.covariates = list(covariates)
        self.coefficient_scale = float(coefficient_scale)

    # ------------------------------------------------------------------ data
    def observations(
        self,
        features: FeatureSet,
        columns: list[str] | None = None,
        holdout_start: str | None = None,
    ) -> Observations:
        """As :meth:`BayesianHMM.observations`; ``columns`` are the emission columns
        (default: every column that is not a covariate). Dates where a covariate is not yet
        or no longer observed are trimmed (``fit_info["covariates"]`` says how many)."""
        emission = self.emission_features(features, columns)
        return super().observations(emission, None, holdout_start)

    def emission_features(self, features: FeatureSet, columns: list[str] | None) -> FeatureSet:
        """The emission columns on the dates the covariates allow; keeps the covariates on
        the same dates in ``covariate_frame_`` (raw units, (T, C)) for :meth:`build_model`.

        A covariate value is needed on every date but the last (the transition into date t
        uses x_{t-1}), so the sample starts on the first date with every covariate and ends
        one date after the last one. A gap in between raises: it is never filled in.
        """
        frame = features.frame
        unknown = [name for name in self.covariates if name not in frame.columns]
        if unknown:
            raise UnknownSeriesError(
                f"no covariate column {', '.join(unknown)} (available: {', '.join(frame.columns)})"
            )
        if columns is None:
            columns = [name for name in frame.columns if name not in self.covariates]
        both = [name for name in columns if name in self.covariates]
        if both:
            raise RegimeDataError(
                f"column {', '.join(both)} is both an emission column and a covariate; "
                "covariates only drive the transitions: drop it from one of the two lists"
            )
        emission = select_features(features, columns)
        dates = emission.frame.index
        covariates = frame[self.covariates].reindex(dates)
        complete = covariates.notna().all(axis=1).to_numpy()
        if not complete.any():
            raise InsufficientDataError(
                "no date on which the emission columns and every covariate "
                f"({', '.join(self.covariates)}) are all available"
            )
        first = int(complete.argmax())
        last = len(complete) - 1 - int(complete[::-1].argmax())
        for name in self.covariates:
            inside = covariates[name].iloc[first : last + 1]
            if inside.isna().any():
                gap = inside.index[inside.isna().to_numpy()][0]
                raise RegimeDataError(
                    f"covariate '{name}' is missing on {gap:%Y-%m-%d}, inside the range "
                    f"{dates[first]:%Y-%m-%d} to {dates[last]:%Y-%m-%d} where the covariates "
                    "are observed; a transition driver cannot be skipped and is not filled "
                    "in: fill the gap upstream or choose another covariate"
                )
        end = min(last + 2, len(dates))  # the date after the last value still has x_{t-1}
        kept = trim_unobserved(emission.frame.iloc[first:end])
        self.covariate_frame_ = covariates.loc[kept.index]
        self.covariate_trimming_ = CovariateTrimming(
            leading_dates=int(dates.get_loc(kept.index[0])),
            trailing_dates=int(len(dates) - 1 - dates.get_loc(kept.index[-1])),
            first_date=f"{kept.index[0]:%Y-%m-%d}",
            last_date=f"{kept.index[-1]:%Y-%m-%d}",
        )
        return FeatureSet(
            frame=kept,
            groups=emission.groups,
            freq=emission.freq,
            source=emission.source,
            universe=emission.universe,
            skipped=emission.skipped,
        )

    def _standardised_covariates(self, observations: Observations) -> np.ndarray:
        """(T, C) covariates in standard deviations of the rows driving the fitted
        transitions (dates 0..n_fit-2), so held-out values do not leak into the fit. NaN
        only on a last date whose value is missing (it drives no transition)."""
        frame = getattr(self, "covariate_frame_", None)
        n_dates = observations.n_dates
        # The observations may be the fitted part (a prefix) of the emission features.
        if frame is None or not frame.index[:n_dates].equals(observations.dates):
            raise RuntimeError("call emission_features() on the same data before build_model()")
        raw = frame.to_numpy(dtype=float)[:n_dates]
        drivers = raw[: observations.n_fit - 1]
        if len(drivers) < 2:
            raise InsufficientDataError("the tvtp model needs at least three fitted dates")
        center = drivers.mean(axis=0)
        scale = drivers.std(axis=0, ddof=1)
        for name, value, spread in zip(self.covariates, center, scale, strict=True):
            if not spread > 0:
                raise ConstantFeatureError(f"covariate '{name}': constant value {value:g}")
        self.covariate_center_, self.covariate_scale_ = center, scale
        return (raw - center) / scale

    # ------------------------------------------------------------------ model
    def _coords(self, observations: Observations) -> dict[str, list[str]]:
        return {
            **super()._coords(observations),
            "move": move_labels(self.n_regimes),
            "covariate": self.covariates,
        }

    def intercept_prior(self) -> tuple[float, float]:
        """(mean, sd) of each intercept: the moments of log(p_ij / p_ii) under the
        homogeneous model's sticky Dirichlet row (see the module docstring)."""
        mean = float(digamma(1.0) - digamma(self.stickiness))
        sd = float(np.sqrt(polygamma(1, 1.0) + polygamma(1, self.stickiness)))
        return mean, sd

    def _transition_terms(self, observations: Observations):
        """Log initial (K,) and time-varying log transitions (T-1, K, K); registers the
        average-covariate ``transition`` (K, K) and ``initial``."""
        covariates = self._standardised_covariates(observations)
        drivers = pt.as_tensor(covariates[:-1])  # row t drives the move from t to t+1
        prior_mean, prior_sd = self.intercept_prior()
        intercept = pm.Normal("transition_intercept", prior_mean, prior_sd, dims="move")
        coefficient = pm.Normal(
            "transition_coefficient", 0.0, self.coefficient_scale, dims=("move", "covariate")
        )
        log_transition = pt.special.log_softmax(
            full_logits(move_logits(intercept, coefficient, drivers), self.n_regimes), axis=-1
        )
        average = pt.special.softmax(full_logits(intercept, self.n_regimes), axis=-1)
        transition = pm.Deterministic("transition", average, dims=("regime", "regime_to"))
        if self.initial == "stationary":
            initial = pm.Deterministic(
                "initial", stationary_distribution(transition), dims="regime"
            )
        else:
            initial = dirichlet("initial", np.ones(self.n_regimes), dims="regime")
        return pt.log(initial), log_transition

    def _initial_values(
        self, start: EMEstimate, observations: Observations
    ) -> list[dict[str, np.ndarray]]:
        """The base starting points with the EM transition matrix as intercepts (zero
        coefficients): every chain starts at the homogeneous fit."""
        points = super()._initial_values(start, observations)
        rng = np.random.default_rng(self.seed + 1)
        log_ratio = np.log(np.clip(start.transition, 1e-4, None))
        log_ratio = log_ratio - np.diag(log_ratio).copy()[:, None]
        intercept = log_ratio[~np.eye(self.n_regimes, dtype=bool)]  # origin-major moves
        shape = (len(intercept), len(self.covariates))
        for point in points:
            point.pop("transition", None)  # a Deterministic here
            point["transition_intercept"] = intercept + 0.05 * rng.standard_normal(len(intercept))
            point["transition_coefficient"] = 0.05 * rng.standard_normal(shape)
        return points

    # ------------------------------------------------------------------ summarising
    def _reported(self, posterior: xr.Dataset, observations: Observations):
        reported, dims, coords = super()._reported(posterior, observations)
        reported["transition_intercept"] = posterior["transition_intercept"].to_numpy()
        reported["transition_coefficient"] = posterior["transition_coefficient"].to_numpy()
        dims = {
            **dims,
            "transition_intercept": ["move"],
            "transition_coefficient": ["move", "covariate"],
        }
        coords = {
            **coords,
            "move": move_labels(self.n_regimes),
            "covariate": self.covariates,
        }
        return reported, dims, coords

    def _result(
        self, model: pm.Model, observations: Observations, posterior, sample_stats, seconds
    ) -> tuple[RegimeResult, xr.Dataset]:
        """The base result plus the standardised covariates (``constant_data``) and a
        coefficient / duration summary in ``fit_info``."""
        result, posterior = super()._result(model, observations, posterior, sample_stats, seconds)
        covariates = self._standardised_covariates(observations)
        result.inference_data.add_groups(
            {
                CONSTANT_GROUP: xr.Dataset(
                    {COVARIATE_VARIABLE: (("covariate_date", "covariate"), covariates)},
                    coords={
                        "covariate_date": observations.dates.to_numpy(),
                        "covariate": self.covariates,
                    },
                )
            }
        )
        trimming = self.covariate_trimming_
        result.fit_info["covariates"] = {
            "names": self.covariates,
            "center": self.covariate_center_.tolist(),
            "scale": self.covariate_scale_.tolist(),
            "lag": 1,
            "trimmed_leading_dates": trimming.leading_dates,
            "trimmed_trailing_dates": trimming.trailing_dates,
            "first_date": trimming.first_date,
            "last_date": trimming.last_date,
            "intercept_prior": list(self.intercept_prior()),
            "coefficient_prior_sd": self.coefficient_scale,
        }
        result.fit_info["model_summary"] = model_summary(result)
        warnings = extreme_covariate_warnings(
            pd.DataFrame(covariates[:-1], index=observations.dates[:-1], columns=self.covariates)
        )
        if warnings:
            result.fit_info["warnings"] = [*result.fit_info.get("warnings", []), *warnings]
        return result, posterior


def extreme_covariate_warnings(standardised: pd.DataFrame) -> list[str]:
    """One message per covariate whose driving values go beyond ``EXTREME_Z`` standard
    deviations: there the logit extrapolates linearly, and durations explode."""
    messages = []
    for name in standardised.columns:
        values = standardised[name].abs()
        n_extreme = int((values > EXTREME_Z).sum())
        if n_extreme:
            messages.append(
                f"covariate '{name}' reaches {values.max():.1f} standard deviations on "
                f"{values.idxmax():%Y-%m-%d} ({n_extreme} date{'s' * (n_extreme > 1)} beyond "
                f"{EXTREME_Z:g}): the transition logit extrapolates linearly there; consider "
                "a robust transform (rank, winsorised or log change) of the covariate"
            )
    return messages


# ---------------------------------------------------------------------- the link
def move_labels(n_regimes: int) -> list[str]:
    """'from->to' for every move i -> j != i, origin-major (the order of the parameters)."""
    names = regime_names(n_regimes)
    return [f"{names[i]}->{names[j]}" for i, j in _moves(n_regimes)]


def _moves(n_regimes: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n_regimes) for j in range(n_regimes) if i != j]


def move_logits(intercept, coefficient, covariates):
    """Logit of each move against staying: (M,), (M, C), (N, C) -> (N, M), M = K(K-1).
    Works on numpy arrays and PyTensor tensors alike (the model and the reports share it)."""
    return intercept + covariates @ coefficient.T


def full_logits(logits, n_regimes: int):
    """(..., M) move logits -> (..., K, K) with 0 (the reference) on the diagonal."""
    scatter = np.zeros((n_regimes * (n_regimes - 1), n_regimes * n_regimes))
    for move, (i, j) in enumerate(_moves(n_regimes)):
        scatter[move, i * n_regimes + j] = 1.0
    full = logits @ scatter
    leading = tuple(full.shape[axis] for axis in range(full.ndim - 1))
    return full.reshape((*leading, n_regimes, n_regimes))


# ---------------------------------------------------------------------- reports
def _stacked(data: xr.Dataset, name: str) -> np.ndarray:
    values = data[name].to_numpy()
    return values.reshape(-1, *values.shape[2:])


def duration_draws(result: RegimeResult) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Expected stay 1 / (1 - p_kk(x_t)) per posterior draw, date and regime, if date t's
    covariates persisted: (dates with covariates, (S, T', K) draws)."""
    if CONSTANT_GROUP not in result.inference_data.groups():
        raise ValueError(f"{result.model} result has no covariates: not a tvtp run")
    covariates = result.inference_data[CONSTANT_GROUP][COVARIATE_VARIABLE]
    values = covariates.to_numpy()
    known = ~np.isnan(values).any(axis=1)
    dates = pd.DatetimeIndex(covariates["covariate_date"].to_numpy()[known], name="date")
    dates = dates.as_unit("us")
    intercept = _stacked(result.inference_data.posterior, "transition_intercept")
    coefficient = _stacked(result.inference_data.posterior, "transition_coefficient")
    n_regimes = result.n_regimes
    logits = np.stack(
        [move_logits(a, b, values[known]) for a, b in zip(intercept, coefficient, strict=True)]
    ).reshape(len(intercept), len(dates), n_regimes, n_regimes - 1)
    # 1 / (1 - p_stay) = 1 + 1 / sum_j exp(logit_j), in logs for stability.
    return dates, 1.0 + np.exp(-logsumexp(logits, axis=-1))


def time_varying_durations(result: RegimeResult, hdi: float = SUMMARY_HDI) -> pd.DataFrame:
    """Posterior mean, median and HDI of each regime's expected duration (in steps of the
    data's calendar) implied by each date's covariates. Works on a loaded run.
    -> (dates, K x [mean, median, lower, upper]). At extreme covariate values the logit
    extrapolates and a few draws give near-certain stays, so the mean can be huge: read
    the median."""
    dates, draws = duration_draws(result)
    lower, upper = result._bands(draws, hdi)  # NaN for a point estimate
    median = np.median(draws, axis=0)
    columns = {}
    for k, name in enumerate(result.regime_names):
        columns[(name, "mean")] = draws[:, :, k].mean(axis=0)
        columns[(name, "median")] = median[:, k]
        columns[(name, "lower")] = lower[:, k]
        columns[(name, "upper")] = upper[:, k]
    frame = pd.DataFrame(columns, index=dates)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["regime", "statistic"])
    frame.attrs.update(kind="expected duration given the date's covariates", hdi=hdi)
    return frame


def coefficient_table(result: RegimeResult, hdi: float = SUMMARY_HDI) -> pd.DataFrame:
    """One row per move and covariate: posterior mean, HDI and P(coefficient > 0), per
    standard deviation of the covariate (positive: the move gets more likely)."""
    posterior = result.inference_data.posterior
    draws = _stacked(posterior, "transition_coefficient")
    lower, upper = result._bands(draws, hdi)  # NaN for a point estimate
    positive = (draws > 0).mean(axis=0) if len(draws) > 1 else np.full(draws.shape[1:], np.nan)
    rows = []
    for m, move in enumerate(posterior["move"].to_numpy()):
        source, target = str(move).split("->")
        for c, covariate in enumerate(posterior["covariate"].to_numpy()):
            rows.append(
                {
                    "from": source,
                    "to": target,
                    "covariate": str(covariate),
                    "mean": float(draws[:, m, c].mean()),
                    "lower": float(lower[m, c]),
                    "upper": float(upper[m, c]),
                    "p_positive": float(positive[m, c]),
                }
            )
    return pd.DataFrame(rows)


def model_summary(result: RegimeResult, hdi: float = SUMMARY_HDI) -> dict[str, Any]:
    """Tables for ``fit_info["model_summary"]``: coefficients, and the expected durations
    at the latest covariates and at the dates where their median was shortest and
    longest."""
    durations = time_varying_durations(result, hdi)
    latest = durations.index[-1]
    extremes = []
    for name in result.regime_names:
        median = durations[(name, "median")]
        for which, date in (("shortest", median.idxmin()), ("longest", median.idxmax())):
            extremes.append({"regime": name, "when": which, "date": f"{date:%Y-%m-%d}"})
            extremes[-1].update({s: float(durations.loc[date, (name, s)]) for s in _STATS})
    return {
        "note": (
            "coefficients per standard deviation of each lagged covariate (x_{t-1} drives "
            "the move into t); transition_matrix, expected_durations and forecast are at "
            "average covariates (x = 0); durations in steps of the data's calendar"
        ),
        "coefficients": coefficient_table(result, hdi).to_dict(orient="records"),
        "durations_latest": [
            {
                "regime": name,
                "date": f"{latest:%Y-%m-%d}",
                **{s: float(durations.loc[latest, (name, s)]) for s in _STATS},
            }
            for name in result.regime_names
        ],
        "durations_extremes": extremes,
    }


_STATS = ("mean", "median", "lower", "upper")
