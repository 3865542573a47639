"""The lead-lag family: two regime chains (say equity and crypto), the lagging one's
switching odds set by the leading one's regime L steps earlier, exact as one HMM on the
product state space.

The model, its coupling, the per-date quantities and the identification are described in
:mod:`~regime_model.models.coupled_chains`, whose :class:`~regime_model.models.
coupled_chains.CoupledChains` composition this family returns; its reports (each chain's
probabilities, the coupling tables, the forecast, the posterior over lags) are in
:mod:`~regime_model.models.leadlag_report`. The family adds its options and the start:
an EM fit of each chain on its own columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regime_model.model_options import check_option_values, normalise_lags
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.coupled_chains import COUPLING_SD, CoupledChains
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.leadlag_report import (
    chain_regime_probabilities,
    lag_posterior,
    model_summary,
)
from regime_model.models.observations import Observations
from regime_model.models.product_chain import (
    chain_anchor,
    coupled_log_transition,
    lead_lag_date_quantities,
    product_log_emission,
    product_log_transition,
    state_names,
)

__all__ = [
    "COUPLING_SD",
    "LeadLagHMM",
    "chain_anchor",
    "chain_regime_probabilities",
    "coupled_log_transition",
    "lag_posterior",
    "lead_lag_date_quantities",
    "model_summary",
    "product_log_emission",
    "product_log_transition",
    "state_names",
]

MAX_CHAIN_REGIMES = 3


class LeadLagHMM(BayesianHMM):
    """Two coupled regime chains (lead and lag group columns) on the product state space.

    Parameters (besides :class:`BayesianHMM`'s, which apply to both chains)
    ----------
    n_regimes: K per chain, 2 or 3 (K^2 product states).
    lead_group / lag_group: the feature groups forming the leading and the lagging chain;
        every column must belong to one of them.
    lag: L >= 0, in steps of the data's calendar: the lag chain's transitions depend on
        the lead regime L steps earlier. Several values (a list): the lag is unknown, one
        of them with equal prior probability, summed out of the likelihood; the run
        reports P(L | data) and the couplings given each lag
        (:mod:`~regime_model.models.lag_mixture`).
    anchor / lag_anchor: columns ordering each chain's regimes (default: the chain's first
        ``*_return`` column, else its first column).
    coupling_sd: prior sd of the two couplings (log odds ratios).
    covariates: columns driving the *lead* chain's transitions (covariate logit, lagged
        one step, as in tvtp); the lag chain follows the lead through the coupling.
    """

    name = "leadlag"
    # The product chain's initial law is the stationary one of its average matrix, or a
    # Dirichlet; "stationary-first" (the first date's matrix) is not built for it.
    initials = ("stationary", "dirichlet")
    covariates_allowed = True  # covariate-driven transitions of the lead chain
    autoregressive_allowed = False

    def __init__(
        self,
        n_regimes: int = 2,
        *,
        lead_group: str = "equity",
        lag_group: str = "crypto",
        lag: int | Sequence[int] = 1,
        lag_anchor: str | None = None,
        coupling_sd: float = COUPLING_SD,
        **options: Any,
    ) -> None:
        super().__init__(n_regimes, **options)
        if not 2 <= n_regimes <= MAX_CHAIN_REGIMES:
            raise ValueError(
                f"the lead-lag model supports 2..{MAX_CHAIN_REGIMES} regimes per chain "
                f"({MAX_CHAIN_REGIMES}^2 product states), got {n_regimes}"
            )
        check_option_values({"lag": lag, "coupling_sd": coupling_sd})
        if lead_group == lag_group:
            raise ValueError(f"lead and lag groups must differ, both are {lead_group!r}")
        self.lead_group = lead_group
        self.lag_group = lag_group
        lags = normalise_lags(lag)
        self.lag = lags[0] if len(lags) == 1 else list(lags)
        if len(lags) > 1 and options.get("covariates"):
            raise ValueError(
                "a marginalised lag (several values) does not take covariates (their "
                "alignment depends on the lag): give one lag"
            )
        self.lag_anchor = lag_anchor
        self.coupling_sd = coupling_sd

    def components(self, observations: Observations, start: Any = None) -> CoupledChains:
        """Each chain's Gaussian emissions, sticky (or covariate-driven) lead transitions
        and the coupled lag transitions on the product state space."""
        return CoupledChains(
            self.emission_component(),
            self.n_regimes,
            self.lead_group,
            self.lag_group,
            self.lag,
            self.anchor,
            self.lag_anchor,
            self.order_by,
            self.stickiness,
            self.initial,
            self.coupling_sd,
            self.transition_component() if self.covariates else None,
        )

    def initial_estimate(self, observations: Observations) -> tuple[EMEstimate, EMEstimate]:
        """A maximum-likelihood fit of each chain on its own columns (no coupling)."""
        lead, lag = self.components(observations).chains(observations)
        return super().initial_estimate(lead), super().initial_estimate(lag)
