"""Posterior samplers, by name (``SAMPLERS``): each takes a PyMC model, one starting point
per chain and the :class:`SamplerSettings`, and returns a :class:`Sampled`: the posterior
and sample_stats (or None) as xarray Datasets with chain and draw dimensions, and where
the sampler can start a later fit from (nutpie; :mod:`~regime_model.models.warm_start`).

* ``nuts``: PyMC's NUTS, the chains started at the given points;
* ``nutpie``: the same model and starts, compiled once and sampled by nutpie
  (:mod:`regime_model.models.nutpie_sampler`);
* ``map``: the maximum a posteriori point, one chain of one draw (quick exploration);
* ``advi``: mean-field ADVI, ``draws`` draws from the fitted approximation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import xarray as xr

from regime_model.models.map_point import map_point
from regime_model.models.nutpie_sampler import NotCompilableError, sample_with_nutpie
from regime_model.models.warm_start import WARM_TUNE, WarmStart
from regime_model.progress import SAMPLING_INTERVAL, SamplingReporter, phase, reporting_lines

ADVI_ITERATIONS = 20_000


@dataclass(frozen=True)
class SamplerSettings:
    """What every sampler is told (a model family's MCMC options). ``warm_start``: the end
    of an earlier fit of the same model structure to start from (nutpie uses it, with
    ``warm_tune`` tuning steps; the others start from the given points)."""

    draws: int
    tune: int
    chains: int
    cores: int
    seed: int
    target_accept: float
    progressbar: bool
    warm_start: WarmStart | None = None
    warm_tune: int = WARM_TUNE


@dataclass(frozen=True)
class Sampled:
    """A sampler's output: ``posterior`` and ``sample_stats`` (None for the optimisers)
    with chain and draw dimensions; ``warm_state``, where a later fit can start (None
    when the sampler cannot start from one)."""

    posterior: xr.Dataset
    sample_stats: xr.Dataset | None
    warm_state: WarmStart | None = None


Starts = list[dict[str, np.ndarray]]
Sampler = Callable[[pm.Model, Starts, SamplerSettings], Sampled]


def sample_nuts(model: pm.Model, starts: Starts, settings: SamplerSettings):
    phase(
        "sampling with PyMC's NUTS: %d chains x (%d tuning + %d draws), compiling first",
        settings.chains,
        settings.tune,
        settings.draws,
    )
    lines = reporting_lines(settings.progressbar)
    with model:
        data = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores,
            random_seed=settings.seed,
            initvals=starts,
            init="adapt_diag",
            target_accept=settings.target_accept,
            progressbar=settings.progressbar and not lines,
            callback=_LineReporter(settings) if lines else None,
            compute_convergence_checks=False,
        )
    return Sampled(data.posterior, data.sample_stats)


class _LineReporter:
    """pm.sample's per-draw callback: a sampling line every ``SAMPLING_INTERVAL`` seconds."""

    def __init__(self, settings: SamplerSettings) -> None:
        self.reporter = SamplingReporter(settings.tune, settings.draws, settings.chains)
        self.tuned = self.drawn = 0
        self.next_line = time.perf_counter() + SAMPLING_INTERVAL

    def __call__(self, trace, draw) -> None:
        if draw.tuning:
            self.tuned += 1
        else:
            self.drawn += 1
        if time.perf_counter() >= self.next_line:
            self.reporter.report(self.tuned, self.drawn)
            self.next_line = time.perf_counter() + SAMPLING_INTERVAL


def sample_nutpie(model: pm.Model, starts: Starts, settings: SamplerSettings):
    """nutpie; PyMC's NUTS instead, saying so, for a model whose log density numba cannot
    compile natively (an Op without a numba implementation)."""
    try:
        return _sample_nutpie(model, starts, settings)
    except NotCompilableError as exc:
        logging.getLogger("regime_model").warning("%s: sampling with PyMC's NUTS instead", exc)
        sampled = sample_nuts(model, starts, settings)
        sampled.posterior.attrs["sampler"] = "nuts"
        sampled.posterior.attrs["sampler_note"] = f"{exc}: sampled with PyMC's NUTS"
        return sampled


def _sample_nutpie(model: pm.Model, starts: Starts, settings: SamplerSettings) -> Sampled:
    return Sampled(
        *sample_with_nutpie(
            model,
            starts[0],
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores,
            seed=settings.seed,
            target_accept=settings.target_accept,
            progressbar=settings.progressbar,
            warm_start=settings.warm_start,
            warm_tune=settings.warm_tune,
        )
    )


def find_map(model: pm.Model, starts: Starts, settings: SamplerSettings):
    """pymc.find_MAP's point from the first start, on stored compiled functions."""
    return Sampled(point_as_posterior(model, map_point(model, starts[0])), None)


def fit_advi(model: pm.Model, starts: Starts, settings: SamplerSettings):
    with model:
        approximation = pm.fit(
            n=ADVI_ITERATIONS,
            method="advi",
            start=starts[0],
            random_seed=settings.seed,
            progressbar=settings.progressbar,
        )
        data = approximation.sample(settings.draws, random_seed=settings.seed)
    return Sampled(data.posterior, None)


SAMPLERS: dict[str, Sampler] = {
    "nuts": sample_nuts,
    "nutpie": sample_nutpie,
    "map": find_map,
    "advi": fit_advi,
}


def point_as_posterior(
    model: pm.Model, point: dict[str, np.ndarray], names: list | None = None
) -> xr.Dataset:
    """A point with every free variable and deterministic by name (as ``pm.find_MAP``
    gives) as a one-chain, one-draw posterior. ``names``: only these variables."""
    variables = [*model.free_RVs, *model.deterministics] if names is None else names
    names = [variable.name for variable in variables]
    values = [np.asarray(point[name])[None, None] for name in names]
    return xr.Dataset(
        {
            name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(value.ndim - 2)]), value)
            for name, value in zip(names, values, strict=True)
        }
    )
