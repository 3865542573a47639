"""``regime report RUN --html FILE``: one self-contained HTML page of a fitted run.

The figures are embedded as PNG data, the styles inline and there is no script, so the
file reads the same offline, attached to an e-mail or on a code host. It holds the current
reading (:mod:`regime_model.reading`), the regime figures (filtered and smoothed), the
transition matrix, expected durations, emission parameters and the diagnostics.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from regime_model.models.estimator import RegimeEstimator
from regime_model.reading import current_reading, filtered_history, format_reading, last_years

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } pre { background: #f8f8f8; padding: 0.8em; font-size: 0.85em; }
.fail { color: #c0392b; font-weight: bold; } .pass { color: #27ae60; font-weight: bold; }
img { max-width: 100%; }
"""


def write_report(
    model: RegimeEstimator,
    path: str | Path,
    run: str = "",
    new: pd.DataFrame | Any | None = None,
    hdi: float = 0.9,
) -> Path:
    """Write the page for a fitted model (a loaded run) to ``path``; ``new``: data
    extending the fit, read without refitting as ``regime now --features`` does."""
    from regime_model.plots import reading_figure, regimes_figure

    result = model.result_
    appended = None if new is None else model.filter(new)
    reading = current_reading(model, new, hdi, appended)
    summary = result.summary(hdi)
    diagnostics = result.diagnostics()
    verdict = diagnostics.get("verdict", "n/a (point estimate)")
    name = result.regime_names[-1]
    table = filtered_history(model, name, hdi, appended)
    parts = [
        f"<h1>{html.escape(run or result.model)}: {html.escape(result.model)}, "
        f"{result.n_regimes} regimes</h1>",
        _facts(result, reading),
        "<h2>The current reading</h2>",
        f"<pre>{html.escape(format_reading(reading, run))}</pre>",
        _image(reading_figure(last_years(table), reading, name)),
        "<h2>Regime probabilities</h2>",
        "<p>Filtered: what the model says on each date from the data up to it. Smoothed: "
        "with all the data, for describing history only.</p>",
        _image(regimes_figure(result, "filtered", hdi)),
        _image(regimes_figure(result, "smoothed", hdi)),
        "<h2>Transition matrix</h2>",
        _table(result.transition_matrix(hdi), "P(to | from) per step, mean and HDI"),
        "<h2>Expected durations</h2>",
        _table(
            result.expected_durations(hdi).reset_index(),
            f"1 / (1 - P(stay)), in {result.config.get('features_freq', '')} periods",
        ),
        "<h2>Emission parameters</h2>",
        _table(result.emission_summary(hdi), "per regime and feature, in the features' units"),
        "<h2>Diagnostics</h2>",
        f'<p>verdict: <span class="{verdict}">{html.escape(str(verdict))}</span></p>',
        _list("failures", diagnostics.get("failures", [])),
        _list("warnings", [*diagnostics.get("warnings", []), *result.fit_info.get("warnings", [])]),
        _table(
            pd.DataFrame(
                [
                    {"check": key, "value": value}
                    for key, value in diagnostics.items()
                    if key not in ("failures", "warnings", "verdict")
                    and not isinstance(value, dict | list)
                ]
            ),
            "",
        ),
        f"<p>{summary['n_dates']} dates, {summary['first_date']} to {summary['last_date']}; "
        f"HDI {hdi:.0%}.</p>",
    ]
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(run or result.model)}</title><style>{_STYLE}</style></head>"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    from regime_model.data.cache import write_text_atomic

    path = Path(path)
    write_text_atomic(page, path)
    return path


def _facts(result, reading: dict[str, Any]) -> str:
    rows = {
        "columns": ", ".join(result.columns),
        "dates": f"{result.dates[0]:%Y-%m-%d} to {result.dates[-1]:%Y-%m-%d} ({len(result.dates)})",
        "parameters fitted through": reading["fitted_through"],
        "held out from": result.fit_info.get("holdout_start", "-"),
        "sampler": result.fit_info.get("sampler", "EM (maximum likelihood)"),
        "dates read after the fit": str(reading["appended_dates"]),
    }
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _image(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<p><img alt="figure" src="data:image/png;base64,{data}"></p>'


def _table(frame: pd.DataFrame, caption: str) -> str:
    caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = frame.to_html(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-")
    return body.replace('<table border="1" class="dataframe">', f"<table>{caption}", 1)


def _list(title: str, items: list[str]) -> str:
    if not items:
        return ""
    entries = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    return f"<p>{title}:</p><ul>{entries}</ul>"
