"""The one Bayesian model class: it composes a family's components, talks to the kernel
and turns the posterior into a :class:`~regime_model.results.RegimeResult`.

A family (:mod:`~regime_model.models.bayesian_hmm`, ``tvtp``, ``hierarchical``,
``leadlag``) is a subclass that names its options and defines two methods, each returning
what it makes: ``initial_estimate(observations)``, the maximum-likelihood fit the chains
start from, and ``components(observations, start)``, the composition
(:mod:`~regime_model.models.composition`) of its emission and transition components.
Everything else is here, once: building the PyMC model on the compiled forward-backward
likelihood (one PyTensor Op with an analytic gradient, so NUTS samples only the
parameters), sampling through the registry (:mod:`~regime_model.models.samplers`),
per-draw regime probabilities (:mod:`~regime_model.models.posterior_pass`), consistent
labels across draws (:mod:`~regime_model.models.relabelling`), simulation for
calibration and the diagnostics (:mod:`~regime_model.models.diagnostics`).
"""

from __future__ import annotations

import os
import time
from abc import abstractmethod
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from regime_model.choices import IDENTIFICATIONS, INITIALS, tuning_steps
from regime_model.data.features import FeatureSet, validated
from regime_model.model_options import check_option_values
from regime_model.models.composition import KernelGraphs
from regime_model.models.covariates import split_covariates
from regime_model.models.diagnostics import mcmc_diagnostics
from regime_model.models.estimator import RegimeEstimator
from regime_model.models.observations import (
    Observations,
    holdout_info,
    prepare_observations,
    select_features,
)
from regime_model.models.posterior_pass import draw_kernel_inputs, evaluate_draws
from regime_model.models.relabelling import (
    Labelling,
    label_dates,
    label_states,
    match_to_pivot,
    permute_point,
    permute_posterior,
    take_regimes,
)
from regime_model.models.samplers import SAMPLERS, Sampled, SamplerSettings, point_as_posterior
from regime_model.models.simulation import PriorSimulation, draw_prior, replace_columns
from regime_model.models.transitions import DEFAULT_COEFFICIENT_SCALE
from regime_model.models.warm_start import WarmStart
from regime_model.progress import phase
from regime_model.results import (
    KINDS,
    DrawProbabilities,
    ProbabilityDraws,
    RegimeResult,
    build_inference_data,
)


