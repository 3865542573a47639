"""The pass/fail verdict of a Bayesian fit: convergence, and whether its regime
probabilities can be read at all.

Convergence (R-hat, ESS, divergences; Vehtari et al. 2021) says whether the draws
represent the posterior. Label checks say whether the draws' regimes are the *same*
regimes: when some draws call risk_on what others call risk_off, the posterior mean of
P(regime) is an average over two readings and its band runs from 0 to 1, however well the
chains converged. Those checks read the per-draw probabilities alone, so they apply to
every family and identification; each failure says in plain words what it means for the
reading and what to try.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import arviz as az
import numpy as np
from arviz.utils import Numba

from regime_model.results import (
    MAX_CHAIN_DISAGREEMENT,
    MAX_RHAT,
    MIN_ESS,
    RegimeResult,
    hdi_bounds,
)

LABEL_HDI = 0.9  # the band the summary shows
# A posterior mean may sit just outside a band of draws that agree to rounding.
BAND_TOLERANCE = 1e-3
# Fail when the posterior mean of P(regime) lies outside its own band on more dates than
# this: the draws then hold two readings of those dates, and the mean is neither.
MAX_MEAN_OUTSIDE_BAND = 0.01
# A date is "split" when at least SPLIT_MASS of the draws put P(regime) below SPLIT_LOW
# and at least as many above 1 - SPLIT_LOW: the draws are sure, and disagree. Near a
# regime change that is honest timing uncertainty (a few percent of dates); on most dates
# it is mixed labels. Fail above MAX_SPLIT_DATES.
SPLIT_LOW, SPLIT_MASS = 0.1, 0.05
MAX_SPLIT_DATES = 0.25
# Fail when more draws than this disagree with the consensus on most of the mass even
# after their labels were matched (relabelled fits): their regimes are other regimes.
MAX_DISCORDANT_DRAWS = 0.05
# Below this P(anchor order holds) the names risk_off / risk_on are not supported by the
# anchor: a warning (the probabilities stay consistent, only their names are uncertain).
MIN_NAME_SEPARATION = 0.9


@contextlib.contextmanager
def _arviz_in_numpy() -> Iterator[None]:
    """ArviZ's numpy code paths for the duration. With numba installed ArviZ jit-compiles
    its variance for R-hat afresh in every process (0.5 s, never cached); numpy gives the
    same figures at these sizes in milliseconds. The flag is restored, for the caller's
    own ArviZ use."""
    flag = Numba.numba_flag
    Numba.numba_flag = False
    try:
        yield
    finally:
        Numba.numba_flag = flag


def convergence(data: az.InferenceData, names: list[str]) -> dict[str, float]:
    """max R-hat and min bulk and tail ESS over the posterior variables ``names``."""
    with _arviz_in_numpy():
        return {
            "max_rhat": float(az.rhat(data, var_names=names).to_array().max()),
            "min_ess_bulk": float(az.ess(data, var_names=names, method="bulk").to_array().min()),
            "min_ess_tail": float(az.ess(data, var_names=names, method="tail").to_array().min()),
        }


def label_checks(probabilities: np.ndarray) -> dict[str, float]:
    """Per-date label-mixing measures of ``probabilities`` (S, T, K), the band draws."""
    mean = probabilities.mean(axis=0)
    lower, upper = hdi_bounds(probabilities, LABEL_HDI)
    outside = (mean < lower - BAND_TOLERANCE) | (mean > upper + BAND_TOLERANCE)
    low = (probabilities < SPLIT_LOW).mean(axis=0) >= SPLIT_MASS
    high = (probabilities > 1 - SPLIT_LOW).mean(axis=0) >= SPLIT_MASS
    return {
        "mean_outside_band_share": float(outside.any(axis=-1).mean()),
        "split_date_share": float((low & high).any(axis=-1).mean()),
    }


def mcmc_diagnostics(result: RegimeResult, n_draws: int) -> dict[str, Any]:
    """R-hat, ESS, divergences and the label checks, with a pass/fail verdict."""
    data = result.inference_data
    n_chains = data.posterior.sizes["chain"]
    if n_chains * n_draws < 2 or "sample_stats" not in data.groups():
        return {"verdict": "not applicable", "reason": "no MCMC draws (point estimate or ADVI)"}
    names = list(data.posterior.data_vars)  # every reported parameter
    statistics = convergence(data, names)
    rhat, ess_bulk = statistics["max_rhat"], statistics["min_ess_bulk"]
    ess_tail = statistics["min_ess_tail"]
    divergences = int(data.sample_stats["diverging"].sum())
    # Label switching between chains: a chain whose last-state probability path
    # disagrees with the pooled one.
    chain_of_band = result.band_draws // n_draws
    smoothed = result.probabilities.smoothed[:, :, -1]
    pooled = smoothed.mean(axis=0)
    disagreement = max(
        float(np.abs(smoothed[chain_of_band == chain].mean(axis=0) - pooled).mean())
        for chain in np.unique(chain_of_band)
    )
    labels = result.fit_info.get("labels", {})
    mixing = {
        kind: label_checks(getattr(result.probabilities, kind)) for kind in ("filtered", "smoothed")
    }
    outside = max(checks["mean_outside_band_share"] for checks in mixing.values())
    split = max(checks["split_date_share"] for checks in mixing.values())
    checks = {
        "max_rhat": rhat,
        "min_ess_bulk": ess_bulk,
        "min_ess_tail": ess_tail,
        "divergences": divergences,
        "chain_disagreement": disagreement,
        "label_switching": disagreement > MAX_CHAIN_DISAGREEMENT,
        "relabelled_share": labels.get("switched_share"),
        "mean_outside_band_share": outside,
        "split_date_share": split,
        "discordant_draw_share": labels.get("discordant_share"),
    }
    failures = []
    if n_chains < 2:
        # R-hat compares chains: with one there is nothing to compare, so convergence
        # (and a chain stuck in one mode) cannot be checked.
        checks["max_rhat"] = None
        failures.append(
            "one chain: convergence (R-hat) and agreement between chains cannot be checked; "
            "fit with 2 or more chains"
        )
    elif not rhat < MAX_RHAT:
        failures.append(f"max R-hat {rhat:.3f} >= {MAX_RHAT}")
    if ess_bulk < MIN_ESS or ess_tail < MIN_ESS:
        failures.append(f"min ESS (bulk {ess_bulk:.0f}, tail {ess_tail:.0f}) < {MIN_ESS}")
    if divergences:
        failures.append(f"{divergences} divergent transitions")
    label_failures = _label_failures(checks, result.regime_names)
    failures += label_failures
    warnings = _name_warnings(labels)
    verdict = "fail" if failures else "pass"
    return {
        **checks,
        "labels_consistent": not label_failures,
        "verdict": verdict,
        "failures": failures,
        "warnings": warnings,
    }


def _label_failures(checks: dict[str, Any], names: list[str]) -> list[str]:
    """Plain-words failures for mixed labels (empty when the labels are consistent)."""
    failures = []
    advice = "fewer regimes, other columns or a longer sample may give regimes the data tell apart"
    if checks["label_switching"]:
        failures.append(
            f"the chains found different regimes (mean disagreement "
            f"{checks['chain_disagreement']:.2f} on P({names[-1]})): the reading depends on "
            f"which chain you trust, so it is no reading; {advice}"
        )
    if checks["mean_outside_band_share"] > MAX_MEAN_OUTSIDE_BAND:
        failures.append(
            f"on {checks['mean_outside_band_share']:.1%} of dates the posterior mean of "
            "P(regime) lies outside its own 90% band: the draws hold two readings of those "
            "dates (regimes named the other way round, or parameters that put the dates in "
            "different regimes), so neither the mean nor the band reads the regime there; "
            f"{advice}"
        )
    if checks["split_date_share"] > MAX_SPLIT_DATES:
        failures.append(
            f"on {checks['split_date_share']:.0%} of dates the draws are sure of the regime "
            "and disagree (some put P(regime) below 0.1, others above 0.9): the labels are "
            f"mixed and the bands are uninformative; {advice}"
        )
    discordant = checks["discordant_draw_share"]
    if discordant is not None and discordant > MAX_DISCORDANT_DRAWS:
        failures.append(
            f"{discordant:.0%} of draws split the dates into other regimes than the rest, "
            "even after matching their labels: the posterior holds more than one regime "
            f"structure, and one set of regime names cannot describe it; {advice}"
        )
    return failures


def _name_warnings(labels: dict[str, Any]) -> list[str]:
    """A warning per adjacent pair of regimes that the anchor does not order reliably."""
    warnings = []
    for pair in labels.get("names", []):
        if pair["separation"] < MIN_NAME_SEPARATION:
            warnings.append(
                f"the anchor {pair['anchor']} does not tell {pair['lower']} from "
                f"{pair['upper']}: its {pair['order_by']} orders them as their names say "
                f"in only {pair['separation']:.0%} of draws. The regimes are consistent, "
                "but read them by the emission table, not by their names, or name them on "
                "a feature that separates them (--anchor, --order-by)"
            )
    return warnings
