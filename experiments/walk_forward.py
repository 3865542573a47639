"""Were the real-time regime probabilities right out of sample, and what were they worth?

Weekly data, the joint design of docs/experiments.md (iwm_return, pct_above_200dma_change,
btc_return, eth_return). A walk-forward backtest refits at the first week of every month
from 2016 on (expanding window) and filters forward, without refitting, to the next refit:
every probability and predictive density is computed from data up to its date only.

* ``bayes/``: the Bayesian HMM at its default settings (4 chains x 1000 + 1000; the nutpie
  sampler when installed, else PyMC NUTS), through ``regime backtest --allocate``;
* ``bayes/baseline/``: the same schedule with hmmlearn EM (10 restarts).

Outputs: the two backtest directories (resumable: a re-run fits only missing refits),
``log_score_by_year.csv`` (out-of-sample log predictive density per year, both models, and
their paired difference with its standard error), ``allocation.csv`` (exposure =
filtered P(risk_on) in BTC and IWM, 10 bps per unit turnover, against buy-and-hold and a
constant exposure), ``walk_forward.png`` and ``report.json``.

``--quick``: quarterly refits from 2024, short chains; checks the pipeline, answers nothing.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    MODEL_COLOURS,
    Timer,
    features,
    log,
    parse_args,
    write_json,
    write_table,
)

from regime_model.choices import IDENTIFICATIONS  # noqa: E402
from regime_model.cli import main as regime  # noqa: E402
from regime_model.run_directory import verify_run  # noqa: E402

COLUMNS = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
ASSETS = ["btc_return", "iwm_return"]
COST_BPS = 10


def extra_arguments(parser) -> None:
    parser.add_argument(
        "--scheduler", help="Dask scheduler address, or 'serial' (default: a local cluster)"
    )
    parser.add_argument(
        "--identification",
        choices=IDENTIFICATIONS,
        default=IDENTIFICATIONS[0],
        help="the Bayesian HMM's regime identification (see docs/models.md)",
    )
    parser.add_argument(
        "--cold-starts",
        action="store_true",
        help="start every refit from its EM estimate (default: from the previous refit of "
        "its calendar year)",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv, extra_arguments)
    weekly = features(args.data_dir, "weekly", args.out)
    feature_file = args.out / "features_weekly.csv"
    sampler = "nutpie" if importlib.util.find_spec("nutpie") else "nuts"
    start, every = ("2024-01-01", "quarter") if args.quick else ("2016-01-01", "month")
    out = args.out / "bayes"
    command = ["backtest", "--features", str(feature_file), "--columns", ",".join(COLUMNS)]
    command += ["--model", "bayes-hmm", "--sampler", sampler, "--seed", str(args.seed)]
    command += ["--identification", args.identification]
    command += ["--draws", str(args.settings.draws)]
    command += [] if args.settings.tune is None else ["--tune", str(args.settings.tune)]
    command += ["--chains", str(args.settings.chains), "--start", start, "--every", every]
    command += ["--allocate", ",".join(ASSETS), "--cost-bps", str(COST_BPS), "--out", str(out)]
    if args.scheduler:
        command += ["--scheduler", args.scheduler]
    if args.cold_starts:
        command += ["--cold-starts"]
    log(f"regime {' '.join(command)}")
    with Timer() as timer:
        code = regime(command)
    if code != 0:
        return code
    log(f"backtests done in {timer.seconds / 60:.1f} min")

    runs = {"bayes": out, "em": out / "baseline"}
    scores = {name: _read_scores(path) for name, path in runs.items()}
    by_year = _log_score_by_year(runs)
    write_table(by_year, args.out / "log_score_by_year.csv")
    allocation = pd.read_csv(out / "allocation.csv")
    write_table(allocation, args.out / "allocation.csv")
    refits = {name: pd.read_csv(path / "refits.csv") for name, path in runs.items()}
    total = by_year.iloc[-1]
    report = {
        "design": {
            "columns": COLUMNS,
            "start": start,
            "every": every,
            "sampler": sampler,
            "identification": args.identification,
            "warm_starts": not args.cold_starts,
        },
        "weeks_scored": int(total["weeks"]),
        "log_predictive_density": {name: s["log_predictive_density"] for name, s in scores.items()},
        "bayes_minus_em": {"sum": total["difference"], "se": total["difference_se"]},
        "bayes_refits_failing_diagnostics": int((refits["bayes"]["verdict"] != "pass").sum()),
        "bayes_refits": len(refits["bayes"]),
        "bayes_median_fit_seconds": float(refits["bayes"]["fit_seconds"].median()),
        "bayes_fit_seconds_total": float(refits["bayes"]["fit_seconds"].sum()),
        "em_median_fit_seconds": float(refits["em"]["fit_seconds"].median()),
        "backtest_minutes": round(timer.seconds / 60, 1),
    }
    write_json(report, args.out / "report.json")
    plot(weekly.frame, runs, args.out / "walk_forward.png")
    print(json.dumps(report, indent=2, default=str))
    print(by_year.to_string(index=False))
    return 0


def _read_scores(directory: Path) -> dict:
    verify_run(directory)  # a finished backtest, not one interrupted mid-rewrite
    return json.loads((directory / "scores.json").read_text())


def _log_score_by_year(runs: dict[str, Path]) -> pd.DataFrame:
    """Per year and in total: each model's summed log predictive density and the paired
    difference bayes - em with se = sqrt(n var(d_t))."""
    densities = pd.DataFrame(
        {
            name: pd.read_csv(path / "log_predictive_density.csv", index_col="date")[
                "log_predictive_density"
            ]
            for name, path in runs.items()
        }
    )
    densities.index = pd.DatetimeIndex(densities.index)
    if densities.isna().any().any():
        raise ValueError("the two backtests scored different dates")
    difference = densities["bayes"] - densities["em"]
    rows = []
    for year, part in list(difference.groupby(difference.index.year)) + [("total", difference)]:
        rows.append(
            {
                "year": year,
                "weeks": len(part),
                "bayes": densities.loc[part.index, "bayes"].sum(),
                "em": densities.loc[part.index, "em"].sum(),
                "difference": part.sum(),
                "difference_se": float(np.sqrt(len(part) * part.var(ddof=1))),
            }
        )
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, runs: dict[str, Path], path: Path) -> None:
    """IWM and BTC (cumulative log return), out-of-sample filtered P(risk_on) of both
    models, and the BTC and IWM wealth of the rule against buy-and-hold."""
    figure, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    probabilities = {}
    for name, directory in runs.items():
        long = pd.read_csv(directory / "regime_probabilities.csv", parse_dates=["date"])
        probabilities[name] = long[long["regime"] == "risk_on"].set_index("date")
    dates = probabilities["bayes"].index
    for column, colour in (("iwm_return", "#2c3e50"), ("btc_return", "#e67e22")):
        axes[0].plot(dates, frame[column].reindex(dates).cumsum() / 100, color=colour, lw=0.9)
    axes[0].set_ylabel("cumulative log return")
    axes[0].legend(["IWM", "BTC"], loc="upper left", frameon=False)
    bayes = probabilities["bayes"]
    green, grey = MODEL_COLOURS["bayes-hmm"], MODEL_COLOURS["em-hmm"]
    axes[1].fill_between(dates, bayes["lower"], bayes["upper"], color=green, alpha=0.25, lw=0)
    axes[1].plot(dates, bayes["mean"], color=green, lw=0.9, label="Bayesian HMM (90% HDI)")
    axes[1].plot(dates, probabilities["em"]["mean"], color=grey, lw=0.8, label="EM")
    axes[1].set_ylabel("P(risk_on), filtered,\nout of sample")
    axes[1].legend(loc="lower left", frameon=False, fontsize=8)
    wealth = pd.read_csv(runs["bayes"] / "allocation_wealth.csv", parse_dates=["date"])
    styles = {"rule:bayes-hmm": "-", "rule:em-hmm": ":", "buy-and-hold": "--", "constant": "-."}
    for (asset, strategy), part in wealth.groupby(["asset", "strategy"]):
        colour = "#e67e22" if asset == "btc_return" else "#2c3e50"
        axes[2].plot(
            part["date"],
            part["wealth"],
            color=colour,
            ls=styles.get(strategy, "-"),
            lw=0.9,
            label=f"{asset.split('_')[0].upper()} {strategy}",
        )
    axes[2].set_yscale("log")
    axes[2].set_ylabel(f"wealth, {COST_BPS} bps costs")
    axes[2].legend(loc="upper left", frameon=False, fontsize=7, ncol=2)
    axes[0].set_title("Walk-forward: monthly refits, probabilities from data up to each date")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
