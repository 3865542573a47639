"""The lead-lag composition: two regime chains, the lagging one's switching odds set
by the leading one's regime L steps earlier; exact, as one HMM on the product state space.

Structure (K regimes per chain, dates t = 0..T-1, lag L >= 0 steps of the data's calendar):

* lead chain e_t (e.g. equity, with any breadth or flows columns assigned to its group):
  a homogeneous sticky Markov chain with transition matrix P_e;
* lag chain c_t (e.g. crypto): c_t | c_{t-1}, e_{t-L} has transition matrix P_c(e_{t-L});
* the lead columns' emissions depend on e_t only, the lag columns' on c_t only.

The pair (e_t, c_t) is not Markov when L > 0, and augmenting it with L lagged lead
regimes would cost K^(L+2) states. Re-indexing the lead chain instead, e'_s = e_{s-L},
makes x_s = (e'_s, c_s) Markov with K^2 states for any L:

    P(x_s | x_{s-1}) = P_e[e'_{s-1}, e'_s] * P_c(e'_s)[c_{s-1}, c_s].

Product step s = 0..T-1+L observes the lag columns of date s (when s < T) and the lead
columns of date s - L (when s >= L); the other side is masked (log emission 0). So the lead
chain starts L steps before the first date, unobserved there, and the likelihood is the
shared kernel's on T + L steps. The initial distribution is the product chain's
stationary one (or Dirichlet), whose lead marginal is P_e's stationary distribution.

Coupling: each lag-chain row is a sticky Dirichlet row tilted by the lead regime's score
s(e) = e / (K-1) - 1/2 (risk_off -1/2, risk_on +1/2):

    log P_c(e)[j, j'] = log B[j, j'] + s(e) * g[j, j'] - log normaliser,
    g[j, j'] = coupling_enter (j' > j), -coupling_stay (j' < j), 0 (j' = j).

So, between a lead risk_on and a lead risk_off L steps earlier, the odds of each upward
move of the lag chain (against staying) are multiplied by exp(coupling_enter), and those
of each downward move by exp(-coupling_stay). For K = 2 these are exactly the log odds
ratios of P(c: off -> on | e_{t-L}) and of P(c: on -> on | e_{t-L}) between e_{t-L} = on
and off. Zero coupling gives two independent HMMs.

Reported per date: the joint regime (e_t, c_t) of both chains on that date, as K^2 states
named "equity:risk_on|crypto:risk_off" (lead first, index e * K + c);
:func:`chain_regime_probabilities` gives each chain's marginal. Filtered probabilities use
the data of dates <= t only, though that spans product steps up to t + L: the product
filter at step t is carried L steps forward with the lead observations alone
(:func:`regime_model.inference.fixed_lag.fixed_lag_joint`); the same gives
log p(y_0..t), hence the per-date one-step predictive densities
log p(y_t | y_0..t-1) over both markets' observations of date t, comparable across lags
and with models on the same dates.

Identifiability (default ``identification="relabelled"``): each chain's emission prior
is exchangeable, and draws are matched on the product states' filtered probabilities
among the four permutations that reverse either chain or not (:meth:`CoupledChains.
label_candidates`): the coupling is defined on the regimes' order, and a reversal is
the only permutation it survives, with the couplings transformed. Each chain is then
named on its own anchor.

The posterior ``transition`` is the (K^2, K^2) product matrix, the exact transition of
x_s = (e_{s-L}, c_s). For L = 0 that is the pair of one date and ``forecast()`` is exact;
for L > 0 it is the pair's transition only approximately, and the exact forecast of each
chain (which uses the lead regimes already seen) is in ``fit_info["model_summary"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from regime_model.inference import (
    hmm_log_likelihood,
    sample_markov_path,
    stationary_distribution,
)
from regime_model.model_options import normalise_lags
from regime_model.models.composition import KernelGraphs, Regimes
from regime_model.models.covariate_link import coefficient_table, move_labels
from regime_model.models.covariates import standardise_covariates
from regime_model.models.em_hmm import EMEstimate
from regime_model.models.emissions import sample_emissions
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.lag_mixture import (
    mix_date_quantities,
    mixture_log_likelihood,
    padded,
)
from regime_model.models.leadlag_report import chain_forecast, model_summary
from regime_model.models.observations import Observations, regime_names
from regime_model.models.product_chain import (
    chain_anchor,
    chain_emissions,
    coupled_log_transition,
    lead_lag_band_draws,
    lead_lag_date_quantities,
    lead_lag_filtered_draws,
    product_log_emission,
    product_log_transition,
    state_names,
)
from regime_model.models.relabelling import (
    name_check,
    permute_draws,
    permuted_correlations,
    take_regimes,
)
from regime_model.models.simplex import dirichlet
from regime_model.models.transitions import CovariateLogit, StickyDirichlet
from regime_model.results import KINDS, DrawProbabilities, ProbabilityDraws, RegimeResult

COUPLING_SD = 1.5  # Normal prior sd of each coupling, log odds ratio: 95% within x/ 20
FORECAST_STEPS = 4  # the summary's forecast runs L + this many steps past the last date
CHAINS = ("lead", "lag")
# How each chain's variables carry its regimes (permuted per chain, see permute).
REGIME_AXES = GaussianEmissions.regime_axes | CovariateLogit.regime_axes
LEAD_DIMS = ("lead_regime", "lead_regime_to", "lead_move")  # the lead chain's logit's dims


class CoupledChains:
    """Two coupled regime chains on the product state space (see the module docstring):
    ``emissions`` is each chain's emission component (the chains' priors are alike),
    the chains are the ``lead_group`` and ``lag_group`` columns, anchored on ``anchor``
    and ``lag_anchor`` (default: :func:`chain_anchor`)."""

    def __init__(
        self,
        emissions: GaussianEmissions,
        n_regimes: int,
        lead_group: str,
        lag_group: str,
        lag: int | Sequence[int],
        anchor: str | None,
        lag_anchor: str | None,
        order_by: str,
        stickiness: float,
        initial: str,
        coupling_sd: float = COUPLING_SD,
        lead_covariates: CovariateLogit | None = None,
    ) -> None:
        self.emissions = emissions
        self.n_regimes = n_regimes
        self.lead_group = lead_group
        self.lag_group = lag_group
        # One lag, or several to marginalise (lag_mixture); ``lag`` is None then.
        self.lags = normalise_lags(lag)
        self.lag = self.lags[0] if len(self.lags) == 1 else None
        self.anchor = anchor
        self.lag_anchor = lag_anchor
        self.order_by = order_by
        self.stickiness = stickiness
        self.initial = initial
        self.coupling_sd = coupling_sd
        self.lead_covariates = lead_covariates

    @property
    def data_dependent(self) -> tuple[str, ...]:
        """Deterministics of the data as well as the parameters: P(L | y, theta), whose
        truth a simulation recomputes on its simulated data (Model.simulate)."""
        return ("lag_probability",) if self.lag is None else ()

    def _sticky(self) -> StickyDirichlet:
        """Each chain's homogeneous transition prior (and start values)."""
        return StickyDirichlet(self.n_regimes, self.stickiness, self.initial)

    # ------------------------------------------------------------------ chains
    def chains(self, observations: Observations) -> tuple[Observations, Observations]:
        """(lead, lag) views of the observations, each with its own anchor."""
        groups = observations.groups
        other = [
            c for c in observations.columns if groups[c] not in (self.lead_group, self.lag_group)
        ]
        if other:
            listed = ", ".join(f"{column} ({groups[column]})" for column in other)
            raise ValueError(
                f"the lead-lag model uses the '{self.lead_group}' (lead) and "
                f"'{self.lag_group}' (lag) groups only; {listed} belong to neither: leave "
                f"them out or assign them to one (e.g. --group {other[0]}={self.lead_group})"
            )
        views = []
        for group, anchor in ((self.lead_group, self.anchor), (self.lag_group, self.lag_anchor)):
            columns = [c for c in observations.columns if groups[c] == group]
            if not columns:
                raise ValueError(f"the lead-lag model needs columns in the '{group}' group")
            anchor = anchor or chain_anchor(columns)
            if anchor not in columns:
                raise ValueError(
                    f"anchor '{anchor}' is not a '{group}' column ({', '.join(columns)})"
                )
            index = [observations.columns.index(c) for c in columns]
            views.append(
                replace(
                    observations,
                    columns=columns,
                    groups={c: group for c in columns},
                    values=observations.values[:, index],
                    observed=observations.observed[:, index],
                    center=observations.center[index],
                    scale=observations.scale[index],
                    anchor=columns.index(anchor),
                )
            )
        return views[0], views[1]

    def state_names(self, observations: Observations) -> list[str]:
        return state_names(self.n_regimes, self.lead_group, self.lag_group)

    def coords(self, observations: Observations) -> dict[str, list[str]]:
        lead, lag = self.chains(observations)
        names = regime_names(self.n_regimes)
        states = self.state_names(observations)
        return {
            "state": states,
            "state_to": states,
            "lead_regime": names,
            "lead_regime_to": names,
            "lead_regime_lagged": names,
            "lag_regime": names,
            "lag_regime_to": names,
            "lead_feature": lead.columns,
            "lag_feature": lag.columns,
            **({"lag": list(self.lags)} if self.lag is None else {}),
            **self._covariate_coords(),
        }

    def _covariate_coords(self) -> dict[str, list[str]]:
        if self.lead_covariates is None:
            return {}
        return {
            "lead_move": move_labels(self.n_regimes),
            "covariate": self.lead_covariates.covariates,
        }

    def build(self, observations: Observations) -> KernelGraphs:
        """Priors of both chains and the coupling; the product kernel's inputs over all
        dates: log_initial (S,), log_transition (S, S), log_emission (T+L, S), S = K^2,
        and the lead-only part of the product emission (for the per-date quantities, see
        :meth:`date_quantities`). The fitted dates are the first n_fit of the *dates*,
        which span product steps 0..n_fit-1+L."""
        lead, lag = self.chains(observations)
        lead_log_emission = self._chain_log_emission("lead", lead)
        lag_log_emission = self._chain_log_emission("lag", lag)
        concentration = self._sticky().concentration()
        forecast = None
        with pm.Model(name="lead"):
            if self.lead_covariates is None:
                lead_transition = dirichlet(
                    "transition", concentration, dims=("lead_regime", "lead_regime_to")
                )
                lead_log_transition = pt.log(lead_transition)
            else:
                # Covariate-driven lead transitions: (T+L-1, K, K), and those of the
                # forecast steps; ``transition`` is the matrix at average covariates.
                intercept, coefficient, lead_transition = self.lead_covariates.priors(LEAD_DIMS)
                drivers, forecast_drivers = lead_drivers(
                    standardise_covariates(observations).values, self.lag, FORECAST_STEPS
                )
                lead_log_transition = self.lead_covariates.log_transitions(
                    intercept, coefficient, drivers
                )
                forecast = self.lead_covariates.log_transitions(
                    intercept, coefficient, forecast_drivers
                )
        with pm.Model(name="lag"):
            # The lag chain's transitions at a lead score of 0, i.e. halfway between the
            # lead's risk_off and risk_on: the coupling tilts them both ways.
            lag_base = dirichlet("transition", concentration, dims=("lag_regime", "lag_regime_to"))
        coupling_enter = pm.Normal("coupling_enter", 0.0, self.coupling_sd)
        coupling_stay = pm.Normal("coupling_stay", 0.0, self.coupling_sd)
        log_lag_transition = coupled_log_transition(
            pt.log(lag_base), coupling_enter, coupling_stay, self.n_regimes
        )
        pm.Deterministic(
            "lag_transition",
            pt.exp(log_lag_transition),
            dims=("lead_regime_lagged", "lag_regime", "lag_regime_to"),
        )
        log_transition = product_log_transition(lead_log_transition, log_lag_transition)
        average = log_transition
        if forecast is not None:
            average = product_log_transition(pt.log(lead_transition), log_lag_transition)
            forecast = product_log_transition(forecast, log_lag_transition)
        transition = pm.Deterministic("transition", pt.exp(average), dims=("state", "state_to"))
        if self.initial == "stationary":
            initial = pm.Deterministic("initial", stationary_distribution(transition), dims="state")
        else:
            initial = dirichlet("initial", np.ones(self.n_regimes**2), dims="state")
        log_initial = pt.log(initial)
        n_fit = observations.n_fit
        if self.lag is None:
            return self._lag_mixture(
                log_initial, log_transition, lead_log_emission, lag_log_emission, observations
            )
        log_emission = product_log_emission(lead_log_emission, lag_log_emission, self.lag)
        fitted = log_emission  # no slice when all are fitted: the graph keeps no n_fit
        fitted_transition = log_transition
        if n_fit < observations.n_dates:
            fitted = product_log_emission(
                lead_log_emission[:n_fit], lag_log_emission[:n_fit], self.lag
            )
            if forecast is not None:
                fitted_transition = log_transition[: n_fit + self.lag - 1]
        lead_part = product_log_emission(
            lead_log_emission, pt.zeros_like(lag_log_emission), self.lag
        )
        inputs = (log_initial, log_transition, log_emission, lead_part)
        return KernelGraphs(
            inputs if forecast is None else (*inputs, forecast),
            hmm_log_likelihood(log_initial, fitted_transition, fitted),
        )

    def _lag_mixture(
        self, log_initial, log_transition, lead_log_emission, lag_log_emission, observations
    ):
        """The kernel graphs with the lag marginalised over ``lags`` (uniform prior; see
        :mod:`~regime_model.models.lag_mixture`): inputs log_initial, log_transition and
        the per-lag product emissions and their lead-only parts, each (m, T + max L, S);
        the likelihood is the mixture's over the fitted dates, and each draw keeps
        ``lag_probability`` (m,), P(L | fitted data, parameters)."""
        log_likelihoods, emissions, lead_parts = [], [], []
        for lag in self.lags:
            emissions.append(product_log_emission(lead_log_emission, lag_log_emission, lag))
            lead_parts.append(
                product_log_emission(lead_log_emission, pt.zeros_like(lag_log_emission), lag)
            )
            fitted = emissions[-1]  # no slice when all are fitted: the graph keeps no n_fit
            n_fit = observations.n_fit
            if n_fit < observations.n_dates:
                fitted = product_log_emission(
                    lead_log_emission[:n_fit], lag_log_emission[:n_fit], lag
                )
            log_likelihoods.append(hmm_log_likelihood(log_initial, log_transition, fitted))
        total, probability = mixture_log_likelihood(log_likelihoods)
        pm.Deterministic("lag_probability", probability, dims="lag")
        inputs = (
            log_initial,
            log_transition,
            padded(emissions, self.lags),
            padded(lead_parts, self.lags),
        )
        return KernelGraphs(inputs, total)

    def _chain_log_emission(self, chain: str, observations: Observations):
        """One chain's emission priors (named ``<chain>::...``) -> (T, K) log densities."""
        with pm.Model(name=chain):
            dims = (f"{chain}_regime", f"{chain}_feature")
            return self.emissions.build(observations, dims, report_correlation=False)

    def starts(
        self,
        start: tuple[EMEstimate, EMEstimate],
        observations: Observations,
        n_chains: int,
        seed: int,
    ) -> list[dict[str, np.ndarray]]:
        """Each chain's EM start (perturbed, as plain regimes' are), couplings near 0."""
        transitions = (self.lead_covariates or self._sticky(), self._sticky())
        per_chain = [
            Regimes(self.emissions, chain_transitions, self.order_by).starts(
                estimate, view, n_chains, seed
            )
            for estimate, view, chain_transitions in zip(
                start, self.chains(observations), transitions, strict=True
            )
        ]
        rng = np.random.default_rng(seed + 1)
        points = []
        for lead_point, lag_point in zip(*per_chain, strict=True):
            point = {
                f"{chain}::{name}": value
                for chain, chain_point in zip(CHAINS, (lead_point, lag_point), strict=True)
                for name, value in chain_point.items()
                if name != "initial"
            }
            point["coupling_enter"] = np.asarray(0.1 * rng.standard_normal())
            point["coupling_stay"] = np.asarray(0.1 * rng.standard_normal())
            if self.initial == "dirichlet":
                point["initial"] = np.outer(start[0].initial, start[1].initial).ravel()
            points.append(point)
        return points

    def label_candidates(self) -> np.ndarray:
        """(4, S) product-state permutations: each chain as it is or reversed, identity
        first. The coupling is defined on the regimes' order (upward and downward moves,
        the lead score s(e)); reversing a chain maps it onto itself with the couplings
        transformed (see :meth:`permute`), any other permutation does not, so
        these are the permutations the prior is invariant under (for K = 2: all)."""
        k = self.n_regimes
        orders = (np.arange(k), np.arange(k)[::-1])
        return np.array(
            [(lead[:, None] * k + lag[None, :]).ravel() for lead in orders for lag in orders]
        )

    def _chain_permutations(self, permutations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Product-state permutations (N, S) -> each chain's regime permutation (N, K):
        new state e * K + c holds old state lead[e] * K + lag[c]."""
        k = self.n_regimes
        return permutations[:, np.arange(k) * k] // k, permutations[:, :k] % k

    def naming(
        self, matched: np.ndarray, posterior: xr.Dataset, observations: Observations
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each chain named on its own anchor, after matching (``matched`` (N, S)):
        reversed for every draw when its anchor's mean falls from the first regime to the
        last (order_by="volatility": when its scale rises, the calmest regime being
        risk_on). -> (product-state order (S,), the lead chain's K-1 separations, then
        the lag chain's)."""
        naming, separation = [], []
        variable, sign = ("mean", 1.0) if self.order_by == "mean" else ("sigma", -1.0)
        views, perms_by_chain = self.chains(observations), self._chain_permutations(matched)
        for chain, view, perms in zip(CHAINS, views, perms_by_chain, strict=True):
            anchor = sign * posterior[f"{chain}::{variable}"].to_numpy()[..., view.anchor]
            values = np.take_along_axis(anchor.reshape(len(matched), -1), perms, axis=1)
            reverse = values.mean(axis=0)[-1] < values.mean(axis=0)[0]
            values = values[:, ::-1] if reverse else values
            naming.append(reverse)
            separation.append((values[:, 1:] > values[:, :-1]).mean(axis=0))
        return self.label_candidates()[2 * naming[0] + naming[1]], np.concatenate(separation)

    def name_checks(self, separation: np.ndarray, observations: Observations) -> list[dict]:
        """Each chain's pairs, named "<group>:<regime>" (``separation``: the lead chain's
        K-1 shares, then the lag chain's)."""
        names = regime_names(self.n_regimes)
        pairs = []
        shares = iter(separation)
        for group, view in zip(
            (self.lead_group, self.lag_group), self.chains(observations), strict=True
        ):
            anchor = view.columns[view.anchor]
            for k in range(self.n_regimes - 1):
                lower, upper = f"{group}:{names[k]}", f"{group}:{names[k + 1]}"
                pairs.append(name_check(anchor, self.order_by, lower, upper, next(shares)))
        return pairs

    def permute(
        self, arrays: dict[str, np.ndarray], permutations: np.ndarray
    ) -> dict[str, np.ndarray]:
        """As :meth:`Regimes.permute` for product-state permutations (N, S)
        from :meth:`label_candidates`: each chain's own variables by its regime
        permutation, the product states' by the product one, and the couplings
        transformed so that the coupled transitions stay the same. Reversing the lead
        chain flips the lead score s(e), so both couplings change sign; reversing the
        lag chain swaps upward and downward moves, so (enter, stay) -> (-stay, -enter)."""
        lead, lag = self._chain_permutations(permutations)
        permuted = dict(arrays)
        for chain, perms in (("lead", lead), ("lag", lag)):
            for name, axes in REGIME_AXES.items():
                if f"{chain}::{name}" in arrays:
                    permuted[f"{chain}::{name}"] = permute_draws(
                        arrays[f"{chain}::{name}"], perms, axes
                    )
            permuted.update(permuted_correlations(arrays, perms, self.n_regimes, f"{chain}::"))
        for name in ("transition", "transition_intercept", "transition_coefficient"):
            if f"lead_{name}" in arrays:  # reported names of the lead chain's lead::<name>
                permuted[f"lead_{name}"] = permute_draws(
                    arrays[f"lead_{name}"], lead, REGIME_AXES[name]
                )
        if "lag_transition" in arrays:  # (lead regime lagged, lag regime, lag regime to)
            values = take_regimes(arrays["lag_transition"], lead, 0)
            permuted["lag_transition"] = permute_draws(values, lag, (("regime", 1), ("regime", 2)))
        for name in ("transition", "initial", "emission_mean", "emission_scale"):
            if name in arrays:
                permuted[name] = permute_draws(arrays[name], permutations, REGIME_AXES[name])
        if "coupling_enter" in arrays:
            enter, stay = arrays["coupling_enter"], arrays["coupling_stay"]
            lead_reversed = lead[:, 0] != 0
            lag_reversed = lag[:, 0] != 0
            enter, stay = (
                np.where(lead_reversed, -enter, enter),
                np.where(lead_reversed, -stay, stay),
            )
            enter, stay = np.where(lag_reversed, -stay, enter), np.where(lag_reversed, -enter, stay)
            permuted["coupling_enter"], permuted["coupling_stay"] = enter, stay
        return permuted

    def simulate(self, parameters, log_initial, log_transition, observations, rng):
        """The product chain over T + L steps; date t's lead regime is step t + L's lead
        component (the chain is re-indexed, see the module docstring), its lag regime step
        t's lag component. States (T,) are the per-date joint regimes, e * K + c."""
        if self.emissions.covariance == "full":
            raise ValueError(
                "simulate() supports the lead-lag model with covariance='diag' only: its "
                "chains' correlation factors are not kept as variables to simulate from"
            )
        k, n_dates = self.n_regimes, observations.n_dates
        lag = self.lag if self.lag is not None else int(rng.choice(self.lags))  # its prior
        path = sample_markov_path(rng, log_initial, log_transition, n_dates + lag)
        regimes = {"lead": path[lag:] // k, "lag": path[:n_dates] % k}
        values = np.empty((n_dates, observations.n_features))
        for chain, view in zip(CHAINS, self.chains(observations), strict=True):
            index = [observations.columns.index(column) for column in view.columns]
            values[:, index] = sample_emissions(
                rng,
                regimes[chain],
                parameters[f"{chain}::mean"],
                parameters[f"{chain}::sigma"],
                nu=parameters.get(f"{chain}::nu"),
            )
        return regimes["lead"] * k + regimes["lag"], values

    def date_quantities(
        self, inputs: tuple, with_bands: bool
    ) -> tuple[DrawProbabilities, np.ndarray | None]:
        """Per-date quantities of one draw from ``inputs`` (the kernel's, plus the
        lead-only part of the product emission, see :meth:`build`).

        With bands, the same pass also runs FORECAST_STEPS + L dates past the last one with
        nothing observed: their filtered probabilities (horizon, S) are the exact forecast,
        returned beside the quantities for :meth:`annotate`. Unobserved trailing steps
        change nothing before them. With covariate-driven lead transitions the inputs end
        with the forecast steps' transitions (see :func:`lead_drivers`). With the lag
        marginalised, each lag's quantities (forecasts over max L + FORECAST_STEPS dates)
        are mixed (:func:`~regime_model.models.lag_mixture.mix_date_quantities`).
        """
        return self._quantities(inputs, with_bands, _one_lag_quantities)

    def draw_quantities(
        self, inputs: tuple, with_bands: bool
    ) -> tuple[ProbabilityDraws, np.ndarray | None]:
        """:meth:`date_quantities` of N draws (inputs with a leading draw axis) in
        compiled loops: without bands the filtered probabilities and log predictive
        densities; with bands all three kinds and the forecast paths (N, horizon, S)."""
        return self._quantities(inputs, with_bands, _one_lag_draws)

    def _quantities(self, inputs: tuple, with_bands: bool, one_lag):
        """What both passes share: one lag's quantities by ``one_lag`` (one draw's or
        many draws'), or with the lag marginalised each lag's, mixed. The arrays' lag and
        step axes are the last but two and last but one, with or without a draw axis."""
        horizon = max(self.lags) + FORECAST_STEPS if with_bands else 0
        if self.lag is not None:
            return one_lag(inputs, self.lag, self.n_regimes, horizon, with_bands)
        log_initial, log_transition, log_emission, lead_log_emission = inputs[:4]
        n_dates = log_emission.shape[-2] - max(self.lags)
        per_lag, forecasts = [], []
        for i, lag in enumerate(self.lags):
            steps = n_dates + lag  # the lag's own product steps (the rest is padding)
            inputs_at_lag = (
                log_initial,
                log_transition,
                log_emission[..., i, :steps, :],
                lead_log_emission[..., i, :steps, :],
            )
            quantities, paths = one_lag(inputs_at_lag, lag, self.n_regimes, horizon, with_bands)
            per_lag.append(quantities)
            forecasts.append(paths)
        return mix_date_quantities(per_lag, n_dates, forecasts if with_bands else None)

    def inputs_at(self, parameters: dict, observations: Observations) -> None:
        """None: a point is evaluated through the sampled graph."""
        return None

    def reported(self, posterior: xr.Dataset, observations: Observations):
        """Product-state transition, initial distribution and emissions (S, D) in the
        features' units, plus each chain's transitions and the couplings (and each draw's
        P(L | data, draw) when the lag is marginalised)."""
        lead, lag = self.chains(observations)
        k = self.n_regimes
        states = np.arange(k * k)
        emission_mean, emission_scale, emission_nu = chain_emissions(
            posterior, observations, [("lead", lead, states // k), ("lag", lag, states % k)]
        )
        reported = {
            "transition": posterior["transition"].to_numpy(),
            "initial": posterior["initial"].to_numpy(),
            "emission_mean": emission_mean,
            "emission_scale": emission_scale,
            "lead_transition": posterior["lead::transition"].to_numpy(),
            "lag_transition": posterior["lag_transition"].to_numpy(),
            "coupling_enter": posterior["coupling_enter"].to_numpy(),
            "coupling_stay": posterior["coupling_stay"].to_numpy(),
        }
        if self.emissions.emission == "student-t" and self.emissions.covariance == "diag":
            reported["emission_nu"] = emission_nu
        names = regime_names(k)
        dims = {
            "lead_transition": ["lead_from", "lead_to"],
            "lag_transition": ["lead_lagged", "lag_from", "lag_to"],
        }
        coords = {
            name: names for name in ("lead_from", "lead_to", "lead_lagged", "lag_from", "lag_to")
        }
        if self.lag is None:
            reported["lag_probability"] = posterior["lag_probability"].to_numpy()
            dims["lag_probability"] = ["lag"]
            coords["lag"] = list(self.lags)
        if self.lead_covariates is not None:
            for name, name_dims in (
                ("transition_intercept", ["lead_move"]),
                ("transition_coefficient", ["lead_move", "covariate"]),
            ):
                reported[f"lead_{name}"] = posterior[f"lead::{name}"].to_numpy()
                dims[f"lead_{name}"] = name_dims
            coords.update(self._covariate_coords())
        return reported, dims, coords

    def annotate(
        self,
        result: RegimeResult,
        posterior: xr.Dataset,
        observations: Observations,
        extras: list[np.ndarray],
        permutations: np.ndarray | None,
    ) -> None:
        """The chains' layout, the coupling summary and an exact per-chain forecast (from
        the band draws' forecast paths ``extras``, as sampled, put in the result's labels
        by ``permutations``) in ``fit_info``."""
        lead, lag = self.chains(observations)
        layout = {
            "lag": self.lag,  # None: marginalised over "lags"
            **({"lags": list(self.lags)} if self.lag is None else {}),
            "lead_group": self.lead_group,
            "lag_group": self.lag_group,
            "lead_columns": lead.columns,
            "lag_columns": lag.columns,
            "lead_anchor": lead.columns[lead.anchor],
            "lag_anchor": lag.columns[lag.anchor],
        }
        if self.lead_covariates is not None:
            layout["lead_covariates"] = self.lead_covariates.covariates
            self.lead_covariates.record_covariates(result, observations)
        result.config["anchor"] = layout["lead_anchor"]
        result.config["lag_anchor"] = layout["lag_anchor"]
        result.fit_info["lead_lag"] = layout
        summary = model_summary(result)
        paths = np.stack(extras)  # (band draws, horizon, S) as sampled
        if permutations is not None:
            paths = take_regimes(paths, permutations, 1)
        summary["forecast"] = chain_forecast(paths, self.n_regimes, self.lead_group, self.lag_group)
        if self.lead_covariates is not None:
            summary["note"] += (
                f" {self.lead_group}'s transitions are driven by the covariates (lagged one "
                "step; lead_transition is at average covariates); the forecast holds them at "
                "their last value after the first step."
            )
            table = coefficient_table(
                result, name="lead_transition_coefficient", move_dim="lead_move"
            )
            summary["lead_coefficients"] = table.to_dict(orient="records")
        result.fit_info["model_summary"] = summary


def _one_lag_quantities(
    inputs: tuple, lag: int, n_regimes: int, horizon: int, with_bands: bool
) -> tuple[DrawProbabilities, np.ndarray | None]:
    """:meth:`CoupledChains.date_quantities` at one lag: the dates' quantities and, with
    bands, the filtered probabilities of the ``horizon`` empty dates after them."""
    log_initial, log_transition, log_emission, lead_log_emission, *forecast = inputs
    empty = np.zeros((horizon, log_emission.shape[1]))
    if forecast and horizon:
        log_transition = np.concatenate([log_transition, forecast[0][:horizon]])
    quantities = lead_lag_date_quantities(
        log_initial,
        log_transition,
        np.vstack([log_emission, empty]),
        np.vstack([lead_log_emission, empty]),
        lag,
        n_regimes,
        with_bands,
    )
    if not with_bands:
        return quantities, None
    n_dates = log_emission.shape[0] - lag
    dates = DrawProbabilities(*(values[:n_dates] for values in quantities))  # type: ignore[index]
    return dates, quantities.filtered[n_dates:]


def _one_lag_draws(
    inputs: tuple, lag: int, n_regimes: int, horizon: int, with_bands: bool
) -> tuple[ProbabilityDraws, np.ndarray | None]:
    """:func:`_one_lag_quantities` of N draws (inputs with a leading draw axis)."""
    log_initial, log_transition, log_emission, lead_log_emission, *forecast = inputs
    if not with_bands:
        filtered, pointwise = lead_lag_filtered_draws(
            log_initial, log_transition, log_emission, lead_log_emission, lag, n_regimes
        )
        return ProbabilityDraws(filtered, None, None, pointwise), None
    n_draws, n_steps, n_states = log_emission.shape
    empty = np.zeros((n_draws, horizon, n_states))
    if forecast and horizon:
        log_transition = np.concatenate([log_transition, forecast[0][:, :horizon]], axis=1)
    draws = lead_lag_band_draws(
        log_initial,
        log_transition,
        np.concatenate([log_emission, empty], axis=1),
        np.concatenate([lead_log_emission, empty], axis=1),
        lag,
        n_regimes,
    )
    n_dates = n_steps - lag
    dates = ProbabilityDraws(
        *(getattr(draws, kind)[:, :n_dates] for kind in KINDS), draws.pointwise_loglik[:, :n_dates]
    )
    return dates, draws.filtered[:, n_dates:]


def lead_drivers(covariates: np.ndarray, lag: int, forecast_steps: int):
    """The covariate rows driving the lead chain's transitions on the product steps, from
    the standardised covariates (T, C): -> ((T+L-1, C), (L+forecast_steps, C)).

    Product row r is the move into step r+1, whose lead regime is that of date r+1-L; the
    move into date d is driven by x_{d-1}, so row r takes x_{r-L}, and the L rows before
    the first date (unobserved lead steps) take the average, x = 0. The forecast's moves
    into dates T, T+1, ... take x_{T-1} (known for the first, held after it)."""
    width = covariates.shape[1]
    drivers = np.vstack([np.zeros((lag, width)), covariates[:-1]])
    forecast = np.repeat(covariates[-1:], lag + forecast_steps, axis=0)
    return drivers, forecast
