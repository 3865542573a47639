"""The Bayesian HMM family: Gaussian or Student-t emissions (diagonal or full covariance)
composed with sticky Dirichlet transitions, or covariate-logit ones when ``covariates``
are given, on the compiled forward-backward likelihood (:class:`~regime_model.models.
model.RegimeHMM`).

Identifiability: the likelihood does not change when regimes are permuted. The default,
``identification="relabelled"``, draws every regime's parameters alike (an exchangeable
prior, so the sampler never meets an ordering constraint) and afterwards gives every
draw consistent labels by matching its regime probabilities to a common pivot (Stephens
2000, :mod:`regime_model.models.relabelling`); only then are the regimes named, risk_off
to risk_on, by the posterior mean of one *anchor* feature's mean (default) or volatility.
``"ordered"`` builds the order into the parameterisation instead, anchored on the
best-identified regime: risk_on has a free anchor mean and every lower regime sits a
positive gap below it (or, ordering by volatility, risk_on has the smallest scale and
each other regime a positive log-gap above). Chains start from the EM fit, perturbed, so
they do not begin in a swapped mode.
"""

from __future__ import annotations

from typing import Any

from regime_model.choices import COVARIANCES, EMISSIONS, SWITCHING
from regime_model.models.composition import Regimes
from regime_model.models.em_hmm import EMHMM, EMEstimate
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.model import RegimeHMM
from regime_model.models.observations import Observations
from regime_model.models.transitions import CovariateLogit, StickyDirichlet

__all__ = ["BayesianHMM"]


class BayesianHMM(RegimeHMM):
    """Bayesian HMM over the columns of a feature set.

    Parameters (besides :class:`~regime_model.models.model.RegimeHMM`'s)
    ----------
    n_regimes: K, 2..5.
    emission: "gaussian" or "student-t" (fat tails, one degrees-of-freedom per feature).
    switching: "both" (regime means and scales), "mean" (one shared covariance) or
        "variance" (one common mean).
    covariance: "diag" or "full" (LKJ(2) prior on each regime's correlation matrix).
    anchor: feature the regimes are named on (default: the first equity return).
    order_by: "mean" or "volatility" (default: mean, or volatility when switching="variance").
    (``covariates`` belong to the families that take them: tvtp, hierarchical, leadlag.)
    """

    name = "bayes-hmm"

    def __init__(
        self,
        n_regimes: int = 2,
        emission: str = "gaussian",
        switching: str = "both",
        covariance: str = "diag",
        anchor: str | None = None,
        order_by: str | None = None,
        **options: Any,
    ) -> None:
        for value, choices, name in (
            (emission, EMISSIONS, "emission"),
            (switching, SWITCHING, "switching"),
            (covariance, COVARIANCES, "covariance"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        order_by = order_by or ("volatility" if switching == "variance" else "mean")
        if (order_by, switching) in (("mean", "variance"), ("volatility", "mean")):
            raise ValueError(f"cannot order by {order_by} when only the other one switches")
        super().__init__(n_regimes, anchor=anchor, order_by=order_by, **options)
        self.emission = emission
        self.switching = switching
        self.covariance = covariance

    def initial_estimate(self, observations: Observations) -> EMEstimate:
        """A maximum-likelihood fit in the model's regime order, to start chains from."""
        return EMHMM(
            self.n_regimes,
            n_restarts=4,
            anchor=observations.columns[observations.anchor],
            order_by=self.order_by,
            seed=self.seed,
        ).estimate(observations)

    def components(self, observations: Observations, start: EMEstimate) -> Regimes:
        """Gaussian emissions (their anchor's means or scales ordered under
        ``identification="ordered"``) and this family's transitions."""
        return Regimes(self.emission_component(), self.transition_component(), self.order_by)

    def emission_component(self) -> GaussianEmissions:
        ordered = self.order_by if self.identification == "ordered" else None
        return GaussianEmissions(
            self.n_regimes, self.emission, self.switching, self.covariance, ordered
        )

    def transition_component(self) -> StickyDirichlet | CovariateLogit:
        """Covariate-driven when ``covariates`` are given, sticky Dirichlet otherwise."""
        if self.covariates:
            return CovariateLogit(
                self.n_regimes,
                self.stickiness,
                self.initial,
                self.covariates,
                self.coefficient_scale,
            )
        return StickyDirichlet(self.n_regimes, self.stickiness, self.initial)
