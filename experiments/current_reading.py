"""The current reading done right: what the models said on each recent date from the data
and the parameters they had then.

``regime now`` on a fit of all the data gives the last date's filtered P(regime) from
parameters fitted through that date, which is real-time; its changes over 4 and 13
periods read the earlier dates with those same parameters, fitted with data after them,
which is not. Here each as-of date (the last date, and 4 and 13 periods before it) gets
its own fit on the data up to that date only (a walk-forward fit), and the reading is
that fit's filtered probability on that date, with its band and the features that were
missing or stale then. Beside it, the same date read with the parameters of the fit on
all the data, to show how much hindsight moves it.

Designs: the weekly and daily state designs of ``regime_history`` (IWM returns, breadth,
spread change, log VIX, BTC and ETH returns; Student-t; K = 2), and the two-scale
liquidity design of ``liquidity_regimes`` (weekly, its coarse P(loose liquidity) and each
market's P(calm)).

Outputs: ``readings.csv`` (design, as-of date, real-time and hindsight P with bands,
stale features, diagnostics), ``readings.png``, ``report.json``.
``--quick``: the weekly designs only, from 2022, short chains.
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

from regime_model.data.features import FeatureSet  # noqa: E402
from regime_model.models import BayesianHMM, TwoScaleHMM  # noqa: E402
from regime_model.models.two_scale import scale_probabilities  # noqa: E402
from regime_model.reading import current_reading  # noqa: E402

STATE = ["iwm_return", "pct_above_200dma", "hy_spread_change", "vix_log", "btc_return"]
STATE += ["eth_return"]
TWO_SCALE = ["iwm_return", "pct_above_200dma_change", "btc_return", "eth_return"]
TWO_SCALE += ["hy_spread", "nfci"]
LAGS = (0, 4, 13)  # periods before the last date


def designs(quick: bool) -> list[tuple[str, str]]:
    """(name, frequency) of each design read."""
    if quick:
        return [("state", "weekly"), ("two-scale", "weekly")]
    return [("state", "weekly"), ("state", "daily"), ("two-scale", "weekly")]


def model_for(design: str, args):
    options = {"seed": args.seed, "progressbar": False, **args.settings.as_kwargs()}
    if design == "state":
        return BayesianHMM(2, emission="student-t", **options), STATE
    model = TwoScaleHMM(
        2,
        coarse_columns=["hy_spread", "nfci"],
        coarse_anchor="hy_spread",
        coarse_order="inverse",
        order_by="volatility",
        **options,
    )
    return model, TWO_SCALE


def scales(design: str, model) -> dict[str, pd.DataFrame]:
    """Filtered P(the regime that reads "risk on") per date, mean and band, per scale."""
    result = model.result_
    if design == "state":
        return {"risk_on": result.regime_probabilities("filtered")["risk_on"]}
    return {
        f"{scale}: risk_on": scale_probabilities(result, scale, "filtered")["risk_on"]
        for scale in ("coarse", *result.fit_info["two_scale"]["markets"])
    }


def readings(design: str, freq: str, data: FeatureSet, args) -> list[dict]:
    """One row per as-of date and scale: the walk-forward (real-time) reading and the
    hindsight one."""
    frame = data.frame
    full_model, columns = model_for(design, args)
    with Timer() as timer:
        full_model.fit(data, columns)
    log(f"{design} {freq}: the fit on all {len(frame)} dates took {timer.seconds:.0f} s")
    hindsight = scales(design, full_model)
    rows = []
    for lag in LAGS:
        as_of = full_model.result_.dates[-1 - lag]
        model, _ = model_for(design, args)
        model.fit(FeatureSet(frame.loc[:as_of], data.groups, data.freq), columns)
        reading = current_reading(model)
        diagnostics = model.result_.diagnostics()
        stale = [
            f"{row['feature']} (since {row['last_observed']})"
            for row in reading["features"]
            if row["missing_at_end"]
        ]
        for scale, table in scales(design, model).items():
            then = table.loc[as_of]
            later = hindsight[scale].loc[as_of]
            rows.append(
                {
                    "design": f"{design} {freq}",
                    "as_of": as_of.strftime("%Y-%m-%d"),
                    "periods_before_last": lag,
                    "scale": scale,
                    "real_time_mean": float(then["mean"]),
                    "real_time_lower": float(then["lower"]),
                    "real_time_upper": float(then["upper"]),
                    "hindsight_mean": float(later["mean"]),
                    "hindsight_lower": float(later["lower"]),
                    "hindsight_upper": float(later["upper"]),
                    "fitted_through": reading["fitted_through"],
                    "stale_features": "; ".join(stale),
                    "verdict": diagnostics.get("verdict"),
                }
            )
    return rows


def plot(table: pd.DataFrame, path: Path) -> None:
    """Per design and scale, the real-time reading (walk-forward) and the hindsight one
    on each as-of date, with bands."""
    ordered = table.sort_values("as_of", kind="stable")
    groups = list(ordered.groupby(["design", "scale"], sort=False))
    figure, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.2), sharey=True)
    for axis, ((design, scale), part) in zip(axes, groups, strict=True):
        for offset, (kind, colour) in enumerate(
            (("real_time", "#2e86c1"), ("hindsight", "#95a5a6"))
        ):
            x = range(len(part))
            axis.errorbar(
                [i + 0.15 * (2 * offset - 1) for i in x],
                part[f"{kind}_mean"],
                # A mean can sit outside its HDI near 0 or 1: no negative whisker then.
                yerr=[
                    (part[f"{kind}_mean"] - part[f"{kind}_lower"]).clip(lower=0),
                    (part[f"{kind}_upper"] - part[f"{kind}_mean"]).clip(lower=0),
                ],
                fmt="o",
                color=colour,
                label=kind.replace("_", " "),
            )
        axis.set_xticks(range(len(part)), part["as_of"], rotation=30, fontsize=8)
        axis.set_title(f"{design}\n{scale}", fontsize=9)
        axis.set_ylim(0, 1)
    axes[0].set_ylabel("filtered P, 90% band")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    rows = []
    for design, freq in designs(args.quick):
        data = features(args.data_dir, freq, args.out)
        groups = {**data.groups, "pct_above_200dma_change": "equity"}
        frame = data.frame.loc["2022-01-01":] if args.quick else data.frame
        _, columns = model_for(design, args)
        rows += readings(design, freq, FeatureSet(frame[columns], groups, data.freq), args)
    table = pd.DataFrame(rows)
    write_table(table, args.out / "readings.csv")
    plot(table, args.out / "readings.png")
    write_json({"quick": args.quick, "readings": rows}, args.out / "report.json")
    shown = ["design", "as_of", "scale", "real_time_mean", "real_time_lower"]
    shown += ["real_time_upper", "hindsight_mean", "verdict", "stale_features"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
