"""PyTensor functions whose rewritten graphs are kept on disk between processes.

Compiling a PyTensor function first rewrites its graph (canonicalise, specialise, fuse,
work in place), in Python: on the lead-lag model 0.6-1.9 s for each of the three
functions every fit compiles (nutpie's log density and gradient, the reported variables
and the kernel's inputs over all draws), more than the sampling of a small model. The
rewritten graph depends only on the graph given, the rewrites asked for and PyTensor's
version, so it is stored under a key of those; a later fit that builds the same graph
(any data of the same structure: the data are inputs) loads it and compiles it without
rewriting, in 0.05-0.2 s. Numba then finds its machine code under the loaded graph's own
key, as before. A stored graph also fixes the order of its nodes, which PyTensor's
rewrites can change from one process to the next (and with it numba's key: the lead-lag
kernel inputs were compiled again by every process).

A function *derived* from a model's graph (its gradient, or the graph vectorised over
posterior draws) is also stored under a key of the graph it was derived from
(:class:`Derivation`), its data constants keyed by kind and bound again from the graph:
a later fit of the same structure loads it without building the derived graph, which for
the lead-lag model cost more Python time (vectorising, replacing constants) than
rewriting did.

A graph that cannot be keyed (a shared variable, an Op that cannot be pickled) is
compiled as usual. Files are written whole (a temporary file renamed into place); one that
cannot be read is compiled again and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytensor
from pymc.pytensorf import compile as compile_pymc
from pytensor.compile.function.types import Function
from pytensor.compile.mode import Mode, get_mode
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import graph_inputs, io_toposort
from pytensor.tensor.type_other import NoneConst
from pytensor.tensor.variable import TensorConstant

# Bump when what is stored, or how it is compiled back, changes.
FORMAT = 3
CACHE_DIRECTORY = Path(pytensor.config.base_compiledir) / "regime_model_graphs"


def compile_stored(
    inputs: Sequence[Variable], outputs: Sequence[Variable], mode: str, **kwargs
) -> Function:
    """``pymc.pytensorf.compile(inputs, outputs, mode=mode, **kwargs)``, with the rewritten
    graph loaded from :data:`CACHE_DIRECTORY` when an identical graph was compiled before
    (in any process), and stored there otherwise."""
    key = graph_key(inputs, outputs, mode, _check_parameter_rewrite())
    if key is None:
        return compile_pymc(inputs, outputs, mode=mode, **kwargs)
    path = CACHE_DIRECTORY / f"{key}.pkl"
    stored = _loaded(path, mode, **kwargs)
    if stored is not None:
        return stored[0]
    function = compile_pymc(inputs, outputs, mode=mode, **kwargs)
    # Compiled back from what was stored, as every later process will: numba compiles a
    # function at its first call, under a key that depends on the order of the nodes,
    # which the stored graph fixes and this process's rewrites need not have followed.
    if _store(path, function):
        stored = _loaded(path, mode, **kwargs)
        return function if stored is None else stored[0]
    return function


def _loaded(path: Path, mode: str | None, **kwargs) -> tuple[Function, dict] | None:
    """(the function of the rewritten graph stored at ``path``, compiled without rewrites
    in ``mode`` (None: the mode stored with it), what was stored beside it), or None (no
    file, or one that cannot be read: truncated, another version)."""
    try:
        with path.open("rb") as file:
            inputs, outputs, extra = _GraphUnpickler(file).load()
        mode = mode or extra["mode"]
    except Exception:  # none, or unreadable: compiled again (and replaced)
        return None
    function = pytensor.function(
        inputs,
        outputs,
        mode=Mode(linker=get_mode(mode).linker, optimizer=None),
        accept_inplace=True,
        **kwargs,
    )
    return function, extra


def graph_key(
    inputs: Sequence[Variable],
    outputs: Sequence[Variable],
    mode: str,
    *settings: str,
    data: Sequence[Variable] = (),
) -> str | None:
    """A hash of the graph from ``inputs`` to ``outputs`` (every node's Op, pickled, and
    where its inputs come from; input types; constants' values, or for the constants in
    ``data`` their dtype and which axes have length 1, and then the nodes' types without
    their other static lengths), the mode, ``settings`` and the
    versions of PyTensor and of this format; None when the graph has a root that is
    neither an input nor a constant (a shared variable) or an Op that cannot be
    pickled."""
    source = {variable: f"input {index}" for index, variable in enumerate(inputs)}
    # Length-1 axes stay static when data become inputs (broadcasting relies on them).
    source.update({variable: f"data {variable.dtype} {_unit_axes(variable)}" for variable in data})
    parts = [pytensor.__version__, str(FORMAT), mode, *settings]
    parts += [str(variable.type) for variable in inputs]
    ops: dict[int, str] = {}
    try:
        for index, node in enumerate(io_toposort(list(inputs), list(outputs))):
            if id(node.op) not in ops:
                ops[id(node.op)] = hashlib.sha256(pickle.dumps(node.op, protocol=5)).hexdigest()
            node_inputs = [_source(variable, source) for variable in node.inputs]
            types = [_type_text(output.type, exact=not data) for output in node.outputs]
            parts.append(f"{ops[id(node.op)]} {node_inputs} {types}")
            for position, output in enumerate(node.outputs):
                source[output] = f"node {index} output {position}"
        parts.append(str([_source(variable, source) for variable in outputs]))
    except (KeyError, pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _type_text(variable_type, exact: bool) -> str:
    """A node output's type; without its static lengths other than 1 when not ``exact``:
    a function derived with the data as inputs of free length does not depend on them
    (its graph is rebuilt, and the lengths inferred again, from the inputs)."""
    if exact or not hasattr(variable_type, "broadcastable"):
        return str(variable_type)
    return f"{variable_type.dtype} {variable_type.broadcastable}"


def _unit_axes(constant: Variable) -> tuple[bool, ...]:
    return tuple(size == 1 for size in np.shape(constant.data))  # type: ignore[attr-defined]


def _source(variable: Variable, source: dict) -> str:
    """Where ``variable`` comes from: an input, a node's output, or a constant's value
    (KeyError for any other root)."""
    if variable in source:
        return source[variable]
    if isinstance(variable, Constant):
        data = np.asarray(variable.data)
        # An object array's bytes are pointers (NoneConst's None differs per process).
        content = (
            repr(variable.data).encode()
            if data.dtype.hasobject
            else np.ascontiguousarray(data).tobytes()
        )
        digest = hashlib.sha256(content).hexdigest()
        return f"constant {variable.type} {data.dtype} {data.shape} {digest}"
    raise KeyError(variable)


def _check_parameter_rewrite() -> str:
    """The rewrite ``pymc.pytensorf.compile`` applies to parameter checks, which depends on
    the model in context (its ``check_bounds``)."""
    try:
        from pymc.model import modelcontext

        check_bounds = modelcontext(None).check_bounds
    except TypeError:  # no model in context
        check_bounds = True
    return f"check_bounds={check_bounds}"


class _GraphPickler(pickle.Pickler):
    """Pickles PyTensor's singleton constants by name: code that handles graphs tests
    them by identity (``shape is NoneConst``), which a copy would fail."""

    def persistent_id(self, obj):
        return "NoneConst" if obj is NoneConst else None


class _GraphUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if pid == "NoneConst":
            return NoneConst
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def _store(path: Path, function: Function, extra: dict | None = None) -> bool:
    """Writes the rewritten graph of ``function`` (and ``extra``, plain data) to ``path``
    whole, or not at all; whether it did."""
    fgraph = function.maker.fgraph
    buffer = io.BytesIO()
    try:
        _GraphPickler(buffer, protocol=5).dump((fgraph.inputs, fgraph.outputs, extra or {}))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return False
    blob = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:  # a read-only cache directory: compiled every time
        return False
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(blob)
        os.replace(temporary, path)
    except OSError:  # a full disk: this graph is compiled again next time
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True


@dataclass(frozen=True)
class Derivation:
    """A function to be derived from the graph of ``outputs`` over ``inputs`` (the
    model's graph: vectorised over draws, or with its gradient), keyed by that graph and
    ``recipe`` (what the derivation does, with the version of the code doing it).

    ``constants``: the graph's data constants (``is_data``), in the graph's order; they
    enter the key by dtype and number of axes only, so every data set of one structure
    shares the derived function, and they are the values its data inputs are bound to.
    ``key`` is None when the graph cannot be keyed (nothing is then stored)."""

    key: str | None
    constants: list[TensorConstant]


def derivation(
    inputs: Sequence[Variable],
    outputs: Sequence[Variable],
    recipe: str,
    is_data: Callable[[TensorConstant], bool],
) -> Derivation:
    constants = [
        variable
        for variable in graph_inputs(list(outputs))
        if isinstance(variable, TensorConstant) and is_data(variable)
    ]
    key = graph_key(inputs, outputs, "derived", recipe, _check_parameter_rewrite(), data=constants)
    return Derivation(key, constants)


def load_derived(derived: Derivation, **kwargs) -> tuple[Function, list[np.ndarray]] | None:
    """(the stored derived function, the data values its trailing inputs take, from this
    graph's constants), or None when none is stored for ``derived``'s key."""
    if derived.key is None:
        return None
    loaded = _loaded(CACHE_DIRECTORY / f"derived_{derived.key}.pkl", None, **kwargs)
    if loaded is None:
        return None
    function, extra = loaded
    try:
        data = [derived.constants[index].data for index in extra["data"]]
    except (KeyError, IndexError, TypeError):  # stored by another layout: derived again
        return None
    return function, data


def store_derived(
    derived: Derivation, function: Function, data: Sequence[TensorConstant], mode: str
) -> None:
    """Store ``function`` (compiled in ``mode``, its trailing inputs bound to the constants
    ``data``, each one of ``derived.constants``) under ``derived``'s key; nothing when
    the graph had no key or a datum is not one of the graph's constants."""
    if derived.key is None:
        return
    position = {id(constant): index for index, constant in enumerate(derived.constants)}
    if any(id(constant) not in position for constant in data):
        return
    indices = [position[id(constant)] for constant in data]
    _store(
        CACHE_DIRECTORY / f"derived_{derived.key}.pkl",
        function,
        {"mode": mode, "data": indices},
    )


def source_version(*objects) -> str:
    """A hash of the source of the modules defining ``objects``: part of a derivation's
    recipe, so a change in the code deriving a function gives it a new key."""
    text = "".join(inspect.getsource(inspect.getmodule(item)) for item in objects)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
