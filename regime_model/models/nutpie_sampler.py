"""nutpie as a sampler for any model built by :class:`BayesianHMM` and its subclasses.

The model's logp + gradient is compiled in NUMBA mode (the kernel Op has a
numba dispatch) and handed to nutpie as a C callback, like
``nutpie.compile_pymc_model`` does, but built so that numba caches it on disk:
nutpie's own callbacks cannot be cached and cost ~15 s in every process. nutpie
stores the flat unconstrained point of each draw; the reported variables are
computed from it afterwards. nutpie asks for each chain's start with a seed drawn
from that chain's generator, not with the chain index, so each chain starts at the
first EM-based point plus a small jitter drawn from that seed: in order, and
reproducible. (This uses nutpie's ``CompiledPyMCModel`` and its C calling
convention, which are not public API: tests/test_nutpie.py catches a change.)
"""

from __future__ import annotations

import hashlib
import textwrap
import time
import warnings

import numba
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pymc.initial_point import make_initial_point_fn
from pymc.model.transform.optimization import freeze_dims_and_data
from pytensor.graph.rewriting.basic import MergeOptimizer
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.graph.traversal import graph_inputs, io_toposort
from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
from pytensor.link.numba.dispatch.basic import numba_funcify_ensure_cache
from pytensor.tensor.shape import SpecifyShape

from regime_model.errors import RegimeModelError

# Registers numba implementations that PyTensor cannot cache (digamma, for Student-t).
from regime_model.models import numba_special  # noqa: F401
from regime_model.models.compiled_graphs import (
    compile_stored,
    derivation,
    load_derived,
    source_version,
    store_derived,
)
from regime_model.models.vectorised import compile_flat_over_draws, constants_as_inputs
from regime_model.models.warm_start import WARM_TUNE, WarmStart
from regime_model.progress import SAMPLING_INTERVAL, SamplingReporter, phase, reporting_lines


class MissingBackendError(RegimeModelError, ImportError):
    """A sampler's package is not installed."""


class NotCompilableError(RegimeModelError):
    """The model's log density has a node numba cannot compile natively (PyTensor would
    run it in object mode: slow, and a callback holding Python objects must not be
    loaded from the disk cache by another process; it crashed doing so)."""


def _without_shape_assertions(output):
    """``output`` with its SpecifyShape nodes removed: freezing the model asserts every
    static shape, the number of dates among them, which would put the data's length into
    the compiled graph (and its cache key). Only assertions go; the values are the same."""
    assertions = {
        node.outputs[0]: node.inputs[0]
        for node in io_toposort(graph_inputs([output]), [output])
        if isinstance(node.op, SpecifyShape)
    }
    if not assertions:
        return output
    return pytensor.clone_replace(output, assertions, rebuild_strict=False)


def _merged(output):
    """``output`` with repeated computations merged into one, in place. A frozen model's
    log density can hold two copies of a node (it did for the transition rows); the
    gradient taken next would differentiate each copy separately, and compiling merges
    only the forward copies."""
    return rewrite_graph(output, include=(), custom_rewrite=MergeOptimizer())


def _unwrapped(fgraph):
    """The compiled graph as a jitted function that calls each node's function directly.

    For its own disk cache, PyTensor wraps every node's function, and the graph's, in a
    one-line trampoline. numba links each callee's code into its caller and optimises the
    whole again, so every trampoline re-optimises everything below it: about 15 s of a
    cold compile. The callback built on this function is cached on disk under PyTensor's
    key of the whole graph instead, which changes whenever a node or its implementation
    does."""
    with pytensor.config.change_flags(numba__cache=False):
        function, _ = numba_funcify_ensure_cache(fgraph)
    return function


def _is_float_data(constant) -> bool:
    return constant.ndim >= 1 and constant.dtype.startswith("float")


def _data_as_inputs(outputs: list) -> tuple[list, list]:
    """(constants, inputs): the float array constants of a graph (observations,
    covariates, prior weights) and an input variable for each.

    Compiled with the data as inputs, the graph and hence its numba cache key are the same
    for every data set of one model structure, so a refit on new or longer data loads the
    compiled logp from disk instead of spending most of a minute compiling it. Length-1
    axes keep their static shape, which broadcasting relies on. Only floats: they travel
    to nutpie's callback in one float64 buffer.
    """
    return constants_as_inputs(outputs, _is_float_data)


