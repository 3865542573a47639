"""Ranking fitted runs on the same data: PSIS-LOO and a held-out one-step-ahead score.

Two criteria, because they answer different questions:

* **PSIS-LOO** (ArviZ) over the per-date one-step predictive log densities of the fitted
  dates. It is cheap and uses all the data, but it leaves out one date while keeping the
  dates after it, which is not how a forecaster meets the future; its Pareto-k warnings
  are shown, not hidden.
* **Held-out score**: each run was fitted on the dates before a cut (``--holdout-start``)
  and then filtered on through the later dates without refitting. The sum of
  log p(y_t | y_1..t-1) over the held-out dates is an honest out-of-sample score for a
  time series. Standard errors of the differences come from the paired per-date
  differences: se = sqrt(n * var(d_t)).

The package recommends the held-out score when runs have one (it is what a real-time user
experiences) and reports LOO beside it. Runs are comparable only when they score the same
observations: the same emission columns on the same dates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from regime_model.errors import RegimeModelError
from regime_model.results import RegimeResult


class IncomparableRunsError(RegimeModelError, ValueError):
    """The runs do not score the same observations."""


@dataclass
class Comparison:
    """``table``: one row per run (index: run name), best first; ``warnings``: messages."""

    table: pd.DataFrame
    warnings: list[str]
    criterion: str

    def to_dict(self) -> dict:
        records = self.table.reset_index().to_dict(orient="records")
        return {
            "criterion": self.criterion,
            "runs": [{key: _plain(value) for key, value in row.items()} for row in records],
            "warnings": self.warnings,
        }


def compare_runs(runs: dict[str, RegimeResult]) -> Comparison:
    """Rank runs (name -> result) by held-out score when all have one, else by PSIS-LOO."""
    if len(runs) < 2:
        raise RegimeModelError("compare needs at least two runs")
    _check_comparable(runs)
    messages: list[str] = []
    rows = {
        name: {
            "model": result.model,
            "regimes": result.n_regimes,
            "draws": int(
                result.inference_data.posterior.sizes["chain"]
                * result.inference_data.posterior.sizes["draw"]
            ),
            "verdict": result.diagnostics().get("verdict", "n/a"),
        }
        for name, result in runs.items()
    }
    loo = _loo_table(runs, messages)
    holdout = _holdout_table(runs, messages)
    table = pd.DataFrame.from_dict(rows, orient="index").join(loo).join(holdout)
    table.index.name = "run"
    criterion = "holdout" if holdout["holdout_elpd"].notna().all() else "loo"
    key = "holdout_elpd" if criterion == "holdout" else "elpd_loo"
    table = table.sort_values(key, ascending=False, na_position="last")
    for name, result in runs.items():
        if result.diagnostics().get("verdict") == "fail":
            messages.append(
                f"{name}: MCMC diagnostics failed ({'; '.join(result.diagnostics()['failures'])})"
                ": its scores are not reliable"
            )
    return Comparison(table, messages, criterion)


def load_runs(directories: list[str | Path]) -> dict[str, RegimeResult]:
    """Load fitted runs, named by their directory (made unique if names repeat)."""
    runs: dict[str, RegimeResult] = {}
    for directory in directories:
        path = Path(directory)
        name = path.name or str(path)
        while name in runs:
            name = f"{name}'"
        runs[name] = RegimeResult.load(path)
    return runs


def _check_comparable(runs: dict[str, RegimeResult]) -> None:
    first_name, first = next(iter(runs.items()))
    reference_dates = first.log_likelihood().index
    for name, result in runs.items():
        if sorted(result.columns) != sorted(first.columns):
            raise IncomparableRunsError(
                f"runs score different observations: {first_name} models "
                f"{', '.join(first.columns)} but {name} models {', '.join(result.columns)}; "
                "log densities of different data cannot be compared"
            )
        dates = result.log_likelihood().index
        if not dates.equals(reference_dates):
            raise IncomparableRunsError(
                f"runs were fitted on different dates: {first_name} "
                f"{_span(reference_dates)}, {name} {_span(dates)}"
            )
        data, reference_data = (run.fit_info.get("data_sha256") for run in (result, first))
        if data and reference_data and data != reference_data:
            raise IncomparableRunsError(
                f"runs were fitted on different data: {first_name} and {name} model the same "
                "columns on the same dates, but the values differ (fit_info data_sha256); "
                "log densities of different data cannot be compared"
            )
        holdout = result.holdout_log_predictive()
        reference = first.holdout_log_predictive()
        if (holdout is None) != (reference is None) or (
            holdout is not None and not holdout.index.equals(reference.index)
        ):
            raise IncomparableRunsError(
                f"runs hold out different dates: {first_name} "
                f"{_span(None if reference is None else reference.index)}, "
                f"{name} {_span(None if holdout is None else holdout.index)}"
            )


def _loo_table(runs: dict[str, RegimeResult], messages: list[str]) -> pd.DataFrame:
    columns = ["elpd_loo", "loo_se", "p_loo", "d_loo", "d_loo_se", "pareto_k_over_0.7"]
    table = pd.DataFrame(index=list(runs), columns=columns, dtype=float)
    sampled = {}
    for name, result in runs.items():
        if _n_draws(result) < 2:
            messages.append(f"{name}: a point estimate has no posterior draws, so no PSIS-LOO")
            continue
        sampled[name] = result.inference_data
    if not sampled:
        return table
    loo = {}
    for name, data in sampled.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loo[name] = az.loo(data, pointwise=True, var_name="y")
        for warning in caught:
            if issubclass(warning.category, UserWarning):  # ArviZ's own, not deprecations
                first_sentence = str(warning.message).strip().split(". ")[0]
                messages.append(f"{name}: PSIS-LOO: {first_sentence}")
    ranked = None
    if len(sampled) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same warnings again, already reported
            ranked = az.compare(sampled, ic="loo", var_name="y")
    for name, result in loo.items():
        table.loc[name, "elpd_loo"] = float(result["elpd_loo"])
        table.loc[name, "loo_se"] = float(result["se"])
        table.loc[name, "p_loo"] = float(result["p_loo"])
        table.loc[name, "pareto_k_over_0.7"] = float((result["pareto_k"] > 0.7).sum())
    if ranked is not None:
        table.loc[ranked.index, "d_loo"] = ranked["elpd_diff"].astype(float)
        table.loc[ranked.index, "d_loo_se"] = ranked["dse"].astype(float)
    return table


def _holdout_table(runs: dict[str, RegimeResult], messages: list[str]) -> pd.DataFrame:
    columns = ["holdout_dates", "holdout_elpd", "holdout_se", "d_holdout", "d_holdout_se"]
    table = pd.DataFrame(index=list(runs), columns=columns, dtype=float)
    scores = {name: result.holdout_log_predictive() for name, result in runs.items()}
    if any(score is None for score in scores.values()):
        messages.append(
            "no held-out score: refit with --holdout-start DATE to score the later dates "
            "one step ahead (recommended for time series)"
        )
        return table
    frame = pd.DataFrame(scores)
    n_dates = len(frame)
    best = frame.sum().idxmax()
    for name in frame:
        difference = frame[name] - frame[best]
        table.loc[name, "holdout_dates"] = n_dates
        table.loc[name, "holdout_elpd"] = frame[name].sum()
        table.loc[name, "holdout_se"] = _paired_se(frame[name])
        table.loc[name, "d_holdout"] = difference.sum()
        table.loc[name, "d_holdout_se"] = _paired_se(difference)
    return table


def _paired_se(values: pd.Series) -> float:
    """Standard error of a sum of n per-date terms: sqrt(n * var)."""
    if len(values) < 2:
        return float("nan")
    return float(np.sqrt(len(values) * values.var(ddof=1)))


def _n_draws(result: RegimeResult) -> int:
    sizes = result.inference_data.posterior.sizes
    return int(sizes["chain"] * sizes["draw"])


def _span(dates: pd.Index | None) -> str:
    if dates is None or len(dates) == 0:
        return "(none)"
    return f"{dates[0]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d} ({len(dates)} dates)"


def _plain(value):
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def format_comparison(comparison: Comparison) -> str:
    """The comparison as a fixed-width table with the criterion and warnings below."""
    table = comparison.table.copy()
    shown = [
        "model",
        "regimes",
        "verdict",
        "holdout_elpd",
        "d_holdout",
        "d_holdout_se",
        "elpd_loo",
        "d_loo",
        "d_loo_se",
        "p_loo",
        "pareto_k_over_0.7",
    ]
    text = table[shown].to_string(float_format=lambda value: f"{value:.1f}", na_rep="-")
    criterion = "held-out one-step score" if comparison.criterion == "holdout" else "PSIS-LOO"
    lines = [
        text,
        "",
        f"ranked by {criterion} (higher is better; d_* is the difference to the best, with its "
        "standard error)",
    ]
    lines += [f"warning: {message}" for message in comparison.warnings]
    return "\n".join(lines)
