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
subspace (Normal coordinates = ZeroSumNormal vector). Each feature's level is a
precision-weighted average of its regime means (weights fixed from the start), which
makes it nearly uncorrelated with the responses in the posterior. A pooled group is
sampled non-centred (member = group + spread * raw) unless its members clearly differ at
the start; then its members are free and the group is their average plus a standardised
offset (no funnel between a two-member group and its spread). These choices change what
the sampler sees, never the posterior.

Signs: features in one group may respond to risk-on with opposite signs (a credit-spread
change falls when a high-yield return rises). Each feature's ``sign`` is fixed before
sampling from the start of the chains (the non-pooled model's MAP, reached from EM), as
the sign of its risk_on minus risk_off mean (the anchor is +1 by construction);
``signs`` overrides it per column. A feature whose response turns out to have the other
sign is not forced: its deviation moves it across, at a prior cost. The summary reports
P(same sign) per feature, with a note when it is below 0.05.

Groups: a column whose group is missing ("unknown") forms a group of its own (named
``ungrouped:<column>``), so nothing is pooled without a stated group. A group with one
member has no spread parameter: the member's response *is* the group's.

Identifiability. By default (``identification="relabelled"``) every group's responses,
the anchor's included, are free zero-sum vectors and each feature's level is the plain
average of its regime means, so the prior is the same under every permutation of the
regimes; after sampling, the draws' labels are matched and named on the anchor as in
:class:`~regime_model.models.BayesianHMM`. (Precision-weighted levels decorrelate level
and responses a little better, but their weights differ per regime, which would make the
prior depend on the labels.) With ``identification="ordered"`` the anchor's group has
ordered mean responses (risk_off lowest), built from positive Gamma(2, 4) gaps and
centred, and the levels are precision-weighted. Chains start from the MAP point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import hmm_smoother
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.em_hmm import EMEstimate, em_log_emission
from regime_model.models.gaussian_emissions import (
    GAP_ALPHA,
    GAP_BETA,
    LOG_SCALE_SD,
    NU_ALPHA,
    NU_BETA,
    START_NU,
    log_density,
)
from regime_model.models.observations import Observations, regime_names
from regime_model.results import DrawProbabilities, RegimeResult, hdi_bounds

# Priors in standardised units (see the module docstring).
LEVEL_SD = 1.0  # per-feature level; the data are centred
GROUP_MEAN_SD = 1.0  # per zero-sum coordinate of a group's regime responses
GROUP_LOG_SCALE_SD = LOG_SCALE_SD  # same spread as BayesianHMM's log-scales
# Spread of the members around their group, per zero-sum coordinate: Gamma(3, 15), mean
# 0.2 sd, mode 0.13, 95% within (0.04, 0.48). Zero-avoiding: assets are never treated as
# identical (pooling stays partial), and with two or three members per group it keeps
# the sampler out of the funnel's neck (Chung et al. 2013); its light right tail keeps
# members of a group similar unless their data say otherwise.
SPREAD_ALPHA, SPREAD_BETA = 3.0, 15.0
MIN_START_SPREAD = 0.05  # floor of the start values of spreads and ordered gaps
# A pooled group is sampled centred when its members' spread at the start is at least this
# many times their standard errors (see _centred_groups).
CENTRED_SPREAD_RATIO = 3.0
# Features observed on fewer of the fitted dates are left out of the EM start's own fit.
EM_MIN_OBSERVED_SHARE = 0.8
SUMMARY_HDI = 0.9
SIGN_WARNING = 0.05  # notes a pooled feature whose P(same sign) falls below this
UNGROUPED = "unknown"


@dataclass(frozen=True)
class GroupStructure:
    """Which feature belongs to which group, and each feature's response sign.

    ``columns`` (D,) the features, ``anchor`` the anchor's index; ``names`` (G,) group
    names; ``member`` (D,) group index of each feature; ``pooled`` indexes the groups with
    two or more members; ``pooled_features`` (P,) the features in them; ``signs`` (D,) +1
    or -1; ``sign_source`` (D,) "start" or "user"; ``level_weights`` {"mean",
    "log_scale"} -> (D, K) weights over regimes defining each feature's level; ``centred``
    {"mean", "log_scale"} -> (G,) True for a pooled group sampled centred;
    ``ordered_anchor``: the anchor group's mean responses are ordered gaps
    (identification="ordered") rather than free like every other group's.
    """

    columns: list[str]
    anchor: int
    names: list[str]
    member: np.ndarray
    pooled: np.ndarray
    pooled_features: np.ndarray
    signs: np.ndarray
    sign_source: list[str]
    level_weights: dict[str, np.ndarray]
    centred: dict[str, np.ndarray]
    ordered_anchor: bool = True

    @property
    def pooled_names(self) -> list[str]:
        return [self.names[g] for g in self.pooled]

    def pooled_position(self, features=None) -> np.ndarray:
        """Position in ``pooled`` of the group of each of ``features`` (default: all
        pooled features)."""
        features = self.pooled_features if features is None else features
        position = {int(g): i for i, g in enumerate(self.pooled)}
        return np.array([position[int(self.member[d])] for d in features], dtype=int)


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
    (default: read off the start, see :meth:`_em_start`). ``target_accept`` defaults to
    0.98, not 0.9: the spreads of two- or three-member groups have posteriors whose tails
    (where one parameterisation or the other is strongly curved) gave a divergent
    transition or two per 4,000 draws at 0.95 on the weekly data; none at 0.98 in three
    seeds.
    """

    name = "hierarchical"
    covariates_allowed = True  # covariate-driven transitions on the pooled emissions
    # The zero-sum coordinates (group_*_coord, member_*) are not permuted: a relabelled
    # draw is read through its regime-space variables (mean, sigma, group_mean, ...),
    # which is all that quantities_at and the reports use.
    regime_axes = BayesianHMM.regime_axes | {
        name: (("regime", 0),) for name in ("group_mean", "group_log_scale")
    }

    def __init__(
        self,
        n_regimes: int = 2,
        *,
        signs: dict[str, int] | None = None,
        target_accept: float = 0.98,
        **base_options: Any,
    ) -> None:
        unsupported = {"switching": "both", "covariance": "diag", "order_by": "mean"}
        for option, supported in unsupported.items():
            value = base_options.pop(option, None)
            if value not in (None, supported):
                raise ValueError(
                    f"the hierarchical model pools regime-specific means and scales and orders "
                    f"regimes by the anchor group's mean response: {option} must be "
                    f"{supported!r}, not {value!r}"
                )
        super().__init__(n_regimes, target_accept=target_accept, order_by="mean", **base_options)
        bad = {column: sign for column, sign in (signs or {}).items() if sign not in (1, -1)}
        if bad:
            raise ValueError(f"signs must be +1 or -1, got {bad}")
        self.signs = dict(signs) if signs else None
        self.structure_: GroupStructure | None = None

    # ------------------------------------------------------------------ structure
    def _em_start(self, observations: Observations) -> EMEstimate:
        """The start of the chains, which also fixes each feature's response sign.

        EM runs on complete dates only, so one late-starting asset would cut it down to
        that asset's window. It therefore runs on the features observed on at least
        ``EM_MIN_OBSERVED_SHARE`` of the dates, and every feature's regime moments come
        from its own dates weighted by that fit's regime probabilities. From there, the
        maximum a posteriori point of the non-pooled BayesianHMM on all features (missing
        values masked) gives the start: signs read off a fit whose regimes are those of
        the full data, not of an EM on a subset.
        """
        self._check_signs(observations)
        long_history = observations.observed.mean(axis=0) >= EM_MIN_OBSERVED_SHARE
        long_history[observations.anchor] = True
        if long_history.all():
            start = super()._em_start(observations)
        else:
            subset = _feature_subset(observations, np.flatnonzero(long_history))
            start = _moments_on_all_features(super()._em_start(subset), subset, observations)
        start = self._unpooled_map(observations, start)
        self.structure_ = self._group_structure(observations, start)
        return start

    def _check_signs(self, observations: Observations) -> None:
        columns = observations.columns
        unknown = sorted(set(self.signs or {}) - set(columns))
        if unknown:
            raise ValueError(f"signs given for columns not in the model: {', '.join(unknown)}")
        anchor = columns[observations.anchor]
        if (self.signs or {}).get(anchor, 1) != 1:
            raise ValueError(f"the anchor '{anchor}' defines risk_on: its sign must be +1")

    def _unpooled_map(self, observations: Observations, start: EMEstimate) -> EMEstimate:
        """``start`` moved to the MAP of the non-pooled model (kept if that fails)."""
        pilot = BayesianHMM(
            self.n_regimes,
            emission=self.emission,
            anchor=observations.columns[observations.anchor],
            stickiness=self.stickiness,
            initial=self.initial,
            sampler="map",
            chains=1,
            seed=self.seed,
            progressbar=False,
        )
        model = pilot.build_model(observations)
        point, _ = pilot._sample(model, pilot._initial_values(start, observations))
        values = {name: point[name].to_numpy()[0, 0] for name in ("mean", "sigma", "transition")}
        if not all(np.isfinite(value).all() for value in values.values()):
            return start
        return replace(
            start,
            mean=values["mean"],
            sigma=values["sigma"],
            transition=values["transition"],
            initial=point["initial"].to_numpy()[0, 0] if "initial" in point else start.initial,
        )

    def _group_structure(self, observations: Observations, start: EMEstimate) -> GroupStructure:
        """Groups, signs (from the start unless given), level weights and the choice of
        centred or non-centred sampling per group."""
        columns = observations.columns
        names, member = feature_groups(columns, observations.groups)
        counts = np.bincount(member, minlength=len(names))
        pooled = np.flatnonzero(counts >= 2)
        # The start is ordered on the anchor mean, so the anchor's response is positive.
        response = start.mean[-1] - start.mean[0]
        signs = np.where(response >= 0, 1.0, -1.0)
        signs[observations.anchor] = 1.0
        source = ["start"] * len(columns)
        for d, column in enumerate(columns):
            if self.signs and column in self.signs:
                signs[d], source[d] = float(self.signs[column]), "user"
        fitted = observations.fitted_part()
        occupancy = hmm_smoother(
            np.log(start.initial), np.log(start.transition), em_log_emission(fitted, start)
        ).smoothed_probs  # (T_fit, K)
        # Expected number of observed dates of each feature in each regime.
        dates = np.maximum(fitted.observed.T @ occupancy, 1.0)  # (D, K)
        # Precision weights: the level sum_k w_k mean_k is then uncorrelated with the
        # regime contrasts in the likelihood (w_i v_i = w_j v_j for estimate variances v).
        # Relabelling needs a prior that is the same for every permutation of the
        # regimes, and regime-specific weights would break that: equal weights there.
        ordered = self.identification == "ordered"
        mean_precision = dates / start.sigma.T**2 if ordered else np.ones_like(dates)
        level_dates = dates if ordered else np.ones_like(dates)
        structure = GroupStructure(
            columns=list(columns),
            anchor=observations.anchor,
            names=names,
            member=member,
            pooled=pooled,
            pooled_features=np.flatnonzero(np.isin(member, pooled)),
            signs=signs,
            sign_source=source,
            level_weights={
                "mean": mean_precision / mean_precision.sum(axis=1, keepdims=True),
                "log_scale": level_dates / level_dates.sum(axis=1, keepdims=True),
            },
            centred={},
            ordered_anchor=ordered,
        )
        structure.centred.update(_centred_groups(start, structure, dates))
        return structure

    def _structure(self, observations: Observations) -> GroupStructure:
        """The structure fixed by the start (computed here if the model is built
        without :meth:`fit`)."""
        structure = self.structure_
        if structure is None or structure.columns != observations.columns:
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
        log_emission = log_density(observations, mean, sigma, None, nu)
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
        level = pm.Normal("level", 0.0, LEVEL_SD, dims="feature")
        log_level = pm.Normal("log_level", 0.0, LOG_SCALE_SD, dims="feature")
        fixed_mean = {}
        if structure.ordered_anchor:
            # The anchor group's mean responses are ordered: positive gaps, then centred.
            gaps = pm.Gamma("anchor_group_gaps", alpha=GAP_ALPHA, beta=GAP_BETA, shape=k - 1)
            steps = pt.concatenate([pt.zeros(1), pt.cumsum(gaps)])
            anchor_group = int(structure.member[structure.anchor])
            fixed_mean = {anchor_group: basis.T @ (steps - steps.mean())}
        responses = {}
        for name, prior_sd, fixed in (
            ("mean", GROUP_MEAN_SD, fixed_mean),
            ("log_scale", GROUP_LOG_SCALE_SD, {}),
        ):
            group, member = _hierarchy(name, structure, prior_sd, fixed, k)
            pm.Deterministic(f"group_{name}", basis @ group.T, dims=("regime", "group"))
            # Responses (K, D) relative to each feature's level, their weighted average.
            centred = basis @ member.T
            weights = pt.as_tensor(structure.level_weights[name].T)
            responses[name] = centred - (weights * centred).sum(axis=0)[None, :]
        signs = pt.as_tensor(structure.signs)
        mean = level[None, :] + signs[None, :] * responses["mean"]
        sigma = pt.exp(log_level[None, :] + responses["log_scale"])
        return mean, sigma

    # ------------------------------------------------------------------ start values
    def _initial_values(
        self, start: EMEstimate, observations: Observations
    ) -> list[dict[str, np.ndarray]]:
        """The start, perturbed as in BayesianHMM, decomposed into levels, group
        responses, spreads and the members' coordinates (see :func:`_hierarchy`)."""
        structure = self._structure(observations)
        points = self._transitions().starts(start, max(self.chains, 1), self.seed)
        if self.emission == "student-t":
            for point in points:
                point["nu"] = np.full(observations.n_features, START_NU)
        rng = np.random.default_rng(self.seed)
        anchor_group = int(structure.member[structure.anchor])
        pooled = structure.pooled_features
        for point in points:
            mean = start.mean + 0.05 * rng.standard_normal(start.mean.shape)
            log_sigma = np.log(start.sigma) + 0.05 * rng.standard_normal(start.sigma.shape)
            parts = decompose(mean, log_sigma, structure)
            point.update(level=parts.level, log_level=parts.log_level)
            if structure.ordered_anchor:
                point["anchor_group_gaps"] = parts.anchor_gaps
            for name in ("mean", "log_scale"):
                centred = structure.centred[name]
                fixed = {anchor_group} if name == "mean" and structure.ordered_anchor else set()
                free = [g for g in range(len(structure.names)) if g not in fixed and not centred[g]]
                if free:
                    point[f"group_{name}_coord"] = parts.group[name][free]
                if not len(pooled):
                    continue
                group = parts.group[name][structure.member]  # (D, K-1)
                deviation = parts.member[name] - group
                spread = np.array(
                    [
                        max(
                            np.sqrt(np.mean(deviation[structure.member == g] ** 2)),
                            MIN_START_SPREAD,
                        )
                        for g in structure.pooled
                    ]
                )
                point[f"group_{name}_sd"] = spread
                non_centred = [d for d in pooled if not centred[structure.member[d]]]
                if non_centred:
                    member_spread = spread[structure.pooled_position(non_centred)][:, None]
                    point[f"member_{name}_raw"] = deviation[non_centred] / member_spread
                if centred.any():
                    # Start groups at their members' average: offsets of zero.
                    point[f"member_{name}_centred"] = parts.member[name][
                        [d for d in pooled if centred[structure.member[d]]]
                    ]
                    point[f"group_{name}_offset"] = np.zeros(
                        (int(centred.sum()), mean.shape[0] - 1)
                    )
        return points

    # ------------------------------------------------------------------ reporting
    def quantities_at(self, parameters: dict[str, np.ndarray]) -> DrawProbabilities:
        """As :meth:`BayesianHMM.quantities_at`, read through the emission parameters
        (``mean``, ``sigma``, ``nu``) and the transition component's parameters, which
        every parameterisation of this model shares: the signs and the centring are
        chosen from the data, so a point (e.g. a simulation's truth) may come from another
        parameterisation than the last fit's."""
        observations = self.observations_
        nu = parameters.get("nu")
        log_emission = log_density(
            observations,
            pt.as_tensor(parameters["mean"]),
            pt.as_tensor(parameters["sigma"]),
            None,
            None if nu is None else pt.as_tensor(nu),
        ).eval()
        return self._date_quantities(
            np.log(parameters["initial"]),
            self._transitions().log_transition_at(parameters, observations),
            log_emission,
            with_bands=True,
        )

    def _reported(self, posterior: xr.Dataset, observations: Observations):
        """Base reports (asset level, features' units) plus the group level in
        standardised units: group_mean, group_log_scale (regime, group) and the spreads
        group_mean_sd, group_log_scale_sd (pooled_group)."""
        reported, dims, coords = super()._reported(posterior, observations)
        structure = self._structure(observations)
        for name in ("group_mean", "group_log_scale"):
            reported[name] = posterior[name].to_numpy()  # (chain, draw, regime, group)
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
    ) -> tuple[RegimeResult, xr.Dataset]:
        result, posterior = super()._result(model, observations, posterior, sample_stats, seconds)
        # Beside the transition component's tables (covariate-driven transitions).
        result.fit_info.setdefault("model_summary", {}).update(
            pooling_summary(posterior, observations, self._structure(observations))
        )
        return result, posterior