def _pack_data(data: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """(buffer, expressions): the data as one flat float64 buffer for nutpie's user_data,
    and for each piece the source text that unpacks it from ``data`` (the buffer in the
    jitted callback).

    The buffer starts with its own length, then each piece's offset, end and shape; the
    pieces follow. The unpacking text depends only on how many pieces there are and their
    number of axes, never on their sizes, so the callbacks compiled from it (and cached
    on disk) serve every data set of the model's structure. A unit-step slice of the
    buffer stays C-contiguous in numba, so the pieces are views, not copies.
    """
    header_length = 1 + sum(2 + piece.ndim for piece in data)
    header, expressions = [0.0], []
    offset = header_length
    for piece in data:
        position = len(header)
        header += [offset, offset + piece.size, *piece.shape]
        shape = ", ".join(f"int(data[{position + 2 + axis}])" for axis in range(piece.ndim))
        expressions.append(
            f"data[int(data[{position}]):int(data[{position + 1}])].reshape(({shape},))"
        )
        offset += piece.size
    header[0] = offset
    buffer = np.concatenate([np.asarray(header), *(piece.ravel() for piece in data)])
    return buffer, expressions


def frozen_model(model: pm.Model) -> pm.Model:
    """``model`` with constant shapes and data (no shared inputs), as nutpie compiles it."""
    frozen = freeze_dims_and_data(model)
    frozen.check_bounds = model.check_bounds  # freezing builds a new model, with the default
    return frozen


def log_density_graph(frozen: pm.Model, logp=None):
    """(logp, gradient, constants, data_inputs): the frozen model's log density (``logp``,
    default ``frozen.logp()``) and its gradient (flattened, in the order of
    ``frozen.free_RVs``) over its value variables, with the model's float array constants
    replaced by the ``data_inputs``."""
    values = [frozen.rvs_to_values[rv] for rv in frozen.free_RVs]
    # Data become inputs before the gradient is built, so that no size read off them is
    # folded into the gradient's graph as a constant.
    logp = _merged(_without_shape_assertions(frozen.logp() if logp is None else logp))
    constants, data_inputs = _data_as_inputs([logp])
    logp = pytensor.clone_replace(
        logp, dict(zip(constants, data_inputs, strict=True)), rebuild_strict=False
    )
    gradient = pt.concatenate([part.ravel() for part in pytensor.grad(logp, values)])
    return logp, gradient, constants, data_inputs


def _logp_function(
    frozen: pm.Model, values: list, shapes: list[tuple[int, ...]]
) -> tuple[pytensor.compile.function.types.Function, list[np.ndarray]]:
    """(the log density and its gradient as one function of the flat point (n,) and the
    data, compiled in NUMBA mode; the data). Stored under a key of the frozen model's log
    density (:class:`~regime_model.models.compiled_graphs.Derivation`): a later fit of
    the same structure loads it without building the gradient's graph. Raises
    NotCompilableError when numba would run a node in object mode."""
    with frozen:
        # Keyed without the shape assertions freezing adds, which hold the data's length.
        logp = _without_shape_assertions(frozen.logp())
        derived = derivation(
            values,
            [logp],
            f"nutpie log density {shapes} {source_version(log_density_graph)}",
            _is_float_data,
        )
        loaded = load_derived(derived)
    if loaded is not None:
        function, data = loaded
        return function, [np.ascontiguousarray(part, dtype=np.float64) for part in data]
    bounds = np.cumsum([0, *(int(np.prod(shape)) for shape in shapes)])
    flat = pt.vector("flat_point", shape=(int(bounds[-1]),), dtype="float64")
    unflatten = {
        value: flat[low:high].reshape(shape).astype(value.dtype)
        for value, low, high, shape in zip(values, bounds[:-1], bounds[1:], shapes, strict=True)
    }
    logp, gradient, constants, data_inputs = log_density_graph(frozen, logp)
    with frozen, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function = compile_stored(
            [flat, *data_inputs], pytensor.clone_replace([logp, gradient], unflatten), "NUMBA"
        )
    object_mode = sorted(
        {
            str(w.message).split("'s perform")[0].split("run ")[-1]
            for w in caught
            if "object mode" in str(w.message)
        }
    )
    if object_mode:
        raise NotCompilableError(
            f"nutpie cannot sample this model: numba has no native implementation of "
            f"{', '.join(object_mode)} in its log density"
        )
    for warning in caught:  # the others, as they would have been shown
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    store_derived(derived, function, constants, "NUMBA")
    return function, [np.ascontiguousarray(c.data, dtype=np.float64) for c in constants]


def sample_with_nutpie(
    model: pm.Model,
    start_values: dict[str, np.ndarray],
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    target_accept: float,
    progressbar: bool,
    warm_start: WarmStart | None = None,
    warm_tune: int = WARM_TUNE,
) -> tuple[xr.Dataset, xr.Dataset, WarmStart]:
    """(posterior, sample_stats, warm state) with chain and draw dimensions, like
    ``pm.sample``'s; the warm state is where the next fit of this structure can start
    (:mod:`~regime_model.models.warm_start`).

    ``start_values``: a point in the model's (untransformed) variables; every chain starts
    from it plus a small jitter. With a ``warm_start`` of this model's layout, the chains
    start at its points instead, the sampler runs on the coordinates scaled by its scales,
    from its step size, and tunes for ``warm_tune`` steps (the posterior attribute
    ``tuning_steps`` says how many it ran).
    """
    try:
        import nutpie
        from nutpie.compile_pymc import CompiledPyMCModel
    except ImportError as exc:  # a dependency, but an environment can lack it
        raise MissingBackendError(
            f"the nutpie sampler needs the nutpie package ({exc}): pip install nutpie "
            "(a dependency of regime-model, so reinstalling it brings nutpie), or choose "
            "--sampler nuts"
        ) from None

    phase("compiling the log density and its gradient for nutpie (cached after a first fit)")
    frozen = frozen_model(model)
    values = [frozen.rvs_to_values[rv] for rv in frozen.free_RVs]
    start = make_initial_point_fn(
        model=frozen, overrides=start_values, jitter_rvs=set(), return_transformed=True
    )(seed)
    shapes = [np.shape(start[value.name]) for value in values]
    base = np.concatenate([np.ravel(start[value.name]) for value in values]).astype(float)
    n_dim = len(base)
    layout = [(value.name, shape) for value, shape in zip(values, shapes, strict=True)]
    warm = warm_start if warm_start is not None and warm_start.matches(layout) else None
    # The sampler's coordinates are z = x / scale (all ones unless warm-started): the
    # callback evaluates the log density at x = z * scale and scales its gradient.
    scale = np.ones(n_dim) if warm is None else warm.scale
    tune = tune if warm is None else warm_tune
    logp_function, data = _logp_function(frozen, values, shapes)
    with frozen:
        names = {rv.name for rv in frozen.unobserved_RVs}
        reported = [var for var in frozen.unobserved_value_vars if var.name in names]
        # All draws in one call: the reported variables' graph vectorised over a leading
        # draw axis (a per-draw call costs ~0.25 ms, a second for 4,000 draws).
        expand = compile_flat_over_draws(values, shapes, reported)

    # nutpie's C signatures; return codes > 0 reject a point, < 0 abort sampling.
    # The scale travels first in the data buffer, then the model's data.
    data_buffer, expressions = _pack_data([scale, *data])
    unpack = "".join(
        f"\n        data_{index} = {expression}" for index, expression in enumerate(expressions)
    )
    arguments = "".join(f", data_{index}" for index in range(1, len(expressions)))
    # The try block holds the call alone: numba turns every bytecode instruction inside
    # a try (Python 3.11's inline caches included) into a basic block, and its SSA pass is
    # quadratic in blocks. With the data unpacking inside, the callback had 881 blocks and
    # took 79 s of a 172 s cold compile.
    logp_source = f"""
    def logp_callback(dim, point_pointer, gradient_pointer, logp_pointer, user_data):
        if dim != {n_dim}:
            return -1
        total = int(numba.carray(user_data, (1,), np.float64)[0])
        data = numba.carray(user_data, (total,), np.float64)
        point = numba.carray(point_pointer, ({n_dim},)){unpack}
        scaled = point * data_0
        try:
            value, gradient = jitted(scaled{arguments})
        except Exception:
            return 1
        numba.carray(logp_pointer, (1,))[0] = value[()]
        numba.carray(gradient_pointer, ({n_dim},))[:] = gradient * data_0
        if not np.isfinite(value[()]):
            return 4
        if not np.all(np.isfinite(gradient)):
            return 3
        return 0
    """
    expand_source = f"""
    def expand_callback(dim, n_expanded, point_pointer, out_pointer, user_data):
        if dim != {n_dim} or n_expanded != {n_dim}:
            return -1
        numba.carray(out_pointer, ({n_dim},))[:] = numba.carray(point_pointer, ({n_dim},))
        return 0
    """
    # Built from source text with a key, the way PyTensor builds its own functions,
    # so numba caches them on disk under the compiled graph's key.
    graph_key = CACHED_SRC_FUNCTIONS.get(logp_function.vm.jit_fn.py_func)
    jitted = _unwrapped(logp_function.maker.fgraph)
    env = {"__name__": __name__, "jitted": jitted, "np": np, "numba": numba}
    double = numba.types.CPointer(numba.types.double)
    callbacks = []
    for source, name, pointer_types in (
        (logp_source, "logp_callback", (double, double, double)),
        (expand_source, "expand_callback", (numba.types.uint64, double, double)),
    ):
        source = textwrap.dedent(source)
        source_key = hashlib.sha256(source.encode()).hexdigest()[:16]
        signature = numba.types.int64(numba.types.uint64, *pointer_types, numba.types.voidptr)
        function = compile_numba_function_src(
            source,
            name,
            dict(env),
            cache_key=graph_key and f"regime_model_nutpie_{source_key}_{graph_key}",
        )
        callbacks.append(numba.cfunc(signature, cache=graph_key is not None)(function))

    def initial_point(chain_seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, chain_seed])
        if warm is None:
            return base + 0.05 * rng.standard_normal(n_dim)
        # nutpie's seeds are not chain indices: each chain takes one of the previous
        # fit's chain ends, by its seed, jittered by a twentieth of a posterior sd.
        origin = warm.points[rng.integers(len(warm.points))]
        return origin / scale + 0.05 * rng.standard_normal(n_dim)

    compiled = CompiledPyMCModel(
        dims={"point": ("point_dim",)},
        _n_dim=n_dim,
        _coords={"point_dim": np.arange(n_dim)},
        _shapes={"point": (n_dim,)},
        compiled_logp_func=callbacks[0],
        compiled_expand_func=callbacks[1],
        initial_point_func=initial_point,
        shared_data={},
        user_data=data_buffer,
        n_expanded=n_dim,
        shape_info=(["point"], [slice(0, n_dim)], [(n_dim,)]),
        logp_func=None,
        expand_func=None,
    )
    phase("sampling with nutpie: %d chains x (%d tuning + %d draws)", chains, tune, draws)
    started = time.perf_counter()
    settings = dict(
        draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, target_accept=target_accept
    )
    if warm is not None:
        settings["initial_step"] = warm.step_size
    if reporting_lines(progressbar):
        data = _sample_reporting_lines(nutpie, compiled, settings)
    else:  # nutpie's own bar: on a terminal, in a notebook, or nothing
        data = nutpie.sample(compiled, progress_bar=progressbar, save_warmup=True, **settings)
    seconds = time.perf_counter() - started
    # Every leapfrog step is one logp + gradient: the tuning's and the draws'.
    gradient_evaluations = sum(
        int(data[group]["n_steps"].sum())
        for group in ("warmup_sample_stats", "sample_stats")
        if group in data.groups()
    )
    for group in ("warmup_posterior", "warmup_sample_stats"):
        if group in data.groups():
            del data[group]
    phase("sampled in %.1f s; post-processing %d draws", seconds, chains * draws)
    points = data.posterior["point"].to_numpy() * scale  # back to x = z * scale
    n_chains, n_draws = points.shape[:2]
    expanded = expand(points.reshape(n_chains * n_draws, n_dim))
    variables = {}
    coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws)}
    for var, values in zip(reported, expanded, strict=True):
        stacked = np.asarray(values).reshape(n_chains, n_draws, *np.shape(values)[1:])
        dims = frozen.named_vars_to_dims.get(var.name) or tuple(
            f"{var.name}_dim_{axis}" for axis in range(stacked.ndim - 2)
        )
        variables[var.name] = (("chain", "draw", *dims), stacked)
        coords.update({dim: list(frozen.coords[dim]) for dim in dims if dim in frozen.coords})
    attrs = {
        "sampling_time": seconds,
        "gradient_evaluations": gradient_evaluations,
        "tuning_steps": tune,
        "warm_started": int(warm is not None),
    }
    posterior = xr.Dataset(variables, coords=coords, attrs=attrs)
    # The tuned step size (in this fit's z), the same at every kept draw of a chain.
    step_size = float(np.median(data.sample_stats["step_size"].to_numpy()[:, -1]))
    return posterior, data.sample_stats, WarmStart.from_draws(layout, points, step_size)


def _sample_reporting_lines(nutpie, compiled, settings: dict):
    """nutpie's trace (warm-up kept), sampled in the background with a phase line every
    ``SAMPLING_INTERVAL`` seconds; an interrupt stops the chains and is re-raised (nutpie's
    own blocking call would return the draws taken so far instead)."""
    sampler = nutpie.sample(
        compiled, progress_bar=False, save_warmup=True, blocking=False, **settings
    )
    reporter = SamplingReporter(settings["tune"], settings["draws"], settings["chains"])
    try:
        while True:
            try:  # nutpie raises TimeoutError while the chains are still running
                data = sampler.wait(timeout=SAMPLING_INTERVAL)
                break
            except TimeoutError:
                trace = sampler.inspect()
                reporter.report(
                    _iterations(trace, "warmup_posterior"), _iterations(trace, "posterior")
                )
    except BaseException:
        sampler.cancel()
        raise
    return data


def _iterations(trace, group: str) -> int:
    """Iterations done in ``group`` of a trace in progress, summed over chains."""
    if group not in trace.groups():
        return 0
    points = trace[group]["point"].to_numpy()  # (chain, draw, n_dim); NaN past a chain's end
    return int(np.isfinite(points[..., 0]).sum())
