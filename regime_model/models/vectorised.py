"""Functions evaluated once over all posterior draws at a time (a leading draw axis):
the reported variables from nutpie's flat points, the kernel's inputs of every draw.

They are compiled in NUMBA mode, like the log density the sampler ran:

* not Python mode, which evaluates an Elemwise whose scalar op has no numpy ufunc (a Mul
  of three or more inputs, as the Student-t density has) element by element (on the real
  daily Student-t design, 2,873 dates, D = 6, 200 draws: 28.5 s in FAST_COMPILE against
  3.5 s compiled);
* not C (FAST_RUN), because a process's first C compilation scans PyTensor's whole C
  cache (1.2 s with 560 cached modules, and growing), a cost every fit paid.

For numba to cache them on disk, array constants (observations, covariates, masks)
become inputs bound to their values: a function with data in its code cannot be cached
and would be compiled again by every fit. ViewOps are removed first: vectorised, they
become a Blockwise numba can only run in object mode. Should numba still need object mode
for some node, the function is compiled in C instead (slower to start, not to run).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.ops import ViewOp
from pytensor.graph.basic import Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.variable import TensorConstant

from regime_model.models.compiled_graphs import compile_stored

MODE = "NUMBA"
FALLBACK_MODE = "FAST_RUN"
# Constants up to this many elements stay in the code (shapes, indices, small tables).
LARGEST_INLINE_CONSTANT = 64


def without_views(outputs: Sequence[Variable]) -> list[Variable]:
    """``outputs`` with every ViewOp node, vectorised or not, replaced by its input (a
    view is the value)."""
    fgraph = _copied(outputs)
    _remove_views(fgraph)
    return list(fgraph.outputs)


def _copied(outputs: Sequence[Variable]) -> FunctionGraph:
    """A FunctionGraph of a copy of the nodes computing ``outputs``, over the same inputs
    and constants (to be edited in place: cheaper than rebuilding with clone_replace)."""
    return FunctionGraph(outputs=list(outputs), clone=True, copy_inputs=False, copy_orphans=False)


def _remove_views(fgraph: FunctionGraph) -> None:
    """Replaces, in place, every ViewOp node of ``fgraph`` (vectorised or not) by its input.

    In place, because rebuilding the graph around each replaced view (clone_replace) costs
    a second per pass on a vectorised lead-lag graph, and a view inside a replaced
    subgraph (a Deterministic's inside another's) would come back in the rebuilt copy."""
    for node in fgraph.toposort():
        if isinstance(node.op, ViewOp) or (
            isinstance(node.op, Blockwise) and isinstance(node.op.core_op, ViewOp)
        ):
            fgraph.replace(node.outputs[0], node.inputs[0], reason="without_views")


def constants_as_inputs(
    outputs: Sequence[Variable], selected: Callable[[TensorConstant], bool]
) -> tuple[list[TensorConstant], list[pt.TensorVariable]]:
    """(constants, inputs): the ``selected`` constants of the graph of ``outputs`` and an
    input variable for each, of its dtype, with its length-1 axes kept static
    (broadcasting relies on them) and every other length free, so that code compiled
    with the inputs (and its cache key) serves data of any size."""
    constants = [
        variable
        for variable in graph_inputs(list(outputs))
        if isinstance(variable, TensorConstant) and selected(variable)
    ]
    inputs = [
        pt.tensor(
            dtype=constant.dtype,
            shape=tuple(1 if size == 1 else None for size in constant.data.shape),
            name=f"data_{index}",
        )
        for index, constant in enumerate(constants)
    ]
    return constants, inputs


def compile_over_draws(
    inputs: Sequence[Variable], outputs: Sequence[Variable]
) -> Callable[..., list[np.ndarray]]:
    """A function of ``inputs`` (each with a leading draw axis) returning ``outputs``,
    compiled in NUMBA mode with the graph's array constants as bound inputs (C when numba
    would need object mode)."""
    fgraph = _copied(outputs)
    _remove_views(fgraph)
    constants, data_inputs = constants_as_inputs(
        fgraph.outputs, lambda constant: constant.data.size > LARGEST_INLINE_CONSTANT
    )
    # Rebuilt, not replaced in place: in place would assert the constants' shapes on
    # their inputs, keeping the data's length in the graph and its cache key.
    outputs = pytensor.clone_replace(
        fgraph.outputs, dict(zip(constants, data_inputs, strict=True)), rebuild_strict=False
    )
    data = [constant.data for constant in constants]
    arguments = [*inputs, *data_inputs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function = compile_stored(arguments, outputs, MODE, on_unused_input="ignore")
    if any("object mode" in str(warning.message) for warning in caught):
        function = compile_stored(arguments, outputs, FALLBACK_MODE, on_unused_input="ignore")
    else:
        for warning in caught:  # the others, as they would have been shown
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return lambda *values: function(*values, *data)
