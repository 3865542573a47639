"""The hierarchical family: one regime path shared by all features, each asset's regime
responses pooled within its feature group (equity, crypto, breadth, flows, macro).

A composition (:class:`~regime_model.models.composition.Regimes`) of the pooled
emission component (:class:`~regime_model.models.pooled_emissions.PooledEmissions`, whose
docstring gives the model, its priors and how it is sampled) with sticky Dirichlet
transitions, or covariate-logit ones when ``covariates`` are given. What the family adds
is the start: an EM fit on the features with long histories, then the maximum a
posteriori point of the non-pooled model, from which each feature's response sign, the
level weights and the parameterisation of each group are fixed before sampling
(:func:`~regime_model.models.pooled_emissions.group_structure`).

Identification: relabelled by default (exchangeable group responses, plain-average
levels), or ordered (the anchor group's mean responses ordered); see
:mod:`~regime_model.models.pooled_emissions`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.composition import Regimes
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.observations import Observations
from regime_model.models.pooled_emissions import (
    GroupStructure,
    PooledEmissions,
    decompose,
    feature_groups,
    group_structure,
    zero_sum_basis,
)
from regime_model.models.pooling_report import pooling_summary

__all__ = [
    "GroupStructure",
    "HierarchicalHMM",
    "decompose",
    "feature_groups",
    "pooling_summary",
    "zero_sum_basis",
]


class HierarchicalHMM(BayesianHMM):
    """Bayesian HMM whose asset parameters are pooled within groups (see module docstring).

    Takes BayesianHMM's parameters; only ``switching="both"``, ``covariance="diag"`` and
    ``order_by="mean"`` are supported (Gaussian or Student-t margins). ``signs``: optional
    {column: +1 or -1} fixing the direction in which a feature responds to risk_on
    (default: read off the start, see :meth:`initial_estimate`). ``target_accept``
    defaults to 0.98, not 0.9: the spreads of two- or three-member groups have posteriors
    whose tails (where one parameterisation or the other is strongly curved) gave a
    divergent transition or two per 4,000 draws at 0.95 on the weekly data; none at 0.98
    in three seeds.
    """

    name = "hierarchical"
    covariates_allowed = True  # covariate-driven transitions on the pooled emissions
    autoregressive_allowed = False

    def __init__(
        self,
        n_regimes: int = 2,
        *,
        signs: dict[str, int] | None = None,
        target_accept: float = 0.98,
        **options: Any,
    ) -> None:
        unsupported = {"switching": "both", "covariance": "diag", "order_by": "mean"}
        for option, supported in unsupported.items():
            value = options.pop(option, None)
            if value not in (None, supported):
                raise ValueError(
                    f"the hierarchical model pools regime-specific means and scales and orders "
                    f"regimes by the anchor group's mean response: {option} must be "
                    f"{supported!r}, not {value!r}"
                )
        super().__init__(n_regimes, target_accept=target_accept, order_by="mean", **options)
        bad = {column: sign for column, sign in (signs or {}).items() if sign not in (1, -1)}
        if bad:
            raise ValueError(f"signs must be +1 or -1, got {bad}")
        self.signs = dict(signs) if signs else None

    def calibration_options(self, columns: list[str]) -> dict[str, Any]:
        """Besides the features' own units, fixed response signs: the model reads them
        off the data unless they are given (+1, the prior's own orientation; the
        responses themselves still take either sign)."""
        return {
            **super().calibration_options(columns),
            "signs": self.signs or dict.fromkeys(columns, 1),
        }

    def initial_estimate(self, observations: Observations) -> EMEstimate:
        """The start of the chains, which also fixes each feature's response sign.

        From :class:`BayesianHMM`'s EM start (on the features with long histories, the
        others' regime moments from their own dates), the maximum a posteriori point of
        the non-pooled BayesianHMM on all features (missing values masked) gives the
        start: signs read off a fit whose regimes are those of the full data, not of an
        EM on a subset.
        """
        self._check_signs(observations)
        return self._unpooled_map(observations, super().initial_estimate(observations))

    def components(self, observations: Observations, start: EMEstimate) -> Regimes:
        """Pooled emissions on the group structure the start fixes, and this family's
        transitions."""
        structure = self.group_structure(observations, start)
        emissions = PooledEmissions(structure, self.n_regimes, self.emission)
        return Regimes(emissions, self.transition_component(), self.order_by)

    def group_structure(self, observations: Observations, start: EMEstimate) -> GroupStructure:
        """Groups, signs (``signs``, else from ``start``), level weights, centring."""
        return group_structure(
            observations, start, self.signs, ordered=self.identification == "ordered"
        )

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
        composition = pilot.components(observations, start)
        model, _ = pilot._build(composition, observations)
        point = pilot._sample(
            model, composition.starts(start, observations, 1, pilot.seed)
        ).posterior
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
