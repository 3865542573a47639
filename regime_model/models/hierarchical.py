"""Hierarchical shared-regime HMM: one regime path, asset parameters pooled within groups.

Every feature d belongs to a group g = g(d) (equity, crypto, breadth, flows, macro, from
the feature set's ``groups``). In standardised units (each feature centred and divided by
its standard deviation), regime k's mean and log-scale of feature d are

    mean[k, d]      = level[d] + sign[d] * (group_mean[k, g] + deviation_mean[k, d])
    log_sigma[k, d] = log_level[d] + group_log_scale[k, g] + deviation_log_scale[k, d]

where group_mean and group_log_scale are the group's regime *responses*, centred over
regimes (zero-sum), and a member's deviations are centred Normal(0, group_mean_sd[g])
(resp. group_log_scale_sd[g]) draws per regime. What is pooled is each asset's response
(how far risk_on sits from risk_off, in the asset's own standard deviations) and its
volatility ratio between regimes, not its level: every asset keeps its own ``level`` and
``log_level``. Two reasons. Assets with a late start are standardised over their own
window, whose regime mix differs from their peers', so their standardised means are not
comparable with their peers' while their contrasts are. And an asset's overall level and
scale are known from all of its dates; what a short history cannot pin down is how they
split between regimes, and that is what the group lends.

Zero-sum vectors are sampled as coordinates in an orthonormal basis of the zero-sum
subspace (Normal coordinates = ZeroSumNormal vector). Members' coordinates are partially
centred (Gorinova, Moore & Hoffman 2020), with a weight per feature fixed before sampling:
near 1 (centred) for a feature whose own data pin its response down, lower (towards
non-centred) for a short or noisy one. The weights change what the sampler sees, never
the posterior.

Signs: features in one group may respond to risk-on with opposite signs (a credit-spread
change falls when a high-yield return rises). Each feature's ``sign`` is fixed before
sampling from the EM start, as the sign of its risk_on minus risk_off mean (the anchor is
+1 by construction); ``signs`` overrides it per column. A feature whose response turns
out to have the other sign is not forced: its deviation moves it across, at a prior
cost; the summary reports P(same sign) per feature.

Groups: a column whose group is missing ("unknown") forms a group of its own (named
``ungrouped:<column>``), so nothing is pooled without a stated group. A group with one
member has no spread parameter: the member's response *is* the group's.

Identifiability: the anchor's group has ordered mean responses (risk_off lowest), built
from positive Gamma(2, 4) gaps and centred; chains start from the EM fit. Regimes are
thus ordered on the anchor group's response, which is the anchor's own order whenever the
group agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import hmm_smoother
from regime_model.models.bayesian_hmm import (
    GAP_ALPHA,
    GAP_BETA,
    LOG_SCALE_SD,
    NU_ALPHA,
    NU_BETA,
    BayesianHMM,
)
from regime_model.models.em_hmm import EMEstimate, em_log_emission
from regime_model.models.observations import Observations, regime_names
from regime_model.results import RegimeResult, hdi_bounds

# Priors in standardised units (see the module docstring).
LEVEL_SD = 1.0  # per-feature level; the data are centred
GROUP_MEAN_SD = 1.0  # per zero-sum coordinate of a group's regime responses
GROUP_LOG_SCALE_SD = LOG_SCALE_SD  # same spread as BayesianHMM's log-scales
# Spread of the members around their group, per zero-sum coordinate: Gamma(2, 10), mean
# 0.2 sd, mode 0.1, 95% within (0.02, 0.56). Zero-avoiding: assets are never treated as
# identical (pooling stays partial), and with two or three members per group it keeps
# the sampler out of the funnel's neck (Chung et al. 2013); its light right tail keeps
# members of a group similar unless their data say otherwise.
SPREAD_ALPHA, SPREAD_BETA = 2.0, 10.0
MIN_START_SPREAD = 0.05
# Features observed on fewer of the fitted dates are left out of the EM start's own fit.
EM_MIN_OBSERVED_SHARE = 0.8  # floor of the start values of spreads and ordered gaps
SUMMARY_HDI = 0.9
UNGROUPED = "unknown"


@dataclass(frozen=True)
class GroupStructure:
    """Which feature belongs to which group, and each feature's response sign.

    ``names`` (G,) group names; ``member`` (D,) group index of each feature; ``pooled``
    indexes the groups with two or more members; ``pooled_features`` (P,) the features in
    them; ``signs`` (D,) +1 or -1; ``sign_source`` (D,) "em" or "user"; ``centring``
    {"mean", "log_scale"} -> (P,) partial-centring weights of the pooled features.
    """

    names: list[str]
    member: np.ndarray
    pooled: np.ndarray
    pooled_features: np.ndarray
    signs: np.ndarray
    sign_source: list[str]
    centring: dict[str, np.ndarray]

    @property
    def pooled_names(self) -> list[str]:
        return [self.names[g] for g in self.pooled]

    def pooled_position(self) -> np.ndarray:
        """(P,) position in ``pooled`` of each pooled feature's group."""
        position = {int(g): i for i, g in enumerate(self.pooled)}
        return np.array([position[int(self.member[d])] for d in self.pooled_features], dtype=int)


