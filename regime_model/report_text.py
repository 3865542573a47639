"""The text ``regime fit`` and ``regime summary`` print: a run's summary (from
:meth:`~regime_model.results.RegimeResult.summary`) as readable lines, with each family's
own tables (``fit_info["model_summary"]``) and the diagnostics' verdict in plain words."""

from __future__ import annotations

import textwrap

import pandas as pd


def format_summary(summary: dict) -> str:
    """The text ``regime summary`` prints."""
    lines = [
        f"{summary['model']} on {summary['n_dates']} dates, {summary['first_date']} to "
        f"{summary['last_date']}; features: {', '.join(summary['columns'])}",
    ]
    holdout = summary["fit_info"].get("holdout_start")
    if holdout:
        lines.append(
            f"fitted on the dates before {holdout}; the {summary['fit_info']['holdout_dates']} "
            "dates from it on are held out: filtered with those parameters, not fitted"
        )
    lines += [
        "",
        f"Filtered regime probabilities on {summary['last_date']} (data up to that date; "
        f"{summary['hdi']:.0%} HDI; `regime now RUN` adds the change, the forecast, stale "
        "features and what is real-time):",
    ]
    for name, values in summary["latest_filtered"].items():
        band = (
            f"  [{values['lower']:.2f}, {values['upper']:.2f}]"
            if values["lower"] is not None
            else "  (no band: point estimate)"
        )
        lines.append(f"  {name:<12} {values['mean']:.2f}{band}")
    lines += [
        "",
        "Recent regime path (most probable regime):",
        "  date        filtered      smoothed",
    ]
    lines += [
        f"  {row['date']}  {row['filtered']:<13} {row['smoothed']}"
        for row in summary["recent_path"]
    ]
    lines += ["", "Transition probabilities per step (mean [HDI]):"]
    lines += [
        f"  {row['from']:>12} -> {row['to']:<12} {_band(row)}"
        for row in summary["transition_matrix"]
    ]
    lines += ["", "Expected duration in steps (mean [HDI]):"]
    lines += [f"  {row['regime']:<12} {_band(row, '.1f')}" for row in summary["expected_durations"]]
    lines += ["", "Emission parameters in the features' units (mean [HDI]):"]
    lines += [
        f"  {row['parameter']:<6} {row['feature']:<26} {row['regime']:<12} {_band(row, '.4g')}"
        for row in summary["emissions"]
    ]
    info = summary["fit_info"]
    for title, records in info.get("model_summary", {}).items():
        lines += ["", f"{title.replace('_', ' ').capitalize()}:"]
        lines += _records_table(records)
    if "holdout_start" in info:
        lines += [
            "",
            f"Held out from {info['holdout_start']} ({info['holdout_dates']} dates): fitted on "
            "the earlier dates, later dates filtered with those parameters.",
        ]
    diagnostics = info.get("diagnostics")
    lines.append("")
    if diagnostics and diagnostics.get("verdict") in ("pass", "fail"):
        lines.append(
            f"Diagnostics: {diagnostics['verdict'].upper()} (max R-hat "
            f"{_number(diagnostics['max_rhat'], '.3f')}, min ESS bulk "
            f"{_number(diagnostics['min_ess_bulk'], '.0f')} / tail "
            f"{_number(diagnostics['min_ess_tail'], '.0f')}, {diagnostics['divergences']} "
            f"divergences, labels: {_labels_word(diagnostics)})"
        )
        lines += [f"  - {failure}" for failure in diagnostics["failures"]]
        lines += [f"  ! {warning}" for warning in diagnostics.get("warnings", [])]
    elif diagnostics:
        lines.append(f"Diagnostics: {diagnostics.get('reason', 'not applicable')}")
    if "note" in info:
        lines.append(f"Note: {info['note']}")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    """``value`` formatted, or "n/a" when it could not be computed (saved as null)."""
    return "n/a" if value is None else f"{value:{spec}}"


def _labels_word(diagnostics: dict) -> str:
    """ "consistent" or "MIXED" (runs saved before the label checks: chain agreement only)."""
    consistent = diagnostics.get("labels_consistent", not diagnostics.get("label_switching"))
    return "consistent" if consistent else "MIXED"


def _records_table(records: list[dict] | dict | str) -> list[str]:
    """A model's own summary table (list of records, a note, or a list of notes) as
    indented text lines."""
    if isinstance(records, str):
        records = [records]
    if not records:
        return ["  none"]
    if isinstance(records, list) and all(isinstance(item, str) for item in records):
        return [
            line
            for note in records
            for line in textwrap.wrap(note, width=92, initial_indent="  ", subsequent_indent="    ")
        ]
    frame = pd.DataFrame(records if isinstance(records, list) else [records])
    text = frame.to_string(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-")
    return [f"  {line}" for line in text.splitlines()]


def _band(row: dict, spec: str = ".3f") -> str:
    if row["lower"] is None or row["lower"] != row["lower"]:  # NaN: no band
        return f"{row['mean']:{spec}}"
    return f"{row['mean']:{spec}} [{row['lower']:{spec}}, {row['upper']:{spec}}]"
