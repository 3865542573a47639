"""The maximum a posteriori point, as ``pymc.find_MAP`` finds it, on stored functions.

The same search as PyMC's: L-BFGS-B (scipy) on the continuous variables' unconstrained
values, from the given start, maximising the log density without the transforms'
Jacobians, at most ``MAX_EVALUATIONS`` evaluations; the point then holds every free
variable (both spaces) and deterministic. PyMC compiles its three functions (log
density, gradient, the point's variables) in C mode on every call, rewriting each graph
in Python first: 1.2 s of the hierarchical model's start, every fit. Here the log density
and its gradient are one function and the point's variables another, compiled in NUMBA
mode through :func:`~regime_model.models.compiled_graphs.compile_stored`, so a later fit
of the same structure loads them.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.exceptions import SamplingError
from pymc.initial_point import make_initial_point_fn
from scipy.optimize import minimize

from regime_model.models.compiled_graphs import compile_stored

MAX_EVALUATIONS = 5000  # pymc.find_MAP's maxeval


def map_point(model: pm.Model, start: dict[str, np.ndarray], seed: int | None = None) -> dict:
    """Name -> value at the MAP of ``model`` searched from ``start`` (values of free
    variables by name, transformed or not; the rest at the model's initial point)."""
    initial = make_initial_point_fn(
        model=model, jitter_rvs=set(), return_transformed=True, overrides=start
    )(seed)
    continuous = {var.name: var for var in model.continuous_value_vars}
    x0 = DictToArrayBijection.map(
        {name: value for name, value in initial.items() if name in continuous}
    )
    variables = [continuous[name] for name, *_ in x0.point_map_info]
    fixed = [var for var in model.value_vars if var.name not in continuous]
    logp = model.logp(jacobian=False)
    objective = compile_stored(
        [*variables, *fixed],
        [logp, *pytensor.grad(logp, variables)],
        "NUMBA",
        on_unused_input="ignore",
    )
    fixed_values = [initial[var.name] for var in fixed]

    def unravel(x: np.ndarray) -> list[np.ndarray]:
        point = DictToArrayBijection.rmap(RaveledVars(x, x0.point_map_info))
        return [point[var.name] for var in variables]

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, *gradient = objective(*unravel(x), *fixed_values)
        return -float(value), -np.concatenate([np.ravel(g) for g in gradient])

    value, _ = negative(x0.data)
    if not np.isfinite(value):
        raise SamplingError(f"the log density is not finite at the MAP search's start ({value})")
    evaluations = {"count": 0, "last_finite": x0.data}

    def counted(x: np.ndarray) -> tuple[float, np.ndarray]:
        if evaluations["count"] > MAX_EVALUATIONS:
            raise StopIteration
        evaluations["count"] += 1
        result = negative(x)
        if np.all(np.isfinite(result[1])):
            evaluations["last_finite"] = x
        return result

    try:
        optimum = minimize(counted, x0.data, method="L-BFGS-B", jac=True)["x"]
    except StopIteration:  # as pymc.find_MAP: the last point with a finite gradient
        optimum = evaluations["last_finite"]
    outputs = model.unobserved_value_vars
    values = compile_stored(model.value_vars, outputs, "NUMBA", on_unused_input="ignore")
    point = dict(zip([var.name for var in variables], unravel(optimum), strict=True))
    inputs = [point.get(var.name, initial[var.name]) for var in model.value_vars]
    return {
        var.name: np.asarray(value) for var, value in zip(outputs, values(*inputs), strict=True)
    }
