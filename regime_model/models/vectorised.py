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

:func:`compile_flat_over_draws` builds the vectorised graph only once per model structure:
the compiled function is stored under a key of the graph it is derived from
(:class:`~regime_model.models.compiled_graphs.Derivation`), and later fits load it.
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
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.variable import TensorConstant

from regime_model.models.compiled_graphs import (
    Derivation,
    compile_stored,
    derivation,
    load_derived,
    source_version,
    store_derived,
)

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


def _is_data(constant: TensorConstant) -> bool:
    return constant.data.size > LARGEST_INLINE_CONSTANT


def compile_over_draws(
    inputs: Sequence[Variable], outputs: Sequence[Variable], derived: Derivation | None = None
) -> Callable[..., list[np.ndarray]]:
    """A function of ``inputs`` (each with a leading draw axis) returning ``outputs``,
    compiled in NUMBA mode with the graph's array constants as bound inputs (C when numba
    would need object mode); stored for ``derived`` (the graph it was derived from)."""
    fgraph = _copied(outputs)
    _remove_views(fgraph)
    constants, data_inputs = constants_as_inputs(fgraph.outputs, _is_data)
    # Rebuilt, not replaced in place: in place would assert the constants' shapes on
    # their inputs, keeping the data's length in the graph and its cache key.
    outputs = pytensor.clone_replace(
        fgraph.outputs, dict(zip(constants, data_inputs, strict=True)), rebuild_strict=False
    )
    data = [constant.data for constant in constants]
    arguments = [*inputs, *data_inputs]
    mode = MODE
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function = compile_stored(arguments, outputs, mode, on_unused_input="ignore")
    if any("object mode" in str(warning.message) for warning in caught):
        mode = FALLBACK_MODE
        function = compile_stored(arguments, outputs, mode, on_unused_input="ignore")
    else:
        for warning in caught:  # the others, as they would have been shown
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if derived is not None:
        store_derived(derived, function, constants, mode)
    return lambda *values: function(*values, *data)


def compile_flat_over_draws(
    variables: Sequence[Variable], shapes: Sequence[tuple[int, ...]], outputs: Sequence[Variable]
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function of flat points (N, n), each row every variable of ``variables`` (of
    ``shapes``) raveled in order, returning ``outputs`` for each row (a leading draw
    axis), as :func:`compile_over_draws` compiles them. The vectorised graph is built
    only the first time a graph of this structure is seen (any data): later the
    function is loaded by the key of ``outputs`` over ``variables``. Raises
    NotImplementedError where PyTensor cannot vectorise the graph."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    recipe = f"flat over draws {[tuple(s) for s in shapes]} {source_version(compile_over_draws)}"
    derived = derivation(variables, outputs, recipe, _is_data)
    loaded = load_derived(derived, on_unused_input="ignore")
    if loaded is not None:
        function, data = loaded
        return lambda points: function(points, *data)
    bounds = np.cumsum([0, *sizes])
    points = pt.matrix("points", shape=(None, int(bounds[-1])), dtype="float64")
    # An explicit length: a variable can be empty (a chain with one feature has no
    # "other" columns), and -1 cannot be inferred from a size of 0.
    parts = zip(variables, shapes, bounds[:-1], bounds[1:], strict=True)
    batched = {
        variable: points[:, low:high].reshape((points.shape[0], *shape)).astype(variable.dtype)
        for variable, shape, low, high in parts
    }
    vectorised = vectorize_graph(list(outputs), batched)
    return compile_over_draws([points], vectorised, derived)
