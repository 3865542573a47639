"""Starting a refit where the previous fit of the same model ended (walk-forward refits).

Consecutive refits of a walk-forward differ by a few weeks of data, so their posteriors
are close. A :class:`WarmStart` carries what the sampler needs from the previous fit, in
the sampler's unconstrained coordinates (nutpie's flat point):

* ``points`` (C, n): each chain's last draw, where the new chains start;
* ``scale`` (n,): the posterior standard deviation of each coordinate (the chains'
  within-chain variances pooled, so chains sitting in differently labelled modes do not
  inflate it). The sampler runs on z = x / scale, a fixed linear map (its Jacobian is a
  constant, so the posterior is unchanged) under which the previous posterior has unit
  scales: the mass matrix it adapts from starts close to right, and it tunes for fewer
  steps (``WARM_TUNE``);
* ``step_size``: the step size the previous fit tuned (in its own z), where the new
  adaptation starts.

``layout`` names the flat point's pieces (variable, shape), in order: a warm start is used
only by a model of the same layout (else the fit starts cold, from its EM estimate). It is
plain data (:meth:`WarmStart.to_dict`), so it travels in a walk-forward segment's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

WARM_TUNE = 100  # nutpie's tuning steps for a warm-started fit (a cold one: 300)
MIN_SCALE = 1e-8  # a coordinate that did not move keeps a positive scale


@dataclass(frozen=True)
class WarmStart:
    """See the module docstring. ``layout``: ((name, shape), ...); ``points`` (C, n);
    ``scale`` (n,); ``step_size`` > 0."""

    layout: tuple[tuple[str, tuple[int, ...]], ...]
    points: np.ndarray
    scale: np.ndarray
    step_size: float

    @classmethod
    def from_draws(cls, layout, draws: np.ndarray, step_size: float) -> WarmStart:
        """From a fit's flat draws (C, N, n) and its tuned step size."""
        within = draws.var(axis=1).mean(axis=0)  # pooled within-chain variance (n,)
        return cls(
            layout=tuple((name, tuple(shape)) for name, shape in layout),
            points=np.array(draws[:, -1], dtype=float),
            scale=np.maximum(np.sqrt(within), MIN_SCALE),
            step_size=float(step_size),
        )

    def matches(self, layout) -> bool:
        """Whether a model with flat-point ``layout`` can start from this."""
        return self.layout == tuple((name, tuple(shape)) for name, shape in layout)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "layout": [[name, list(shape)] for name, shape in self.layout],
            "points": self.points.tolist(),
            "scale": self.scale.tolist(),
            "step_size": self.step_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WarmStart:
        """The inverse of :meth:`to_dict`; ValueError when ``data`` is not one."""
        try:
            layout = tuple(
                (str(name), tuple(int(n) for n in shape)) for name, shape in data["layout"]
            )
            points = np.array(data["points"], dtype=float)
            scale = np.array(data["scale"], dtype=float)
            step_size = float(data["step_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a warm start: {exc}") from None
        n_dim = sum(int(np.prod(shape)) for _, shape in layout)
        if (
            points.ndim != 2
            or points.shape[1] != n_dim
            or scale.shape != (n_dim,)
            or not np.isfinite(points).all()
            or not (scale > 0).all()
            or not step_size > 0
        ):
            raise ValueError("not a warm start: its points, scales or step size do not fit")
        return cls(layout, points, scale, step_size)
