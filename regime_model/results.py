"""Fitted regime models: posterior regime probabilities, transitions, durations, diagnostics.

A :class:`RegimeResult` is what every model returns. Its bands come from running the
forward-backward recursions once per posterior draw, so they carry parameter uncertainty.
A maximum-likelihood fit has one "draw" and no bands, and says so.

Filtered probabilities P(z_t | y_1..t) are what could have been known on date t; smoothed
probabilities P(z_t | y_1..T) use later data and are for describing history only. Filtered
is the default everywhere, and every table says which kind it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from regime_model.data.cache import write_text_atomic
from regime_model.errors import MalformedFileError
from regime_model.inference import hmm_forecast, hmm_smoother
from regime_model.netcdf import write_groups
from regime_model.run_directory import verify_run, write_run

KINDS = ("filtered", "smoothed", "predicted")
# Pass/fail thresholds of diagnostics() (Vehtari et al. 2021 for R-hat and ESS).
MAX_RHAT = 1.01
MIN_ESS = 400
MAX_CHAIN_DISAGREEMENT = 0.2


def hdi_bounds(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval along axis 0: the narrowest window holding ``prob``.

    ``draws`` (S, ...) -> (lower, upper), each of shape (...). Exact for the draws given.
    """
    if not 0 < prob < 1:
        raise ValueError(f"hdi must be between 0 and 1, got {prob}")
    ordered = np.sort(draws, axis=0)
    n_draws = ordered.shape[0]
    window = max(int(np.ceil(prob * n_draws)), 1)
    widths = ordered[window - 1 :] - ordered[: n_draws - window + 1]
    start = np.argmin(widths, axis=0)
    lower = np.take_along_axis(ordered, start[None], axis=0)[0]
    upper = np.take_along_axis(ordered, (start + window - 1)[None], axis=0)[0]
    return lower, upper


