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

from regime_model.choices import AR_FORMS, AR_MATRICES, COVARIANCES, EMISSIONS, SWITCHING
from regime_model.models.ar_emissions import AutoregressiveEmissions
from regime_model.models.composition import Regimes
from regime_model.models.em_hmm import EMHMM, EMEstimate, extended_to_features, sparse_features
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.model import RegimeHMM
from regime_model.models.observations import Observations
from regime_model.models.transitions import CovariateLogit, StickyDirichlet

__all__ = ["BayesianHMM"]

# The mean-adjusted form's kernel is O(T S^2) in S = K^(p+1) regime histories: 64 is
# K = 2 with p = 5, or K = 4 with p = 2.
MAX_HISTORIES = 64


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
    ar_order: p >= 1 gives the ``ar_columns`` (default: every feature) regime-switching AR(p)
        dynamics (:mod:`regime_model.models.ar_emissions`); 0, i.i.d.
    ar_form: "intercept" (the regime sets the intercept; K states) or "mean-adjusted"
        (Hamilton's form: the regime sets the level the series reverts to; the kernel runs
        on the K^(p+1) regime histories, at most MAX_HISTORIES).
    switching_ar: the AR coefficients differ between regimes (default: shared).
    ar_matrix: "diagonal" (each AR feature on its own lags) or "full" (a VAR(1) among the
        ``ar_columns``: each one's prediction uses all their lags; ar_order 1).
    (``covariates`` belong to the families that take them: tvtp, hierarchical, leadlag.)
    """

    name = "bayes-hmm"
    autoregressive_allowed = True  # whether the emissions can take AR(p) dynamics

    def __init__(
        self,
        n_regimes: int = 2,
        emission: str = "gaussian",
        switching: str = "both",
        covariance: str = "diag",
        anchor: str | None = None,
        order_by: str | None = None,
        ar_order: int = 0,
        ar_columns: list[str] | None = None,
        ar_form: str = "intercept",
        switching_ar: bool = False,
        ar_matrix: str = "diagonal",
        **options: Any,
    ) -> None:
        for value, choices, name in (
            (emission, EMISSIONS, "emission"),
            (switching, SWITCHING, "switching"),
            (covariance, COVARIANCES, "covariance"),
            (ar_form, AR_FORMS, "ar_form"),
            (ar_matrix, AR_MATRICES, "ar_matrix"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        order_by = order_by or ("volatility" if switching == "variance" else "mean")
        if (order_by, switching) in (("mean", "variance"), ("volatility", "mean")):
            raise ValueError(f"cannot order by {order_by} when only the other one switches")
        autoregressive = (
            ar_order
            or ar_columns
            or switching_ar
            or ar_form != "intercept"
            or ar_matrix != "diagonal"
        )
        if autoregressive and not self.autoregressive_allowed:
            raise ValueError(
                f"the {self.name} model's emissions are not autoregressive (ar_order, "
                "ar_columns, ar_form, ar_matrix and switching_ar are for bayes-hmm and tvtp)"
            )
        needing_order = {
            "switching_ar": switching_ar,
            "ar_columns": ar_columns,
            "ar_form": ar_form != "intercept",
            "ar_matrix": ar_matrix != "diagonal",
        }
        given = [name for name, value in needing_order.items() if value]
        if given and not ar_order:
            raise ValueError(f"{given[0]} needs ar_order >= 1")
        if ar_matrix == "full" and ar_order > 1:
            raise ValueError(f"ar_matrix='full' is a VAR(1): ar_order must be 1, not {ar_order}")
        if ar_order and (emission, covariance) != ("gaussian", "diag"):
            raise ValueError(
                "autoregressive emissions (ar_order > 0) are Gaussian with a diagonal "
                f"covariance, not emission={emission!r}, covariance={covariance!r}"
            )
        super().__init__(n_regimes, anchor=anchor, order_by=order_by, **options)
        # After the shared checks, so n_regimes is known to be an integer from 2 to 5.
        if ar_form == "mean-adjusted" and n_regimes ** (ar_order + 1) > MAX_HISTORIES:
            raise ValueError(
                f"the mean-adjusted form runs on n_regimes^(ar_order + 1) = "
                f"{n_regimes ** (ar_order + 1)} regime histories, more than {MAX_HISTORIES}: "
                "lower ar_order or use ar_form='intercept'"
            )
        self.emission = emission
        self.switching = switching
        self.covariance = covariance
        self.ar_order = ar_order
        self.ar_columns = ar_columns
        self.ar_form = ar_form
        self.switching_ar = switching_ar
        self.ar_matrix = ar_matrix

    def initial_estimate(self, observations: Observations) -> EMEstimate:
        """A maximum-likelihood fit in the model's regime order, to start chains from."""
        return self.em_estimate(observations, self.n_regimes, self.order_by)

    def em_estimate(self, observations: Observations, n_regimes: int, order_by: str) -> EMEstimate:
        """An EM fit of ``n_regimes`` regimes ordered by ``order_by`` on the anchor.

        EM runs on complete dates only, so with diagonal covariance the features observed
        on few dates (a late-starting asset, a monthly one) are left out of it
        (:func:`~regime_model.models.em_hmm.sparse_features`) and their regime moments
        taken from their own dates, weighted by the fit's regime probabilities."""
        anchor = observations.columns[observations.anchor]
        em = EMHMM(n_regimes, n_restarts=4, anchor=anchor, order_by=order_by, seed=self.seed)
        sparse = sparse_features(observations)
        if self.covariance == "full" or not sparse.any():
            return em.estimate(observations)
        kept = [c for c, drop in zip(observations.columns, sparse, strict=True) if not drop]
        subset = observations.view(kept, anchor)
        return extended_to_features(em.estimate(subset), subset, observations)

    def components(self, observations: Observations, start: EMEstimate) -> Regimes:
        """Gaussian emissions (their anchor's means or scales ordered under
        ``identification="ordered"``) and this family's transitions."""
        return Regimes(
            self.emission_component(observations), self.transition_component(), self.order_by
        )

    def emission_component(
        self, observations: Observations | None = None
    ) -> GaussianEmissions | AutoregressiveEmissions:
        """Gaussian or Student-t emissions; with ``ar_order``, AR(p) dynamics on the
        ``ar_columns`` of ``observations`` (default: every feature)."""
        ordered = self.order_by if self.identification == "ordered" else None
        if not self.ar_order:
            return GaussianEmissions(
                self.n_regimes, self.emission, self.switching, self.covariance, ordered
            )
        columns = observations.columns
        names = self.ar_columns or columns
        unknown = [name for name in names if name not in columns]
        if unknown:
            raise ValueError(
                f"ar_columns {', '.join(unknown)} are not among the features ({', '.join(columns)})"
            )
        return AutoregressiveEmissions(
            self.n_regimes,
            self.ar_order,
            [columns.index(name) for name in names],
            self.switching_ar,
            self.switching,
            ordered,
            self.ar_form,
            self.ar_matrix,
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
