"""What a long run is doing, as it does it: phase lines through the ``regime_model.progress``
logger, which the CLI shows on stderr (``--quiet`` silences it) and a library user sees
only after configuring logging.

A fit reports its phases (the maximum-likelihood start, building the model, compiling,
tuning and sampling with draws done and an estimate of the time left, post-processing).
A progress bar needs a terminal: attached to one, the sampler's own bar is shown; sent to
a file or a pipe (a log, CI), the sampling phase is a line every ``SAMPLING_INTERVAL``
seconds instead.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

LOGGER = logging.getLogger("regime_model.progress")
SAMPLING_INTERVAL = 10.0  # seconds between sampling lines when not on a terminal


def phase(message: str, *args: object) -> None:
    """Report the start of a phase (``message`` %-formatted with ``args``)."""
    LOGGER.info(message, *args)


def showing_phases() -> bool:
    """True if phase lines go anywhere (the CLI's handler, or the user's logging)."""
    return LOGGER.isEnabledFor(logging.INFO) and (LOGGER.handlers or LOGGER.parent.handlers)


def on_terminal() -> bool:
    """True if stderr is a terminal (a progress bar can be drawn there)."""
    return sys.stderr.isatty()


def reporting_lines(progressbar: bool) -> bool:
    """True if sampling should report in phase lines: progress wanted, phase lines shown,
    and no terminal to draw the sampler's own bar on."""
    return progressbar and showing_phases() and not on_terminal()


class SamplingReporter:
    """The sampling lines of one run: iterations done (summed over chains) in, a phase
    line with the time left out."""

    def __init__(self, tune: int, draws: int, chains: int) -> None:
        self.tune, self.draws, self.chains = tune, draws, chains
        self.started = time.perf_counter()

    def report(self, tuned: int, drawn: int) -> None:
        elapsed = time.perf_counter() - self.started
        phase("%s", sampling_line(tuned, self.tune, drawn, self.draws, self.chains, elapsed))


def show_phases(stream: TextIO | None = None) -> logging.Handler:
    """Print phase lines on ``stream`` (stderr) as ``regime: <phase>``; returns the handler
    (remove it with :func:`hide_phases`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("regime: %(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    return handler


def hide_phases(handler: logging.Handler) -> None:
    LOGGER.removeHandler(handler)


def sampling_line(
    tuned: int, tune: int, drawn: int, draws: int, chains: int, elapsed: float
) -> str:
    """'tuning 350/1000, sampling 0/1000 (per chain, 4 chains), 12 s, about 40 s left'.

    ``tuned`` and ``drawn`` are the iterations done, summed over chains; the estimate
    assumes the remaining iterations cost what the ones done did on average."""
    total = (tune + draws) * chains
    done = tuned + drawn
    left = f", about {elapsed * (total - done) / done:.0f} s left" if done else ""
    return (
        f"tuning {tuned // max(chains, 1)}/{tune}, sampling {drawn // max(chains, 1)}/{draws} "
        f"(per chain, {chains} chains), {elapsed:.0f} s{left}"
    )