def feature_groups(columns: list[str], groups: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """(group names in order of first appearance, (D,) group index per column).

    A column without a group (missing or "unknown") gets a group of its own.
    """
    names: list[str] = []
    member = []
    for column in columns:
        group = groups.get(column, UNGROUPED) or UNGROUPED
        if group == UNGROUPED:
            group = f"ungrouped:{column}"
        if group not in names:
            names.append(group)
        member.append(names.index(group))
    return names, np.asarray(member, dtype=int)


class HierarchicalHMM(BayesianHMM):
    """Bayesian HMM whose asset parameters are pooled within groups (see module docstring).

    Takes BayesianHMM's parameters; only ``switching="both"``, ``covariance="diag"`` and
    ``order_by="mean"`` are supported (Gaussian or Student-t margins). ``signs``: optional
    {column: +1 or -1} fixing the direction in which a feature responds to risk_on
    (default: from the EM start). ``target_accept`` defaults to 0.95, not 0.9: the spread
    parameters of two- or three-member groups have curved posteriors whose tails gave a
    few divergent transitions at 0.9 on the weekly data.
    """

    name = "hierarchical"

    def __init__(
        self,
        n_regimes: int = 2,
        emission: str = "gaussian",
        switching: str = "both",
        covariance: str = "diag",
        anchor: str | None = None,
        order_by: str | None = None,
        stickiness: float = 10.0,
        initial: str = "stationary",
        sampler: str = "nuts",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        target_accept: float = 0.95,
        seed: int = 0,
        band_draws: int = 400,
        progressbar: bool = True,
        signs: dict[str, int] | None = None,
    ) -> None:
        if switching != "both":
            raise ValueError(
                "the hierarchical model pools regime-specific means and scales: "
                f"switching must be 'both', not {switching!r}"
            )
        if covariance != "diag":
            raise ValueError(
                f"the hierarchical model supports covariance='diag' only, not {covariance!r}"
            )
        if order_by not in (None, "mean"):
            raise ValueError(
                "the hierarchical model orders regimes by the anchor group's mean response: "
                f"order_by must be 'mean', not {order_by!r}"
            )
        super().__init__(
            n_regimes=n_regimes,
            emission=emission,
            switching=switching,
            covariance=covariance,
            anchor=anchor,
            order_by="mean",
            stickiness=stickiness,
            initial=initial,
            sampler=sampler,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            target_accept=target_accept,
            seed=seed,
            band_draws=band_draws,
            progressbar=progressbar,
        )
        bad = {column: sign for column, sign in (signs or {}).items() if sign not in (1, -1)}
        if bad:
            raise ValueError(f"signs must be +1 or -1, got {bad}")
        self.signs = dict(signs) if signs else None
        self.structure_: GroupStructure | None = None

    # ------------------------------------------------------------------ structure
    def _em_start(self, observations: Observations) -> EMEstimate:
        """The EM start, which also fixes each feature's response sign.

        EM runs on complete dates only, so one late-starting asset would cut it down to
        that asset's window (and a poor start would fix poor signs). It therefore runs on
        the features observed on at least ``EM_MIN_OBSERVED_SHARE`` of the dates; every
        feature's regime means and scales then come from its own observed dates,
        weighted by the smoothed regime probabilities of that fit.
        """
        long_history = observations.observed.mean(axis=0) >= EM_MIN_OBSERVED_SHARE
        long_history[observations.anchor] = True
        if long_history.all():
            start = super()._em_start(observations)
        else:
            subset = _feature_subset(observations, np.flatnonzero(long_history))
            start = _moments_on_all_features(super()._em_start(subset), subset, observations)
        self.structure_ = self._group_structure(observations, start)
        return start

    def _group_structure(self, observations: Observations, start: EMEstimate) -> GroupStructure:
        """Groups, signs (from the EM start unless given) and centring weights."""
        columns = observations.columns
        anchor = columns[observations.anchor]
        unknown = sorted(set(self.signs or {}) - set(columns))
        if unknown:
            raise ValueError(f"signs given for columns not in the model: {', '.join(unknown)}")
        if (self.signs or {}).get(anchor, 1) != 1:
            raise ValueError(f"the anchor '{anchor}' defines risk_on: its sign must be +1")
        names, member = feature_groups(columns, observations.groups)
        counts = np.bincount(member, minlength=len(names))
        pooled = np.flatnonzero(counts >= 2)
        # The EM start is ordered on the anchor mean, so the anchor's response is positive.
        response = start.mean[-1] - start.mean[0]
        signs = np.where(response >= 0, 1.0, -1.0)
        signs[observations.anchor] = 1.0
        source = ["em"] * len(columns)
        for d, column in enumerate(columns):
            if self.signs and column in self.signs:
                signs[d], source[d] = float(self.signs[column]), "user"
        structure = GroupStructure(
            names=names,
            member=member,
            pooled=pooled,
            pooled_features=np.flatnonzero(np.isin(member, pooled)),
            signs=signs,
            sign_source=source,
            centring={},
        )
        structure.centring.update(self._centring(observations, start, structure))
        return structure

    def _centring(
        self, observations: Observations, start: EMEstimate, structure: GroupStructure
    ) -> dict[str, np.ndarray]:
        """Per pooled feature, c = spread^2 / (spread^2 + se^2): the centring weight that
        decorrelates a member from its group in a normal model (Gorinova et al. 2020).
        A feature with many observations (small standard error ``se`` of its own
        response) is sampled centred, a short-history one non-centred. ``spread`` is a
        moment estimate from the EM start; the weights only change the sampler's
        geometry, never the posterior."""
        pooled = structure.pooled_features
        decomposition = decompose(start.mean, np.log(start.sigma), structure, observations.anchor)
        fitted = observations.fitted_part()
        occupancy = hmm_smoother(
            np.log(start.initial), np.log(start.transition), em_log_emission(fitted, start)
        ).smoothed_probs  # (T_fit, K)
        # Expected number of observed dates of each pooled feature in each regime.
        dates = np.maximum(fitted.observed[:, pooled].T @ occupancy, 1.0)  # (P, K)
        standard_error = {
            "mean": np.mean(start.sigma[:, pooled].T ** 2 / dates, axis=1),
            "log_scale": np.mean(0.5 / dates, axis=1),
        }  # squared, per coordinate of an orthonormal zero-sum basis
        weights = {}
        for name, squared_se in standard_error.items():
            deviation = (
                decomposition.member[name][pooled]
                - decomposition.group[name][structure.member[pooled]]
            )
            spread = np.empty(len(pooled))
            for g in structure.pooled:
                members = structure.member[pooled] == g
                raw = np.mean(deviation[members] ** 2) - np.mean(squared_se[members])
                spread[members] = max(raw, MIN_START_SPREAD**2)
            weights[name] = spread / (spread + squared_se)
        return weights

    def _structure(self, observations: Observations) -> GroupStructure:
        """The structure fixed by the EM start (computed here if the model is built
        without :meth:`fit`)."""
        structure = self.structure_
        if structure is None or len(structure.signs) != observations.n_features:
            self._em_start(observations.fitted_part())
            structure = self.structure_
        return structure

    def _coords(self, observations: Observations) -> dict[str, list[str]]:
        structure = self._structure(observations)
        return {
            **super()._coords(observations),
            "group": structure.names,
            "pooled_group": structure.pooled_names,
            "pooled_feature": [observations.columns[d] for d in structure.pooled_features],
        }

    # ------------------------------------------------------------------ model
    def _kernel_terms(self, observations: Observations):
        """Hierarchical emission priors, the base class's sticky transitions, and the
        shared diagonal emission density."""
        mean, sigma = self._pooled_emission_parameters(observations)
        nu = None
        if self.emission == "student-t":
            nu = pm.Gamma("nu", alpha=NU_ALPHA, beta=NU_BETA, dims="feature")
        pm.Deterministic("mean", mean, dims=("regime", "feature"))
        pm.Deterministic("sigma", sigma, dims=("regime", "feature"))
        log_initial, log_transition = self._transition_terms(observations)
        log_emission = self._log_emission(observations, mean, sigma, None, nu)
        return log_initial, log_transition, log_emission

    def _pooled_emission_parameters(self, observations: Observations):
        """(mean, sigma), each (K, D) in standardised units, from the group hierarchy.

        Regime responses live in the (K-1)-dimensional zero-sum subspace; ``basis``
        (K, K-1) maps coordinates to responses, and a Normal(0, s) vector of coordinates
        is a ZeroSumNormal(s) response.
        """
        structure = self._structure(observations)
        k = self.n_regimes
        basis = pt.as_tensor(zero_sum_basis(k))
        n_groups = len(structure.names)
        anchor_group = int(structure.member[observations.anchor])

        level = pm.Normal("level", 0.0, LEVEL_SD, dims="feature")
        log_level = pm.Normal("log_level", 0.0, LOG_SCALE_SD, dims="feature")
        # The anchor group's responses are ordered: positive gaps, then centred.
        gaps = pm.Gamma("anchor_group_gaps", alpha=GAP_ALPHA, beta=GAP_BETA, shape=k - 1)
        steps = pt.concatenate([pt.zeros(1), pt.cumsum(gaps)])
        coordinates = [None] * n_groups
        coordinates[anchor_group] = basis.T @ (steps - steps.mean())
        others = [g for g in range(n_groups) if g != anchor_group]
        if others:
            free = pm.Normal("group_mean_coord", 0.0, GROUP_MEAN_SD, shape=(len(others), k - 1))
            for row, g in enumerate(others):
                coordinates[g] = free[row]
        mean_coordinates = pt.stack(coordinates)  # (G, K-1)
        log_scale_coordinates = pm.Normal(
            "group_log_scale_coord", 0.0, GROUP_LOG_SCALE_SD, shape=(n_groups, k - 1)
        )
        pm.Deterministic("group_mean", basis @ mean_coordinates.T, dims=("regime", "group"))
        pm.Deterministic(
            "group_log_scale", basis @ log_scale_coordinates.T, dims=("regime", "group")
        )

        member_mean = mean_coordinates[structure.member]  # (D, K-1)
        member_log_scale = log_scale_coordinates[structure.member]
        if len(structure.pooled):
            position = structure.pooled_position()
            pooled = structure.pooled_features
            spreads = {
                name: pm.Gamma(
                    f"group_{name}_sd", alpha=SPREAD_ALPHA, beta=SPREAD_BETA, dims="pooled_group"
                )
                for name in ("mean", "log_scale")
            }
            for name, member in (("mean", member_mean), ("log_scale", member_log_scale)):
                coordinates = _partially_centred(
                    f"member_{name}_raw",
                    member[pooled],
                    spreads[name][position][:, None],
                    structure.centring[name][:, None],
                    (len(pooled), k - 1),
                )
                if name == "mean":
                    member_mean = pt.set_subtensor(member_mean[pooled], coordinates)
                else:
                    member_log_scale = pt.set_subtensor(member_log_scale[pooled], coordinates)
        signs = pt.as_tensor(structure.signs)
        mean = level[None, :] + signs[None, :] * (basis @ member_mean.T)
        sigma = pt.exp(log_level[None, :] + basis @ member_log_scale.T)
        return mean, sigma

    # ------------------------------------------------------------------ start values
    def _initial_values(
        self, start: EMEstimate, observations: Observations
    ) -> list[dict[str, np.ndarray]]:
        """The EM fit, perturbed as in BayesianHMM, decomposed into levels, group
        responses, spreads and the members' partially centred coordinates."""
        structure = self._structure(observations)
        shared = ("transition", "initial", "nu")
        points = [
            {name: value for name, value in point.items() if name in shared}
            for point in super()._initial_values(start, observations)
        ]
        rng = np.random.default_rng(self.seed)
        anchor_group = int(structure.member[observations.anchor])
        others = [g for g in range(len(structure.names)) if g != anchor_group]
        pooled = structure.pooled_features
        position = structure.pooled_position()
        for point in points:
            mean = start.mean + 0.05 * rng.standard_normal(start.mean.shape)
            log_sigma = np.log(start.sigma) + 0.05 * rng.standard_normal(start.sigma.shape)
            parts = decompose(mean, log_sigma, structure, observations.anchor)
            point.update(
                level=parts.level,
                log_level=parts.log_level,
                anchor_group_gaps=parts.anchor_gaps,
                group_log_scale_coord=parts.group["log_scale"],
            )
            if others:
                point["group_mean_coord"] = parts.group["mean"][others]
            if not len(pooled):
                continue
            for name in ("mean", "log_scale"):
                group = parts.group[name][structure.member[pooled]]  # (P, K-1)
                deviation = parts.member[name][pooled] - group
                spread = np.array(
                    [
                        max(np.sqrt(np.mean(deviation[position == i] ** 2)), MIN_START_SPREAD)
                        for i in range(len(structure.pooled))
                    ]
                )
                centring = structure.centring[name][:, None]
                member_spread = spread[position][:, None]
                point[f"group_{name}_sd"] = spread
                # Inverse of theta = group + spread**(1 - c) * (raw - c * group).
                point[f"member_{name}_raw"] = centring * group + deviation / member_spread ** (
                    1.0 - centring
                )
        return points

    # ------------------------------------------------------------------ reporting
    def _reported(self, posterior: xr.Dataset, observations: Observations):
        """Base reports (asset level, features' units) plus the group level in
        standardised units: group_mean, group_log_scale (regime, group) and the spreads
        group_mean_sd, group_log_scale_sd (pooled_group)."""
        reported, dims, coords = super()._reported(posterior, observations)
        structure = self._structure(observations)
        for name in ("group_mean", "group_log_scale"):
            reported[name] = (
                posterior[name].transpose("chain", "draw", "regime", "group").to_numpy()
            )
            dims[name] = ["regime", "group"]
        coords["group"] = structure.names
        if len(structure.pooled):
            for name in ("group_mean_sd", "group_log_scale_sd"):
                reported[name] = posterior[name].to_numpy()
                dims[name] = ["pooled_group"]
            coords["pooled_group"] = structure.pooled_names
        return reported, dims, coords

    def _result(
        self, model: pm.Model, observations: Observations, posterior, sample_stats, seconds
    ) -> RegimeResult:
        result = super()._result(model, observations, posterior, sample_stats, seconds)
        result.fit_info["model_summary"] = pooling_summary(
            posterior, observations, self._structure(observations)
        )
        return result


def zero_sum_basis(n_regimes: int) -> np.ndarray:
    """(K, K-1) orthonormal Helmert basis of the vectors that sum to zero over regimes."""
    basis = np.zeros((n_regimes, n_regimes - 1))
    for j in range(1, n_regimes):
        basis[:j, j - 1] = 1.0
        basis[j, j - 1] = -float(j)
        basis[:, j - 1] /= np.sqrt(j * (j + 1))
    return -basis  # sign: for K = 2 the coordinate grows with the risk_on response


def _partially_centred(
    name: str, group, spread, centring, shape: tuple[int, int]
) -> pt.TensorVariable:
    """Member coordinates theta ~ Normal(group, spread), sampled as
    raw ~ Normal(c * group, spread**c), theta = group + spread**(1 - c) * (raw - c * group)
    (Gorinova, Moore & Hoffman 2020): c = 0 is non-centred, c = 1 centred. The posterior
    is the same for every c; c only shapes what the sampler sees. Shapes broadcast to
    ``group``'s (P, K-1)."""
    raw = pm.Normal(name, centring * group, spread**centring, shape=shape)
    return group + spread ** (1.0 - centring) * (raw - centring * group)


@dataclass(frozen=True)
class Decomposition:
    """Emission parameters (standardised) split the way the model parameterises them:
    ``level``/``log_level`` (D,); ``member``/``group`` {"mean", "log_scale"} -> (D, K-1)
    and (G, K-1) zero-sum-basis coordinates of the (signed) responses, the anchor group's
    mean response made ordered; ``anchor_gaps`` (K-1,) its positive gaps."""

    level: np.ndarray
    log_level: np.ndarray
    member: dict[str, np.ndarray]
    group: dict[str, np.ndarray]
    anchor_gaps: np.ndarray


def _feature_subset(observations: Observations, keep: np.ndarray) -> Observations:
    """The observations restricted to the feature indices ``keep`` (which hold the anchor)."""
    columns = [observations.columns[d] for d in keep]
    return replace(
        observations,
        columns=columns,
        groups={column: observations.groups[column] for column in columns},
        values=observations.values[:, keep],
        observed=observations.observed[:, keep],
        center=observations.center[keep],
        scale=observations.scale[keep],
        anchor=int(np.flatnonzero(keep == observations.anchor)[0]),
    )


def _moments_on_all_features(
    start: EMEstimate, subset: Observations, observations: Observations
) -> EMEstimate:
    """An EM estimate on some features, extended to all: each feature's regime mean and
    scale are its moments over its observed dates, weighted by the smoothed regime
    probabilities of ``start`` (a masked M-step). Standardised units."""
    occupancy = hmm_smoother(
        np.log(start.initial), np.log(start.transition), em_log_emission(subset, start)
    ).smoothed_probs  # (T, K)
    weights = occupancy.T[:, :, None] * observations.observed[None]  # (K, T, D)
    total = np.maximum(weights.sum(axis=1), 1e-9)  # (K, D)
    mean = (weights * observations.values[None]).sum(axis=1) / total
    squared = (weights * (observations.values[None] - mean[:, None]) ** 2).sum(axis=1) / total
    return replace(start, mean=mean, sigma=np.sqrt(np.maximum(squared, 1e-4)))


def decompose(
    mean: np.ndarray, log_sigma: np.ndarray, structure: GroupStructure, anchor: int
) -> Decomposition:
    """(K, D) mean and log-scale -> :class:`Decomposition`; a group's response is the
    average of its members'."""
    n_regimes = mean.shape[0]
    basis = zero_sum_basis(n_regimes)
    level, log_level = mean.mean(axis=0), log_sigma.mean(axis=0)
    member = {
        "mean": (structure.signs * (mean - level)).T @ basis,
        "log_scale": (log_sigma - log_level).T @ basis,
    }
    group = {
        name: np.stack(
            [values[structure.member == g].mean(axis=0) for g in range(len(structure.names))]
        )
        for name, values in member.items()
    }
    anchor_group = structure.member[anchor]
    ordered = np.sort(basis @ group["mean"][anchor_group])
    gaps = np.maximum(np.diff(ordered), MIN_START_SPREAD)
    steps = np.concatenate([[0.0], np.cumsum(gaps)])
    group["mean"][anchor_group] = (steps - steps.mean()) @ basis
    return Decomposition(level, log_level, member, group, gaps)


def pooling_summary(
    posterior: xr.Dataset, observations: Observations, structure: GroupStructure
) -> dict[str, list[dict[str, Any]]]:
    """Tables for ``fit_info["model_summary"]``, in standardised units with 90% HDIs.

    ``groups``: members of each group and whether it is pooled.
    ``group_parameters``: each group's regime responses ("mean") and log-scale responses
    ("log_scale"), their risk_on minus risk_off contrasts, and the spreads of the members
    around the group ("mean_sd", "log_scale_sd") of pooled groups.
    ``features``: per feature its group, sign (and where it came from), how many fitted
    dates it is observed on, and P(its response has the fixed sign).
    ``feature_pooling``: per feature its response contrast ("contrast"), its distance from
    its group's contrast after shrinkage ("distance"), and the same for the log-scale
    ("log_scale_contrast", "log_scale_distance").
    """

    def draws(name: str) -> np.ndarray:
        values = posterior[name].to_numpy()
        return values.reshape(-1, *values.shape[2:])

    def record(values: np.ndarray, **labels: Any) -> dict[str, Any]:
        lower, upper = hdi_bounds(values[:, None], SUMMARY_HDI)
        return {
            **labels,
            "mean": float(values.mean()),
            "lower": float(lower[0]),
            "upper": float(upper[0]),
        }

    names = regime_names(posterior.sizes["regime"])
    contrast_name = f"{names[-1]}-{names[0]}"
    group_mean = draws("group_mean")  # (S, K, G)
    group_log_scale = draws("group_log_scale")
    spreads = {
        name: draws(f"group_{name}")
        for name in ("mean_sd", "log_scale_sd")
        if len(structure.pooled)
    }
    group_rows, group_table = [], []
    for g, group in enumerate(structure.names):
        pooled = g in structure.pooled
        members = [observations.columns[d] for d in np.flatnonzero(structure.member == g)]
        group_table.append({"group": group, "members": members, "pooled": bool(pooled)})
        for parameter, values in (("mean", group_mean), ("log_scale", group_log_scale)):
            for k, regime in enumerate(names):
                group_rows.append(
                    record(values[:, k, g], group=group, parameter=parameter, regime=regime)
                )
            group_rows.append(
                record(
                    values[:, -1, g] - values[:, 0, g],
                    group=group,
                    parameter=f"{parameter}_contrast",
                    regime=contrast_name,
                )
            )
        if pooled:
            i = int(np.flatnonzero(structure.pooled == g)[0])
            for parameter, values in spreads.items():
                group_rows.append(
                    record(values[:, i], group=group, parameter=parameter, regime=None)
                )

    mean = draws("mean")  # (S, K, D), standardised
    log_sigma = np.log(draws("sigma"))
    response = structure.signs * (mean - mean.mean(axis=1, keepdims=True))
    contrast = response[:, -1] - response[:, 0]  # (S, D)
    log_contrast = log_sigma[:, -1] - log_sigma[:, 0]
    group_contrast = (group_mean[:, -1] - group_mean[:, 0])[:, structure.member]
    group_log_contrast = (group_log_scale[:, -1] - group_log_scale[:, 0])[:, structure.member]
    observed = observations.observed[: observations.n_fit].sum(axis=0)
    feature_table, pooling_rows = [], []
    for d, column in enumerate(observations.columns):
        group = structure.names[structure.member[d]]
        feature_table.append(
            {
                "feature": column,
                "group": group,
                "pooled": bool(structure.member[d] in structure.pooled),
                "sign": int(structure.signs[d]),
                "sign_source": structure.sign_source[d],
                "fitted_observations": int(observed[d]),
                "p_same_sign": float((contrast[:, d] > 0).mean()),
            }
        )
        for quantity, values in (
            ("contrast", contrast[:, d]),
            ("distance", contrast[:, d] - group_contrast[:, d]),
            ("log_scale_contrast", log_contrast[:, d]),
            ("log_scale_distance", log_contrast[:, d] - group_log_contrast[:, d]),
        ):
            pooling_rows.append(record(values, feature=column, group=group, quantity=quantity))
    return {
        "groups": group_table,
        "group_parameters": group_rows,
        "features": feature_table,
        "feature_pooling": pooling_rows,
    }