def bands(draws: np.ndarray, hdi: float, has_bands: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """HDI bounds along axis 0 (:func:`hdi_bounds`), or NaN when there are no bands (a
    point estimate, or a single draw)."""
    if not has_bands or draws.shape[0] < 2:
        empty = np.full(draws.shape[1:], np.nan)
        return empty, empty
    return hdi_bounds(draws, hdi)


def probability_table(
    draws: np.ndarray,
    dates: pd.DatetimeIndex,
    regime_names: list[str],
    hdi: float = 0.9,
    has_bands: bool = True,
    kind: str = "filtered",
) -> pd.DataFrame:
    """Posterior mean and HDI of P(regime) per date: ``draws`` (S, T, K) -> a (T, K x
    [mean, lower, upper]) frame with columns (regime, statistic); ``attrs`` say the kind,
    the HDI and whether there are bands."""
    mean = draws.mean(axis=0)
    lower, upper = bands(draws, hdi, has_bands)
    columns = {}
    for k, name in enumerate(regime_names):
        columns[(name, "mean")] = mean[:, k]
        columns[(name, "lower")] = lower[:, k]
        columns[(name, "upper")] = upper[:, k]
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(dates, name="date"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["regime", "statistic"])
    frame.attrs.update(kind=kind, hdi=hdi, has_bands=has_bands)
    return frame


def probability_rows(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Wide tables of :func:`probability_table` (each of one kind) as rows: date, regime,
    kind, mean, lower, upper, sorted by date, kind and regime (the run's CSV layout)."""
    frames = []
    for wide in tables:
        for name in wide.columns.get_level_values("regime").unique():
            part = wide[name].reset_index()
            part.insert(1, "regime", name)
            part.insert(2, "kind", wide.attrs["kind"])
            frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    return long.sort_values(["date", "kind", "regime"], kind="stable").reset_index(drop=True)


def log_mean_exp(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """log mean exp along ``axis``: per-draw log densities averaged as densities."""
    return logsumexp(values, axis=axis) - np.log(values.shape[axis])


@dataclass
class ProbabilityDraws:
    """Per-draw regime probabilities. Arrays (S, T, K); ``pointwise_loglik`` (S, T).
    (``smoothed`` and ``predicted`` are None where only the filter ran.)"""

    filtered: np.ndarray
    smoothed: np.ndarray | None
    predicted: np.ndarray | None
    pointwise_loglik: np.ndarray


class DrawProbabilities(NamedTuple):
    """One draw's per-date quantities: probabilities (T, K) (None when not computed) and
    the one-step predictive log density ``pointwise_loglik`` (T,)."""

    filtered: np.ndarray | None
    smoothed: np.ndarray | None
    predicted: np.ndarray | None
    pointwise_loglik: np.ndarray


def draw_probabilities(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> DrawProbabilities:
    """Forward-backward for one draw. Shapes as in :func:`regime_model.inference.hmm_smoother`."""
    result = hmm_smoother(log_initial, log_transition, log_emission)
    return DrawProbabilities(
        result.filtered_probs,
        result.smoothed_probs,
        result.predicted_probs,
        result.log_predictive,
    )


def regime_probability_draws(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emissions: Iterable[np.ndarray]
) -> ProbabilityDraws:
    """Forward-backward per draw. ``log_initial`` (S, K), ``log_transition`` (S, K, K),
    ``log_emissions`` yields (T, K) per draw, in the same order."""
    draws = [
        draw_probabilities(log_initial[draw], log_transition[draw], log_emission)
        for draw, log_emission in enumerate(log_emissions)
    ]
    return ProbabilityDraws(*(np.stack(values) for values in zip(*draws, strict=True)))


@dataclass
class RegimeResult:
    """A fitted regime model.

    ``inference_data``: ArviZ InferenceData with ``posterior`` (transition, initial,
    emission parameters in the features' units), ``log_likelihood`` (``y``: one-step
    predictive log density per date) and, for MCMC, ``sample_stats``.
    ``probabilities``: per-draw regime probabilities of a subset of draws (``band_draws``
    indexes the flattened chain x draw axis).
    """

    model: str
    dates: pd.DatetimeIndex
    columns: list[str]
    regime_names: list[str]
    inference_data: az.InferenceData
    probabilities: ProbabilityDraws
    band_draws: np.ndarray
    config: dict[str, Any]
    has_bands: bool = True
    fit_info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        posterior = self.inference_data.posterior
        draws = f"{posterior.sizes['chain']} x {posterior.sizes['draw']} draws"
        verdict = self.diagnostics().get("verdict")
        return (
            f"<RegimeResult {self.model}: {self.n_regimes} regimes "
            f"({', '.join(self.regime_names)}), {len(self.dates)} dates "
            f"{self.dates[0]:%Y-%m-%d} to {self.dates[-1]:%Y-%m-%d}, "
            f"columns {', '.join(self.columns)}; "
            + (draws if self.has_bands else "point estimate")
            + (f", diagnostics {verdict}" if verdict else "")
            + ">"
        )

    # ------------------------------------------------------------------ posterior arrays
    def _stacked(self, name: str) -> np.ndarray:
        """(S, ...) draws of a posterior variable, chains concatenated."""
        values = self.inference_data.posterior[name].to_numpy()
        return values.reshape(-1, *values.shape[2:])

    @property
    def n_regimes(self) -> int:
        return len(self.regime_names)

    # ------------------------------------------------------------------ tables
    def regime_probabilities(self, kind: str = "filtered", hdi: float = 0.9) -> pd.DataFrame:
        """Posterior mean and HDI of P(regime) per date. -> (T, K x [mean, lower, upper]).

        ``kind``: "filtered" P(z_t | y_1..t) (real-time, the default), "smoothed"
        P(z_t | y_1..T) (uses later data) or "predicted" P(z_t | y_1..t-1).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return probability_table(
            getattr(self.probabilities, kind),
            self.dates,
            self.regime_names,
            hdi,
            self.has_bands,
            kind,
        )

    def probabilities_long(self, hdi: float = 0.9) -> pd.DataFrame:
        """Filtered and smoothed probabilities as rows: date, regime, kind, mean, lower, upper."""
        return probability_rows(
            [self.regime_probabilities(kind, hdi) for kind in ("filtered", "smoothed")]
        )

    def transition_matrix(self, hdi: float = 0.9) -> pd.DataFrame:
        """P(regime_to | regime_from) per step: mean and HDI, one row per pair."""
        draws = self._stacked("transition")
        return self._pairs_table(draws, hdi)

    def expected_durations(self, hdi: float = 0.9) -> pd.DataFrame:
        """Expected stay 1 / (1 - p_kk) in steps of the data's calendar, mean and HDI."""
        stay = np.diagonal(self._stacked("transition"), axis1=1, axis2=2)
        durations = 1.0 / np.clip(1.0 - stay, 1e-12, None)
        lower, upper = self._bands(durations, hdi)
        return pd.DataFrame(
            {"mean": durations.mean(axis=0), "lower": lower, "upper": upper},
            index=pd.Index(self.regime_names, name="regime"),
        )

    def forecast(self, horizon: int = 5, hdi: float = 0.9) -> pd.DataFrame:
        """P(z_{T+h} | y_1..T) for h = 1..horizon from the last filtered probabilities."""
        frame = self.forecast_paths(self.probabilities.filtered[:, -1, :], horizon, hdi)
        frame.attrs.update(origin=self.dates[-1].strftime("%Y-%m-%d"))
        return frame

    def forecast_paths(self, last: np.ndarray, horizon: int, hdi: float = 0.9) -> pd.DataFrame:
        """P(regime) 1..``horizon`` steps after a date whose filtered probabilities per
        band draw are ``last`` (S, K), through each draw's ``transition`` (the matrix at
        average covariates for covariate-driven transitions): mean and HDI per step."""
        if horizon < 1:
            raise ValueError("horizon must be at least 1")
        transitions = self._stacked("transition")[self.band_draws]
        paths = np.stack(
            [
                hmm_forecast(np.asarray(last[s], float), np.log(transitions[s]), horizon)
                for s in range(len(self.band_draws))
            ]
        )  # (S, horizon, K)
        lower, upper = self._bands(paths, hdi)
        rows = {}
        for k, name in enumerate(self.regime_names):
            rows[(name, "mean")] = paths.mean(axis=0)[:, k]
            rows[(name, "lower")] = lower[:, k]
            rows[(name, "upper")] = upper[:, k]
        frame = pd.DataFrame(rows, index=pd.RangeIndex(1, horizon + 1, name="horizon"))
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["regime", "statistic"])
        frame.attrs.update(kind="forecast")
        return frame

    def emission_summary(self, hdi: float = 0.9) -> pd.DataFrame:
        """Per regime and feature: mean and scale in the features' units, with HDIs."""
        rows = []
        for name in ("emission_mean", "emission_scale"):
            draws = self._stacked(name)
            lower, upper = self._bands(draws, hdi)
            for k, regime in enumerate(self.regime_names):
                for d, column in enumerate(self.columns):
                    rows.append(
                        {
                            "parameter": name.removeprefix("emission_"),
                            "regime": regime,
                            "feature": column,
                            "mean": draws[:, k, d].mean(),
                            "lower": lower[k, d],
                            "upper": upper[k, d],
                        }
                    )
        return pd.DataFrame(rows)

    def diagnostics(self) -> dict[str, Any]:
        """Convergence checks with a verdict; MCMC only (others report their own)."""
        return dict(self.fit_info.get("diagnostics", {}))

    def log_likelihood(self) -> pd.DataFrame:
        """Posterior mean of the one-step predictive log density per fitted date."""
        pointwise = self.inference_data.log_likelihood["y"]
        return pd.DataFrame(
            {"log_predictive_density": pointwise.mean(("chain", "draw")).to_numpy()},
            index=pd.DatetimeIndex(pointwise["date"].to_numpy(), name="date"),
        )

    def holdout_log_predictive(self) -> pd.Series | None:
        """log p(y_t | y_1..t-1) per held-out date, averaged over the posterior *as a
        density*: log mean_s p_s. None when the run held nothing out.

        Parameters come from the fit on the dates before the holdout only; the filter runs
        on through the held-out dates, so each term uses data up to the day before.
        """
        if "y_holdout" not in self.inference_data.log_likelihood:
            return None
        pointwise = self.inference_data.log_likelihood["y_holdout"]
        draws = pointwise.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        return pd.Series(
            log_mean_exp(draws),
            index=pd.DatetimeIndex(pointwise["holdout_date"].to_numpy(), name="date"),
            name="log_predictive_density",
        )

    # ------------------------------------------------------------------ helpers
    def _bands(self, draws: np.ndarray, hdi: float) -> tuple[np.ndarray, np.ndarray]:
        return bands(draws, hdi, self.has_bands)

    def _pairs_table(self, draws: np.ndarray, hdi: float) -> pd.DataFrame:
        lower, upper = self._bands(draws, hdi)
        mean = draws.mean(axis=0)
        rows = [
            {
                "from": source,
                "to": target,
                "mean": mean[i, j],
                "lower": lower[i, j],
                "upper": upper[i, j],
            }
            for i, source in enumerate(self.regime_names)
            for j, target in enumerate(self.regime_names)
        ]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, force: bool = False) -> Path:
        """Write posterior.nc, regime_draws.nc, regime_probabilities.csv, summary.json,
        config.json and manifest.json into ``directory``, as one unit
        (:func:`~regime_model.run_directory.write_run`): an interrupted save leaves no run
        (or the previous one), and an existing run is replaced only with ``force``."""
        posterior = self.inference_data.posterior
        facts = {
            "model": self.model,
            "chains": int(posterior.sizes["chain"]),
            "draws_per_chain": int(posterior.sizes["draw"]),
            "features_sha256": self.config.get("features_sha256"),
            "command": self.config.get("command"),
        }
        return write_run(directory, self._write_files, facts, force)

    def _write_files(self, directory: Path) -> None:
        # Uncompressed, as regime_draws.nc below: the bulk of both files is draws of
        # log densities and probabilities, which zlib shrinks by 6-11% at 4-30x the time
        # (the real daily fit: 5.9 s of writing against 1.0 s; benchmarks/bench_write.py).
        idata = self.inference_data
        root = {"": xr.Dataset(attrs=idata.attrs)} if idata.attrs else {}
        write_groups(directory / "posterior.nc", root | {g: idata[g] for g in idata.groups()})
        # Full precision: a loaded run reads new data exactly as the fitted model.
        write_groups(directory / "regime_draws.nc", {"": self.draws_dataset()})
        long = self.probabilities_long()
        long["date"] = long["date"].dt.strftime("%Y-%m-%d")
        write_text_atomic(
            long.to_csv(index=False, float_format="%.6g"), directory / "regime_probabilities.csv"
        )
        write_text_atomic(
            json.dumps(self.summary(), indent=2, default=_json_default) + "\n",
            directory / "summary.json",
        )
        config = {**self.config, "model": self.model, "columns": self.columns}
        write_text_atomic(
            json.dumps(config, indent=2, default=_json_default) + "\n", directory / "config.json"
        )

    def draws_dataset(self) -> xr.Dataset:
        """What regime_draws.nc holds: the band draws' probabilities (S, T, K) of each
        kind, their pointwise log-likelihoods (S, T) and their draw indices (S,)."""
        return xr.Dataset(
            {
                kind: (("band_draw", "date", "regime"), getattr(self.probabilities, kind))
                for kind in KINDS
            }
            | {
                "pointwise_loglik": (("band_draw", "date"), self.probabilities.pointwise_loglik),
                "band_index": (("band_draw",), self.band_draws),
            },
            coords={"date": self.dates, "regime": self.regime_names},
        )

    @classmethod
    def load(cls, directory: str | Path) -> RegimeResult:
        """Read a directory written by :meth:`save`, after checking it is complete and
        unchanged (:func:`~regime_model.run_directory.verify_run`)."""
        directory = Path(directory)
        verify_run(directory)
        try:
            inference_data = az.from_netcdf(str(directory / "posterior.nc"))
            draws = xr.load_dataset(directory / "regime_draws.nc")
            config = json.loads((directory / "config.json").read_text())
            summary = json.loads((directory / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            raise MalformedFileError(f"{directory}: cannot read fitted run: {exc}") from exc
        probabilities = ProbabilityDraws(
            *(draws[kind].to_numpy() for kind in KINDS), draws["pointwise_loglik"].to_numpy()
        )
        return cls(
            model=config["model"],
            dates=pd.DatetimeIndex(draws["date"].to_numpy(), name="date").as_unit("us"),
            columns=list(config["columns"]),
            regime_names=[str(name) for name in draws["regime"].to_numpy()],
            inference_data=inference_data,
            probabilities=probabilities,
            band_draws=draws["band_index"].to_numpy(),
            config=config,
            has_bands=bool(summary["has_bands"]),
            fit_info=summary.get("fit_info", {}),
        )

    def summary(self, hdi: float = 0.9, recent: int = 8) -> dict[str, Any]:
        """Everything ``regime summary`` prints, as plain data."""
        filtered = self.regime_probabilities("filtered", hdi)
        last = filtered.iloc[-1]
        path = self.probabilities.smoothed.mean(axis=0)[-recent:].argmax(axis=1)
        filtered_path = self.probabilities.filtered.mean(axis=0)[-recent:].argmax(axis=1)
        return _without_nan(
            {
                "model": self.model,
                "has_bands": self.has_bands,
                "hdi": hdi,
                "first_date": self.dates[0].strftime("%Y-%m-%d"),
                "last_date": self.dates[-1].strftime("%Y-%m-%d"),
                "n_dates": len(self.dates),
                "columns": self.columns,
                "latest_filtered": {
                    name: {stat: _float(last[(name, stat)]) for stat in ("mean", "lower", "upper")}
                    for name in self.regime_names
                },
                "recent_path": [
                    {
                        "date": date.strftime("%Y-%m-%d"),
                        "filtered": self.regime_names[f],
                        "smoothed": self.regime_names[s],
                    }
                    for date, f, s in zip(self.dates[-recent:], filtered_path, path, strict=True)
                ],
                "transition_matrix": self.transition_matrix(hdi).to_dict(orient="records"),
                "expected_durations": self.expected_durations(hdi)
                .reset_index()
                .to_dict(orient="records"),
                "emissions": self.emission_summary(hdi).to_dict(orient="records"),
                "fit_info": self.fit_info,
            }
        )


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: missing bands become null."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


def _float(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def build_inference_data(
    posterior: dict[str, np.ndarray],
    pointwise_loglik: np.ndarray,
    dates: pd.DatetimeIndex,
    columns: list[str],
    regime_names: list[str],
    sample_stats: xr.Dataset | None = None,
    dims: dict[str, list[str]] | None = None,
    coords: dict[str, Any] | None = None,
    holdout_loglik: np.ndarray | None = None,
    holdout_dates: pd.DatetimeIndex | None = None,
) -> az.InferenceData:
    """InferenceData from (chain, draw, ...) arrays named as in :class:`RegimeResult`.

    ``pointwise_loglik`` (chain, draw, T_fit) becomes ``log_likelihood.y`` (what PSIS-LOO
    reads); ``holdout_loglik`` (chain, draw, T_holdout), when there is a held-out stretch,
    becomes ``log_likelihood.y_holdout`` over ``holdout_date``. ``dims``/``coords`` name the
    dimensions of a model's own extra parameters.
    """
    all_dims = {
        "transition": ["regime_from", "regime_to"],
        "initial": ["regime"],
        "emission_mean": ["regime", "feature"],
        "emission_scale": ["regime", "feature"],
        "emission_nu": ["feature"],
        **(dims or {}),
    }
    all_coords = {
        "regime": regime_names,
        "regime_from": regime_names,
        "regime_to": regime_names,
        "feature": columns,
        "date": dates,
        **(coords or {}),
    }
    log_likelihood = {"y": pointwise_loglik}
    loglik_dims = {"y": ["date"]}
    if holdout_loglik is not None and holdout_loglik.shape[-1]:
        log_likelihood["y_holdout"] = holdout_loglik
        loglik_dims["y_holdout"] = ["holdout_date"]
        all_coords["holdout_date"] = holdout_dates
    data = az.from_dict(
        posterior=posterior,
        log_likelihood=log_likelihood,
        coords=all_coords,
        dims={**{name: all_dims.get(name, []) for name in posterior}, **loglik_dims},
    )
    if sample_stats is not None:
        data.add_groups(sample_stats=sample_stats)
    return data
