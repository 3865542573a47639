"""Forward returns after events versus at any time, with partial pooling over events.

The question "what do BTC, ETH and altcoins do in the months after a Russell 2000
breakout?" has three or four past answers. The model makes their small number visible:

    y[i, a] = mu[group(i), a] + shock[i] + noise[i, a]
    shock[i] ~ Normal(0, tau)               one shock per window, shared by the assets
    noise[i, a] ~ Normal(0, sigma[a])

The shocks are integrated out: each window's returns are multivariate normal with
covariance tau^2 11' + diag(sigma^2) (a window with a missing asset uses the marginal of
the others; :func:`window_log_density`), which leaves no per-window latent variables and
no funnel between them and tau: sampling them explicitly, centred or not, gave divergences
on the real windows.

``i`` runs over windows: the windows after each event (group "event") and non-overlapping
windows tiling the whole history (group "any time", the unconditional reference). The
shared shock is what makes three events three observations, not nine: crypto assets move
together inside a window. Its scale tau is common to both groups: with three events a
separate event-window scale is not identified, and nothing suggests post-breakout windows
are more or less dispersed. With one asset the shock and the noise are the same thing,
so the shock is left out. Everything is standardised by the pooled standard deviation of
the windows; priors are Normal(0, 1) on means and HalfNormal(1) on scales in those units.
The answer is the posterior of mu[event, a] − mu[any time, a] per asset.

Covariates (optional, e.g. whether a window starts in the year after a Bitcoin halving)
shift every window's mean, event or not: y[i, a] = mu[group(i), a] + x[i] . beta[a] +
shock[i] + noise[i, a], beta ~ Normal(0, 1) per covariate and asset (standardised
units; a covariate enters as given, so give indicators or standardised values). The
difference mu[event] − mu[any time] is then the events' effect *at equal covariates*:
what is left of the breakout once the halving phase is accounted for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from regime_model.choices import tuning_steps
from regime_model.errors import InsufficientDataError
from regime_model.models.diagnostics import convergence
from regime_model.results import hdi_bounds

GROUPS = ("event", "any_time")


def forward_returns(
    log_returns: pd.DataFrame, starts: pd.DatetimeIndex, horizon: int
) -> pd.DataFrame:
    """Sum of the ``horizon`` log returns strictly after each start date. -> (starts, assets).

    ``log_returns``: dates x assets, per-step log returns. A window running past the data's
    end, or with a missing step, gives NaN for that asset (never a partial sum).
    """
    rows = {}
    for start in starts:
        position = log_returns.index.searchsorted(start, side="right")
        window = log_returns.iloc[position : position + horizon]
        complete = len(window) == horizon
        rows[start] = window.sum(min_count=horizon) if complete else window.sum() * np.nan
    return pd.DataFrame(rows).T.rename_axis("start")


def tiling_starts(dates: pd.DatetimeIndex, horizon: int) -> pd.DatetimeIndex:
    """Start dates of non-overlapping windows of ``horizon`` steps covering ``dates``."""
    return dates[: len(dates) - horizon : horizon]


class EventStudy:
    """Posterior of forward returns after events vs any time (see the module docstring)."""

    def __init__(
        self, draws: int = 1000, tune: int | None = None, chains: int = 4, seed: int = 0
    ) -> None:
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.seed = seed

    def fit(
        self,
        event_returns: pd.DataFrame,
        reference_returns: pd.DataFrame,
        event_covariates: pd.DataFrame | None = None,
        reference_covariates: pd.DataFrame | None = None,
    ) -> EventStudy:
        """``event_returns``: windows after events x assets; ``reference_returns``: tiling
        windows x assets (same assets). Windows with a missing asset keep the others.
        ``event_covariates`` / ``reference_covariates``: windows x covariates, one row per
        window of each (both or neither; see the module docstring)."""
        if list(event_returns.columns) != list(reference_returns.columns):
            raise ValueError("event and reference windows must have the same assets")
        if event_returns.notna().any(axis=1).sum() < 2:
            raise InsufficientDataError("an event study needs at least two complete windows")
        covariates = _covariates(
            event_covariates, reference_covariates, len(event_returns), len(reference_returns)
        )
        values = np.vstack([event_returns.to_numpy(), reference_returns.to_numpy()])
        group = np.r_[np.zeros(len(event_returns), int), np.ones(len(reference_returns), int)]
        scale = float(np.nanstd(values))
        standardised = values / scale
        observed = np.isfinite(standardised)
        filled = np.where(observed, standardised, 0.0)
        assets = list(event_returns.columns)
        coords = {"group": list(GROUPS), "asset": assets}
        if covariates is not None:
            coords["covariate"] = list(covariates.columns)
        with pm.Model(coords=coords) as model:
            mean = pm.Normal("mean", 0.0, 1.0, dims=("group", "asset"))
            sigma = pm.HalfNormal("noise_scale", 1.0, dims="asset")
            # One asset: the shock and the noise are the same thing, so no shock.
            tau = pm.HalfNormal("shock_scale", 1.0) if len(assets) > 1 else pt.zeros(())
            expected = mean[group]
            if covariates is not None:
                effect = pm.Normal("covariate_effect", 0.0, 1.0, dims=("covariate", "asset"))
                expected = expected + pt.as_tensor(covariates.to_numpy(dtype=float)) @ effect
            pm.Potential("y", pt.sum(window_log_density(filled - expected, observed, sigma, tau)))
            data = pm.sample(
                draws=self.draws,
                tune=tuning_steps(self.tune, "nuts"),
                chains=self.chains,
                random_seed=self.seed,
                target_accept=0.95,
                progressbar=False,
                compute_convergence_checks=False,
            )
        self.assets_ = assets
        self.covariates_ = [] if covariates is None else list(covariates.columns)
        self.scale_ = scale
        self.n_events_ = int(len(event_returns))
        self.n_reference_ = int(len(reference_returns))
        self.inference_data_ = data
        self.model_ = model
        return self

    def summary(self, hdi: float = 0.9) -> pd.DataFrame:
        """Per asset: posterior mean and HDI of the forward return after events, at any time,
        and of the difference, in the returns' units; P(difference > 0); HDI widths."""
        mean = self.inference_data_.posterior["mean"].stack(sample=("chain", "draw"))
        draws = mean.transpose("sample", "group", "asset").to_numpy() * self.scale_
        rows = []
        for a, asset in enumerate(self.assets_):
            event, any_time = draws[:, 0, a], draws[:, 1, a]
            difference = event - any_time
            row = {"asset": asset}
            for name, values in (
                ("after_event", event),
                ("any_time", any_time),
                ("difference", difference),
            ):
                lower, upper = hdi_bounds(values, hdi)
                row |= {
                    f"{name}_mean": float(values.mean()),
                    f"{name}_lower": float(lower),
                    f"{name}_upper": float(upper),
                }
            row["p_difference_positive"] = float((difference > 0).mean())
            row["after_event_hdi_width"] = row["after_event_upper"] - row["after_event_lower"]
            row["any_time_hdi_width"] = row["any_time_upper"] - row["any_time_lower"]
            rows.append(row)
        return pd.DataFrame(rows)

    def covariate_effects(self, hdi: float = 0.9) -> pd.DataFrame:
        """Per covariate and asset: the posterior mean and HDI of its effect on a window's
        return (returns' units per unit of the covariate), and P(effect > 0)."""
        if not self.covariates_:
            return pd.DataFrame(columns=["covariate", "asset", "mean", "lower", "upper"])
        effect = self.inference_data_.posterior["covariate_effect"]
        draws = effect.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        draws = draws * self.scale_
        rows = []
        for c, covariate in enumerate(self.covariates_):
            for a, asset in enumerate(self.assets_):
                lower, upper = hdi_bounds(draws[:, c, a], hdi)
                rows.append(
                    {
                        "covariate": covariate,
                        "asset": asset,
                        "mean": float(draws[:, c, a].mean()),
                        "lower": float(lower),
                        "upper": float(upper),
                        "p_positive": float((draws[:, c, a] > 0).mean()),
                    }
                )
        return pd.DataFrame(rows)

    def predictive(self, group: str = "event", seed: int = 0) -> pd.DataFrame:
        """(draws, assets) posterior predictive draws of a *new* window's returns in the
        returns' units: per posterior draw, mu[group] + one shared shock ~ N(0, tau) +
        noise ~ N(0, sigma[a]). What the model fitted on past events expects of the next
        one, its width included (``group``: "event" or "any_time"), at covariates of 0."""
        posterior = self.inference_data_.posterior.stack(sample=("chain", "draw"))
        mean = posterior["mean"].sel(group=group).transpose("sample", "asset").to_numpy()
        sigma = posterior["noise_scale"].transpose("sample", "asset").to_numpy()
        n_draws, n_assets = mean.shape
        rng = np.random.default_rng(seed)
        shock = np.zeros((n_draws, 1))
        if "shock_scale" in posterior:
            shock = posterior["shock_scale"].to_numpy()[:, None] * rng.standard_normal((n_draws, 1))
        noise = sigma * rng.standard_normal((n_draws, n_assets))
        return pd.DataFrame((mean + shock + noise) * self.scale_, columns=self.assets_)

    def diagnostics(self) -> dict[str, float]:
        data = self.inference_data_
        names = [
            name
            for name in ("mean", "shock_scale", "noise_scale", "covariate_effect")
            if name in data.posterior
        ]
        statistics = convergence(data, names)
        return {
            "max_rhat": statistics["max_rhat"],
            "min_ess_bulk": statistics["min_ess_bulk"],
            "divergences": int(data.sample_stats["diverging"].sum()),
        }


