"""Bayesian hidden Markov model in PyMC with the compiled forward-backward likelihood.

The regime path is marginalised exactly by the shared kernel (one PyTensor Op with an
analytic gradient), so NUTS samples only the parameters. Regime probabilities with bands
come afterwards from forward-backward per posterior draw.

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

import inspect
import os
import time
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.pytensorf import compile as compile_pymc
from pytensor.graph.replace import vectorize_graph

from regime_model.choices import COVARIANCES, EMISSIONS, IDENTIFICATIONS, INITIALS, SWITCHING
from regime_model.data.features import FeatureSet
from regime_model.inference import (
    hmm_filter,
    hmm_log_likelihood,
    sample_markov_path,
)
from regime_model.models.covariates import split_covariates
from regime_model.models.diagnostics import mcmc_diagnostics
from regime_model.models.em_hmm import EMHMM, EMEstimate
from regime_model.models.gaussian_emissions import GaussianEmissions
from regime_model.models.nutpie_sampler import VECTORISED_MODE
from regime_model.models.observations import (
    Observations,
    holdout_info,
    prepare_observations,
    regime_names,
    select_features,
)
from regime_model.models.relabelling import (
    Labelling,
    RegimeAxes,
    label_dates,
    label_states,
    match_to_pivot,
    name_check,
    name_order,
    permute_draws,
    permuted_correlations,
    take_regimes,
)
from regime_model.models.samplers import SAMPLERS, SamplerSettings, point_as_posterior
from regime_model.models.simulation import PriorSimulation, draw_prior, replace_columns
from regime_model.models.transitions import (
    DEFAULT_COEFFICIENT_SCALE,
    CovariateLogit,
    StickyDirichlet,
)
from regime_model.results import (
    KINDS,
    DrawProbabilities,
    ProbabilityDraws,
    RegimeResult,
    build_inference_data,
    draw_probabilities,
)

KERNEL_INPUT_CHUNK = 250  # draws per vectorised evaluation of the kernel's inputs


class BayesianHMM:
    """Bayesian HMM over the columns of a feature set.

    Parameters
    ----------
    n_regimes: K, 2..5.
    emission: "gaussian" or "student-t" (fat tails, one degrees-of-freedom per feature).
    switching: "both" (regime means and scales), "mean" (one shared covariance) or
        "variance" (one common mean).
    covariance: "diag" or "full" (LKJ(2) prior on each regime's correlation matrix).
    anchor: feature the regimes are ordered on (default: the first equity return).
    order_by: "mean" or "volatility" (default: mean, or volatility when switching="variance").
    identification: "relabelled" (bayes-hmm's default): exchangeable priors (every
        regime's parameters drawn alike), every draw's labels matched to a common pivot
        of regime probabilities (Stephens 2000) and the regimes named on the anchor
        afterwards, so two regimes whose anchor means are close neither split the
        posterior into modes the sampler cannot cross nor swap names between draws;
        simulation-based calibration passes with it and fails with "ordered"
        (docs/evaluation.md). "ordered": the order is built into the parameterisation
        (positive gaps below the top regime's anchor mean); the only one the lead-lag
        family supports (``identifications``).
    stickiness: Dirichlet concentration on staying in a regime (1 on each other entry).
    initial: "stationary" (the transition matrix's stationary distribution) or "dirichlet".
    standardise: put the priors in units of each feature's fitted mean and standard
        deviation (the default). False: in the features' own units, for data already on a
        unit scale; then the prior does not depend on the data, as simulation-based
        calibration (:meth:`simulate`) needs.
    sampler: "nuts" (PyMC), "nutpie" (if installed), "map" or "advi" (quick exploration).
    band_draws: how many posterior draws get a forward-backward pass for the bands.
    """

    name = "bayes-hmm"  # the --model name; subclasses set their own
    # Supported identifications, default first. "relabelled" needs an exchangeable prior
    # and every regime-carrying variable declared in regime_axes; a subclass whose prior
    # is not exchangeable (ordered group responses, coupled chains) supports "ordered" only.
    identifications: tuple[str, ...] = IDENTIFICATIONS
    # Whether the family takes covariate-driven transitions (``covariates``).
    covariates_allowed = False
    covariates_required = False
    # How each posterior variable, sampled or reported, carries regimes (relabelling
    # permutes these; see relabelling.RegimeAxes). A family adds its own variables.
    regime_axes: dict[str, RegimeAxes] = GaussianEmissions.regime_axes | StickyDirichlet.regime_axes

    def __init__(
        self,
        n_regimes: int = 2,
        emission: str = "gaussian",
        switching: str = "both",
        covariance: str = "diag",
        anchor: str | None = None,
        order_by: str | None = None,
        identification: str | None = None,
        stickiness: float = 10.0,
        initial: str = "stationary",
        covariates: list[str] | None = None,
        coefficient_scale: float = DEFAULT_COEFFICIENT_SCALE,
        standardise: bool = True,
        sampler: str = "nuts",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        target_accept: float = 0.9,
        seed: int = 0,
        band_draws: int = 400,
        progressbar: bool = True,
    ) -> None:
        for value, choices, name in (
            (emission, EMISSIONS, "emission"),
            (switching, SWITCHING, "switching"),
            (covariance, COVARIANCES, "covariance"),
            (sampler, SAMPLERS, "sampler"),
            (initial, INITIALS, "initial"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        order_by = order_by or ("volatility" if switching == "variance" else "mean")
        if (order_by, switching) in (("mean", "variance"), ("volatility", "mean")):
            raise ValueError(f"cannot order by {order_by} when only the other one switches")
        if stickiness <= 0:
            raise ValueError("stickiness must be positive")
        self._check_covariates(covariates, coefficient_scale)
        identification = identification or self.identifications[0]
        if identification not in self.identifications:
            raise ValueError(
                f"{self.name} supports identification {' or '.join(self.identifications)}, "
                f"not {identification!r}"
            )
        self.n_regimes = n_regimes
        self.emission = emission
        self.switching = switching
        self.covariance = covariance
        self.anchor = anchor
        self.order_by = order_by
        self.identification = identification
        self.stickiness = stickiness
        self.initial = initial
        self.covariates = list(covariates) if covariates else None
        self.coefficient_scale = float(coefficient_scale)
        self.standardise = bool(standardise)
        self.sampler = sampler
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.cores = cores
        self.target_accept = target_accept
        self.seed = seed
        self.band_draws = band_draws
        self.progressbar = progressbar

    def _check_covariates(self, covariates, coefficient_scale: float) -> None:
        if covariates is not None and isinstance(covariates, str):
            raise ValueError("covariates must be a list of column names, not one string")
        if self.covariates_required and not covariates:
            raise ValueError(f"the {self.name} model needs at least one covariate column")
        if covariates and not self.covariates_allowed:
            raise ValueError(
                f"{self.name} takes no covariates: use tvtp (or hierarchical) for "
                "covariate-driven transitions"
            )
        duplicated = sorted({name for name in covariates or [] if covariates.count(name) > 1})
        if duplicated:
            raise ValueError(f"covariate listed twice: {', '.join(duplicated)}")
        if not coefficient_scale > 0:
            raise ValueError("coefficient_scale must be positive")

    def get_config(self) -> dict[str, Any]:
        """Hyperparameters as passed to ``__init__`` (except display ones), plus the name."""
        # A subclass names its own options and passes the rest on as **base_options, so
        # the options are the union of the signatures along the class hierarchy.
        names: list[str] = []
        for cls in type(self).__mro__:
            if "__init__" not in cls.__dict__ or cls is object:
                continue
            for parameter in inspect.signature(cls.__init__).parameters.values():
                if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    continue
                if parameter.name not in (*names, "self", "cores", "progressbar"):
                    names.append(parameter.name)
        return {"model": self.name, **{name: getattr(self, name) for name in names}}

    # ------------------------------------------------------------------ model
    def build_model(self, observations: Observations) -> pm.Model:
        """The PyMC model; its free parameters are in standardised feature units.

        Only the first ``observations.n_fit`` dates enter the likelihood; the kernel's
        inputs over all dates are kept (``self.kernel_terms_``) to score held-out dates.
        """
        with self._new_model(observations) as model:
            kernel_terms = self._kernel_terms(observations)
            log_initial, log_transition, log_emission = kernel_terms
            n_fit = observations.n_fit
            if n_fit < observations.n_dates:
                log_emission = log_emission[:n_fit]
                if log_transition.ndim == 3:
                    log_transition = log_transition[: n_fit - 1]
            pm.Potential(
                "hmm_loglik", self._marginal_loglik(log_initial, log_transition, log_emission)
            )
        self.kernel_terms_ = kernel_terms
        return model

    def _new_model(self, observations: Observations) -> pm.Model:
        """An empty model with the coordinates, to build the priors and likelihood in."""
        # Every prior parameter is a constant validated in __init__ and every sampled one
        # is valid by its transform, so PyMC's run-time parameter checks could never fire;
        # left in, they are some ten more nodes of the compiled log density.
        return pm.Model(coords=self._coords(observations), check_bounds=False)

    def _coords(self, observations: Observations) -> dict[str, list[str]]:
        names = regime_names(self.n_regimes)
        return {
            "regime": names,
            "regime_to": names,
            "feature": observations.columns,
            **self._transitions().coords(),
        }

    def _kernel_terms(self, observations: Observations):
        """Priors, and the kernel's inputs over all dates: log_initial (K,),
        log_transition (K, K) or (T-1, K, K), log_emission (T, K). Subclasses replace
        pieces (emission priors, transitions, state space) by overriding this or the
        helpers it calls."""
        log_emission = self._emissions().build(observations)
        log_initial, log_transition = self._transition_terms(observations)
        return log_initial, log_transition, log_emission

    def _emissions(self) -> GaussianEmissions:
        """The emission component (:mod:`regime_model.models.gaussian_emissions`); with
        the ordered identification its anchor's means or scales carry the order."""
        ordered = self.order_by if self.identification == "ordered" else None
        return GaussianEmissions(
            self.n_regimes, self.emission, self.switching, self.covariance, ordered
        )

    def _transitions(self) -> StickyDirichlet | CovariateLogit:
        """The transition component: covariate-driven when ``covariates`` are given,
        sticky Dirichlet otherwise (see :mod:`regime_model.models.transitions`)."""
        if self.covariates:
            return CovariateLogit(
                self.n_regimes,
                self.stickiness,
                self.initial,
                self.covariates,
                self.coefficient_scale,
            )
        return StickyDirichlet(self.n_regimes, self.stickiness, self.initial)

    def _transition_terms(self, observations: Observations):
        """The transition component's priors -> (log_initial (K,), log_transition)."""
        return self._transitions().build(observations)

    def _marginal_loglik(self, log_initial, log_transition, log_emission) -> pt.TensorVariable:
        """log p(y_1..T) with the regime path summed out (the compiled kernel's Op)."""
        return hmm_log_likelihood(log_initial, log_transition, log_emission)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        features: FeatureSet,
        columns: list[str] | None = None,
        holdout_start: str | None = None,
    ) -> RegimeResult:
        """Sample the posterior and summarise it as a :class:`RegimeResult`.

        ``holdout_start``: fit on the dates before it only, then score the later dates one
        step ahead with the filter (no refitting): the result's ``holdout_log_predictive``.
        """
        observations = self.observations(features, columns, holdout_start)
        fitted = observations.fitted_part()
        start = self._em_start(fitted)
        # The sampled model holds the fitted dates only, so its graph depends on nothing
        # else and a compiled logp is reused by the next refit (see nutpie_sampler); the
        # held-out dates join afterwards, for the per-draw quantities.
        model = self.build_model(fitted)
        started = time.perf_counter()
        posterior, sample_stats = self._sample(model, self._initial_values(start, fitted))
        sampling_seconds = time.perf_counter() - started
        if observations.n_holdout:
            model = self.build_model(observations)
        self.model_, self.observations_ = model, observations
        return self._result(model, observations, posterior, sample_stats, sampling_seconds)[0]

    def observations(
        self,
        features: FeatureSet,
        columns: list[str] | None = None,
        holdout_start: str | None = None,
    ) -> Observations:
        """The model's inputs: ``columns`` of ``features``, validated and (by default)
        standardised. With ``covariates``, ``columns`` are the emission columns (default:
        every column that is not a covariate), on the dates the covariates allow
        (:func:`~regime_model.models.covariates.split_covariates`)."""
        if not self.covariates:
            return prepare_observations(
                select_features(features, columns),
                self.n_regimes,
                self.anchor,
                holdout_start,
                standardise=self.standardise,
            )
        split = split_covariates(features, self.covariates, columns)
        return prepare_observations(
            select_features(split.emission, None),
            self.n_regimes,
            self.anchor,
            holdout_start,
            standardise=self.standardise,
            covariates=split.frame,
            covariate_trimming=split.trimming,
        )

    def _em_start(self, observations: Observations) -> EMEstimate:
        """A maximum-likelihood fit in the model's regime order, to start chains from."""
        return EMHMM(
            self.n_regimes,
            n_restarts=4,
            anchor=observations.columns[observations.anchor],
            order_by=self.order_by,
            seed=self.seed,
        ).estimate(observations)

    def _initial_values(
        self, start: EMEstimate, observations: Observations
    ) -> list[dict[str, np.ndarray]]:
        """One starting point per chain: the EM fit, perturbed a little (the emission
        and transition components' starts)."""
        n_chains = max(self.chains, 1)
        emissions = self._emissions().starts(start, observations, n_chains, self.seed)
        transitions = self._transitions().starts(start, n_chains, self.seed)
        return [
            {**transition, **emission}
            for transition, emission in zip(transitions, emissions, strict=True)
        ]

    def _sample(self, model: pm.Model, initvals: list[dict[str, np.ndarray]]):
        """(posterior, sample_stats or None) from the sampler named ``sampler``
        (:data:`~regime_model.models.samplers.SAMPLERS`)."""
        settings = SamplerSettings(
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            cores=self.cores or min(self.chains, os.cpu_count() or 1),
            seed=self.seed,
            target_accept=self.target_accept,
            progressbar=self.progressbar,
        )
        return SAMPLERS[self.sampler](model, initvals, settings)

    def _state_names_order(
        self, matched: np.ndarray, posterior: xr.Dataset, observations: Observations
    ) -> tuple[np.ndarray, np.ndarray]:
        """(order (K,), separation (K-1,)) naming the matched regimes (``matched``
        (N, K)) risk_off ... risk_on on the anchor's posterior mean of its regime means
        (order_by="mean") or scales (:func:`~regime_model.models.relabelling.name_order`)."""
        name = "mean" if self.order_by == "mean" else "sigma"
        values = posterior[name].to_numpy()[..., observations.anchor]
        values = np.take_along_axis(values.reshape(len(matched), -1), matched, axis=1)
        return name_order(values, descending=self.order_by == "volatility")

    def _permute_arrays(
        self, arrays: dict[str, np.ndarray], permutations: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Variables (name -> (N, ...)) with every regime-carrying one (``regime_axes``,
        and full covariance's per-regime LKJ variables) permuted by its draw's
        permutation (N, K); the rest as they are. The likelihood and an exchangeable
        prior are invariant under it. One definition for posteriors and single points."""
        permuted = dict(arrays)
        for name, axes in (self.regime_axes | self._transitions().regime_axes).items():
            if name in arrays:
                permuted[name] = permute_draws(arrays[name], permutations, axes)
        permuted.update(permuted_correlations(arrays, permutations, self.n_regimes))
        return permuted

    def _permuted(self, posterior: xr.Dataset, permutations: np.ndarray) -> xr.Dataset:
        """``posterior`` with its draws permuted by ``permutations`` (chain, draw, K)
        (see :meth:`_permute_arrays`)."""
        n_chains, n_draws = permutations.shape[:2]
        shapes = {name: posterior[name].shape for name in posterior.data_vars}
        arrays = {
            name: posterior[name].to_numpy().reshape(n_chains * n_draws, *shape[2:])
            for name, shape in shapes.items()
        }
        flat = permutations.reshape(n_chains * n_draws, -1)
        permuted = posterior.copy()
        for name, values in self._permute_arrays(arrays, flat).items():
            permuted[name] = (posterior[name].dims, values.reshape(shapes[name]))
        return permuted

    def _relabelled(
        self, posterior: xr.Dataset, probabilities: np.ndarray, observations: Observations
    ) -> tuple[xr.Dataset, Labelling]:
        """The posterior with consistent labels across draws, then named
        (:func:`~regime_model.models.relabelling.label_states`): ``probabilities``
        (N, T', S) are each draw's filtered probabilities as sampled."""
        labelling = label_states(
            probabilities,
            lambda matched: self._state_names_order(matched, posterior, observations),
            self._label_candidates(),
        )
        shape = (posterior.sizes["chain"], posterior.sizes["draw"], -1)
        return self._permuted(posterior, labelling.permutations.reshape(shape)), labelling

    def match_labels(self, simulation: PriorSimulation) -> PriorSimulation:
        """A simulation's truth in the last fit's labels (relabelled fits): its filtered
        probabilities matched to the fit's pivot, as every posterior draw was, so ranks and
        coverage compare like with like (simulation-based calibration)."""
        if self.identification != "relabelled":
            return simulation
        at_truth = self.quantities_at(simulation.parameters)
        perm = match_to_pivot(
            at_truth.filtered[None, label_dates(len(at_truth.filtered))],
            self.labelling_.pivot,
            self._label_candidates(),
        )
        return PriorSimulation(
            features=simulation.features,
            states=np.argsort(perm[0])[simulation.states],
            parameters=self._permuted_point(simulation.parameters, perm),
            reported=self._permuted_point(simulation.reported, perm),
        )

    def _label_candidates(self) -> np.ndarray | None:
        """(P, S) the state permutations the prior is invariant under (None: all)."""
        return None

    def _permuted_point(self, point: dict[str, np.ndarray], perm: np.ndarray) -> dict:
        """One parameter point (name -> array, no draw axes) permuted by ``perm`` (1, K)."""
        arrays = {name: np.asarray(value)[None] for name, value in point.items()}
        return {name: values[0] for name, values in self._permute_arrays(arrays, perm).items()}

    # ------------------------------------------------------------------ simulating
    def simulate(
        self, template: FeatureSet, columns: list[str] | None = None, seed: int = 0
    ) -> PriorSimulation:
        """Draw parameters from the prior and data from the model (simulation-based
        calibration). ``template`` sets the dates, columns, groups, missing values and any
        covariates; its emission values are replaced. Needs ``standardise=False`` (with
        standardised data the prior would depend on the data it generates). The truth
        is named on the anchor; :meth:`match_labels` puts it in a fit's labels."""
        if self.standardise:
            raise ValueError("simulate() needs standardise=False (a prior free of the data)")
        observations = self.observations(template, columns)
        model = self.build_model(observations)
        log_initial, log_transition = self.kernel_terms_[:2]
        parameters, (log_initial, log_transition) = draw_prior(
            model, [log_initial, log_transition], seed
        )
        rng = np.random.default_rng([seed, 1])
        states, values = self._simulate_data(
            parameters, log_initial, log_transition, observations, rng
        )
        features = replace_columns(
            template,
            observations.columns,
            values * observations.scale + observations.center,
            observations.dates,
        )
        point = point_as_posterior(model, parameters)
        if self.identification == "relabelled":
            # Exchangeable prior: the data do not depend on the labels. Name them as a fit
            # would, on the anchor (a single draw: the matching step leaves it as it is,
            # so its probabilities do not matter), and carry the path along.
            n_states = len(self._state_names(observations))
            flat = np.full((1, observations.n_dates, n_states), 1.0 / n_states)
            point, labelling = self._relabelled(point, flat, observations)
            parameters = {name: point[name].to_numpy()[0, 0] for name in point.data_vars}
            states = np.argsort(labelling.permutations[0])[states]
        reported, _, _ = self._reported(point, observations)
        return PriorSimulation(
            features=features,
            states=states,
            parameters=parameters,
            reported={name: np.asarray(value)[0, 0] for name, value in reported.items()},
        )

    def _simulate_data(
        self,
        parameters: dict[str, np.ndarray],
        log_initial: np.ndarray,
        log_transition: np.ndarray,
        observations: Observations,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(states (T,), observations (T, D) in model units) at one parameter draw."""
        states = sample_markov_path(rng, log_initial, log_transition, observations.n_dates)
        return states, self._emissions().simulate(parameters, states, rng)

    def quantities_at(self, parameters: dict[str, np.ndarray]) -> DrawProbabilities:
        """Per-date regime probabilities and predictive densities of the last fitted data
        at one parameter point (every free variable by name), e.g. the truth of a
        simulation."""
        point = point_as_posterior(self.model_, parameters, names=list(self.model_.free_RVs))
        kernel_inputs = self._draw_kernel_inputs(self.model_, point)
        return self._date_quantities(*kernel_inputs(0), with_bands=True)

    # ------------------------------------------------------------------ summarising
    def _result(
        self, model: pm.Model, observations: Observations, posterior, sample_stats, seconds
    ) -> tuple[RegimeResult, xr.Dataset]:
        """Forward-backward per draw: per-date log predictive densities for every draw,
        regime probabilities for ``band_draws`` of them; relabelled fits then get
        consistent labels (the signal: every draw's filtered probabilities on up to
        MAX_LABEL_DATES evenly spaced dates).
        -> (result, the posterior in the result's labels, for a family's own tables)."""
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        n_total = n_chains * n_draws
        kernel_inputs = self._draw_kernel_inputs(model, posterior)
        band = np.unique(np.linspace(0, n_total - 1, min(self.band_draws, n_total)).astype(int))
        band_set = set(band.tolist())
        relabel = self.identification == "relabelled"
        pointwise = np.empty((n_total, observations.n_dates))
        dates = label_dates(observations.n_dates)
        n_states = len(self._state_names(observations))
        signal = np.empty((n_total, len(dates), n_states), np.float32) if relabel else None
        band_probabilities = []
        for index in range(n_total):
            with_bands = index in band_set
            values = self._date_quantities(*kernel_inputs(index), with_bands=with_bands)
            pointwise[index] = values.pointwise_loglik
            if relabel:
                signal[index] = values.filtered[dates]
            if with_bands:
                band_probabilities.append(values)
        probabilities = ProbabilityDraws(
            *(np.stack([getattr(draw, kind) for draw in band_probabilities]) for kind in KINDS),
            np.stack([draw.pointwise_loglik for draw in band_probabilities]),
        )
        labels: dict[str, Any] = {}
        if relabel:
            posterior, self.labelling_ = self._relabelled(posterior, signal, observations)
            permutations = self.labelling_.permutations[band]
            probabilities = ProbabilityDraws(
                *(take_regimes(getattr(probabilities, kind), permutations, 1) for kind in KINDS),
                probabilities.pointwise_loglik,
            )
            labels = self._label_info(self.labelling_, observations)
        reported, dims, coords = self._reported(posterior, observations)
        n_fit = observations.n_fit
        data = build_inference_data(
            reported,
            pointwise[:, :n_fit].reshape(n_chains, n_draws, -1),
            observations.dates[:n_fit],
            observations.columns,
            self._state_names(observations),
            sample_stats=sample_stats,
            dims=dims,
            coords=coords,
            holdout_loglik=pointwise[:, n_fit:].reshape(n_chains, n_draws, -1),
            holdout_dates=observations.dates[n_fit:],
        )
        result = RegimeResult(
            model=self.name,
            dates=observations.dates,
            columns=observations.columns,
            regime_names=self._state_names(observations),
            inference_data=data,
            probabilities=probabilities,
            band_draws=band,
            config={**self.get_config(), "anchor": observations.columns[observations.anchor]},
            has_bands=n_total > 1,
            fit_info={
                "sampler": self.sampler,
                # pm.sample's wall time includes compiling; PyMC times the draws alone.
                "sample_call_seconds": round(seconds, 2),
                "sampling_seconds": _float_or_none(posterior.attrs.get("sampling_time")),
                **({"labels": labels} if labels else {}),
                **holdout_info(observations),
            },
        )
        result.fit_info["diagnostics"] = mcmc_diagnostics(result, n_draws)
        self._transitions().annotate(result, observations)
        return result, posterior

    def _label_info(self, labelling: Labelling, observations: Observations) -> dict[str, Any]:
        """What ``fit_info["labels"]`` records of the relabelling (plain data); ``names``:
        per adjacent pair of named regimes, the share of draws in which the anchor orders
        them as their names say."""
        return {
            "method": "stephens-kl",
            "switched_share": labelling.switched_share,
            "discordant_share": labelling.discordant_share,
            "iterations": labelling.iterations,
            "names": self._name_checks(labelling.separation, observations),
        }

    def _name_checks(self, separation: np.ndarray, observations: Observations) -> list[dict]:
        """One :func:`~regime_model.models.relabelling.name_check` per adjacent pair of
        named regimes, with its ``separation`` (K-1,)."""
        names = regime_names(self.n_regimes)
        anchor = observations.columns[observations.anchor]
        return [
            name_check(anchor, self.order_by, names[k], names[k + 1], share)
            for k, share in enumerate(separation)
        ]

    def _state_names(self, observations: Observations) -> list[str]:
        """Names of the kernel's states, in order (the regimes, for this model)."""
        return regime_names(self.n_regimes)

    def _draw_kernel_inputs(self, model: pm.Model, posterior: xr.Dataset):
        """index into the flattened chain x draw axis -> the kernel's numpy inputs over
        all dates, evaluated from the same graph the sampler used.

        The graph is vectorised over a leading draw axis and evaluated for
        ``KERNEL_INPUT_CHUNK`` draws at a time: one call instead of one per draw (a
        second for 4,000 draws), in bounded memory ((chunk, T, K) emissions)."""
        free = list(model.free_RVs)
        batched = [
            pt.tensor(dtype=rv.dtype, shape=(None, *rv.type.shape), name=rv.name) for rv in free
        ]
        evaluate = compile_pymc(
            batched,
            vectorize_graph(list(self.kernel_terms_), dict(zip(free, batched, strict=True))),
            on_unused_input="ignore",
            mode=VECTORISED_MODE,
        )
        n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
        # An explicit length: a parameter can be empty (a chain with one feature has no
        # "other" columns), and -1 cannot be inferred from a size of 0.
        flat = {
            rv.name: (values := posterior[rv.name].to_numpy()).reshape(n_total, *values.shape[2:])
            for rv in free
        }
        chunks: dict[int, list[np.ndarray]] = {}

        def kernel_inputs(index: int) -> tuple[np.ndarray, ...]:
            chunk, row = divmod(index, KERNEL_INPUT_CHUNK)
            if chunk not in chunks:
                chunks.clear()  # draws are visited in order: keep one chunk
                rows = slice(chunk * KERNEL_INPUT_CHUNK, (chunk + 1) * KERNEL_INPUT_CHUNK)
                chunks[chunk] = evaluate(*(flat[rv.name][rows] for rv in free))
            return tuple(values[row] for values in chunks[chunk])

        return kernel_inputs

    def _date_quantities(self, log_initial, log_transition, log_emission, with_bands: bool):
        """Per-date quantities of one draw: a :class:`DrawProbabilities` (probabilities
        only when ``with_bands``; the filter alone is cheaper)."""
        if with_bands:
            return draw_probabilities(log_initial, log_transition, log_emission)
        filtered = hmm_filter(log_initial, log_transition, log_emission)
        return DrawProbabilities(
            filtered.filtered_probs.astype(np.float32), None, None, filtered.log_predictive
        )

    def _reported(self, posterior: xr.Dataset, observations: Observations):
        """(variables, dims, extra coords) of the InferenceData posterior, in the features'
        units. Subclasses add their own parameters."""
        reported = {
            "transition": posterior["transition"].to_numpy(),
            "initial": posterior["initial"].to_numpy(),
            **self._emissions().reported(posterior, observations),
        }
        extra, dims, coords = self._transitions().reported(posterior)
        return {**reported, **extra}, dims, coords


def _float_or_none(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
