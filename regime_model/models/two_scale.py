"""The two-scale family (issue 20): a slow liquidity regime on a coarse calendar (months)
that drives the fast risk regimes of each market (small caps, crypto) on the fine one
(weeks or days).

The model, its identification and what it reports are in :mod:`~regime_model.models.
two_scale_chains` (the composition) and :mod:`~regime_model.models.two_scale_report`
(the tables). The family adds its options, the coarse observations and the start:

* the ``coarse_columns`` (liquidity, credit) are kept on the last fine date of each coarse
  period that has ended, with the value known then, and are missing elsewhere
  (:meth:`~regime_model.data.features.FeatureSet.with_coarse`): a feature file built with
  ``regime data build --coarse-columns`` or a plain one give the same model;
* the maximum-likelihood start fits the coarse chain on the coarse observations alone and
  each market's chain on its own columns (hmmlearn EM).
"""

from __future__ import annotations

from typing import Any

from regime_model.choices import COARSE_FREQUENCIES, COARSE_ORDERS, FINE_ENTRIES
from regime_model.data.features import FeatureSet, validated
from regime_model.models.bayesian_hmm import BayesianHMM
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.observations import Observations
from regime_model.models.two_scale_chains import TwoScaleChains, TwoScaleStart
from regime_model.models.two_scale_report import model_summary, scale_probabilities

__all__ = ["TwoScaleHMM", "model_summary", "scale_probabilities"]

MAX_STATES = 36  # K_c K^M product states: the kernel is O(T S^2)


class TwoScaleHMM(BayesianHMM):
    """A coarse regime chain driving one fine chain per market.

    Parameters (besides :class:`BayesianHMM`'s emission and sampler options)
    ----------
    n_regimes: K, each market's fine regimes (2 or 3).
    coarse_columns: the slow features (required), observed once per coarse period.
    coarse_freq: the coarse calendar, "M" (months), "Q" or "W".
    coarse_regimes: K_c (2 or 3).
    coarse_anchor: the coarse column its regimes are named on (default: the first).
    coarse_order: "mean" (the coarse regime with the highest anchor mean is risk_on: a
        liquidity or flow measure) or "inverse" (the lowest: a spread, volatility).
    markets: the feature groups that each get a fine chain (default: every group of a
        non-coarse column, in order).
    fine_entry: "carry" (the default: at a period's first date each fine chain moves on
        from where it was, by the new coarse regime's matrix) or "restart" (fHMM's: it
        starts afresh from its entry law under the new coarse regime). On the real weekly
        design the two forms predict alike, and only carry passes its diagnostics
        (docs/experiments.md).
    coarse_stickiness: Dirichlet weight on staying in a coarse regime.
    """

    name = "two-scale"
    identifications = ("relabelled",)
    initials = ("stationary",)
    autoregressive_allowed = False

    def __init__(
        self,
        n_regimes: int = 2,
        *,
        coarse_columns: list[str] | None = None,
        coarse_freq: str = "M",
        coarse_regimes: int = 2,
        coarse_anchor: str | None = None,
        coarse_order: str = "mean",
        markets: list[str] | None = None,
        fine_entry: str = "carry",
        coarse_stickiness: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(n_regimes, **options)
        if isinstance(coarse_columns, str) or isinstance(markets, str):
            raise ValueError("coarse_columns and markets are lists of names, not one string")
        if not coarse_columns:
            raise ValueError(
                "the two-scale model needs coarse columns (the slow liquidity features): "
                "coarse_columns=[...] or --coarse-columns COL,COL"
            )
        for value, choices, name in (
            (coarse_freq, COARSE_FREQUENCIES, "coarse_freq"),
            (coarse_order, COARSE_ORDERS, "coarse_order"),
            (fine_entry, FINE_ENTRIES, "fine_entry"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        for value, name in ((n_regimes, "n_regimes"), (coarse_regimes, "coarse_regimes")):
            if value not in (2, 3):
                raise ValueError(f"the two-scale model takes {name} 2 or 3, got {value!r}")
        if (self.covariance, self.switching) != ("diag", "both"):
            raise ValueError(
                "the two-scale model's emissions have diagonal covariance and switch in "
                "means and scales (covariance='diag', switching='both')"
            )
        if not coarse_stickiness > 0:
            raise ValueError(f"coarse_stickiness must be > 0, got {coarse_stickiness!r}")
        self.coarse_columns = list(coarse_columns)
        self.coarse_freq = coarse_freq
        self.coarse_regimes = coarse_regimes
        self.coarse_anchor = coarse_anchor
        self.coarse_order = coarse_order
        self.markets = list(markets) if markets else None
        self.fine_entry = fine_entry
        self.coarse_stickiness = float(coarse_stickiness)

    def observations(
        self,
        features: FeatureSet,
        columns: list[str] | None = None,
        holdout_start: str | None = None,
    ) -> Observations:
        """The model's inputs, with the coarse columns kept on the last date of each ended
        coarse period only (see the module docstring)."""
        placed = validated(features).with_coarse(self.coarse_columns, self.coarse_freq)
        return super().observations(placed, columns, holdout_start)

    def market_groups(self, observations: Observations) -> list[str]:
        """``markets``, or every group of a non-coarse column, in order of appearance."""
        if self.markets:
            return list(self.markets)
        fine = [c for c in observations.columns if c not in self.coarse_columns]
        return list(dict.fromkeys(observations.groups[c] for c in fine))

    def components(self, observations: Observations, start: Any = None) -> TwoScaleChains:
        """The coarse chain's and each market's Gaussian (or Student-t) emissions with the
        coarse-driven transitions (:class:`~regime_model.models.two_scale_chains.
        TwoScaleChains`)."""
        markets = self.market_groups(observations)
        n_states = self.coarse_regimes * self.n_regimes ** len(markets)
        if n_states > MAX_STATES:
            raise ValueError(
                f"{self.coarse_regimes} coarse regimes and {self.n_regimes} fine regimes in "
                f"each of {len(markets)} markets make {n_states} states, more than "
                f"{MAX_STATES}: fewer regimes or markets"
            )
        return TwoScaleChains(
            GaussianEmissions(self.coarse_regimes, self.emission),
            GaussianEmissions(self.n_regimes, self.emission),
            self.coarse_columns,
            self.coarse_freq,
            markets,
            self.coarse_anchor,
            self.coarse_order,
            self.order_by,
            self.stickiness,
            self.coarse_stickiness,
            self.fine_entry,
        )

    def initial_estimate(self, observations: Observations) -> TwoScaleStart:
        """EM fits of the coarse chain on its observations and of each market's chain."""
        composition = self.components(observations)
        coarse, views = composition.views(observations)
        return TwoScaleStart(
            self.em_estimate(composition.coarse_rows(coarse), self.coarse_regimes, "mean"),
            [self.em_estimate(view, self.n_regimes, self.order_by) for view in views],
        )
