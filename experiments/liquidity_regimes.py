"""Does a slow liquidity regime drive the risk regimes of small caps and of crypto?

A two-scale model (``TwoScaleHMM``, docs/models.md): a monthly coarse regime observed
through the month-end high-yield spread level and the Chicago Fed's financial conditions
index (both: higher = tighter, so the coarse regime with the lower spread is named
risk_on), driving two weekly fine chains: small caps (IWM returns and the change in the
share of US stocks above their 200-day average) and crypto (BTC and ETH returns). Each
market's weekly transitions depend on the month's coarse regime; the effect is read off
P(market risk_on | coarse regime), the long-run share of risk-on weeks under it. The
markets' regimes are named by volatility (the calm one is risk_on), as in lead_lag.py:
weekly crypto returns do not order two regimes by their means.

Fits, weekly data from 2015:

* ``restart`` (the default, fHMM's: each month's fine chains start afresh under the new
  coarse regime) and ``carry`` (they move on from where they were), on every date: the
  answers, the coarse durations, the current state;
* the same two and a one-scale Bayesian HMM on the same (month-end placed) columns, fitted
  to 2022-12-30 and scored one step ahead from 2023 (``regime compare``): which fits the
  data better out of sample.

Outputs: ``coupling.csv``, ``coarse_durations.csv``, ``fine_durations.csv``, ``now.csv``,
``compare.txt``/``compare.csv``, ``liquidity_regimes.png``, ``report.json`` and the runs.
``--quick``: from 2020, short chains; checks the pipeline, answers nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    MODEL_COLOURS,
    Timer,
    features,
    log,
    mark_halvings,
    parse_args,
    write_json,
    write_table,
)

from regime_model.compare import compare_runs, format_comparison  # noqa: E402
from regime_model.data.cache import write_text_atomic  # noqa: E402
from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.models import BayesianHMM, TwoScaleHMM  # noqa: E402
from regime_model.models.two_scale import scale_probabilities  # noqa: E402

FINE = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
COARSE = ["hy_spread", "nfci"]
COLUMNS = FINE + COARSE
HOLDOUT_START = "2023-01-01"
FORMS = ("restart", "carry")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    weekly = features(args.data_dir, "weekly", args.out)
    groups = {**weekly.groups, "pct_above_200dma_change": "equity"}
    frame = weekly.frame.loc["2020-01-01":] if args.quick else weekly.frame
    weekly = FeatureSet(frame[COLUMNS], groups, weekly.freq, weekly.source)
    options = {
        "coarse_columns": COARSE,
        "coarse_anchor": "hy_spread",
        "coarse_order": "inverse",
        "order_by": "volatility",
        "seed": args.seed,
        "progressbar": False,
        **args.settings.as_kwargs(),
    }
    runs, seconds, verdicts, held_out = {}, {}, {}, {}
    for form in FORMS:
        with Timer() as timer:
            runs[form] = TwoScaleHMM(2, fine_entry=form, **options).fit(weekly).result_
        seconds[form] = round(timer.seconds, 1)
        verdicts[form] = runs[form].diagnostics()
        runs[form].save(args.out / f"run_{form}", force=True)
        model = TwoScaleHMM(2, fine_entry=form, **options)
        held_out[f"two-scale {form}"] = model.fit(weekly, holdout_start=HOLDOUT_START).result_
        log(f"{form}: {seconds[form]} s, diagnostics {verdicts[form]['verdict']}")
    # The one-scale model on the same observations: the coarse columns on month ends only.
    placed = weekly.with_coarse(COARSE)
    baseline = {k: v for k, v in options.items() if not k.startswith("coarse")}
    baseline["anchor"] = "iwm_return"
    held_out["one-scale bayes-hmm"] = (
        BayesianHMM(2, **baseline).fit(placed, holdout_start=HOLDOUT_START).result_
    )
    comparison = compare_runs(held_out)
    write_table(comparison.table, args.out / "compare.csv", index=True)
    write_text_atomic(format_comparison(comparison) + "\n", args.out / "compare.txt")
    tables = {}
    for name in ("coupling", "coarse_durations", "fine_durations", "now"):
        tables[name] = pd.concat(
            [
                pd.DataFrame(runs[form].fit_info["model_summary"][name]).assign(form=form)
                for form in FORMS
            ],
            ignore_index=True,
        )
        write_table(tables[name], args.out / f"{name}.csv")
    plot(weekly, runs["carry"], args.out / "liquidity_regimes.png")  # the default form
    report = {
        "quick": args.quick,
        "design": {
            "fine": FINE,
            "coarse": COARSE,
            "coarse_order": "inverse",
            "from": str(frame.index[0].date()),
        },
        "fit_seconds": seconds,
        "diagnostics": {
            form: {
                key: verdicts[form].get(key)
                for key in (
                    "verdict",
                    "max_rhat",
                    "min_ess_bulk",
                    "min_ess_tail",
                    "divergences",
                    "labels_consistent",
                )
            }
            for form in FORMS
        },
        "holdout_start": HOLDOUT_START,
        "compare": comparison.table.reset_index().to_dict(orient="records"),
        **{name: table.to_dict(orient="records") for name, table in tables.items()},
    }
    write_json(report, args.out / "report.json")
    print(format_comparison(comparison))
    for name, table in tables.items():
        print(f"\n{name}:\n{table.to_string(index=False, float_format=lambda v: f'{v:.3f}')}")
    return 0


def plot(weekly: FeatureSet, result, path: Path) -> None:
    """The month-end spread and the coarse P(risk_on) above each market's filtered
    P(risk_on), with 90% bands and the Bitcoin halvings."""
    scales = ["coarse", *result.fit_info["two_scale"]["markets"]]
    figure, axes = plt.subplots(
        len(scales) + 1, 1, figsize=(11, 2.2 * (len(scales) + 1)), sharex=True
    )
    spread = weekly.with_coarse(COARSE).frame["hy_spread"].dropna()
    axes[0].plot(spread.index, spread.to_numpy(), color="#34495e", linewidth=1)
    axes[0].set_ylabel("HY spread, %\n(month end)")
    for axis, scale in zip(axes[1:], scales, strict=True):
        table = scale_probabilities(result, scale, "filtered")
        mean = table[("risk_on", "mean")]
        axis.fill_between(
            table.index, table[("risk_on", "lower")], table[("risk_on", "upper")],
            color=MODEL_COLOURS["two-scale"], alpha=0.25, linewidth=0,
        )  # fmt: skip
        axis.plot(table.index, mean, color=MODEL_COLOURS["two-scale"], linewidth=1)
        axis.set_ylim(0, 1)
        axis.set_ylabel(f"P({scale} risk_on)\nfiltered")
    for axis in axes:
        mark_halvings(axis, str(weekly.frame.index[0].date()))
    axes[1].legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
