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

A graph that cannot be keyed (a shared variable, an Op that cannot be pickled) is
compiled as usual. Files are written whole (a temporary file renamed into place); one that
cannot be read is compiled again and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytensor
from pymc.pytensorf import compile as compile_pymc
from pytensor.compile.function.types import Function
from pytensor.compile.mode import Mode, get_mode
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.type_other import NoneConst

# Bump when what is stored, or how it is compiled back, changes.
FORMAT = 2
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
        return stored
    function = compile_pymc(inputs, outputs, mode=mode, **kwargs)
    # Compiled back from what was stored, as every later process will: numba compiles a
    # function at its first call, under a key that depends on the order of the nodes,
    # which the stored graph fixes and this process's rewrites need not have followed.
    if _store(path, function):
        return _loaded(path, mode, **kwargs) or function
    return function


def _loaded(path: Path, mode: str, **kwargs) -> Function | None:
    """The function of the rewritten graph stored at ``path``, compiled without rewrites,
    or None (no file, or one that cannot be read: truncated, another version)."""
    try:
        with path.open("rb") as file:
            inputs, outputs = _GraphUnpickler(file).load()
    except Exception:  # none, or unreadable: compiled again (and replaced)
        return None
    return pytensor.function(
        inputs,
        outputs,
        mode=Mode(linker=get_mode(mode).linker, optimizer=None),
        accept_inplace=True,
        **kwargs,
    )


def graph_key(
    inputs: Sequence[Variable], outputs: Sequence[Variable], mode: str, *settings: str
) -> str | None:
    """A hash of the graph from ``inputs`` to ``outputs`` (every node's Op, pickled, and
    where its inputs come from; input types; constants' values), the mode, ``settings``
    and the versions of PyTensor and of this format; None when the graph has a root that
    is neither an input nor a constant (a shared variable) or an Op that cannot be
    pickled."""
    source = {variable: f"input {index}" for index, variable in enumerate(inputs)}
    parts = [pytensor.__version__, str(FORMAT), mode, *settings]
    parts += [str(variable.type) for variable in inputs]
    ops: dict[int, str] = {}
    try:
        for index, node in enumerate(io_toposort(list(inputs), list(outputs))):
            if id(node.op) not in ops:
                ops[id(node.op)] = hashlib.sha256(pickle.dumps(node.op, protocol=5)).hexdigest()
            node_inputs = [_source(variable, source) for variable in node.inputs]
            parts.append(f"{ops[id(node.op)]} {node_inputs} {[str(o.type) for o in node.outputs]}")
            for position, output in enumerate(node.outputs):
                source[output] = f"node {index} output {position}"
        parts.append(str([_source(variable, source) for variable in outputs]))
    except (KeyError, pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


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


def _store(path: Path, function: Function) -> bool:
    """Writes the rewritten graph of ``function`` to ``path`` whole, or not at all;
    whether it did."""
    fgraph = function.maker.fgraph
    buffer = io.BytesIO()
    try:
        _GraphPickler(buffer, protocol=5).dump((fgraph.inputs, fgraph.outputs))
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
