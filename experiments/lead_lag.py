"""Does small-cap risk-on lead crypto risk-on, and by how many weeks?

Weekly data. Lead chain: IWM returns and the change in the share of stocks above their
200-day average (equity group). Lag chain: BTC and ETH returns (crypto). The crypto
chain's transitions depend on the equity regime L weeks earlier (``LeadLagHMM``), for
L in 0, 1, 2, 4, 8. Regimes are ordered by volatility (the calm regime is risk_on in both
chains): ordered by mean, crypto's "risk_on" would be its volatile state.

Per lag: the couplings (log odds ratio of crypto entering / staying in risk_on when
equity was risk_on L weeks earlier) from a fit on all dates, and the held-out one-step
score from a fit to 2022-12-30 scored from 2023 (``regime compare`` and ``lag_posterior``).
Then one fit with the lag itself a parameter, every lag from 0 to 8 weeks summed out of
the likelihood on all dates: P(L | data) and the couplings given each lag.

Outputs: ``couplings.csv``, ``compare.txt``/``compare.csv``, ``lag_posterior.csv``,
``marginal_lag_posterior.csv``,
``couplings.png``, ``report.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import Timer, features, log, parse_args, write_json, write_table  # noqa: E402

from regime_model.compare import compare_runs, format_comparison  # noqa: E402
from regime_model.data.cache import write_text_atomic  # noqa: E402
from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.models import LeadLagHMM  # noqa: E402
from regime_model.models.leadlag import lag_posterior  # noqa: E402

COLUMNS = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
LAGS = (0, 1, 2, 4, 8)
QUICK_LAGS = (0, 2)
HOLDOUT_START = "2023-01-01"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    weekly = features(args.data_dir, "weekly", args.out)
    groups = {**weekly.groups, "pct_above_200dma_change": "equity"}
    frame = weekly.frame.loc["2019-01-01":] if args.quick else weekly.frame
    weekly = FeatureSet(frame, groups, weekly.freq, weekly.source)
    lags = QUICK_LAGS if args.quick else LAGS
    options = {"order_by": "volatility", "seed": args.seed, "progressbar": False}
    couplings, held_out, seconds, verdicts = [], {}, {}, {}
    for lag in lags:
        model = LeadLagHMM(lag=lag, **options, **args.settings.as_kwargs())
        with Timer() as timer:
            full = model.fit(weekly, COLUMNS).result_
        seconds[f"lag_{lag}"] = round(timer.seconds, 1)
        verdicts[f"lag_{lag}"] = full.diagnostics().get("verdict")
        full.save(args.out / f"run_lag{lag}")
        table = pd.DataFrame(full.fit_info["model_summary"]["coupling"]).assign(lag=lag)
        couplings.append(table)
        model = LeadLagHMM(lag=lag, **options, **args.settings.as_kwargs())
        held_out[f"lag_{lag}"] = model.fit(weekly, COLUMNS, holdout_start=HOLDOUT_START).result_
        verdicts[f"lag_{lag}_holdout"] = held_out[f"lag_{lag}"].diagnostics().get("verdict")
        log(f"lag {lag}: {seconds[f'lag_{lag}']} s; diagnostics {verdicts}")
    coupling_table = pd.concat(couplings, ignore_index=True)
    write_table(coupling_table, args.out / "couplings.csv")
    comparison = compare_runs(held_out)
    write_table(comparison.table, args.out / "compare.csv", index=True)
    write_text_atomic(format_comparison(comparison) + "\n", args.out / "compare.txt")
    posterior = lag_posterior(list(held_out.values()))
    write_table(posterior, args.out / "lag_posterior.csv")
    # The lag as a parameter: every lag from 0 to the largest summed out of one fit's
    # likelihood on all dates (models/lag_mixture.py), not the held-out stretch alone.
    marginal_lags = list(range(max(lags) + 1))
    model = LeadLagHMM(lag=marginal_lags, **options, **args.settings.as_kwargs())
    with Timer() as timer:
        marginal = model.fit(weekly, COLUMNS).result_
    seconds["marginal"] = round(timer.seconds, 1)
    verdicts["marginal"] = marginal.diagnostics().get("verdict")
    marginal.save(args.out / "run_marginal")
    marginal_table = pd.DataFrame(marginal.fit_info["model_summary"]["lag_posterior"])
    write_table(marginal_table, args.out / "marginal_lag_posterior.csv")
    log(f"marginal lag 0-{max(lags)}: {seconds['marginal']} s, {verdicts['marginal']}")
    plot(coupling_table, args.out / "couplings.png")
    write_json(
        {
            "quick": args.quick,
            "lags": list(lags),
            "holdout_start": HOLDOUT_START,
            "fit_seconds": seconds,
            "diagnostics": verdicts,
            "couplings": coupling_table.to_dict(orient="records"),
            "comparison": comparison.to_dict(),
            "lag_posterior": posterior.to_dict(orient="records"),
            "marginal_lag_posterior": marginal_table.to_dict(orient="records"),
            "marginal_coupling_by_lag": marginal.fit_info["model_summary"]["coupling_by_lag"],
        },
        args.out / "report.json",
    )
    log(format_comparison(comparison))
    return 0


def plot(table: pd.DataFrame, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for axis, parameter in zip(axes, ("coupling_enter", "coupling_stay"), strict=True):
        part = table[table["parameter"] == parameter]
        axis.errorbar(
            part["lag"],
            part["mean"],
            yerr=[part["mean"] - part["lower"], part["upper"] - part["mean"]],
            fmt="o",
            color="#2c3e50",
        )
        axis.axhline(0, color="black", linewidth=0.5)
        axis.set_xlabel("lag (weeks)")
        axis.set_title(parameter.replace("_", " "))
    axes[0].set_ylabel("log odds ratio, 90% HDI")
    figure.suptitle("Crypto risk-on odds when equity was risk-on L weeks earlier")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
