"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

Each replicate draws parameters from the model's prior, simulates a data set from the
model (:meth:`~regime_model.models.BayesianHMM.simulate`), fits it, and records the rank of
every true parameter among ``RANK_DRAWS`` evenly spaced posterior draws. When the
sampler and the likelihood are right, each rank is uniform on 0..RANK_DRAWS over
replicates; a chi-square test on ``BINS`` equal bins checks that per parameter.

It also checks the regime probabilities the package reports: for each date, the
probability of each regime under the *true* parameters should fall inside the posterior's
50% (90%) HDI band about 50% (90%) of the time, averaged over replicates. (Any set holding
a posterior mass alpha covers the truth with frequency alpha under the prior, so HDI bands
qualify.)

Replicates are pure tasks run through the executor layer, stored as they finish, and
resumed after an interruption, like backtest refits.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from regime_model import __version__
from regime_model.data.cache import write_text_atomic
from regime_model.data.features import FeatureSet
from regime_model.errors import RegimeModelError
from regime_model.evaluation.executor import Executor, Progress, ResultStore, run_tasks
from regime_model.models import model_from_config
from regime_model.results import hdi_bounds
from regime_model.run_directory import claim_store, seal, unseal

RANK_DRAWS = 99  # ranks 0..99: 100 values, so 10 bins of 10
BINS = 10
TEST_LEVEL = 0.01
COVERAGE_LEVELS = (0.5, 0.9)
PROBABILITY_KINDS = ("filtered", "smoothed")
DEFAULT_REPLICATES = 100
DEFAULT_DATES = 200
DEFAULT_SERIES = 2
COVARIATE_PERSISTENCE = 0.9  # AR(1) coefficient of simulated tvtp covariates
# Probabilities equal to the truth up to rounding count as inside a band.
_BAND_TOLERANCE = 1e-9
REPLICATES_DIRECTORY = "replicates"


class CalibrationError(RegimeModelError):
    """A replicate failed; the finished ones are stored, so a re-run resumes."""


@dataclass(frozen=True)
class CalibrationSpec:
    """What a calibration run does: the model (``model_from_config`` settings), the size
    of each simulated data set and the number of replicates."""

    model_config: dict[str, Any]
    replicates: int = DEFAULT_REPLICATES
    n_dates: int = DEFAULT_DATES
    n_series: int = DEFAULT_SERIES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replicates < 1:
            raise ValueError(f"replicates must be at least 1, got {self.replicates}")
        if self.n_series < 1:
            raise ValueError(f"series must be at least 1, got {self.n_series}")
        if self.model_config.get("model") == "em-hmm":
            raise ValueError("calibration needs a Bayesian model; em-hmm has no posterior")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_config,
            "replicates": self.replicates,
            "n_dates": self.n_dates,
            "n_series": self.n_series,
            "seed": self.seed,
            "rank_draws": RANK_DRAWS,
            "regime_model": __version__,
        }


@dataclass(frozen=True)
class ReplicateTask:
    """One replicate: simulate from the prior with ``seed``, fit, rank."""

    replicate: int
    seed: int
    spec: CalibrationSpec
    key: str

    @property
    def name(self) -> str:
        return f"replicate_{self.replicate:04d}"


def plan_calibration(spec: CalibrationSpec) -> list[ReplicateTask]:
    """One task per replicate, each with its own seed drawn from ``spec.seed``."""
    model_from_config(spec.model_config)  # invalid settings fail here, not on a worker
    seeds = np.random.default_rng(spec.seed).integers(0, 2**31 - 1, size=spec.replicates)
    text = json.dumps(spec.to_dict(), sort_keys=True, default=str)
    tasks = []
    for replicate, seed in enumerate(seeds):
        key = hashlib.sha256(f"{text}|{replicate}|{seed}".encode()).hexdigest()
        tasks.append(ReplicateTask(replicate, int(seed), spec, key))
    return tasks


