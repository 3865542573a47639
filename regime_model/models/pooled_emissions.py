"""The pooled emission component of the hierarchical family: one regime path, asset
parameters pooled within groups.

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
makes it nearly uncorrelated with the responses in the posterior. A pooled group's
members are sampled as their average, with the group integrated out, and their
deviations from it, partially centred by weights chosen from the start; the group is
drawn given its members through a standard Normal offset (see :func:`_hierarchy`). These
choices change what the sampler sees, never the posterior.

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

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import hmm_smoother
from regime_model.models.em_hmm import EMEstimate, em_log_emission
from regime_model.models.emissions import sample_emissions
from regime_model.models.gaussian_emissions import (
    GAP_ALPHA,
    GAP_BETA,
    LOG_SCALE_SD,
    NU_ALPHA,
    NU_BETA,
    START_NU,
    GaussianEmissions,
    log_density,
)
from regime_model.models.observations import Observations
from regime_model.models.pooling_report import pooling_summary
from regime_model.models.relabelling import RegimeAxes
from regime_model.results import RegimeResult

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
UNGROUPED = "unknown"


@dataclass(frozen=True)
class GroupStructure:
    """Which feature belongs to which group, and each feature's response sign.

    ``columns`` (D,) the features, ``anchor`` the anchor's index; ``names`` (G,) group
    names; ``member`` (D,) group index of each feature; ``pooled`` indexes the groups with
    two or more members; ``pooled_features`` (P,) the features in them; ``signs`` (D,) +1
    or -1; ``sign_source`` (D,) "start" or "user"; ``level_weights`` {"mean",
    "log_scale"} -> (D, K) weights over regimes defining each feature's level; ``centring``
    {"mean", "log_scale"} -> (G,) centring weights of the pooled groups' deviations
    (1 centred, 0 non-centred; see :func:`_centring`);
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
    centring: dict[str, np.ndarray]
    ordered_anchor: bool = True

    def lone_groups(self, fixed) -> list[int]:
        """The one-member groups not in ``fixed``: their coordinates are sampled as the
        group's, with no spread."""
        pooled = set(int(g) for g in self.pooled)
        return [g for g in range(len(self.names)) if g not in fixed and g not in pooled]

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


def group_structure(
    observations: Observations,
    start: EMEstimate,
    signs: dict[str, int] | None,
    ordered: bool,
) -> GroupStructure:
    """Groups, signs (from the start unless given in ``signs``), level weights and the
    centring weight of each group's deviations (:func:`_centring`); ``ordered``: the anchor group's
    mean responses are ordered (identification="ordered")."""
    columns = observations.columns
    names, member = feature_groups(columns, observations.groups)
    counts = np.bincount(member, minlength=len(names))
    pooled = np.flatnonzero(counts >= 2)
    # The start is ordered on the anchor mean, so the anchor's response is positive.
    response = start.mean[-1] - start.mean[0]
    fixed = np.where(response >= 0, 1.0, -1.0)
    fixed[observations.anchor] = 1.0
    source = ["start"] * len(columns)
    for d, column in enumerate(columns):
        if signs and column in signs:
            fixed[d], source[d] = float(signs[column]), "user"
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
    mean_precision = dates / start.sigma.T**2 if ordered else np.ones_like(dates)
    level_dates = dates if ordered else np.ones_like(dates)
    structure = GroupStructure(
        columns=list(columns),
        anchor=observations.anchor,
        names=names,
        member=member,
        pooled=pooled,
        pooled_features=np.flatnonzero(np.isin(member, pooled)),
        signs=fixed,
        sign_source=source,
        level_weights={
            "mean": mean_precision / mean_precision.sum(axis=1, keepdims=True),
            "log_scale": level_dates / level_dates.sum(axis=1, keepdims=True),
        },
        centring={},
        ordered_anchor=ordered,
    )
    structure.centring.update(_centring(start, structure, dates))
    return structure


