"""The two-scale composition (issue 20): a slow coarse chain (a liquidity regime, one per
month) whose state drives one fast fine chain per market (the weekly or daily risk regimes
of small caps and of crypto), exact as one HMM on the fine calendar
(:mod:`~regime_model.models.two_scale_chain`).

Parts, each built from the package's components:

* the coarse chain: sticky Dirichlet rows Q (K_c, K_c) (``coarse_stickiness``), started
  from Q's stationary law; its emissions are the coarse columns' Gaussian (or Student-t)
  densities, observed on the last fine date of each ended coarse period only (the family
  places them there: a period's observation is what was known when it ended);
* each market m (a feature group: equity, crypto): its columns' emissions depend on its
  fine regime only, and its transitions on the coarse state: P_m(c) (K_c, K, K), sticky
  Dirichlet rows per coarse state. Its *entry law* pi_m(c) is P_m(c)'s stationary law: at
  the first date, and in the fHMM form (``fine_entry="restart"``) at every period's first
  date, the chain starts afresh from it; in the carry form (the default) it moves on from
  where it was by P_m(c').

Emissions do not depend on the coarse state, so "risk_on" means the same thing whatever
the liquidity regime, and the coarse state acts on each market through its transitions
only. Its effect on market m is read off pi_m(c)[risk_on] (the long-run share of risk-on
weeks under coarse state c): ``fit_info["model_summary"]["coupling"]`` gives it per coarse
state and the difference between the coarse risk_on and risk_off states, with HDIs.

States are z = (c, f_1, ..., f_M), c the most significant digit, named
"coarse:<c>|<market>:<f>|...". Identification: every scale's prior is exchangeable, so
draws are matched on the product states' filtered probabilities among the permutations
that permute each scale's regimes on their own (K_c! K!^M of them, all the prior allows),
then the coarse regimes are named on the coarse anchor's mean (ascending, or with
``coarse_order="inverse"`` descending: for spreads and volatility, high means tight) and
each market's on its anchor as a plain model's are.

The posterior ``transition`` (S, S) is the average one-step matrix (opening and
within-period moves weighted by how often each occurs); durations and forecasts from it
are approximate. The exact ones are in ``fit_info["model_summary"]``: coarse durations in
periods, fine durations per coarse state, and a forecast at both scales along the coming
calendar (:mod:`~regime_model.models.two_scale_report`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.data.calendar import period_openings
from regime_model.errors import InsufficientDataError
from regime_model.inference import (
    hmm_filter_draws,
    hmm_smoother_draws,
    indexed_log_likelihood,
    sample_markov_path,
    stationary_distribution,
)
from regime_model.models.composition import KernelGraphs, regime_date_quantities
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.emissions import sample_emissions
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.observations import Observations, regime_names
from regime_model.models.product_chain import chain_anchor, chain_emissions
from regime_model.models.relabelling import name_check, name_order, take_regimes
from regime_model.models.simplex import dirichlet
from regime_model.models.transitions import StickyDirichlet
from regime_model.models.two_scale_chain import (
    state_grid,
    two_scale_log_emission,
    two_scale_log_initial,
    two_scale_moves,
)
from regime_model.results import ProbabilityDraws, RegimeResult

COARSE = "coarse"
# The coarse chain's EM start needs this many complete periods per coarse regime.
COARSE_PERIODS_PER_REGIME = 10
FORECAST_STEPS = 13  # fine steps of the exact forecast (a quarter of weeks)
OPENING, WITHIN = 0, 1  # the two moves' places in the likelihood's bank
EMISSION_VARIABLES = ("mean", "sigma", "regime_mean", "regime_scale")


@dataclass(frozen=True)
class TwoScaleStart:
    """Maximum-likelihood starts: the coarse chain's on the coarse observations, and each
    market's on its own columns."""

    coarse: EMEstimate
    markets: list[EMEstimate]


