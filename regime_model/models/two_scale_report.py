"""The two-scale family's reports, from a fitted or loaded run: each scale's regime
probabilities per date, the coarse durations, each market's transitions and durations per
coarse state, the coupling (how much the coarse state moves each market's P(risk_on)),
the current reading at both scales and the exact forecast along the coming calendar."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from regime_model.models import report_tables
from regime_model.models.observations import regime_names
from regime_model.results import RegimeResult, bands, probability_table

MODEL_NAME = "two-scale"
COARSE = "coarse"
SUMMARY_HDI = 0.9


def _layout(result: RegimeResult) -> dict[str, Any]:
    if result.model != MODEL_NAME:
        raise ValueError(f"not a two-scale run: {result.model}")
    return result.fit_info["two_scale"]


def _sizes(result: RegimeResult) -> tuple[int, int, list[str]]:
    """(K_c, K, markets) of a run."""
    layout = _layout(result)
    posterior = result.inference_data.posterior
    markets = list(layout["markets"])
    return posterior.sizes["coarse_from"], posterior.sizes[f"{markets[0]}_from"], markets


def marginal(values: np.ndarray, result: RegimeResult, scale: str) -> np.ndarray:
    """(..., S) product-state probabilities -> (..., K) of one scale (``"coarse"`` or a
    market), the others summed out."""
    n_coarse, n_fine, markets = _sizes(result)
    if scale != COARSE and scale not in markets:
        raise ValueError(f"scale must be '{COARSE}' or one of {', '.join(markets)}, not {scale!r}")
    shaped = values.reshape(*values.shape[:-1], n_coarse, *[n_fine] * len(markets))
    axis = 0 if scale == COARSE else 1 + markets.index(scale)
    lead = values.ndim - 1
    others = tuple(lead + a for a in range(1 + len(markets)) if a != axis)
    return shaped.sum(axis=others)


def scale_probabilities(
    result: RegimeResult, scale: str = COARSE, kind: str = "filtered", hdi: float = SUMMARY_HDI
) -> pd.DataFrame:
    """P(regime) of one scale per date (``"coarse"`` or a market): mean and HDI over the
    band draws. -> (T, K x [mean, lower, upper])."""
    draws = marginal(getattr(result.probabilities, kind).astype(float), result, scale)
    names = regime_names(draws.shape[-1])
    frame = probability_table(draws, result.dates, names, hdi, result.has_bands, kind)
    frame.attrs.update(scale=scale)
    return frame


def model_summary(result: RegimeResult, hdi: float = SUMMARY_HDI) -> dict[str, Any]:
    """Tables for ``fit_info["model_summary"]`` (lists of records). Works on a loaded run:

    * ``coupling``: per market, P(fine risk_on) under each coarse regime (its entry law:
      the long-run share of risk-on steps in that regime) and the difference between the
      coarse risk_on and risk_off regimes, with P(difference > 0);
    * ``coarse_durations``: the coarse regimes' expected durations in coarse periods;
    * ``fine_durations``: each market's expected stays per coarse regime, in fine steps
      (in the restart form a stay also ends with its period);
    * ``fine_transitions``: each market's matrix per coarse regime;
    * ``now``: each scale's filtered P(regime) on the last date.
    """
    layout = _layout(result)
    posterior = result.inference_data.posterior
    n_coarse, n_fine, markets = _sizes(result)
    coarse_names, fine_names = regime_names(n_coarse), regime_names(n_fine)
    coupling = []
    for market in markets:
        entry = report_tables.stacked(
            result.inference_data.posterior, f"{market}_entry"
        )  # (N, K_c, K)
        for c, coarse in enumerate(coarse_names):
            coupling.append(
                report_tables.record(
                    entry[:, c, -1], hdi, market=market, quantity=f"P(risk_on | coarse {coarse})"
                )
            )
        difference = entry[:, -1, -1] - entry[:, 0, -1]
        record = report_tables.record(
            difference,
            hdi,
            market=market,
            quantity=f"P(risk_on | coarse {coarse_names[-1]}) - P(risk_on | coarse "
            f"{coarse_names[0]})",
        )
        record["p_positive"] = float((difference > 0).mean())
        coupling.append(record)
    coarse_transition = report_tables.stacked(posterior, "coarse_transition")
    unit = {"M": "months", "Q": "quarters", "W": "weeks"}.get(layout["coarse_freq"], "periods")
    coarse_durations = [
        report_tables.record(
            1.0 / np.clip(1.0 - coarse_transition[:, c, c], 1e-12, None),
            hdi,
            regime=name,
            unit=unit,
        )
        for c, name in enumerate(coarse_names)
    ]
    fine_durations, fine_transitions = [], []
    for market in markets:
        transition = report_tables.stacked(
            result.inference_data.posterior, f"{market}_transition"
        )  # (N, K_c, K, K)
        for c, coarse in enumerate(coarse_names):
            for k, regime in enumerate(fine_names):
                stay = transition[:, c, k, k]
                fine_durations.append(
                    report_tables.record(
                        1.0 / np.clip(1.0 - stay, 1e-12, None),
                        hdi,
                        market=market,
                        coarse=coarse,
                        regime=regime,
                    )
                )
                for j, to in enumerate(fine_names):
                    fine_transitions.append(
                        report_tables.record(
                            transition[:, c, k, j],
                            hdi,
                            market=market,
                            coarse=coarse,
                            **{"from": regime, "to": to},
                        )
                    )
    now = []
    last = result.probabilities.filtered[:, -1, :].astype(float)  # (B, S)
    for scale in [COARSE, *markets]:
        values = marginal(last, result, scale)
        names = coarse_names if scale == COARSE else fine_names
        for k, name in enumerate(names):
            now.append(
                report_tables.record(
                    values[:, k],
                    hdi,
                    date=result.dates[-1].strftime("%Y-%m-%d"),
                    scale=scale,
                    regime=name,
                )
            )
    return {
        "coupling": coupling,
        "coarse_durations": coarse_durations,
        "fine_durations": fine_durations,
        "fine_transitions": fine_transitions,
        "now": now,
    }


def forecast_table(
    result: RegimeResult, paths: np.ndarray, dates: pd.DatetimeIndex, hdi: float = SUMMARY_HDI
) -> list[dict[str, Any]]:
    """Records of each scale's P(regime) on each of the coming fine ``dates`` given the
    data up to the last date, from the band draws' forecast paths (B, H, S): exact, the
    coarse moves falling on the coming periods' first dates."""
    n_coarse, n_fine, markets = _sizes(result)
    rows = []
    for scale in [COARSE, *markets]:
        values = marginal(paths.astype(float), result, scale)  # (B, H, K)
        lower, upper = bands(values, hdi)
        names = regime_names(n_coarse if scale == COARSE else n_fine)
        for h, date in enumerate(dates):
            for k, name in enumerate(names):
                rows.append(
                    {
                        "horizon": h + 1,
                        "date": date.strftime("%Y-%m-%d"),
                        "scale": scale,
                        "regime": name,
                        "mean": float(values[:, h, k].mean()),
                        "lower": float(lower[h, k]),
                        "upper": float(upper[h, k]),
                    }
                )
    return rows
