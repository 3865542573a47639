"""The hierarchical family's pooling tables (``fit_info["model_summary"]``), from a
posterior in the result's labels and the group structure it was fitted with."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from regime_model.models.observations import Observations, regime_names
from regime_model.results import hdi_bounds

SUMMARY_HDI = 0.9
SIGN_WARNING = 0.05  # notes a pooled feature whose P(same sign) falls below this


def pooling_summary(
    posterior: xr.Dataset, observations: Observations, structure
) -> dict[str, list[dict[str, Any]]]:
    """Tables for ``fit_info["model_summary"]``, in standardised units with 90% HDIs.

    ``groups``: members of each group and whether it is pooled.
    ``group_parameters``: each group's regime responses ("mean") and log-scale responses
    ("log_scale"), their risk_on minus risk_off contrasts, and the spreads of the members
    around the group ("mean_sd", "log_scale_sd") of pooled groups.
    ``features``: per feature its group, sign (and where it came from), how many fitted
    dates it is observed on, and P(its response has the fixed sign).
    ``feature_pooling``: per feature its response contrast ("contrast"), its distance from
    its group's contrast after shrinkage ("distance"), and the same for the log-scale
    ("log_scale_contrast", "log_scale_distance").
    ``notes``: plain-language warnings (a pooled feature whose posterior response runs
    against its fixed sign; nothing pooled).
    """

    def draws(name: str) -> np.ndarray:
        values = posterior[name].to_numpy()
        return values.reshape(-1, *values.shape[2:])

    def record(values: np.ndarray, **labels: Any) -> dict[str, Any]:
        if len(values) < 2:  # a point estimate (MAP) has no band
            return {**labels, "mean": float(values.mean()), "lower": None, "upper": None}
        lower, upper = hdi_bounds(values[:, None], SUMMARY_HDI)
        return {
            **labels,
            "mean": float(values.mean()),
            "lower": float(lower[0]),
            "upper": float(upper[0]),
        }

    names = regime_names(posterior["group_mean"].shape[2])
    contrast_name = f"{names[-1]}-{names[0]}"
    group_mean = draws("group_mean")  # (S, K, G)
    group_log_scale = draws("group_log_scale")
    spreads = {
        name: draws(f"group_{name}")
        for name in ("mean_sd", "log_scale_sd")
        if len(structure.pooled)
    }
    group_rows, group_table = [], []
    for g, group in enumerate(structure.names):
        pooled = g in structure.pooled
        members = [observations.columns[d] for d in np.flatnonzero(structure.member == g)]
        group_table.append({"group": group, "members": members, "pooled": bool(pooled)})
        for parameter, values in (("mean", group_mean), ("log_scale", group_log_scale)):
            for k, regime in enumerate(names):
                group_rows.append(
                    record(values[:, k, g], group=group, parameter=parameter, regime=regime)
                )
            group_rows.append(
                record(
                    values[:, -1, g] - values[:, 0, g],
                    group=group,
                    parameter=f"{parameter}_contrast",
                    regime=contrast_name,
                )
            )
        if pooled:
            i = int(np.flatnonzero(structure.pooled == g)[0])
            for parameter, values in spreads.items():
                group_rows.append(
                    record(values[:, i], group=group, parameter=parameter, regime=None)
                )

    mean = draws("mean")  # (S, K, D), standardised
    log_sigma = np.log(draws("sigma"))
    response = structure.signs * (mean - mean.mean(axis=1, keepdims=True))
    contrast = response[:, -1] - response[:, 0]  # (S, D)
    log_contrast = log_sigma[:, -1] - log_sigma[:, 0]
    group_contrast = (group_mean[:, -1] - group_mean[:, 0])[:, structure.member]
    group_log_contrast = (group_log_scale[:, -1] - group_log_scale[:, 0])[:, structure.member]
    observed = observations.observed[: observations.n_fit].sum(axis=0)
    feature_table, pooling_rows = [], []
    for d, column in enumerate(observations.columns):
        group = structure.names[structure.member[d]]
        feature_table.append(
            {
                "feature": column,
                "group": group,
                "pooled": bool(structure.member[d] in structure.pooled),
                "sign": int(structure.signs[d]),
                "sign_source": structure.sign_source[d],
                "fitted_observations": int(observed[d]),
                "p_same_sign": float((contrast[:, d] > 0).mean()),
            }
        )
        for quantity, values in (
            ("contrast", contrast[:, d]),
            ("distance", contrast[:, d] - group_contrast[:, d]),
            ("log_scale_contrast", log_contrast[:, d]),
            ("log_scale_distance", log_contrast[:, d] - group_log_contrast[:, d]),
        ):
            pooling_rows.append(record(values, feature=column, group=group, quantity=quantity))
    notes = [] if len(structure.pooled) else ["no group has two members: nothing is pooled"]
    for row in feature_table:
        if row["pooled"] and row["p_same_sign"] < SIGN_WARNING:
            notes.append(
                f"{row['feature']}: P(response has the fixed sign {row['sign']:+d}) = "
                f"{row['p_same_sign']:.2f}; it is pooled against its direction. Refit with "
                f"signs={{'{row['feature']}': {-row['sign']:+d}}}."
            )
    return {
        "groups": group_table,
        "group_parameters": group_rows,
        "features": feature_table,
        "feature_pooling": pooling_rows,
        "notes": notes,
    }
