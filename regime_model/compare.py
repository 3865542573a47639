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
    recommended: str | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        records = self.table.reset_index().to_dict(orient="records")
        return {
            "criterion": self.criterion,
            "recommended": self.recommended,
            "reason": self.reason,
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
            # Values per posterior draw: the "size" by which the smaller model is chosen.
            "parameters": int(
                sum(
                    np.prod(variable.shape[2:], dtype=int)
                    for variable in result.inference_data.posterior.data_vars.values()
                )
            ),
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
        diagnostics = result.diagnostics()
        if diagnostics.get("verdict") == "fail":
            messages.append(
                f"{name}: MCMC diagnostics failed ({'; '.join(diagnostics['failures'])})"
                ": its scores are not reliable"
            )
        for warning in [*diagnostics.get("warnings", []), *result.fit_info.get("warnings", [])]:
            messages.append(f"{name}: {warning}")
    points = holdout_points(runs) if criterion == "holdout" else loo_points(runs)
    recommended, reason = recommend(table, points, criterion)
    return Comparison(table, messages, criterion, recommended, reason)


def recommend(
    table: pd.DataFrame, points: pd.DataFrame | None, criterion: str
) -> tuple[str | None, str]:
    """The documented rule (docs/models.md, "How many regimes"): among runs whose
    diagnostics do not fail, the smallest model (fewest regimes, then fewest parameters)
    whose score is within two standard errors of the best such run's, the standard error
    of each paired difference being sqrt(n var(d_t)). Point estimates are ranked but not
    recommended. -> (run or None, why)."""
    if points is None or points.empty:
        return None, "no score to rank the runs by"
    # A point estimate ("n/a") has no posterior whose convergence could be checked, and
    # no band: it is ranked, but never recommended.
    passing = [name for name in table.index if table.loc[name, "verdict"] == "pass"]
    if not passing:
        return None, (
            "no run passes its diagnostics, so none is recommended (fit longer chains; a "
            "point estimate has no diagnostics and is never recommended)"
        )
    totals = points[passing].sum()
    best = str(totals.idxmax())
    within = []
    for name in passing:
        difference = points[name] - points[best]
        d, se = float(difference.sum()), _paired_se(difference)
        if name == best or d >= -2 * se:
            within.append(
                (
                    int(table.loc[name, "regimes"]),
                    int(table.loc[name, "parameters"]),
                    -float(totals[name]),
                    name,
                    d,
                    se,
                )
            )
    regimes, _, _, chosen, d, se = min(within)
    scored = f"{len(points)} {'held-out' if criterion == 'holdout' else 'fitted'} dates"
    if chosen == best:
        others = [name for name in passing if name != best]
        beaten = "the best passing run" + (
            "; every smaller passing run is beaten by more than two standard errors"
            if any(table.loc[o, "regimes"] < regimes for o in others)
            else ""
        )
        return chosen, f"{chosen} ({regimes} regimes) is {beaten} ({scored})"
    return chosen, (
        f"{chosen} ({regimes} regimes) is within two standard errors of the best passing "
        f"run {best} (d = {d:.1f} ± {se:.1f} on {scored}), so the smaller model is preferred"
    )


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
    columns.append("loo_dates")
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
    for name, result in loo.items():
        table.loc[name, "elpd_loo"] = float(result["elpd_loo"])
        table.loc[name, "loo_se"] = float(result["se"])
        table.loc[name, "p_loo"] = float(result["p_loo"])
        table.loc[name, "pareto_k_over_0.7"] = float((result["pareto_k"] > 0.7).sum())
        table.loc[name, "loo_dates"] = float(result["loo_i"].size)
    _differences(table, pd.DataFrame({n: np.ravel(r["loo_i"]) for n, r in loo.items()}), "loo")
    return table


def loo_points(runs: dict[str, RegimeResult]) -> pd.DataFrame | None:
    """Per fitted date and run, the PSIS-LOO log predictive density (None: a point
    estimate among the runs)."""
    if any(_n_draws(result) < 2 for result in runs.values()):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported once by _loo_table
        return pd.DataFrame(
            {
                name: np.ravel(az.loo(result.inference_data, pointwise=True, var_name="y")["loo_i"])
                for name, result in runs.items()
            }
        )


def holdout_points(runs: dict[str, RegimeResult]) -> pd.DataFrame | None:
    """Per held-out date and run, log p(y_t | y_1..t-1) (None: a run without one)."""
    scores = {name: result.holdout_log_predictive() for name, result in runs.items()}
    if any(score is None for score in scores.values()):
        return None
    return pd.DataFrame(scores)


def _differences(table: pd.DataFrame, points: pd.DataFrame, criterion: str) -> None:
    """d_<criterion> (the run's total minus the best run's: 0 for the best, negative is
    worse) and its paired standard error, into ``table``."""
    if points.empty:
        return
    best = points.sum().idxmax()
    for name in points:
        difference = points[name] - points[best]
        table.loc[name, f"d_{criterion}"] = difference.sum()
        table.loc[name, f"d_{criterion}_se"] = _paired_se(difference)


def _holdout_table(runs: dict[str, RegimeResult], messages: list[str]) -> pd.DataFrame:
    columns = ["holdout_dates", "holdout_elpd", "holdout_se", "d_holdout", "d_holdout_se"]
    table = pd.DataFrame(index=list(runs), columns=columns, dtype=float)
    frame = holdout_points(runs)
    if frame is None:
        messages.append(
            "no held-out score: refit with --holdout-start DATE to score the later dates "
            "one step ahead (recommended for time series)"
        )
        return table
    for name in frame:
        table.loc[name, "holdout_dates"] = len(frame)
        table.loc[name, "holdout_elpd"] = frame[name].sum()
        table.loc[name, "holdout_se"] = _paired_se(frame[name])
    _differences(table, frame, "holdout")
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
        "holdout_dates",
        "holdout_elpd",
        "d_holdout",
        "d_holdout_se",
        "loo_dates",
        "elpd_loo",
        "d_loo",
        "d_loo_se",
        "p_loo",
        "pareto_k_over_0.7",
    ]
    for column in ("holdout_dates", "loo_dates"):
        table[column] = [("-" if pd.isna(value) else str(int(value))) for value in table[column]]
    text = table[shown].to_string(float_format=lambda value: f"{value:.1f}", na_rep="-")
    criterion = "held-out one-step score" if comparison.criterion == "holdout" else "PSIS-LOO"
    lines = [
        text,
        "",
        f"ranked by {criterion} (higher is better; d_* is each run's score minus the best "
        "run's, so 0 is the best and negative is worse, with the standard error of the "
        "paired difference)",
        f"recommended: {comparison.recommended}: {comparison.reason}"
        if comparison.recommended
        else f"recommended: none: {comparison.reason}",
    ]
    lines += [f"warning: {message}" for message in comparison.warnings]
    return "\n".join(lines)