class PooledEmissions:
    """Gaussian or Student-t diagonal emissions whose regime responses are pooled within
    feature groups (see the module docstring); ``structure`` is fixed before sampling
    (:func:`group_structure`)."""

    # The zero-sum coordinates (group_*_coord, member_*) are not permuted: a relabelled
    # draw is read through its regime-space variables (mean, sigma, group_mean, ...),
    # which is all that log_emission_at and the reports use.
    regime_axes: dict[str, RegimeAxes] = GaussianEmissions.regime_axes | {
        name: (("regime", 0),) for name in ("group_mean", "group_log_scale")
    }

    def __init__(self, structure: GroupStructure, n_regimes: int, emission: str) -> None:
        self.structure = structure
        self.n_regimes = n_regimes
        self.emission = emission

    def coords(self, observations: Observations) -> dict[str, list[str]]:
        structure = self.structure
        return {
            "group": structure.names,
            "pooled_group": structure.pooled_names,
            "pooled_feature": [observations.columns[d] for d in structure.pooled_features],
        }

    def build(self, observations: Observations) -> pt.TensorVariable:
        """Hierarchical priors (``mean``, ``sigma`` registered) -> (T, K) log densities."""
        mean, sigma = self._parameters(observations)
        nu = None
        if self.emission == "student-t":
            nu = pm.Gamma("nu", alpha=NU_ALPHA, beta=NU_BETA, dims="feature")
        pm.Deterministic("mean", mean, dims=("regime", "feature"))
        pm.Deterministic("sigma", sigma, dims=("regime", "feature"))
        return log_density(observations, mean, sigma, None, nu)

    def _parameters(self, observations: Observations):
        """(mean, sigma), each (K, D) in standardised units, from the group hierarchy.

        Regime responses live in the (K-1)-dimensional zero-sum subspace; ``basis``
        (K, K-1) maps coordinates to responses, and a Normal(0, s) vector of coordinates
        is a ZeroSumNormal(s) response.
        """
        structure = self.structure
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

    def starts(
        self, start: EMEstimate, observations: Observations, n_chains: int, seed: int
    ) -> list[dict[str, np.ndarray]]:
        """The start, perturbed as Gaussian emissions' are, decomposed into levels, group
        responses, spreads and the members' coordinates (see :func:`_hierarchy`)."""
        structure = self.structure
        points: list[dict[str, np.ndarray]] = [{} for _ in range(n_chains)]
        if self.emission == "student-t":
            for point in points:
                point["nu"] = np.full(observations.n_features, START_NU)
        rng = np.random.default_rng(seed)
        anchor_group = int(structure.member[structure.anchor])
        for point in points:
            mean = start.mean + 0.05 * rng.standard_normal(start.mean.shape)
            log_sigma = np.log(start.sigma) + 0.05 * rng.standard_normal(start.sigma.shape)
            parts = decompose(mean, log_sigma, structure)
            point.update(level=parts.level, log_level=parts.log_level)
            if structure.ordered_anchor:
                point["anchor_group_gaps"] = parts.anchor_gaps
            for name in ("mean", "log_scale"):
                fixed = {anchor_group} if name == "mean" and structure.ordered_anchor else set()
                point.update(_start_coordinates(name, parts, structure, fixed))
        return points

    def log_emission_at(self, parameters: dict, observations: Observations) -> np.ndarray:
        """(T, K) log densities at one point, read through the emission parameters
        (``mean``, ``sigma``, ``nu``), which every parameterisation of this model shares:
        the signs and the centring are chosen from the data, so a point (e.g. a
        simulation's truth) may come from another parameterisation than the last fit's."""
        nu = parameters.get("nu")
        return log_density(
            observations,
            pt.as_tensor(parameters["mean"]),
            pt.as_tensor(parameters["sigma"]),
            None,
            None if nu is None else pt.as_tensor(nu),
        ).eval()

    def simulate(
        self, parameters: dict[str, np.ndarray], states: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(T, D) observations (model units) along ``states`` (T,) at one parameter draw."""
        return sample_emissions(
            rng, states, parameters["mean"], parameters["sigma"], None, parameters.get("nu")
        )

    def reported(self, posterior: xr.Dataset, observations: Observations):
        """(variables, dims, coords): the asset level (features' units, as Gaussian
        emissions report it) plus the group level in standardised units: group_mean,
        group_log_scale (regime, group) and the spreads group_mean_sd,
        group_log_scale_sd (pooled_group)."""
        reported, dims, coords = GaussianEmissions(self.n_regimes, self.emission).reported(
            posterior, observations
        )
        structure = self.structure
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

    def annotate(self, result: RegimeResult, posterior: xr.Dataset, observations) -> None:
        """The pooling tables, beside any transition component's, in
        ``fit_info["model_summary"]``."""
        result.fit_info.setdefault("model_summary", {}).update(
            pooling_summary(posterior, observations, self.structure)
        )


def _start_coordinates(
    name: str, parts: Decomposition, structure: GroupStructure, fixed: set[int]
) -> dict[str, np.ndarray]:
    """The free variables of one kind of response (see :func:`_hierarchy`) at the
    decomposed start: lone groups' coordinates, and per pooled group its members'
    average, spread and deviation coordinates, the group at its conditional mean."""
    lone = structure.lone_groups(fixed)
    point = {f"group_{name}_coord": parts.group[name][lone]} if lone else {}
    if not len(structure.pooled):
        return point
    layout = PooledLayout.of(structure, name, fixed)
    members = parts.member[name]  # (D, K-1)
    average = np.stack([members[structure.member == g].mean(axis=0) for g in structure.pooled])
    coordinates = layout.basis.T @ members[structure.pooled_features]  # (C, K-1)
    spread = np.array(
        [
            max(
                np.sqrt(np.mean(coordinates[layout.group_of_coordinate == p] ** 2)),
                MIN_START_SPREAD,
            )
            for p in range(len(structure.pooled))
        ]
    )
    point[f"group_{name}_sd"] = spread
    free = ~layout.fixed
    if free.any():
        point[f"member_{name}_average"] = average[free]
        point[f"group_{name}_offset"] = np.zeros_like(average[free])
    if layout.fixed.any():
        group = parts.group[name][structure.pooled[layout.fixed]]
        scale = (spread / np.sqrt(layout.sizes))[layout.fixed][:, None]
        point[f"member_{name}_average_raw"] = (average[layout.fixed] - group) / scale
    scale = spread[layout.group_of_coordinate][:, None]
    point[f"member_{name}_deviation"] = coordinates / scale ** (1.0 - layout.centring[:, None])
    return point


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

    The prior: a group's coordinates are Normal(0, ``prior_sd``) (or given in ``fixed``);
    a member of a pooled group is Normal(group, spread), spread ~ Gamma(SPREAD_ALPHA,
    SPREAD_BETA); a lone member's coordinates are its group's. What is sampled, per pooled
    group of n members and per coordinate:

    - the members' average, Normal(0, sqrt(prior_sd^2 + spread^2 / n)), the group
      integrated out. The data pin the average down; sampled as group + spread * raw,
      the members traded the group off against their raws along a ridge whose slope is
      the spread, and that ridge set NUTS's step size (4x smaller than the non-pooled
      model's on the weekly benchmark);
    - the members' deviations from their average, n-1 coordinates in an orthonormal
      zero-sum basis, Normal(0, spread) each, partially centred with the group's weight
      from ``structure.centring`` (see :func:`_deviation_coordinates`);
    - the group given its members, Normal(c, s) with c, s from the average and the spread,
      as c + s * offset: the offset is a standard Normal independent of everything else.

    A fixed group (the ordered anchor's mean) is not integrated out: its members' average
    is group + spread / sqrt(n) * raw.
    """
    k = n_regimes - 1
    groups: list = [fixed.get(g) for g in range(len(structure.names))]
    lone = structure.lone_groups(fixed)
    if lone:
        coordinates = pm.Normal(f"group_{name}_coord", 0.0, prior_sd, shape=(len(lone), k))
        for row, g in enumerate(lone):
            groups[g] = coordinates[row]
    if not len(structure.pooled):
        stacked = pt.stack(groups)
        return stacked, stacked[structure.member]
    layout = PooledLayout.of(structure, name, set(fixed))
    spread = pm.Gamma(f"group_{name}_sd", alpha=SPREAD_ALPHA, beta=SPREAD_BETA, dims="pooled_group")
    size = layout.sizes.astype(float)
    averages = [None] * len(structure.pooled)
    free = np.flatnonzero(~layout.fixed)
    if len(free):
        n, s = size[free][:, None], spread[free][:, None]
        average = pm.Normal(
            f"member_{name}_average", 0.0, pt.sqrt(prior_sd**2 + s**2 / n), shape=(len(free), k)
        )
        precision = n / s**2 + 1.0 / prior_sd**2  # of the group given its members
        offset = pm.Normal(f"group_{name}_offset", 0.0, 1.0, shape=(len(free), k))
        group = n * average / s**2 / precision + offset / pt.sqrt(precision)
        for row, position in enumerate(free):
            groups[int(structure.pooled[position])] = group[row]
            averages[position] = average[row]
    anchored = np.flatnonzero(layout.fixed)
    if len(anchored):
        raw = pm.Normal(f"member_{name}_average_raw", 0.0, 1.0, shape=(len(anchored), k))
        for row, position in enumerate(anchored):
            g = int(structure.pooled[position])
            averages[position] = groups[g] + spread[position] / np.sqrt(size[position]) * raw[row]
    stacked = pt.stack(groups)
    member = stacked[structure.member]
    rows = pt.stack(averages)[structure.pooled_position()]  # (P, K-1) per pooled feature
    deviations = pt.as_tensor(layout.basis) @ _deviation_coordinates(name, layout, spread, k)
    member = pt.set_subtensor(member[structure.pooled_features], rows + deviations)
    return stacked, member


def _deviation_coordinates(
    name: str, layout: PooledLayout, spread: pt.TensorVariable, k: int
) -> pt.TensorVariable:
    """(C, K-1) zero-sum coordinates of the pooled features' deviations from their
    group's average, Normal(0, spread) each, partially centred: spread^(1 - w) * x with
    x ~ Normal(0, spread^w), w the coordinate's centring weight."""
    scale = spread[layout.group_of_coordinate][:, None]
    weight = pt.as_tensor(layout.centring[:, None])
    sampled = pm.Normal(
        f"member_{name}_deviation", 0.0, scale**weight, shape=(len(layout.centring), k)
    )
    return scale ** (1.0 - weight) * sampled


@dataclass(frozen=True)
class PooledLayout:
    """How one kind of response of the pooled groups is sampled. Per pooled group (P
    groups, in ``structure.pooled`` order): ``sizes`` (P,) members, ``fixed`` (P,) True
    for a group given from outside (the ordered anchor's mean). Per deviation coordinate
    (C = sum(n - 1)): ``group_of_coordinate`` (C,) its group's position, and
    ``centring`` (C,) its group's centring weight. ``basis`` (F, C)
    maps deviation coordinates to the pooled features (``structure.pooled_features``
    order): block-diagonal, each group's block an orthonormal zero-sum basis."""

    sizes: np.ndarray
    fixed: np.ndarray
    group_of_coordinate: np.ndarray
    centring: np.ndarray
    basis: np.ndarray

    @classmethod
    def of(cls, structure: GroupStructure, name: str, fixed: set[int]) -> PooledLayout:
        features = structure.pooled_features
        sizes = np.array([np.sum(structure.member == g) for g in structure.pooled])
        basis = np.zeros((len(features), int(np.sum(sizes - 1))))
        group_of_coordinate = np.repeat(np.arange(len(sizes)), sizes - 1)
        column = 0
        for position, g in enumerate(structure.pooled):
            rows = np.flatnonzero(structure.member[features] == g)
            basis[np.ix_(rows, range(column, column + sizes[position] - 1))] = zero_sum_basis(
                sizes[position]
            )
            column += sizes[position] - 1
        centring = structure.centring[name][structure.pooled][group_of_coordinate]
        is_fixed = np.array([int(g) in fixed for g in structure.pooled])
        return cls(sizes, is_fixed, group_of_coordinate, centring, basis)


def _centring(
    start: EMEstimate, structure: GroupStructure, dates: np.ndarray
) -> dict[str, np.ndarray]:
    """Per kind of response ("mean", "log_scale"), (G,) centring weights w in [0, 1] of
    the pooled groups' deviations (1: centred, 0: non-centred), w = s^2 / (s^2 + v) for
    v the members' squared standard error and s^2 the spread, its moment estimate at the
    start less the noise, at least the prior's mode squared. Given s, w makes the
    sampled coordinate's conditional posterior width independent of the spread to first
    order (Gorinova et al. 2020, variationally inferred parameterisation; Papaspiliopoulos
    et al. 2007): members the data pin down are near centred, members they leave to the
    prior near non-centred. The posterior is the same for every w; only the sampler's
    geometry changes. ``dates`` (D, K): expected observed dates of each feature in each
    regime."""
    decomposition = decompose(start.mean, np.log(start.sigma), structure)
    squared_se = {
        "mean": np.mean(start.sigma.T**2 / dates, axis=1),
        "log_scale": np.mean(0.5 / dates, axis=1),
    }  # (D,), per coordinate of an orthonormal zero-sum basis
    prior_mode = (SPREAD_ALPHA - 1.0) / SPREAD_BETA
    centring = {}
    for name, se2 in squared_se.items():
        members = decomposition.member[name]
        weights = np.zeros(len(structure.names))
        for g in structure.pooled:
            own = members[structure.member == g]
            # Sum of squared deviations / (n - 1) per coordinate: spread^2 + noise.
            spread2 = np.sum((own - own.mean(axis=0)) ** 2) / ((len(own) - 1) * own.shape[1])
            noise = np.mean(se2[structure.member == g])
            s2 = max(spread2 - noise, prior_mode**2)
            # Rounded: the weights are constants of the compiled graph, and refits on
            # slightly different data (a walk-forward) then share one compiled graph.
            weights[g] = round(s2 / (s2 + noise), 1)
        centring[name] = weights
    return centring


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
