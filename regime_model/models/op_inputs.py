"""Input handling shared by the package's compiled PyTensor Ops (the diagonal emission
densities, the covariate-logit transitions): what make_node and perform do to their
inputs before the numba kernels see them."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable


def float_inputs(*values) -> list[Variable]:
    """Symbolic float64 tensors of ``values`` (the kernels take float64 only)."""
    return [pt.cast(pt.as_tensor_variable(value), "float64") for value in values]


def check_ranks(inputs: list[Variable], names: tuple[str, ...], ranks: tuple[int, ...]) -> None:
    """TypeError naming the first input whose number of axes is not its rank."""
    for name, value, rank in zip(names, inputs, ranks, strict=True):
        if value.type.ndim != rank:
            raise TypeError(f"{name} must have {rank} dimensions, not {value.type.ndim}")


def contiguous(inputs: list[np.ndarray]) -> list[np.ndarray]:
    """C-contiguous float64 copies where needed: one compiled signature however the
    inputs were sliced."""
    return [np.ascontiguousarray(value, dtype=np.float64) for value in inputs]