def simulation_template(spec: CalibrationSpec, seed: int) -> tuple[FeatureSet, list[str]]:
    """(template, emission columns): weekly dates, ``n_series`` return columns (the first
    half equity, the rest crypto, so every model family finds its groups) with placeholder
    values, any coarse columns of a two-scale model (group flows; the model keeps their
    month-end values), and any covariates the model reads as a persistent AR(1) series.
    The covariates are part of the design: the simulation conditions on them."""
    rng = np.random.default_rng([seed, 2])
    dates = pd.date_range("2000-01-07", periods=spec.n_dates, freq="W-FRI", name="date")
    n_equity = max(spec.n_series // 2, 1)
    columns = [
        f"{'equity' if i < n_equity else 'crypto'}_{i + 1}_return" for i in range(spec.n_series)
    ]
    groups = {column: column.split("_")[0] for column in columns}
    frame = pd.DataFrame(rng.standard_normal((spec.n_dates, spec.n_series)), dates, columns)
    for name in spec.model_config.get("coarse_columns") or []:
        frame[name] = rng.standard_normal(spec.n_dates)
        groups[name] = "flows"
        columns.append(name)
    for name in spec.model_config.get("covariates") or []:
        frame[name] = _ar1(rng, spec.n_dates, COVARIATE_PERSISTENCE)
        groups[name] = "covariate"
    template = FeatureSet(frame=frame, groups=groups, freq="weekly", source="calibration")
    return template, columns


def _ar1(rng: np.random.Generator, n: int, persistence: float) -> np.ndarray:
    values = np.empty(n)
    values[0] = rng.standard_normal()
    innovations = rng.standard_normal(n) * np.sqrt(1 - persistence**2)
    for t in range(1, n):
        values[t] = persistence * values[t - 1] + innovations[t]
    return values


def run_replicate(task: ReplicateTask) -> dict[str, Any]:
    """Simulate, fit and rank one replicate. Pure; the fit runs single-threaded."""
    template, columns = simulation_template(task.spec, task.seed)
    # SBC needs a prior free of the data: each family says what that takes.
    model = model_from_config({**task.spec.model_config, "seed": task.seed})
    model = model_from_config({**model.get_config(), **model.calibration_options(columns)})
    model.cores, model.progressbar = 1, False
    simulation = model.simulate(template, columns, seed=task.seed)
    started = time.perf_counter()
    result = model.fit(simulation.features, columns).result_
    fit_seconds = time.perf_counter() - started
    # The truth in the fit's labels, matched as every posterior draw was.
    simulation = model.match_labels(simulation)
    posterior = result.inference_data.posterior
    ranks = {}
    for name, truth in simulation.reported.items():
        ranks.update(parameter_ranks(name, posterior[name], truth))
    at_truth = model.quantities_at(simulation.parameters)
    coverage = {
        kind: probability_coverage(getattr(result.probabilities, kind), getattr(at_truth, kind))
        for kind in PROBABILITY_KINDS
    }
    diagnostics = result.fit_info["diagnostics"]
    return {
        "replicate": task.replicate,
        "seed": task.seed,
        "ranks": ranks,
        "coverage": coverage,
        "state_counts": np.bincount(simulation.states, minlength=len(result.regime_names)).tolist(),
        "fit_seconds": round(fit_seconds, 2),
        "diagnostics": {
            key: diagnostics.get(key)
            for key in ("verdict", "max_rhat", "min_ess_bulk", "min_ess_tail", "divergences")
        },
    }


def parameter_ranks(name: str, draws, truth: np.ndarray) -> dict[str, int]:
    """Rank of each component of ``truth`` among ``RANK_DRAWS`` evenly spaced draws.

    ``draws``: an xarray DataArray (chain, draw, ...); ``truth``: the trailing shape.
    Thinning evenly over the chains keeps the draws nearly independent (Talts et al. sec.
    5). -> {"name[label,...]": rank in 0..RANK_DRAWS}.
    """
    values = draws.to_numpy()
    flat = values.reshape(-1, *values.shape[2:])
    if len(flat) < RANK_DRAWS:
        raise ValueError(f"{len(flat)} posterior draws; ranks need at least {RANK_DRAWS}")
    chosen = flat[np.linspace(0, len(flat) - 1, RANK_DRAWS).round().astype(int)]
    ranks = (chosen < np.asarray(truth)[None]).sum(axis=0)
    labels = [[str(value) for value in draws.coords[dim].values] for dim in draws.dims[2:]]
    out = {}
    for index in np.ndindex(*ranks.shape):
        label = ",".join(labels[axis][i] for axis, i in enumerate(index))
        out[f"{name}[{label}]" if label else name] = int(ranks[index])
    return out


def probability_coverage(draws: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Share of (date, regime) cells whose true probability lies in the posterior's HDI
    band, per level. ``draws`` (S, T, K), ``truth`` (T, K)."""
    out = {}
    for level in COVERAGE_LEVELS:
        lower, upper = hdi_bounds(draws, level)
        inside = (truth >= lower - _BAND_TOLERANCE) & (truth <= upper + _BAND_TOLERANCE)
        out[f"{level:g}"] = float(inside.mean())
    return out


# ---------------------------------------------------------------------- summarising
@dataclass
class CalibrationResult:
    """The stored replicates of a run, and what they say."""

    records: list[dict[str, Any]]

    def ranks(self) -> pd.DataFrame:
        """(replicates, parameters) ranks in 0..RANK_DRAWS, indexed by replicate."""
        return pd.DataFrame(
            [record["ranks"] for record in self.records],
            index=pd.Index([record["replicate"] for record in self.records], name="replicate"),
        )

    def uniformity(self, bins: int = BINS, level: float = TEST_LEVEL) -> pd.DataFrame:
        """Per parameter: the chi-square test of uniform ranks on ``bins`` equal bins."""
        return uniformity_tests(self.ranks(), RANK_DRAWS, bins, level)

    def coverage(self) -> pd.DataFrame:
        """Per probability kind and level: mean coverage over replicates and its standard
        error (replicates are independent; dates within one are not)."""
        rows = []
        for kind in PROBABILITY_KINDS:
            for level in COVERAGE_LEVELS:
                shares = np.array([r["coverage"][kind][f"{level:g}"] for r in self.records])
                rows.append(
                    {
                        "kind": kind,
                        "level": level,
                        "coverage": shares.mean(),
                        "standard_error": shares.std(ddof=1) / np.sqrt(len(shares))
                        if len(shares) > 1
                        else np.nan,
                        "replicates": len(shares),
                    }
                )
        return pd.DataFrame(rows)

    def replicate_table(self) -> pd.DataFrame:
        """One row per replicate: seed, fit time, diagnostics, dates per regime."""
        return pd.DataFrame(
            [
                {
                    "replicate": r["replicate"],
                    "seed": r["seed"],
                    "fit_seconds": r["fit_seconds"],
                    **r["diagnostics"],
                    "dates_per_regime": " ".join(str(n) for n in r["state_counts"]),
                }
                for r in self.records
            ]
        )

    def summary(self) -> dict[str, Any]:
        uniformity = self.uniformity()
        failing = uniformity[uniformity["fails"]]
        table = self.replicate_table()
        return {
            "replicates": len(self.records),
            "parameters": len(uniformity),
            "test": f"chi-square on {BINS} bins of the ranks 0..{RANK_DRAWS}, level {TEST_LEVEL}",
            "failing_parameters": failing["parameter"].tolist(),
            "smallest_p_value": float(uniformity["p_value"].min()),
            "verdict": "fail" if len(failing) else "pass",
            "coverage": self.coverage().to_dict(orient="records"),
            "replicates_failing_diagnostics": int((table["verdict"] != "pass").sum()),
            "median_fit_seconds": float(table["fit_seconds"].median()),
        }


def uniformity_tests(
    ranks: pd.DataFrame, rank_draws: int, bins: int = BINS, level: float = TEST_LEVEL
) -> pd.DataFrame:
    """Chi-square test of each column of ``ranks`` (values 0..rank_draws) against the
    uniform distribution, on ``bins`` equal bins ((rank_draws + 1) must divide evenly)."""
    if (rank_draws + 1) % bins:
        raise ValueError(f"{rank_draws + 1} rank values do not split into {bins} equal bins")
    rows = []
    for name in ranks.columns:
        counts = np.bincount(ranks[name].to_numpy() * bins // (rank_draws + 1), minlength=bins)
        statistic, p_value = stats.chisquare(counts)
        rows.append(
            {
                "parameter": name,
                "chi_square": float(statistic),
                "p_value": float(p_value),
                "fails": bool(p_value < level),
                "counts": " ".join(str(int(n)) for n in counts),
            }
        )
    return pd.DataFrame(rows)


def run_calibration(
    spec: CalibrationSpec,
    out: str | Path,
    executor: Executor,
    progress: Progress | None = None,
    force: bool = False,
) -> CalibrationResult:
    """Run (or resume) the replicates; each is stored in ``out/replicates`` as it ends.
    ``out`` holding a calibration of another model, size or seed is refused unless
    ``force`` (more replicates of the same one resume it)."""
    tasks = plan_calibration(spec)
    identity = {key: value for key, value in spec.to_dict().items() if key != "replicates"}
    claim_store(out, identity, force)
    unseal(out)
    write_text_atomic(json.dumps(spec.to_dict(), indent=2) + "\n", Path(out) / "config.json")
    store = ResultStore(Path(out) / REPLICATES_DIRECTORY)
    report = run_tasks(run_replicate, tasks, store, executor, progress)
    if report.failed:
        name, error = sorted(report.failed.items())[0]
        raise CalibrationError(
            f"{len(report.failed)} of {len(tasks)} replicates failed (first: {name}: {error}); "
            f"the others are stored in {store.directory} and a re-run computes only the rest"
        ) from error
    return CalibrationResult([store.load(task) for task in tasks])


def save_calibration(result: CalibrationResult, out: str | Path) -> dict[str, Any]:
    """ranks.csv, uniformity.csv, coverage.csv, replicates.csv, summary.json and
    rank_histograms.png in ``out``; returns the summary."""
    from regime_model.plots import rank_histograms

    out = Path(out)
    for frame, name in (
        (result.ranks().reset_index(), "ranks"),
        (result.uniformity(), "uniformity"),
        (result.coverage(), "coverage"),
        (result.replicate_table(), "replicates"),
    ):
        write_text_atomic(frame.to_csv(index=False), out / f"{name}.csv")
    summary = result.summary()
    write_text_atomic(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    figure = rank_histograms(result.ranks(), RANK_DRAWS, BINS)
    figure.savefig(out / "rank_histograms.png", dpi=110)
    names = ["ranks", "uniformity", "coverage", "replicates"]
    written = [f"{name}.csv" for name in names]
    written += ["config.json", "summary.json", "rank_histograms.png"]
    seal(out, written, {"kind": "calibration", "replicates": summary["replicates"]})
    return summary


def format_calibration(summary: dict[str, Any], uniformity: pd.DataFrame) -> str:
    """A short text report: verdict, the least uniform parameters, coverage."""
    failing = summary["failing_parameters"]
    lines = [
        f"simulation-based calibration: {summary['replicates']} replicates, "
        f"{summary['parameters']} parameters; {summary['test']}",
        f"verdict: {summary['verdict'].upper()}" + (f" ({', '.join(failing)})" if failing else ""),
        "least uniform ranks:",
    ]
    for row in uniformity.nsmallest(5, "p_value").itertuples():
        lines.append(f"  {row.parameter:<40} p = {row.p_value:.3f}   bins {row.counts}")
    lines.append("regime probabilities inside the posterior HDI band (truth: the level):")
    for row in summary["coverage"]:
        lines.append(
            f"  {row['kind']:<9} {row['level']:.0%} band: {row['coverage']:.3f} "
            f"(se {row['standard_error']:.3f})"
        )
    lines.append(
        f"replicates failing MCMC diagnostics: {summary['replicates_failing_diagnostics']}; "
        f"median fit {summary['median_fit_seconds']:.1f} s"
    )
    return "\n".join(lines)
