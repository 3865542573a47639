"""The state space a model family composes: how its components' graphs become the
kernel's inputs, how its states are named, permuted and simulated.

A *composition* is what :class:`~regime_model.models.model.RegimeHMM` talks to; a family
returns one from ``components(observations, start)``. :class:`Regimes` is the plain one:
K regimes, one emission component (:mod:`~regime_model.models.gaussian_emissions`,
:mod:`~regime_model.models.pooled_emissions`) and one transition component
(:mod:`~regime_model.models.transitions`). The lead-lag family's product of two coupled
chains (:class:`~regime_model.models.coupled_chains.CoupledChains`) is the other. Every
method takes what it needs and returns what it makes: nothing is stored between calls.

The contract (both classes implement it):

* ``coords(observations)``: PyMC coordinates;
* ``build(observations)`` -> :class:`KernelGraphs`, inside a PyMC model;
* ``starts(start, observations, n_chains, seed)``: one start point per chain;
* ``state_names(observations)``, ``label_candidates()`` (None: every permutation),
  ``naming(matched, posterior, observations)``, ``name_checks(separation, observations)``
  and ``permute(arrays, permutations)``: relabelling (:mod:`~regime_model.models.
  relabelling`);
* ``simulate(parameters, log_initial, log_transition, observations, rng)``;
* ``date_quantities(inputs, with_bands)`` -> (DrawProbabilities, extra per draw);
  optionally ``draw_quantities(inputs, with_bands)``, the same for many draws at once
  (inputs with a leading draw axis) -> (ProbabilityDraws (N, T, S), the extras stacked
  (N, ...) or None), or None where it cannot (those draws then go one at a time);
* ``inputs_at(parameters, observations)``: the kernel's numpy inputs at one point, or
  None to evaluate the sampled graph there;
* ``reported(posterior, observations)`` -> (variables, dims, coords) and
  ``annotate(result, posterior, observations, extras, permutations)``: the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import (
    hmm_filter,
    hmm_filter_draws,
    hmm_log_likelihood,
    hmm_smoother_draws,
    sample_markov_path,
)
from regime_model.inference.history_kernel import (
    history_draw_inputs,
    history_filter_draws,
    history_log_likelihood,
)
from regime_model.models.autoregression import (
    history_log_transition,
    history_start,
    regime_histories,
    regime_marginals,
)
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.observations import Observations, regime_names
from regime_model.models.relabelling import (
    name_check,
    name_order,
    permute_draws,
    permuted_correlations,
)
from regime_model.results import (
    DrawProbabilities,
    ProbabilityDraws,
    RegimeResult,
    draw_probabilities,
)


@dataclass(frozen=True)
class KernelGraphs:
    """What a composition builds: ``inputs``, the graphs per-draw quantities are computed
    from over all dates (log_initial (S,), log_transition (S, S) or (T-1, S, S),
    log_emission (T, S), then any extra the composition's ``date_quantities`` takes; on a
    chain of regime histories the transitions stay the regime chain's, (K, K) or
    (T-1, K, K), and the composition's own methods expand them where needed), and
    ``log_likelihood``, the marginal log-likelihood of the fitted dates only (scalar)."""

    inputs: tuple[pt.TensorVariable, ...]
    log_likelihood: pt.TensorVariable


def fitted_part(log_initial, log_transition, log_emission, n_fit: int, n_dates: int):
    """The kernel triple restricted to the first ``n_fit`` dates (no slice when all are
    fitted: the graph then does not depend on n_fit)."""
    if n_fit < n_dates:
        log_emission = log_emission[:n_fit]
        if log_transition.ndim == 3:
            log_transition = log_transition[: n_fit - 1]
    return log_initial, log_transition, log_emission


def regime_date_quantities(log_initial, log_transition, log_emission, with_bands: bool):
    """Per-date quantities of one draw: a :class:`DrawProbabilities` (probabilities only
    when ``with_bands``; the filter alone is cheaper)."""
    if with_bands:
        return draw_probabilities(log_initial, log_transition, log_emission)
    filtered = hmm_filter(log_initial, log_transition, log_emission)
    return DrawProbabilities(filtered.filtered_probs, None, None, filtered.log_predictive)


class Regimes:
    """K regimes with one emission and one transition component; regimes named risk_off
    ... risk_on on the anchor's posterior mean of its regime means (``order_by="mean"``)
    or scales (``"volatility"``)."""

    def __init__(self, emissions: Any, transitions: Any, order_by: str) -> None:
        self.emissions = emissions
        self.transitions = transitions
        self.order_by = order_by
        self.n_regimes = transitions.n_regimes
        self.regime_axes = emissions.regime_axes | transitions.regime_axes
        # p > 0: the emission density depends on the last p regimes too (mean-adjusted
        # autoregression), so the kernel runs on K^(p+1) regime histories and what it
        # gives per date is summed back to the K regimes.
        self.history_order = getattr(emissions, "history_order", 0)

    # ------------------------------------------------------------------ model
    def coords(self, observations: Observations) -> dict[str, list[str]]:
        names = regime_names(self.n_regimes)
        return {
            "regime": names,
            "regime_to": names,
            "feature": observations.columns,
            **self.transitions.coords(),
            **self.emissions.coords(observations),
        }

    def build(self, observations: Observations) -> KernelGraphs:
        """Emission then transition priors -> the kernel's inputs and the likelihood."""
        log_emission = self.emissions.build(observations)
        log_initial, log_transition = self.transitions.build(observations)
        sizes = (observations.n_fit, observations.n_dates)
        if not self.history_order:
            inputs = (log_initial, log_transition, log_emission)
            return KernelGraphs(inputs, hmm_log_likelihood(*fitted_part(*inputs, *sizes)))
        # The history chain keeps the regime chain's transitions: its kernel skips the
        # structural zeros of the K^(p+1) x K^(p+1) matrix, and so does the filter of
        # every draw; the band passes (smoothed, sampled paths) expand it (_expanded).
        start = history_start(log_initial, log_transition, self.n_regimes, self.history_order)
        inputs = (start, log_transition, log_emission)
        likelihood = history_log_likelihood(*fitted_part(*inputs, *sizes), self.history_order)
        return KernelGraphs(inputs, likelihood)

    def starts(
        self, start: EMEstimate, observations: Observations, n_chains: int, seed: int
    ) -> list[dict[str, np.ndarray]]:
        """One point per chain: the EM fit, perturbed a little, in each component's
        parameterisation."""
        emissions = self.emissions.starts(start, observations, n_chains, seed)
        transitions = self.transitions.starts(start, n_chains, seed)
        return [{**t, **e} for t, e in zip(transitions, emissions, strict=True)]

    # ------------------------------------------------------------------ labels
    def state_names(self, observations: Observations) -> list[str]:
        return regime_names(self.n_regimes)

    def label_candidates(self) -> np.ndarray | None:
        """(P, K) the permutations the prior is invariant under: None, all of them."""
        return None

    def naming(
        self, matched: np.ndarray, posterior: xr.Dataset, observations: Observations
    ) -> tuple[np.ndarray, np.ndarray]:
        """(order (K,), separation (K-1,)) naming the matched regimes (``matched`` (N, K))
        (:func:`~regime_model.models.relabelling.name_order`)."""
        name = "mean" if self.order_by == "mean" else "sigma"
        values = posterior[name].to_numpy()[..., observations.anchor]
        values = np.take_along_axis(values.reshape(len(matched), -1), matched, axis=1)
        return name_order(values, descending=self.order_by == "volatility")

    def name_checks(self, separation: np.ndarray, observations: Observations) -> list[dict]:
        """One :func:`~regime_model.models.relabelling.name_check` per adjacent pair."""
        names = regime_names(self.n_regimes)
        anchor = observations.columns[observations.anchor]
        return [
            name_check(anchor, self.order_by, names[k], names[k + 1], share)
            for k, share in enumerate(separation)
        ]

    def permute(self, arrays: dict[str, np.ndarray], permutations: np.ndarray) -> dict:
        """Variables (name -> (N, ...)) with every regime-carrying one (the components'
        ``regime_axes``, and full covariance's per-regime LKJ variables) permuted by its
        draw's permutation (N, K); the rest as they are. The likelihood and an
        exchangeable prior are invariant under it."""
        permuted = dict(arrays)
        for name, axes in self.regime_axes.items():
            if name in arrays:
                permuted[name] = permute_draws(arrays[name], permutations, axes)
        permuted.update(permuted_correlations(arrays, permutations, self.n_regimes))
        return permuted

    # ------------------------------------------------------------------ per draw
    def simulate(self, parameters, log_initial, log_transition, observations, rng):
        """(states (T,), observations (T, D) in model units) at one parameter draw
        (``log_initial``, ``log_transition``: the kernel's, over histories when
        ``history_order``)."""
        if self.history_order:
            log_transition = self._expanded(log_transition)
        states = sample_markov_path(rng, log_initial, log_transition, observations.n_dates)
        if self.history_order:  # a path of histories: keep the current regime
            states = regime_histories(self.n_regimes, self.history_order)[states, 0]
        return states, self.emissions.simulate(parameters, states, rng)

    def date_quantities(self, inputs: tuple, with_bands: bool) -> tuple[DrawProbabilities, None]:
        draw = regime_date_quantities(*self._general_inputs(inputs), with_bands=with_bands)
        return self._regimes_of(draw), None

    def _expanded(self, log_transition: np.ndarray) -> np.ndarray:
        """(..., K, K) regime log transitions -> (..., S, S) over the histories."""
        return history_log_transition(log_transition, self.n_regimes, self.history_order)

    def _general_inputs(self, inputs: tuple) -> tuple:
        """``inputs`` as the general kernel takes them: on a history chain, with the
        regime transitions expanded over the histories."""
        if not self.history_order:
            return inputs
        return (inputs[0], self._expanded(inputs[1]), *inputs[2:])

    def _regimes_of(self, quantities):
        """Per-date probabilities over histories (..., T, S) -> over regimes (..., T, K);
        as they are when the kernel runs on regimes."""
        if not self.history_order:
            return quantities
        summed = [
            None if value is None else regime_marginals(value, self.n_regimes, self.history_order)
            for value in (quantities.filtered, quantities.smoothed, quantities.predicted)
        ]
        return type(quantities)(*summed, quantities.pointwise_loglik)

    def draw_quantities(self, inputs: tuple, with_bands: bool) -> tuple[ProbabilityDraws, None]:
        """What ``date_quantities`` gives each of N draws, stacked, in one compiled call
        (only the filtered kind and the log predictive without bands); no extras."""
        if not with_bands:
            if self.history_order:
                log_predictive, filtered = history_filter_draws(
                    *history_draw_inputs(*inputs), self.history_order
                )
            else:
                log_predictive, filtered = hmm_filter_draws(*inputs)
            return self._regimes_of(ProbabilityDraws(filtered, None, None, log_predictive)), None
        log_predictive, filtered, predicted, smoothed = hmm_smoother_draws(
            *self._general_inputs(inputs)
        )
        quantities = ProbabilityDraws(filtered, smoothed, predicted, log_predictive)
        return self._regimes_of(quantities), None

    def inputs_at(self, parameters: dict, observations: Observations) -> tuple | None:
        """The kernel's inputs at one point when the emission component computes its
        density from the regime-space parameters (``mean``, ``sigma``, ...) rather than
        from the sampled ones (None: evaluate the sampled graph)."""
        log_emission_at = getattr(self.emissions, "log_emission_at", None)
        if log_emission_at is None:
            return None
        return (
            np.log(parameters["initial"]),
            self.transitions.log_transition_at(parameters, observations),
            log_emission_at(parameters, observations),
        )

    # ------------------------------------------------------------------ result
    def reported(self, posterior: xr.Dataset, observations: Observations):
        """(variables, dims, extra coords) of the InferenceData posterior, in the
        features' units."""
        reported = {
            "transition": posterior["transition"].to_numpy(),
            "initial": posterior["initial"].to_numpy(),
        }
        dims: dict[str, list[str]] = {}
        coords: dict[str, list[str]] = {}
        for component in (self.emissions, self.transitions):
            extra, extra_dims, extra_coords = component.reported(posterior, observations)
            reported.update(extra)
            dims.update(extra_dims)
            coords.update(extra_coords)
        return reported, dims, coords

    def annotate(
        self,
        result: RegimeResult,
        posterior: xr.Dataset,
        observations: Observations,
        extras: list,
        permutations: np.ndarray | None,
    ) -> None:
        """The components' own tables in ``result.fit_info`` (transitions first)."""
        self.transitions.annotate(result, observations)
        self.emissions.annotate(result, posterior, observations)