class RegimeHMM(RegimeEstimator):
    """A Bayesian regime model composed of components (see the module docstring).

    Options every family shares
    ---------------------------
    n_regimes: K.
    identification: "relabelled" (the default): exchangeable priors (every regime's
        parameters drawn alike), every draw's labels matched to a common pivot of regime
        probabilities (Stephens 2000) and the regimes named on the anchor afterwards, so
        two regimes whose anchor means are close neither split the posterior into modes
        the sampler cannot cross nor swap names between draws; simulation-based
        calibration passes with it and fails with "ordered" (docs/evaluation.md).
        "ordered": the order is built into the parameterisation.
    stickiness: Dirichlet concentration on staying in a regime (1 on each other entry).
    initial: "stationary" (the transition matrix's stationary distribution; of the matrix
        at average covariates when they drive it), "stationary-first" (of the first
        date's matrix: the same without covariates, and statsmodels' and Filardo's (1994)
        convention with them) or "dirichlet".
    covariates: feature columns driving the transitions (covariate-logit transitions),
        for the families that take them; coefficient_scale: their prior sd.
    standardise: put the priors in units of each feature's fitted mean and standard
        deviation (the default). False: in the features' own units, for data already on a
        unit scale; then the prior does not depend on the data, as simulation-based
        calibration (:meth:`simulate`) needs.
    sampler: "nutpie" (the default), "nuts" (PyMC's NUTS), "map" or "advi" (quick
        exploration).
    tune: tuning steps per chain; None (the default): the sampler's own default,
        ``choices.DEFAULT_TUNE`` (300 for nutpie, 1000 for PyMC's NUTS).
    band_draws: how many posterior draws get a forward-backward pass for the bands.
    """

    name = "regime-hmm"  # the --model name; a family sets its own
    identifications: tuple[str, ...] = IDENTIFICATIONS
    initials: tuple[str, ...] = INITIALS
    covariates_allowed = False  # whether the family takes covariate-driven transitions
    covariates_required = False

    def __init__(
        self,
        n_regimes: int = 2,
        anchor: str | None = None,
        order_by: str = "mean",
        identification: str | None = None,
        stickiness: float = 10.0,
        initial: str = "stationary",
        covariates: list[str] | None = None,
        coefficient_scale: float = DEFAULT_COEFFICIENT_SCALE,
        standardise: bool = True,
        sampler: str = "nutpie",
        draws: int = 1000,
        tune: int | None = None,
        chains: int = 4,
        cores: int | None = None,
        target_accept: float = 0.9,
        seed: int = 0,
        band_draws: int = 400,
        progressbar: bool = True,
    ) -> None:
        for value, choices, name in (
            (sampler, SAMPLERS, "sampler"),
            (initial, self.initials, "initial"),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        check_option_values(
            {
                "n_regimes": n_regimes,
                "stickiness": stickiness,
                "coefficient_scale": coefficient_scale,
                "draws": draws,
                "tune": tune,
                "chains": chains,
                "seed": seed,
            }
        )
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must be between 0 and 1, got {target_accept!r}")
        if isinstance(band_draws, bool) or not isinstance(band_draws, int) or band_draws < 1:
            raise ValueError(f"band_draws must be an integer >= 1, got {band_draws!r}")
        self._check_covariates(covariates, coefficient_scale)
        identification = identification or self.identifications[0]
        if identification not in self.identifications:
            raise ValueError(
                f"{self.name} supports identification {' or '.join(self.identifications)}, "
                f"not {identification!r}"
            )
        self.n_regimes = n_regimes
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
                f"{self.name} takes no covariates: use tvtp, hierarchical or leadlag for "
                "covariate-driven transitions"
            )
        duplicated = sorted({name for name in covariates or [] if covariates.count(name) > 1})
        if duplicated:
            raise ValueError(f"covariate listed twice: {', '.join(duplicated)}")

    # ------------------------------------------------------------------ a family's part
    @abstractmethod
    def initial_estimate(self, observations: Observations) -> Any:
        """The maximum-likelihood fit (model units) the chains start from."""

    @abstractmethod
    def components(self, observations: Observations, start: Any):
        """The family's composition (:mod:`~regime_model.models.composition`)."""

    def calibration_options(self, columns: list[str]) -> dict[str, Any]:
        """Options that make the prior free of the data (simulation-based calibration):
        priors in the features' own units."""
        return {"standardise": False}

    # ------------------------------------------------------------------ model
    def build_model(self, observations: Observations) -> pm.Model:
        """The PyMC model of ``observations`` (free parameters in standardised units)."""
        return self.compose(observations)[1]

    def compose(self, observations: Observations) -> tuple[Any, pm.Model, KernelGraphs]:
        """(composition, PyMC model, kernel graphs) of ``observations``, the composition
        fixed from the start on its fitted dates, as :meth:`fit` does."""
        fitted = observations.fitted_part()
        composition = self.components(fitted, self.initial_estimate(fitted))
        return (composition, *self._build(composition, observations))

    def _build(self, composition, observations: Observations) -> tuple[pm.Model, KernelGraphs]:
        """(model, graphs): only the first ``observations.n_fit`` dates enter the
        likelihood; the graphs over all dates score held-out dates."""
        # Every prior parameter is a constant validated in __init__ and every sampled one
        # is valid by its transform, so PyMC's run-time parameter checks could never fire;
        # left in, they are some ten more nodes of the compiled log density.
        with pm.Model(coords=composition.coords(observations), check_bounds=False) as model:
            graphs = composition.build(observations)
            pm.Potential("hmm_loglik", graphs.log_likelihood)
        return model, graphs

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
        options = {"standardise": self.standardise}
        if self.covariates:  # select_features validates; the split needs it before
            split = split_covariates(validated(features), self.covariates, columns)
            features, columns = split.emission, None
            options.update(covariates=split.frame, covariate_trimming=split.trimming)
        return prepare_observations(
            select_features(features, columns),
            self.n_regimes,
            self.anchor,
            holdout_start,
            **options,
        )

    # ------------------------------------------------------------------ fitting
    def _fit_result(
        self, observations: Observations, warm_start: WarmStart | None = None
    ) -> RegimeResult:
        """Sample the posterior of the fitted part and summarise it (see
        :meth:`RegimeEstimator.fit`). Fitted attributes: ``model_`` (the PyMC model) and
        ``graphs_`` (its :class:`~regime_model.models.composition.KernelGraphs`),
        ``components_`` (the composition), ``parameter_draws_`` (the posterior of the
        model's free variables, relabelled), ``warm_state_`` (where a refit of this
        structure can start: :mod:`~regime_model.models.warm_start`; None when the
        sampler cannot) and, when relabelled, ``labelling_``."""
        fitted = observations.fitted_part()
        phase("maximum-likelihood start (EM) on %d dates x %d features", *fitted.values.shape)
        start = self.initial_estimate(fitted)
        phase("building the model")
        composition = self.components(fitted, start)
        # The sampled model holds the fitted dates only, so its graph depends on nothing
        # else and a compiled logp is reused by the next refit (see nutpie_sampler); the
        # held-out dates join afterwards, for the per-draw quantities.
        model, graphs = self._build(composition, fitted)
        started = time.perf_counter()
        initvals = composition.starts(start, fitted, max(self.chains, 1), self.seed)
        sampled = self._sample(model, initvals, warm_start)
        sampling_seconds = time.perf_counter() - started
        if observations.n_holdout:
            model, graphs = self._build(composition, observations)
        self.model_, self.graphs_, self.components_ = model, graphs, composition
        self.warm_state_ = sampled.warm_state
        return self._result(
            composition,
            model,
            graphs,
            observations,
            sampled.posterior,
            sampled.sample_stats,
            sampling_seconds,
        )

    def _model_posterior(self) -> xr.Dataset:
        return self.parameter_draws_

    def _restore_fitted(self, model_posterior: xr.Dataset) -> None:
        fitted = self.observations_.fitted_part()
        # The composition is a function of the fitted data and the settings (its start is
        # the seeded maximum-likelihood fit), so it is rebuilt rather than stored.
        self.components_ = self.components(fitted, self.initial_estimate(fitted))
        self.model_, self.graphs_ = self._build(self.components_, self.observations_)
        self.parameter_draws_ = model_posterior

    def _probability_draws(self, observations: Observations) -> ProbabilityDraws:
        """Every kind of regime probability of ``observations`` for the result's band
        draws, from the kernel inputs of the stored free-variable draws."""
        composition = self.components_
        model, graphs = self._build(composition, observations)
        band = [int(index) for index in self.result_.band_draws]
        values = [
            composition.date_quantities(inputs, True)[0]
            for inputs in draw_kernel_inputs(model, graphs.inputs, self.parameter_draws_, band)
        ]
        return ProbabilityDraws(
            *(np.stack([getattr(draw, kind) for draw in values]) for kind in KINDS),
            np.stack([draw.pointwise_loglik for draw in values]),
        )

    @property
    def tuning_steps(self) -> int:
        """Tuning steps per chain this estimator runs: ``tune``, else its sampler's default."""
        return tuning_steps(self.tune, self.sampler)

    def _sample(
        self,
        model: pm.Model,
        initvals: list[dict[str, np.ndarray]],
        warm_start: WarmStart | None = None,
    ) -> Sampled:
        """What the sampler named ``sampler`` gives
        (:data:`~regime_model.models.samplers.SAMPLERS`)."""
        settings = SamplerSettings(
            draws=self.draws,
            tune=self.tuning_steps,
            chains=self.chains,
            cores=self.cores or min(self.chains, os.cpu_count() or 1),
            seed=self.seed,
            target_accept=self.target_accept,
            progressbar=self.progressbar,
            warm_start=warm_start,
        )
        sampled = SAMPLERS[self.sampler](model, initvals, settings)
        posterior = sampled.posterior
        if self.sampler in ("nuts", "nutpie"):
            # PyMC catches Ctrl-C and returns the draws taken so far: a run must never
            # pass those off as the posterior it was asked for.
            taken, chains = posterior.sizes["draw"], posterior.sizes["chain"]
            if taken < self.draws or chains < self.chains:
                raise KeyboardInterrupt(
                    f"sampling stopped after {taken} of {self.draws} draws in {chains} of "
                    f"{self.chains} chains"
                )
        return sampled

    # ------------------------------------------------------------------ labels
    def _relabelled(
        self, composition, posterior: xr.Dataset, signal: np.ndarray, observations: Observations
    ) -> tuple[xr.Dataset, Labelling]:
        """The posterior with consistent labels across draws, then named
        (:func:`~regime_model.models.relabelling.label_states`): ``signal`` (N, T', S)
        are each draw's filtered probabilities as sampled."""
        labelling = label_states(
            signal,
            lambda matched: composition.naming(matched, posterior, observations),
            composition.label_candidates(),
        )
        shape = (posterior.sizes["chain"], posterior.sizes["draw"], -1)
        permutations = labelling.permutations.reshape(shape)
        return permute_posterior(posterior, permutations, composition.permute), labelling

    def match_labels(self, simulation: PriorSimulation) -> PriorSimulation:
        """A simulation's truth in the last fit's labels (relabelled fits): its filtered
        probabilities matched to the fit's pivot, as every posterior draw was, so ranks and
        coverage compare like with like (simulation-based calibration)."""
        if self.identification != "relabelled":
            return simulation
        composition = self.components_
        at_truth = self.quantities_at(simulation.parameters)
        perm = match_to_pivot(
            at_truth.filtered[None, label_dates(len(at_truth.filtered))],
            self.labelling_.pivot,
            composition.label_candidates(),
        )
        return PriorSimulation(
            features=simulation.features,
            states=np.argsort(perm[0])[simulation.states],
            parameters=permute_point(simulation.parameters, perm, composition.permute),
            reported=permute_point(simulation.reported, perm, composition.permute),
        )

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
        composition, model, graphs = self.compose(observations)
        parameters, (log_initial, log_transition) = draw_prior(model, list(graphs.inputs[:2]), seed)
        rng = np.random.default_rng([seed, 1])
        states, values = composition.simulate(
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
            n_states = len(composition.state_names(observations))
            flat = np.full((1, observations.n_dates, n_states), 1.0 / n_states)
            point, labelling = self._relabelled(composition, point, flat, observations)
            parameters = {name: point[name].to_numpy()[0, 0] for name in point.data_vars}
            states = np.argsort(labelling.permutations[0])[states]
        reported, _, _ = composition.reported(point, observations)
        reported = {name: np.asarray(value)[0, 0] for name, value in reported.items()}
        # Deterministics of the data as well as the parameters (the lag's posterior
        # P(L | y, theta)) were drawn on the template's values: their truth is their value
        # on the simulated data at the true parameters.
        on_data = getattr(composition, "data_dependent", ())
        if on_data:
            _, simulated_model, _ = self.compose(self.observations(features, columns))
            free = list(simulated_model.free_RVs)
            evaluate = simulated_model.compile_fn(
                outs=[simulated_model[name] for name in on_data],
                inputs=free,
                point_fn=False,
                on_unused_input="ignore",
            )
            values = evaluate(*(parameters[variable.name] for variable in free))
            for name, value in zip(on_data, values, strict=True):
                parameters[name] = reported[name] = np.asarray(value)
        return PriorSimulation(
            features=features, states=states, parameters=parameters, reported=reported
        )

    def quantities_at(
        self, parameters: dict[str, np.ndarray], observations: Observations | None = None
    ) -> DrawProbabilities:
        """Per-date regime probabilities and predictive densities at one parameter point
        (every free variable by name, e.g. the truth of a simulation), of ``observations``
        (default: the last fitted data, in its fitted model)."""
        if observations is None:
            composition, model, graphs = self.components_, self.model_, self.graphs_
            observations = self.observations_
        else:
            composition, model, graphs = self.compose(observations)
        inputs = composition.inputs_at(parameters, observations)
        if inputs is None:
            point = point_as_posterior(model, parameters, names=list(model.free_RVs))
            inputs = next(draw_kernel_inputs(model, graphs.inputs, point, [0]))
        return composition.date_quantities(inputs, with_bands=True)[0]

    # ------------------------------------------------------------------ summarising
    def _result(
        self, composition, model, graphs, observations, posterior, sample_stats, seconds
    ) -> RegimeResult:
        """The posterior pass (:func:`~regime_model.models.posterior_pass.evaluate_draws`),
        consistent labels (relabelled fits), the InferenceData, diagnostics and the
        composition's own tables."""
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        relabel = self.identification == "relabelled"
        draws = evaluate_draws(
            model,
            composition,
            graphs.inputs,
            posterior,
            self.band_draws,
            observations.n_dates,
            with_signal=relabel,
        )
        probabilities = draws.probabilities
        labels: dict[str, Any] = {}
        permutations = None
        if relabel:
            posterior, self.labelling_ = self._relabelled(
                composition, posterior, draws.signal, observations
            )
        self.parameter_draws_ = posterior[[rv.name for rv in model.free_RVs]]
        if relabel:
            permutations = self.labelling_.permutations[draws.band]
            probabilities = ProbabilityDraws(
                *(take_regimes(getattr(probabilities, kind), permutations, 1) for kind in KINDS),
                probabilities.pointwise_loglik,
            )
            labels = self._label_info(composition, self.labelling_, observations)
        reported, dims, coords = composition.reported(posterior, observations)
        state_names = composition.state_names(observations)
        n_fit = observations.n_fit
        pointwise = draws.pointwise
        data = build_inference_data(
            reported,
            pointwise[:, :n_fit].reshape(n_chains, n_draws, -1),
            observations.dates[:n_fit],
            observations.columns,
            state_names,
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
            regime_names=state_names,
            inference_data=data,
            probabilities=probabilities,
            band_draws=draws.band,
            config={**self.get_config(), "anchor": observations.columns[observations.anchor]},
            has_bands=n_chains * n_draws > 1,
            fit_info={
                "sampler": posterior.attrs.get("sampler", self.sampler),
                **(
                    {"sampler_note": posterior.attrs["sampler_note"]}
                    if "sampler_note" in posterior.attrs
                    else {}
                ),
                # pm.sample's wall time includes compiling; PyMC times the draws alone.
                "sample_call_seconds": round(seconds, 2),
                "sampling_seconds": _float_or_none(posterior.attrs.get("sampling_time")),
                "tuning_steps": int(posterior.attrs.get("tuning_steps", self.tuning_steps)),
                "warm_started": bool(posterior.attrs.get("warm_started", False)),
                # Leapfrog steps of tuning and draws, all chains (nutpie reports them).
                **(
                    {"gradient_evaluations": int(posterior.attrs["gradient_evaluations"])}
                    if "gradient_evaluations" in posterior.attrs
                    else {}
                ),
                **({"labels": labels} if labels else {}),
                **holdout_info(observations),
            },
        )
        result.fit_info["diagnostics"] = mcmc_diagnostics(result, n_draws)
        composition.annotate(result, posterior, observations, draws.extras, permutations)
        return result

    def _label_info(self, composition, labelling: Labelling, observations) -> dict[str, Any]:
        """What ``fit_info["labels"]`` records of the relabelling (plain data); ``names``:
        per adjacent pair of named regimes, the share of draws in which the anchor orders
        them as their names say."""
        return {
            "method": "stephens-kl",
            "switched_share": labelling.switched_share,
            "discordant_share": labelling.discordant_share,
            "iterations": labelling.iterations,
            "names": composition.name_checks(labelling.separation, observations),
        }


def _float_or_none(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)