class TwoScaleChains:
    """A coarse chain driving one fine chain per market (see the module docstring)."""

    def __init__(
        self,
        coarse_emissions: GaussianEmissions,
        fine_emissions: GaussianEmissions,
        coarse_columns: list[str],
        coarse_freq: str,
        markets: list[str],
        coarse_anchor: str | None,
        coarse_order: str,
        order_by: str,
        stickiness: float,
        coarse_stickiness: float,
        fine_entry: str,
    ) -> None:
        self.coarse_emissions = coarse_emissions
        self.fine_emissions = fine_emissions
        self.n_coarse = coarse_emissions.n_regimes
        self.n_fine = fine_emissions.n_regimes
        self.coarse_columns = list(coarse_columns)
        self.coarse_freq = coarse_freq
        self.markets = list(markets)
        self.coarse_anchor = coarse_anchor
        self.coarse_order = coarse_order
        self.order_by = order_by
        self.stickiness = stickiness
        self.coarse_stickiness = coarse_stickiness
        self.fine_entry = fine_entry

    # ------------------------------------------------------------------ layout
    def market_groups(self, observations: Observations | None = None) -> list[str]:
        """The markets (feature groups), in order."""
        return list(self.markets)

    def views(self, observations: Observations) -> tuple[Observations, list[Observations]]:
        """(the coarse columns, each market's columns) as observations of their own, each
        with its anchor; ValueError for a layout the model cannot use."""
        columns, groups = observations.columns, observations.groups
        missing = [c for c in self.coarse_columns if c not in columns]
        if missing:
            raise ValueError(
                f"coarse column {', '.join(missing)} is not among the features "
                f"({', '.join(columns)})"
            )
        markets = self.market_groups(observations)
        fine = [c for c in columns if c not in self.coarse_columns]
        stray = [c for c in fine if groups[c] not in markets]
        if stray:
            listed = ", ".join(f"{c} ({groups[c]})" for c in stray)
            raise ValueError(
                f"the two-scale model's markets are {', '.join(markets)}; {listed} belong to "
                "none: leave them out, add their group to the markets or make them coarse"
            )
        anchor = self.coarse_anchor or self.coarse_columns[0]
        if anchor not in self.coarse_columns:
            raise ValueError(f"coarse anchor '{anchor}' is not a coarse column")
        coarse = observations.view(self.coarse_columns, anchor)
        views = []
        for market in markets:
            market_columns = [c for c in fine if groups[c] == market]
            if not market_columns:
                raise ValueError(f"the two-scale model's market '{market}' has no columns")
            views.append(observations.view(market_columns, chain_anchor(market_columns)))
        return coarse, views

    def opens(self, observations: Observations) -> np.ndarray:
        """(T,) True on the first fine date of each coarse period."""
        return period_openings(observations.dates, self.coarse_freq)

    def moves(self, observations: Observations) -> np.ndarray:
        """(T-1,) which of the bank's two moves leads into each date after the first:
        OPENING into a period's first date, WITHIN otherwise."""
        return np.where(self.opens(observations)[1:], OPENING, WITHIN)

    def grid(self, n_markets: int) -> np.ndarray:
        """(S, 1 + M) the (c, f_1, ..., f_M) of each state."""
        return state_grid(self.n_coarse, [self.n_fine] * n_markets)

    def state_names(self, observations: Observations) -> list[str]:
        markets = self.market_groups(observations)
        coarse, fine = regime_names(self.n_coarse), regime_names(self.n_fine)
        return [
            "|".join(
                [f"{COARSE}:{coarse[row[0]]}"]
                + [f"{market}:{fine[f]}" for market, f in zip(markets, row[1:], strict=True)]
            )
            for row in self.grid(len(markets))
        ]

    def coords(self, observations: Observations) -> dict[str, list[str]]:
        coarse, views = self.views(observations)
        states = self.state_names(observations)
        coords = {
            "state": states,
            "state_to": states,
            "coarse_regime": regime_names(self.n_coarse),
            "coarse_regime_to": regime_names(self.n_coarse),
            "coarse_feature": coarse.columns,
        }
        for market, view in zip(self.market_groups(observations), views, strict=True):
            coords[f"{market}_regime"] = regime_names(self.n_fine)
            coords[f"{market}_regime_to"] = regime_names(self.n_fine)
            coords[f"{market}_feature"] = view.columns
        return coords

    # ------------------------------------------------------------------ model
    def _sticky(self, n_regimes: int, stickiness: float) -> np.ndarray:
        return StickyDirichlet(n_regimes, stickiness, "stationary").concentration()

    def build(self, observations: Observations) -> KernelGraphs:
        """Priors of both scales -> the kernel's inputs over all dates (log_initial (S,),
        the bank of the two moves (2, S, S), log_emission (T, S), which move each date
        makes (T-1,), as floats) and the log transitions of the FORECAST_STEPS fine steps
        after the last date (H, S, S), and the likelihood of the fitted dates."""
        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        with pm.Model(name=COARSE):
            coarse_log_emission = self.coarse_emissions.build(
                coarse_view, ("coarse_regime", "coarse_feature"), report_correlation=False
            )
            coarse_transition = dirichlet(
                "transition",
                self._sticky(self.n_coarse, self.coarse_stickiness),
                dims=("coarse_regime", "coarse_regime_to"),
            )
        fine_log_emissions, log_fine_transitions, log_entries = [], [], []
        for market, view in zip(markets, views, strict=True):
            with pm.Model(name=market):
                fine_log_emissions.append(
                    self.fine_emissions.build(
                        view, (f"{market}_regime", f"{market}_feature"), report_correlation=False
                    )
                )
                concentration = np.broadcast_to(
                    self._sticky(self.n_fine, self.stickiness),
                    (self.n_coarse, self.n_fine, self.n_fine),
                )
                transition = dirichlet(
                    "transition",
                    np.ascontiguousarray(concentration),
                    dims=("coarse_regime", f"{market}_regime", f"{market}_regime_to"),
                )
                entry = pm.Deterministic(
                    "entry",
                    stationary_distribution(transition),
                    dims=("coarse_regime", f"{market}_regime"),
                )
            log_fine_transitions.append(pt.log(transition))
            log_entries.append(pt.log(entry))
        grid = self.grid(len(markets))
        coarse_initial = stationary_distribution(coarse_transition)
        log_initial = two_scale_log_initial(pt.log(coarse_initial), log_entries, grid)
        opening, within = two_scale_moves(
            pt.log(coarse_transition),
            log_fine_transitions,
            log_entries if self.fine_entry == "restart" else None,
            grid,
        )
        opens = self.opens(observations)
        bank = pt.stack([opening, within])  # (2, S, S): OPENING, WITHIN
        forecast_opens = future_openings(observations.dates, self.coarse_freq, FORECAST_STEPS)
        forecast = pt.where(forecast_opens[:, None, None], opening[None], within[None])
        # The average one-step matrix, reported as ``transition`` (approximate, see above).
        share = float(opens[1:].mean()) if len(opens) > 1 else 0.0
        pm.Deterministic(
            "transition",
            share * pt.exp(opening) + (1 - share) * pt.exp(within),
            dims=("state", "state_to"),
        )
        pm.Deterministic("initial", pt.exp(log_initial), dims="state")
        log_emission = two_scale_log_emission(fine_log_emissions, coarse_log_emission, grid)
        # The likelihood takes the two moves and which one each date makes, not the
        # (T-1, S, S) stack the per-draw pass reads: the sampler's gradient then never
        # builds, exponentiates or sums back T copies of the two matrices.
        # The moves as floats: data (an input of the compiled log density, so that one
        # compiled function serves every data set), cast to ints by the Op. No slice when
        # every date is fitted: the graph then does not depend on n_fit.
        n_fit = observations.n_fit
        moves = self.moves(observations).astype(float)
        fitted = log_emission if n_fit == observations.n_dates else log_emission[:n_fit]
        likelihood = indexed_log_likelihood(log_initial, bank, fitted, moves[: n_fit - 1])
        # The per-draw pass reads the bank and every date's move too (the moves carried
        # as an input with the draws' leading axis: the evaluation is vectorised over
        # draws), so it never builds the (T-1, S, S) stack either.
        move_input = pt.zeros_like(log_initial[:1]) + moves  # (T-1,)
        return KernelGraphs((log_initial, bank, log_emission, move_input, forecast), likelihood)

    def starts(
        self, start: TwoScaleStart, observations: Observations, n_chains: int, seed: int
    ) -> list[dict[str, np.ndarray]]:
        """Each scale's EM start, perturbed as plain regimes' are; a market's transitions
        the same under every coarse state (no coupling)."""
        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        parts = [
            (COARSE, self.coarse_emissions.starts(start.coarse, coarse_view, n_chains, seed), None)
        ]
        for market, view, estimate in zip(markets, views, start.markets, strict=True):
            tiled = np.broadcast_to(
                estimate.transition, (self.n_coarse, *estimate.transition.shape)
            )
            points = self.fine_emissions.starts(estimate, view, n_chains, seed)
            parts.append((market, points, np.ascontiguousarray(tiled)))
        points = []
        for chain in range(n_chains):
            point = {"coarse::transition": start.coarse.transition}
            for prefix, emission_points, transition in parts:
                point.update({f"{prefix}::{k}": v for k, v in emission_points[chain].items()})
                if transition is not None:
                    point[f"{prefix}::transition"] = transition
            points.append(point)
        return points

    # ------------------------------------------------------------------ labels
    def label_candidates(self) -> np.ndarray:
        """(P, S) every product of one permutation per scale (coarse, then each market),
        the identity first: the prior is invariant under exactly these."""
        n_markets = len(self.markets)
        grid = self.grid(n_markets)
        sizes = (self.n_coarse, *[self.n_fine] * n_markets)
        per_axis = [list(itertools.permutations(range(size))) for size in sizes]
        rows = []
        for perms in itertools.product(*per_axis):
            old = tuple(np.asarray(perm)[grid[:, axis]] for axis, perm in enumerate(perms))
            rows.append(np.ravel_multi_index(old, sizes))
        return np.array(rows, dtype=np.int64)

    def axis_permutations(self, permutations: np.ndarray) -> list[np.ndarray]:
        """Product-state permutations (N, S) from :meth:`label_candidates` -> each scale's
        own: (N, K_c), then (N, K) per market. New regime v of a scale holds the old regime
        decoded from the state that has v on that scale and 0 elsewhere."""
        sizes = (self.n_coarse, *[self.n_fine] * len(self.markets))
        result = []
        for axis, size in enumerate(sizes):
            index = np.zeros((size, len(sizes)), dtype=int)
            index[:, axis] = np.arange(size)
            states = np.ravel_multi_index(tuple(index.T), sizes)
            old = np.unravel_index(permutations[:, states], sizes)
            result.append(np.asarray(old[axis]))
        return result

    def naming(
        self, matched: np.ndarray, posterior: xr.Dataset, observations: Observations
    ) -> tuple[np.ndarray, np.ndarray]:
        """The coarse regimes named on the coarse anchor's mean, each market's on its own
        anchor, after matching (``matched`` (N, S)). -> (product-state order (S,), the
        separations: the coarse scale's K_c - 1, then each market's K - 1)."""
        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        per_axis = self.axis_permutations(matched)
        variable = "mean" if self.order_by == "mean" else "sigma"
        scales = [(COARSE, coarse_view, "mean", self.coarse_order == "inverse")] + [
            (market, view, variable, self.order_by == "volatility")
            for market, view in zip(markets, views, strict=True)
        ]
        orders, separations = [], []
        for (prefix, view, name, descending), perms in zip(scales, per_axis, strict=True):
            values = posterior[f"{prefix}::{name}"].to_numpy()[..., view.anchor]
            values = np.take_along_axis(values.reshape(len(matched), -1), perms, axis=1)
            order, separation = name_order(values, descending)
            orders.append(order)
            separations.append(separation)
        grid = self.grid(len(markets))
        sizes = (self.n_coarse, *[self.n_fine] * len(markets))
        old = tuple(order[grid[:, axis]] for axis, order in enumerate(orders))
        return np.ravel_multi_index(old, sizes), np.concatenate(separations)

    def name_checks(self, separation: np.ndarray, observations: Observations) -> list[dict]:
        coarse_view, views = self.views(observations)
        shares = iter(separation)
        pairs = []
        scales = [(COARSE, coarse_view, self.n_coarse, "mean")] + [
            (market, view, self.n_fine, self.order_by)
            for market, view in zip(self.market_groups(observations), views, strict=True)
        ]
        for prefix, view, size, order_by in scales:
            names = regime_names(size)
            anchor = view.columns[view.anchor]
            for k in range(size - 1):
                lower, upper = f"{prefix}:{names[k]}", f"{prefix}:{names[k + 1]}"
                pairs.append(name_check(anchor, order_by, lower, upper, next(shares)))
        return pairs

    def permute(self, arrays: dict[str, np.ndarray], permutations: np.ndarray) -> dict:
        """Variables (name -> (N, ...)) with each scale's regime axes permuted by that
        scale's permutation and the product states' by ``permutations`` (N, S). Handles
        the sampled variables and the reported ones."""
        coarse, *fine = self.axis_permutations(permutations)
        permuted = dict(arrays)

        def apply(name: str, axes: list[tuple[int, np.ndarray]]) -> None:
            if name in arrays:
                values = arrays[name]
                for axis, perms in axes:
                    values = take_regimes(values, perms, axis)
                permuted[name] = values

        for name in EMISSION_VARIABLES:
            apply(f"{COARSE}::{name}", [(0, coarse)])
        for name in ("coarse::transition", "coarse_transition"):
            apply(name, [(0, coarse), (1, coarse)])
        for market, perms in zip(self.markets, fine, strict=True):
            for name in EMISSION_VARIABLES:
                apply(f"{market}::{name}", [(0, perms)])
            for name in (f"{market}::transition", f"{market}_transition"):
                apply(name, [(0, coarse), (1, perms), (2, perms)])
            for name in (f"{market}::entry", f"{market}_entry"):
                apply(name, [(0, coarse), (1, perms)])
        apply("initial", [(0, permutations)])
        apply("transition", [(0, permutations), (1, permutations)])
        for name in ("emission_mean", "emission_scale"):
            apply(name, [(0, permutations)])
        return permuted

    # ------------------------------------------------------------------ per draw
    def simulate(self, parameters, log_initial, log_transition, observations, rng):
        """(product states (T,), observations (T, D) in model units) at one draw; the
        coarse columns are simulated on every date (the family keeps the period ends)."""
        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        sizes = (self.n_coarse, *[self.n_fine] * len(markets))
        # log_transition is the bank of the two moves (build): each date's move expanded.
        moves = self.moves(observations)
        path = sample_markov_path(rng, log_initial, log_transition[moves], observations.n_dates)
        regimes = np.unravel_index(path, sizes)
        values = np.empty((observations.n_dates, observations.n_features))
        for prefix, view, states in [(COARSE, coarse_view, regimes[0])] + [
            (market, view, regimes[1 + m])
            for m, (market, view) in enumerate(zip(markets, views, strict=True))
        ]:
            index = [observations.columns.index(column) for column in view.columns]
            values[:, index] = sample_emissions(
                rng,
                states,
                parameters[f"{prefix}::mean"],
                parameters[f"{prefix}::sigma"],
                nu=parameters.get(f"{prefix}::nu"),
            )
        return path, values

    def date_quantities(self, inputs: tuple, with_bands: bool):
        """Per-date quantities of one draw; with bands, also the exact forecast: the last
        filtered distribution carried FORECAST_STEPS fine steps along the coming calendar
        ((H, S), beside the quantities, for :meth:`annotate`)."""
        log_initial, bank, log_emission, moves, forecast = inputs
        log_transition = bank[moves.astype(np.int64)]  # (T-1, S, S), one draw's
        draw = regime_date_quantities(log_initial, log_transition, log_emission, with_bands)
        if not with_bands:
            return draw, None
        return draw, forecast_paths(draw.filtered[-1], forecast)

    def draw_quantities(
        self, inputs: tuple, with_bands: bool
    ) -> tuple[ProbabilityDraws, np.ndarray | None]:
        """:meth:`date_quantities` of N draws, the passes over the dates in one compiled
        call: the filter, or with bands the smoother and the forecast paths (N, H, S)."""
        log_initial, bank, log_emission, moves, forecast = inputs
        sources = moves[0].astype(np.int64)  # the same for every draw
        if not with_bands:
            log_predictive, filtered = hmm_filter_draws(log_initial, bank, log_emission, sources)
            return ProbabilityDraws(filtered, None, None, log_predictive), None
        log_predictive, filtered, predicted, smoothed = hmm_smoother_draws(
            log_initial, bank, log_emission, sources
        )
        paths = forecast_paths(filtered[:, -1], forecast)
        return ProbabilityDraws(filtered, smoothed, predicted, log_predictive), paths

    def inputs_at(self, parameters: dict, observations: Observations) -> None:
        """None: a point is evaluated through the sampled graph."""
        return None

    # ------------------------------------------------------------------ result
    def reported(self, posterior: xr.Dataset, observations: Observations):
        """The product states' average transition, initial law and emissions (S, D) in
        the features' units, the coarse matrix, and each market's matrices and entry laws
        per coarse state."""
        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        grid = self.grid(len(markets))
        scales = [(COARSE, coarse_view, grid[:, 0])] + [
            (market, view, grid[:, 1 + m])
            for m, (market, view) in enumerate(zip(markets, views, strict=True))
        ]
        emission_mean, emission_scale, emission_nu = chain_emissions(
            posterior, observations, scales
        )
        reported = {
            "transition": posterior["transition"].to_numpy(),
            "initial": posterior["initial"].to_numpy(),
            "emission_mean": emission_mean,
            "emission_scale": emission_scale,
            "coarse_transition": posterior["coarse::transition"].to_numpy(),
        }
        if self.fine_emissions.emission == "student-t":
            reported["emission_nu"] = emission_nu
        coarse_names, fine_names = regime_names(self.n_coarse), regime_names(self.n_fine)
        dims = {"coarse_transition": ["coarse_from", "coarse_to"]}
        coords = {"coarse_from": coarse_names, "coarse_to": coarse_names, "coarse": coarse_names}
        for market in markets:
            reported[f"{market}_transition"] = posterior[f"{market}::transition"].to_numpy()
            reported[f"{market}_entry"] = posterior[f"{market}::entry"].to_numpy()
            dims[f"{market}_transition"] = ["coarse", f"{market}_from", f"{market}_to"]
            dims[f"{market}_entry"] = ["coarse", f"{market}_regime"]
            for suffix in ("from", "to", "regime"):
                coords[f"{market}_{suffix}"] = fine_names
        return reported, dims, coords

    def annotate(
        self,
        result: RegimeResult,
        posterior: xr.Dataset,
        observations: Observations,
        extras: list,
        permutations: np.ndarray | None,
    ) -> None:
        """The layout (``fit_info["two_scale"]``), what the fit resolved in the config,
        and the tables of :func:`~regime_model.models.two_scale_report.model_summary`
        with the exact forecast from the band draws' forecast paths ``extras``."""
        from regime_model.models.two_scale_report import forecast_table, model_summary

        coarse_view, views = self.views(observations)
        markets = self.market_groups(observations)
        result.fit_info["two_scale"] = {
            "coarse_columns": coarse_view.columns,
            "coarse_anchor": coarse_view.columns[coarse_view.anchor],
            "coarse_freq": self.coarse_freq,
            "coarse_order": self.coarse_order,
            "fine_entry": self.fine_entry,
            "markets": markets,
            "market_columns": {m: v.columns for m, v in zip(markets, views, strict=True)},
            "market_anchors": {m: v.columns[v.anchor] for m, v in zip(markets, views, strict=True)},
            "periods": int(self.opens(observations).sum()),
        }
        result.config["markets"] = markets
        summary = model_summary(result)
        paths = np.stack(extras)  # (band draws, H, S) as sampled
        if permutations is not None:
            paths = take_regimes(paths, permutations, 1)
        future = future_dates(observations.dates, FORECAST_STEPS)
        summary["forecast"] = forecast_table(result, paths, future)
        result.fit_info["model_summary"] = summary

    # ------------------------------------------------------------------ helpers
    def coarse_rows(self, view: Observations) -> Observations:
        """The coarse view on the dates its columns are observed (one per ended period),
        for its maximum-likelihood start."""
        rows = view.observed.all(axis=1)
        if rows.sum() < COARSE_PERIODS_PER_REGIME * self.n_coarse:
            raise InsufficientDataError(
                f"the coarse columns are all observed in {int(rows.sum())} ended periods: "
                f"{self.n_coarse} coarse regimes need at least "
                f"{COARSE_PERIODS_PER_REGIME * self.n_coarse}"
            )
        return replace(
            view,
            dates=view.dates[rows],
            values=view.values[rows],
            observed=view.observed[rows],
            n_fit=int(rows.sum()),
            covariates=None,
        )


