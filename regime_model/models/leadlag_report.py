"""The lead-lag family's reports, from a fitted or loaded run: each chain's regime
probabilities, the coupling, transition and emission tables, the exact per-chain forecast
and the posterior over lags."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from regime_model.models import report_tables
from regime_model.models.observations import regime_names
from regime_model.results import RegimeResult, bands, probability_table

MODEL_NAME = "leadlag"
SUMMARY_HDI = 0.9
CHAINS = ("lead", "lag")


def chain_forecast(
    paths: np.ndarray, n_regimes: int, lead_group: str, lag_group: str, hdi: float = SUMMARY_HDI
) -> list[dict[str, Any]]:
    """Records of P(each chain's regime at T-1+h | y_0..T-1), h = 1..L+FORECAST_STEPS,
    from the band draws' (draws, horizon, S) forecast paths. Exact for any L: the
    lag chain's next L steps use the lead regimes already seen."""
    horizon = paths.shape[1]
    k = n_regimes
    joint = paths.astype(float).reshape(*paths.shape[:2], k, k)
    rows = []
    for chain, group, marginal in (
        ("lead", lead_group, joint.sum(axis=3)),
        ("lag", lag_group, joint.sum(axis=2)),
    ):
        lower, upper = bands(marginal, hdi)
        for h in range(horizon):
            for r, regime in enumerate(regime_names(k)):
                rows.append(
                    {
                        "horizon": h + 1,
                        "chain": chain,
                        "group": group,
                        "regime": regime,
                        "mean": float(marginal[:, h, r].mean()),
                        "lower": float(lower[h, r]),
                        "upper": float(upper[h, r]),
                    }
                )
    return rows


def chain_regime_probabilities(
    result: RegimeResult, chain: str = "lag", kind: str = "filtered", hdi: float = SUMMARY_HDI
) -> pd.DataFrame:
    """One chain's regime probabilities per date (the product states summed over the
    other chain): mean and HDI. ``chain``: "lead" or "lag". -> (T, K x [mean, lower, upper])."""
    if result.model != MODEL_NAME:
        raise ValueError(f"not a lead-lag run: {result.model}")
    if chain not in CHAINS:
        raise ValueError(f"chain must be 'lead' or 'lag', not {chain!r}")
    draws = getattr(result.probabilities, kind)
    k = round(np.sqrt(draws.shape[-1]))
    joint = draws.reshape(*draws.shape[:2], k, k).astype(float)
    marginal = joint.sum(axis=3 if chain == "lead" else 2)
    frame = probability_table(marginal, result.dates, regime_names(k), hdi, result.has_bands, kind)
    group = result.fit_info.get("lead_lag", {}).get(f"{chain}_group", chain)
    frame.attrs.update(kind=kind, hdi=hdi, chain=chain, group=group)
    return frame


def model_summary(result: RegimeResult, hdi: float = SUMMARY_HDI) -> dict[str, Any]:
    """Tables for ``fit_info["model_summary"]``: the couplings (with P(> 0)), each chain's
    transitions and emissions. Works on a loaded run."""
    posterior = result.inference_data.posterior
    layout = result.fit_info["lead_lag"]
    lag, lead_group, lag_group = layout["lag"], layout["lead_group"], layout["lag_group"]
    names = regime_names(posterior.sizes["lead_from"])
    k = len(names)
    if k == 2:
        moves = (f"{lag_group} entering risk_on", f"{lag_group} staying risk_on")
    else:
        moves = (
            f"each upward move of {lag_group} (against staying)",
            f"staying rather than each downward move of {lag_group}",
        )
    steps = lag if lag is not None else f"L (one of {layout['lags']}, marginalised)"
    condition = f"when {lead_group} was risk_on vs risk_off {steps} steps earlier"
    meanings = {
        "coupling_enter": f"log odds ratio of {moves[0]} {condition}",
        "coupling_stay": f"log odds ratio of {moves[1]} {condition}",
    }
    coupling = []
    for name, meaning in meanings.items():
        draws = report_tables.stacked(posterior, name)
        record = report_tables.record(draws, hdi, parameter=name, meaning=meaning)
        record["p_positive"] = float((draws > 0).mean())
        record["odds_ratio_median"] = float(np.exp(np.median(draws)))
        coupling.append(record)
    lead_transition = report_tables.stacked(posterior, "lead_transition")
    lag_transition = report_tables.stacked(posterior, "lag_transition")
    emission = {
        name: report_tables.stacked(posterior, f"emission_{name}") for name in ("mean", "scale")
    }
    columns = list(result.columns)
    emissions = {}
    for chain in CHAINS:
        rows = []
        for parameter, draws in emission.items():
            for r, regime in enumerate(names):
                # The product state with this chain in regime r and the other in regime 0.
                state = r * k if chain == "lead" else r
                for column in layout[f"{chain}_columns"]:
                    rows.append(
                        report_tables.record(
                            draws[:, state, columns.index(column)],
                            hdi,
                            parameter=parameter,
                            regime=regime,
                            feature=column,
                        )
                    )
        emissions[chain] = rows
    summary = {
        "note": (
            f"{lead_group} leads {lag_group} by {steps} steps: {lag_group}'s transition "
            f"probabilities depend on {lead_group}'s regime {steps} steps earlier. "
            "Couplings are log odds ratios (0: independent chains). Forecast: exact "
            "per-chain regime probabilities h steps after the last date."
        ),
        "coupling": coupling,
        "lag_transition": [
            report_tables.record(
                lag_transition[:, e, i, j],
                hdi,
                lead_regime_lagged=names[e],
                **{"from": names[i], "to": names[j]},
            )
            for e in range(k)
            for i in range(k)
            for j in range(k)
        ],
        "lead_transition": [
            report_tables.record(
                lead_transition[:, i, j], hdi, **{"from": names[i], "to": names[j]}
            )
            for i in range(k)
            for j in range(k)
        ],
        "lead_emissions": emissions["lead"],
        "lag_emissions": emissions["lag"],
    }
    if lag is None:
        summary["lag_posterior"] = marginal_lag_posterior(posterior)
        summary["coupling_by_lag"] = coupling_by_lag(posterior, list(meanings))
    return summary


def marginal_lag_posterior(posterior) -> list[dict[str, Any]]:
    """P(L | data) of a run whose lag was marginalised: the mean over draws of each draw's
    P(L | data, parameters) (``lag_probability``), with its Monte Carlo standard error
    (sd / sqrt(ESS))."""
    draws = report_tables.stacked(posterior, "lag_probability")  # (N, m)
    ess = az.ess(posterior[["lag_probability"]])["lag_probability"].to_numpy()
    lags = posterior["lag_probability"]["lag"].to_numpy()
    return [
        {
            "lag": int(lag),
            "probability": float(draws[:, i].mean()),
            "mcse": float(draws[:, i].std() / np.sqrt(max(ess[i], 1.0))),
        }
        for i, lag in enumerate(lags)
    ]


def coupling_by_lag(posterior, names: list[str], hdi: float = SUMMARY_HDI) -> list[dict]:
    """Each coupling's posterior given each lag (draws weighted by P(L | data, draw)):
    mean, sd and the central ``hdi`` interval (weighted quantiles), and the weight's
    effective number of draws (few: the lag is rarely reached, the row is rough)."""
    weights = report_tables.stacked(posterior, "lag_probability")  # (N, m)
    lags = posterior["lag_probability"]["lag"].to_numpy()
    rows = []
    for name in names:
        draws = report_tables.stacked(posterior, name)
        order = np.argsort(draws)
        for i, lag in enumerate(lags):
            w = weights[:, i]
            if w.sum() <= 0:
                continue
            w = w / w.sum()
            mean = float(w @ draws)
            cumulative = np.cumsum(w[order])
            lower, upper = np.interp([(1 - hdi) / 2, (1 + hdi) / 2], cumulative, draws[order])
            rows.append(
                {
                    "parameter": name,
                    "lag": int(lag),
                    "mean": mean,
                    "sd": float(np.sqrt(w @ (draws - mean) ** 2)),
                    "lower": float(lower),
                    "upper": float(upper),
                    "p_positive": float(w @ (draws > 0)),
                    "effective_draws": float(1.0 / (w**2).sum()),
                }
            )
    return rows


def lag_posterior(results: list[RegimeResult]) -> pd.DataFrame:
    """Posterior probability of each lag, from lead-lag runs that differ in ``lag`` and
    were fitted with the same held-out stretch, under a uniform prior on the lags compared.

    P(L | data) is proportional to p(y_holdout | y_fitted, L): the fitted dates set each
    lag's parameters, the held-out dates weigh the lags (a partial Bayes factor). That
    density is the posterior mean over draws of prod_t p(y_t | y_<t, theta), in logs
    ``log_predictive_likelihood``; ``effective_draws`` counts the draws carrying the mean
    (a handful: the estimate is unreliable). ``holdout_score`` is ``regime compare``'s
    sum of per-date log predictive densities. -> one row per lag, sorted.
    """
    if not results:
        raise ValueError("no runs to compare")
    rows, reference = [], None
    for result in results:
        if result.model != MODEL_NAME:
            raise ValueError(f"not a lead-lag run: {result.model}")
        layout = result.fit_info["lead_lag"]
        if layout["lag"] is None:
            raise ValueError(
                "a run with the lag marginalised has its own posterior over lags "
                "(fit_info['model_summary']['lag_posterior']); compare runs of one lag each"
            )
        loglik = result.inference_data.log_likelihood
        if "y_holdout" not in loglik:
            raise ValueError("every run needs a held-out stretch (fit with holdout_start)")
        key = (
            list(result.columns),
            layout["lead_columns"],
            loglik["y_holdout"]["holdout_date"].to_numpy().tolist(),
            result.dates.tolist(),
        )
        if reference is None:
            reference = key
        elif key != reference:
            raise ValueError("runs differ in columns, chains, dates or held-out stretch")
        totals = loglik["y_holdout"].sum("holdout_date").to_numpy().ravel()
        weights = np.exp(totals - totals.max())
        rows.append(
            {
                "lag": int(layout["lag"]),
                "holdout_score": float(result.holdout_log_predictive().sum()),
                "log_predictive_likelihood": float(logsumexp(totals) - np.log(len(totals))),
                "effective_draws": float(weights.sum() ** 2 / (weights**2).sum()),
            }
        )
    frame = pd.DataFrame(rows).set_index("lag").sort_index()
    if frame.index.has_duplicates:
        raise ValueError(f"lags compared twice: {sorted(frame.index[frame.index.duplicated()])}")
    evidence = frame["log_predictive_likelihood"].to_numpy()
    frame["probability"] = np.exp(evidence - logsumexp(evidence))
    return frame
