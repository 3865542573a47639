"""Running many independent fits: one Dask layer and a resumable store of their results.

Every task is pure (its inputs in, a JSON-able dict out) and has a ``name`` (its file name)
and a ``key`` (a hash of everything it reads). Tasks go to a ``dask.distributed`` cluster:
a :class:`~distributed.LocalCluster` with one single-threaded worker process per core by
default, or an existing scheduler at ``tcp://HOST:PORT``. Results come back to this
process and are written there, one file per task as it finishes, atomically (so a remote
cluster needs no shared file system, and a crash never leaves a half-written result). A
re-run skips every task whose file exists with the same key, so an interrupted run
resumes where it stopped.

A worker process that dies mid-task is not an error of the task: the scheduler re-runs
the task on another worker (up to ``distributed.scheduler.allowed-failures`` times).
``retries`` re-submits a task whose function raised, for transient failures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from regime_model.data.cache import write_text_atomic
from regime_model.errors import RegimeModelError

DEFAULT_RETRIES = 2


class InvalidResultError(RegimeModelError, ValueError):
    """A task (run by a worker, maybe on another machine) returned a result that is not
    what the task returns; it is not stored."""


class Task(Protocol):
    """What the executor needs of a task: a file name and a hash of its inputs."""

    name: str
    key: str


TaskFunction = Callable[[Any], dict[str, Any]]
Progress = Callable[[int, int], None]


class ResultStore:
    """One JSON file per task in ``directory``: ``{"key": ..., "sha256": ..., "result":
    {...}}``.

    A file counts only under its final name, with the task's key and with ``sha256`` the
    hash of its result: temporary files of an interrupted write, unreadable files, files
    of other inputs and results edited after they were written are ignored (and
    overwritten when the task is run again).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, task: Task) -> Path:
        return self.directory / f"{task.name}.json"

    def load(self, task: Task) -> dict[str, Any] | None:
        """The stored result of ``task``, or None when there is no valid one."""
        try:
            stored = json.loads(self.path(task).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != task.key:
            return None
        result = stored.get("result")
        if not isinstance(result, dict) or stored.get("sha256") != result_sha256(result):
            return None
        return result

    def save(self, task: Task, result: dict[str, Any]) -> Path:
        """Write ``result`` atomically (temp file in the same directory, then rename)."""
        path = self.path(task)
        # allow_nan=False: a NaN must be written as null by the task, never as bare NaN.
        stored = {"key": task.key, "sha256": result_sha256(result), "result": result}
        text = json.dumps(stored, allow_nan=False)
        write_text_atomic(text + "\n", path)
        return path


def result_sha256(result: dict[str, Any]) -> str:
    """A hash of a result's content (canonical JSON: sorted keys, no NaN)."""
    text = json.dumps(result, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Executor(Protocol):
    """Runs a function over tasks; yields (task, result, None) or (task, None, error) in
    the order they finish. Started and stopped as a context manager."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def map_unordered(
        self, function: TaskFunction, tasks: Sequence[Task]
    ) -> Iterator[tuple[Task, dict[str, Any] | None, BaseException | None]]: ...


class SerialExecutor:
    """Tasks one after another in this process: for debugging, tests and as the baseline
    that the Dask executor is measured against."""

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def map_unordered(self, function: TaskFunction, tasks: Sequence[Task]):
        for task in tasks:
            try:
                result = function(task)
            except Exception as exc:  # reported with the task's name by run_tasks' caller
                yield task, None, exc
            else:
                yield task, result, None


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster.

    ``address``: an existing scheduler (``tcp://HOST:PORT``; its workers need this package
    installed). Without one, a :class:`~distributed.LocalCluster` of ``n_workers``
    processes (default: one per core) with one thread each is started and stopped with
    this object. Tasks should run single-threaded, so workers do not compete for cores.
    """

    def __init__(
        self,
        address: str | None = None,
        n_workers: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if n_workers is not None and n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        self.address = address
        self.n_workers = n_workers or os.cpu_count() or 1
        self.retries = retries
        self.client = None
        self.cluster = None

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster  # slow to import; only when used

        if self.address:
            self.client = Client(self.address)
        else:
            self.cluster = LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A worker process that has loaded PyTensor takes a few seconds to exit, and the
        # local nanny then kills it with a warning; its results are in by then, so the
        # warning is noise. (Worker deaths during the run are still logged.)
        nanny_log = logging.getLogger("distributed.nanny")
        level = nanny_log.level
        nanny_log.setLevel(logging.ERROR)
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            nanny_log.setLevel(level)
            self.client = self.cluster = None

    def map_unordered(self, function: TaskFunction, tasks: Sequence[Task]):
        from distributed import as_completed

        if self.client is None:
            raise RuntimeError("DaskExecutor must be started with 'with' before use")
        futures = {
            # The key names the task in Dask's logs; pure tasks with equal keys are equal.
            self.client.submit(
                function, task, key=f"{task.name}-{task.key[:16]}", retries=self.retries
            ): task
            for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            if future.status == "finished":
                yield task, future.result(), None
            elif future.status == "error":  # raised by the task, or its worker died too often
                yield task, None, future.exception()
            else:
                yield task, None, RuntimeError(f"Dask task {future.key} was {future.status}")
            future.release()  # the result lives in this process now


@dataclass
class TaskReport:
    """What :func:`run_tasks` did: names of tasks computed now, reused from the store,
    and failed (name -> exception)."""

    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)


def run_tasks(
    function: TaskFunction,
    tasks: Sequence[Task],
    store: ResultStore,
    executor: Executor,
    progress: Progress | None = None,
    check: Callable[[Any, Any], None] | None = None,
    prepare: Callable[[Any, dict[str, Any]], Any] | None = None,
) -> TaskReport:
    """Run ``function`` on every task without a valid stored result, saving each result
    as it finishes. The executor is started only when something is left to run.

    ``check(task, result)`` raises when a result (it comes from a worker process, maybe on
    another machine) is not what the task should return; such a result is a failure of
    its task and is not stored. A failing task does not stop the others (their results
    are saved, so a re-run after the fix computes only what is missing); the caller
    decides what the failures mean.

    A task whose ``after`` names another task (a warm-started refit and the refit before
    it) runs once that one's result is in, as ``prepare(task, that result)``; its key must
    cover that task's key, so a stored result stays valid only with its predecessor's.
    The tasks are run in waves: every task whose predecessor is done, in parallel. A task
    whose predecessor failed fails too, unrun.
    """
    report = TaskReport()
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for task in tasks:
        stored = store.load(task)
        if stored is None:
            pending.append(task)
        else:
            results[task.name] = stored
            report.reused.append(task.name)
    done, total = len(report.reused), len(tasks)
    if progress:
        progress(done, total)
    if not pending:
        return report
    with executor:
        while pending:
            wave, waiting = [], []
            for task in pending:
                after = getattr(task, "after", None)
                if after is None or after in results:
                    ready = (
                        task if after is None or prepare is None else prepare(task, results[after])
                    )
                    wave.append(ready)
                elif after in report.failed:
                    report.failed[task.name] = RuntimeError(f"not run: {after} failed before it")
                    done += 1
                    if progress:
                        progress(done, total)
                else:
                    waiting.append(task)
            if not wave:  # what the rest wait for is not among the tasks
                for task in waiting:
                    report.failed[task.name] = RuntimeError(f"not run: no task {task.after}")
                done += len(waiting)
                waiting = []
            for task, result, error in executor.map_unordered(function, wave):
                if error is None:
                    try:
                        if not isinstance(result, dict):
                            raise ValueError(f"a {type(result).__name__}, not a dict")
                        if check is not None:
                            check(task, result)
                        store.save(task, result)
                    except (ValueError, TypeError, KeyError) as exc:
                        error = InvalidResultError(f"returned an invalid result: {exc}")
                if error is None:
                    report.computed.append(task.name)
                    results[task.name] = result
                else:
                    report.failed[task.name] = error
                done += 1
                if progress:
                    progress(done, total)
            pending = waiting
    return report