def window_log_density(residuals, observed, noise_scale, shock_scale):
    """log N(residuals[i] | 0, tau^2 11' + diag(sigma^2)) per window, over its observed
    assets only (the marginal of a compound-symmetric normal is compound symmetric).
    -> (W,).

    ``residuals`` (W, A) (any value where not observed), ``observed`` (W, A) bool,
    ``noise_scale`` sigma (A,), ``shock_scale`` tau (). By Sherman-Morrison, with
    D = diag(sigma^2) on the observed assets: log|Sigma| = log|D| + log(1 + tau^2 1'D^-1 1),
    and r' Sigma^-1 r = r'D^-1 r - tau^2 (1'D^-1 r)^2 / (1 + tau^2 1'D^-1 1): elementwise
    operations only, no factorisation per window pattern.
    """
    mask = pt.as_tensor(np.asarray(observed, dtype=float))
    precision = mask / noise_scale[None, :] ** 2  # (W, A), 0 where not observed
    total_precision = precision.sum(axis=1)
    weighted = (precision * residuals).sum(axis=1)
    quadratic = (precision * residuals**2).sum(axis=1)
    shrink = 1.0 + shock_scale**2 * total_precision
    log_determinant = (mask * 2.0 * pt.log(noise_scale)[None, :]).sum(axis=1) + pt.log(shrink)
    mahalanobis = quadratic - shock_scale**2 * weighted**2 / shrink
    return -0.5 * (mask.sum(axis=1) * np.log(2 * np.pi) + log_determinant + mahalanobis)


def _covariates(
    event: pd.DataFrame | None, reference: pd.DataFrame | None, n_events: int, n_reference: int
) -> pd.DataFrame | None:
    """The event windows' covariates stacked on the reference windows', checked."""
    if event is None and reference is None:
        return None
    if event is None or reference is None:
        raise ValueError("give covariates for both the event and the reference windows")
    if list(event.columns) != list(reference.columns) or event.shape[1] == 0:
        raise ValueError("event and reference covariates must name the same columns")
    if len(event) != n_events or len(reference) != n_reference:
        raise ValueError("one covariate row per window")
    stacked = pd.concat([event, reference], ignore_index=True)
    if not np.isfinite(stacked.to_numpy(dtype=float)).all():
        raise ValueError("covariates must be finite")
    return stacked
