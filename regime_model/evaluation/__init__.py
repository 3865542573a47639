"""Out-of-sample evaluation: walk-forward backtests, run through one Dask executor layer.

- :mod:`~regime_model.evaluation.schedule`: refit dates and fit windows;
- :mod:`~regime_model.evaluation.walk_forward`: the pure per-refit task and its result;
- :mod:`~regime_model.evaluation.executor`: Dask (or serial) execution and the resumable
  result store;
- :mod:`~regime_model.evaluation.scores`: log predictive density, Brier score, calibration;
- :mod:`~regime_model.evaluation.backtest`: planning, running, stitching, saving.
- :mod:`~regime_model.evaluation.allocation`: what the probabilities are worth: exposure
  P(risk_on) in an asset after costs, against buy-and-hold and a baseline model.

Nothing is imported here, so that the CLI can read the schedule's choices without
importing the models (PyMC is slow to import).
"""
