"""Data simulated from a Bayesian regime model's own prior: the generative half of
simulation-based calibration (Talts et al. 2018).

One draw of every parameter from the prior, a regime path from the model's own initial
distribution and transitions (time-varying ones included), and observations from its
emission densities, all read from the very PyMC graph that is later fitted. So a fit of
the simulated data is calibrated exactly when the sampler and the likelihood are right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm

from regime_model.data.features import FeatureSet

LIKELIHOOD = "hmm_loglik"  # the one Potential that is data, not prior
PRIOR_MCMC_STEPS = 1000


@dataclass(frozen=True)
class PriorSimulation:
    """One simulated data set and the parameters that generated it.

    ``features``: the template with its emission columns replaced by simulated values
    (missing where the template's are); ``states`` (T,): the kernel's state path;
    ``parameters``: every free variable and deterministic of the PyMC model at the draw
    (model units); ``reported``: the same draw as the posterior InferenceData reports it,
    variable name -> array without chain and draw axes.
    """

    features: FeatureSet
    states: np.ndarray
    parameters: dict[str, np.ndarray]
    reported: dict[str, np.ndarray]


def draw_prior(model: pm.Model, extra, seed: int) -> tuple[dict[str, np.ndarray], list]:
    """One draw of every free variable and deterministic from the prior, and of the graph
    variables in ``extra`` at the same draw.

    Exact forward sampling when the prior is made of distributions only (every family's
    today). A prior with Potential terms cannot be drawn forward; it is then sampled by
    NUTS on the model without its likelihood, taking the last of ``PRIOR_MCMC_STEPS``
    steps from one chain (approximate, but the prior is simple and the chain long enough
    to forget its start).
    """
    prior_potentials = [p for p in model.potentials if p.name != LIKELIHOOD]
    free_variables = list(model.free_RVs)
    if prior_potentials:
        drawn = _prior_mcmc(model, seed)
    else:
        drawn = pm.draw(free_variables, random_seed=seed)
    evaluate = model.compile_fn(
        outs=[*model.deterministics, *extra],
        inputs=free_variables,
        point_fn=False,
        on_unused_input="ignore",
    )
    values = evaluate(*drawn)
    n_deterministics = len(model.deterministics)
    parameters = {
        variable.name: np.asarray(value)
        for variable, value in zip(
            [*free_variables, *model.deterministics],
            [*drawn, *values[:n_deterministics]],
            strict=True,
        )
    }
    return parameters, [np.asarray(value) for value in values[n_deterministics:]]


def _prior_mcmc(model: pm.Model, seed: int) -> list[np.ndarray]:
    """The free variables' values after PRIOR_MCMC_STEPS NUTS steps on the prior alone."""
    likelihood = model[LIKELIHOOD]
    model.potentials.remove(likelihood)
    try:
        trace = pm.sample(
            draws=1,
            tune=PRIOR_MCMC_STEPS,
            chains=1,
            cores=1,
            model=model,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
    finally:
        model.potentials.append(likelihood)
    return [trace.posterior[rv.name].to_numpy()[0, -1] for rv in model.free_RVs]


def replace_columns(
    template: FeatureSet, columns: list[str], values: np.ndarray, dates: pd.DatetimeIndex
) -> FeatureSet:
    """``template`` with ``columns`` set to ``values`` (T, D) on ``dates``, kept missing
    where the template is missing."""
    frame = template.frame.copy()
    existing = frame.loc[dates, columns].notna().to_numpy()
    frame.loc[dates, columns] = np.where(existing, values, np.nan)
    return FeatureSet(
        frame=frame,
        groups=dict(template.groups),
        freq=template.freq,
        source="prior simulation",
        universe=template.universe,
    )