def zero_sum_basis(n_regimes: int) -> np.ndarray:
    """(K, K-1) orthonormal Helmert basis of the vectors that sum to zero over regimes."""
    basis = np.zeros((n_regimes, n_regimes - 1))
    for j in range(1, n_regimes):
        basis[:j, j - 1] = 1.0
        basis[j, j - 1] = -float(j)
        basis[:, j - 1] /= np.sqrt(j * (j + 1))
    return -basis  # sign: for K = 2 the coordinate grows with the risk_on response


def _hierarchy(
    name: str,
    structure: GroupStructure,
    prior_sd: float,
    fixed: dict[int, pt.TensorVariable],
    n_regimes: int,
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Group coordinates (G, K-1) and member coordinates (D, K-1) of one kind of
    response ("mean" or "log_scale"), with their priors.

    A group's coordinates are Normal(0, ``prior_sd``) (or given in ``fixed``); a member
    of a pooled group is Normal(group, spread), spread ~ Gamma(SPREAD_ALPHA, SPREAD_BETA);
    a lone member's coordinates are its group's. Two parameterisations, chosen per group
    before sampling (``structure.centred``):

    - non-centred: member = group + spread * raw, raw ~ Normal(0, 1);
    - centred, for a group whose members clearly differ: members are free, and the group
      sits at their average plus spread / sqrt(n) * offset. Given the members, the offset
      is then about Normal(0, 1) whatever the spread: no funnel between the group and
      its spread, which a centred group with two or three members otherwise has.
    """
    n_groups, k = len(structure.names), n_regimes - 1
    centred = structure.centred[name]
    free = [g for g in range(n_groups) if g not in fixed and not centred[g]]
    groups: list[pt.TensorVariable | None] = [fixed.get(g) for g in range(n_groups)]
    if free:
        coordinates = pm.Normal(f"group_{name}_coord", 0.0, prior_sd, shape=(len(free), k))
        for row, g in enumerate(free):
            groups[g] = coordinates[row]
    pooled = structure.pooled_features
    if not len(pooled):
        stacked = pt.stack(groups)
        return stacked, stacked[structure.member]
    spread = pm.Gamma(f"group_{name}_sd", alpha=SPREAD_ALPHA, beta=SPREAD_BETA, dims="pooled_group")
    centred_members = [d for d in pooled if centred[structure.member[d]]]
    if centred_members:
        members = pm.Flat(f"member_{name}_centred", shape=(len(centred_members), k))
        centred_groups = [int(g) for g in structure.pooled if centred[g]]
        offsets = pm.Flat(f"group_{name}_offset", shape=(len(centred_groups), k))
        terms = []
        for row, g in enumerate(centred_groups):
            rows = [i for i, d in enumerate(centred_members) if structure.member[d] == g]
            position = int(np.flatnonzero(structure.pooled == g)[0])
            groups[g], log_density = _centred_group(
                members[rows], offsets[row], spread[position], prior_sd
            )
            terms.append(log_density)
        pm.Potential(f"group_{name}_hierarchy", pt.sum(pt.stack(terms)))
    stacked = pt.stack(groups)
    member = stacked[structure.member]
    non_centred = [d for d in pooled if not centred[structure.member[d]]]
    if non_centred:
        raw = pm.Normal(f"member_{name}_raw", 0.0, 1.0, shape=(len(non_centred), k))
        member_spread = spread[structure.pooled_position(non_centred)][:, None]
        member = pt.set_subtensor(member[non_centred], member[non_centred] + member_spread * raw)
    if centred_members:
        member = pt.set_subtensor(member[centred_members], members)
    return stacked, member


def _centred_group(
    members: pt.TensorVariable, offset: pt.TensorVariable, spread, prior_sd: float
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """(group coordinates (K-1,), log density) of a centred group from its members
    (n, K-1) and a free ``offset`` (K-1,): group = mean(members) + spread / sqrt(n) *
    offset. The log density is that of members ~ Normal(group, spread) and group ~
    Normal(0, prior_sd), plus log|d group / d offset|, so that (members, offset) carry
    exactly the hierarchical prior."""
    n = members.shape[0]
    group = members.mean(axis=0) + spread * offset / pt.sqrt(n)
    log_density = (
        pm.logp(pm.Normal.dist(group, spread), members).sum()
        + pm.logp(pm.Normal.dist(0.0, prior_sd), group).sum()
        + offset.shape[0] * (pt.log(spread) - 0.5 * pt.log(n))
    )
    return group, log_density


def _centred_groups(
    start: EMEstimate, structure: GroupStructure, dates: np.ndarray
) -> dict[str, np.ndarray]:
    """Per kind of response ("mean", "log_scale"), (G,) True for the pooled groups to
    sample centred: those whose members clearly differ at the start, the moment estimate
    of their spread (less the noise) being at least ``CENTRED_SPREAD_RATIO`` times the
    members' standard error. Other groups are non-centred, which suits members that may
    agree (spread near zero). The posterior is the same either way; only the sampler's
    geometry changes. The anchor's group is never centred for the mean (its responses are
    the ordered gaps). ``dates`` (D, K): expected observed dates of each feature in each
    regime."""
    decomposition = decompose(start.mean, np.log(start.sigma), structure)
    squared_se = {
        "mean": np.mean(start.sigma.T**2 / dates, axis=1),
        "log_scale": np.mean(0.5 / dates, axis=1),
    }  # (D,), per coordinate of an orthonormal zero-sum basis
    centred = {}
    for name, se2 in squared_se.items():
        deviation = decomposition.member[name] - decomposition.group[name][structure.member]
        flags = np.zeros(len(structure.names), dtype=bool)
        for g in structure.pooled:
            members = structure.member == g
            spread2 = np.mean(deviation[members] ** 2) * members.sum() / (members.sum() - 1)
            noise = np.mean(se2[members])
            flags[g] = spread2 - noise >= CENTRED_SPREAD_RATIO**2 * noise
        centred[name] = flags
    centred["mean"][structure.member[structure.anchor]] = False
    return centred


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


def decompose(mean: np.ndarray, log_sigma: np.ndarray, structure: GroupStructure) -> Decomposition:
    """(K, D) mean and log-scale -> :class:`Decomposition`; a group's response is the
    average of its members'. Levels are the ``structure.level_weights`` averages."""
    n_regimes = mean.shape[0]
    basis = zero_sum_basis(n_regimes)
    member = {
        "mean": (structure.signs * (mean - mean.mean(axis=0))).T @ basis,
        "log_scale": (log_sigma - log_sigma.mean(axis=0)).T @ basis,
    }
    group = {
        name: np.stack(
            [values[structure.member == g].mean(axis=0) for g in range(len(structure.names))]
        )
        for name, values in member.items()
    }
    anchor_group = structure.member[structure.anchor]
    ordered = np.sort(basis @ group["mean"][anchor_group])
    gaps = np.maximum(np.diff(ordered), MIN_START_SPREAD)
    if structure.ordered_anchor:
        steps = np.concatenate([[0.0], np.cumsum(gaps)])
        group["mean"][anchor_group] = (steps - steps.mean()) @ basis
    level = (structure.level_weights["mean"].T * mean).sum(axis=0)
    log_level = (structure.level_weights["log_scale"].T * log_sigma).sum(axis=0)
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
    ``notes``: plain-language warnings (a pooled feature whose posterior response runs
    against its fixed sign; nothing pooled).
    """

    def draws(name: str) -> np.ndarray:
        values = posterior[name].to_numpy()
        return values.reshape(-1, *values.shape[2:])

    def record(values: np.ndarray, **labels: Any) -> dict[str, Any]:
        if len(values) < 2:  # a point estimate (MAP) has no band
            return {**labels, "mean": float(values.mean()), "lower": None, "upper": None}
        lower, upper = hdi_bounds(values[:, None], SUMMARY_HDI)
        return {
            **labels,
            "mean": float(values.mean()),
            "lower": float(lower[0]),
            "upper": float(upper[0]),
        }

    names = regime_names(posterior["group_mean"].shape[2])
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
    notes = [] if len(structure.pooled) else ["no group has two members: nothing is pooled"]
    for row in feature_table:
        if row["pooled"] and row["p_same_sign"] < SIGN_WARNING:
            notes.append(
                f"{row['feature']}: P(response has the fixed sign {row['sign']:+d}) = "
                f"{row['p_same_sign']:.2f}; it is pooled against its direction. Refit with "
                f"signs={{'{row['feature']}': {-row['sign']:+d}}}."
            )
    return {
        "groups": group_table,
        "group_parameters": group_rows,
        "features": feature_table,
        "feature_pooling": pooling_rows,
        "notes": notes,
    }
