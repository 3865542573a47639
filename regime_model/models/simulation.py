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
    """One exact forward draw of every free variable and deterministic, and of the graph
    variables in ``extra`` at the same draw.

    Forward sampling ignores Potentials, so a model whose prior has one (besides the
    likelihood) cannot be simulated this way; that raises rather than draw from the
    wrong prior.
    """
    prior_potentials = [p.name for p in model.potentials if p.name != LIKELIHOOD]
    if prior_potentials:
        raise NotImplementedError(
            f"the prior has potential terms ({', '.join(prior_potentials)}); it cannot be "
            "drawn forward"
        )
    variables = [*model.free_RVs, *model.deterministics]
    values = pm.draw([*variables, *extra], random_seed=seed)
    parameters = {
        variable.name: np.asarray(value)
        for variable, value in zip(variables, values[: len(variables)], strict=True)
    }
    return parameters, [np.asarray(value) for value in values[len(variables) :]]


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