def future_dates(dates: pd.DatetimeIndex, steps: int) -> pd.DatetimeIndex:
    """The ``steps`` fine dates after the last of ``dates``: a week apart on a weekly
    calendar (median spacing of five days or more), else business days."""
    last = dates[-1]
    spacing = pd.Series(dates).diff().median() if len(dates) > 1 else pd.Timedelta(days=7)
    if spacing >= pd.Timedelta(days=5):
        return pd.DatetimeIndex([last + pd.Timedelta(days=7 * (h + 1)) for h in range(steps)])
    return pd.bdate_range(last + pd.offsets.BDay(1), periods=steps)


def future_openings(dates: pd.DatetimeIndex, freq: str, steps: int) -> np.ndarray:
    """(steps,) whether each of the next fine dates (:func:`future_dates`) opens a coarse
    period."""
    calendar = dates[-1:].append(future_dates(dates, steps))
    return period_openings(calendar, freq)[1:]


def forecast_paths(last_filtered: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """The last filtered distribution carried along the forecast's moves, nothing
    observed: (..., S) and log matrices (..., H, S, S) -> (..., H, S), one row per step."""
    paths = np.empty(forecast.shape[:-1])
    current = last_filtered
    for step in range(forecast.shape[-3]):
        current = np.einsum("...s,...st->...t", current, np.exp(forecast[..., step, :, :]))
        paths[..., step, :] = current
    return paths
