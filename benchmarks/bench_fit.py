"""Fit-time benchmark of the Bayesian HMM against the usual alternatives.

One run, same data (synthetic 2-regime Gaussian HMM, T dates, D features) and the same
priors and ordered parameterisation:

* package:  BayesianHMM (compiled forward-backward Op with analytic gradient, PyMC NUTS);
* scan:     the same PyMC model with the forward algorithm written as a pytensor.scan
            (hand-written max-shifted logsumexp), the common way; a shorter run;
* em:       hmmlearn EM (10 restarts), for speed and accuracy reference.

Prints wall time, compile time, min bulk ESS, ESS per second, max R-hat, divergences and
accuracy of the argmax smoothed regime, and the ESS/s ratio to the scan implementation.

    python benchmarks/bench_fit.py                 # T=2500, K=2, D=3, 4 chains x 1000+1000
    python benchmarks/bench_fit.py --regimes 3     # K=3 on the same data
    python benchmarks/bench_fit.py --skip-scan     # without the (slow) scan reference
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt

from regime_model.data.features import FeatureSet
from regime_model.models import EMHMM, BayesianHMM


def simulate(n_dates: int, n_features: int, seed: int = 0) -> tuple[FeatureSet, np.ndarray]:
    """Two regimes: risk_on calm with positive drift, risk_off volatile and negative."""
    rng = np.random.default_rng(seed)
    transition = np.array([[0.98, 0.02], [0.01, 0.99]])
    path = np.empty(n_dates, dtype=int)
    path[0] = 1
    for t in range(1, n_dates):
        path[t] = rng.choice(2, p=transition[path[t - 1]])
    mean = np.array([np.linspace(-0.8, -0.2, n_features), np.linspace(0.4, 0.1, n_features)])
    scale = np.array([np.full(n_features, 1.6), np.full(n_features, 0.8)])
    values = mean[path] + scale[path] * rng.standard_normal((n_dates, n_features))
    dates = pd.bdate_range("2010-01-01", periods=n_dates, name="date")
    columns = ["equity_return", *[f"feature_{i}" for i in range(1, n_features)]]
    frame = pd.DataFrame(values, index=dates, columns=columns)
    return FeatureSet(frame, {"equity_return": "equity"}, "daily"), path


class ScanHMM(BayesianHMM):
    """Same model; likelihood by a pytensor.scan forward pass (autodiff gradient)."""

    def _marginal_loglik(self, log_initial, log_transition, log_emission):
        def step(log_emission_t, log_alpha, log_transition):
            # logsumexp by hand: pt.logsumexp inside scan gives NaN gradients (pymc-extras #720)
            scores = log_alpha[:, None] + log_transition
            peak = pt.max(scores, axis=0)
            return peak + pt.log(pt.sum(pt.exp(scores - peak[None, :]), axis=0)) + log_emission_t

        first = log_initial + log_emission[0]
        alphas = pytensor.scan(
            step,
            sequences=[log_emission[1:]],
            outputs_info=[first],
            non_sequences=[log_transition],
            return_updates=False,
        )
        last = alphas[-1]
        peak = pt.max(last)
        return peak + pt.log(pt.sum(pt.exp(last - peak)))


def report(name: str, result, wall: float, path: np.ndarray) -> dict:
    posterior = result.inference_data
    names = ["transition", "emission_mean", "emission_scale"]
    sampling = float(result.fit_info.get("sampling_seconds") or np.nan)
    ess = float(az.ess(posterior, var_names=names, method="bulk").to_array().min())
    rhat = float(az.rhat(posterior, var_names=names).to_array().max())
    divergences = int(posterior.sample_stats["diverging"].sum())
    smoothed = result.regime_probabilities("smoothed")[("risk_on", "mean")].to_numpy()
    accuracy = float(((smoothed > 0.5).astype(int) == path).mean())
    row = {
        "implementation": name,
        "wall_s": wall,
        "compile_s": wall - sampling,
        "sampling_s": sampling,
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "max_rhat": rhat,
        "divergences": divergences,
        "accuracy": accuracy,
    }
    print(
        " ".join(
            f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in row.items()
        ),
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=2500)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--regimes", type=int, default=2)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--scan-draws", type=int, default=150, help="draws and tune for scan")
    parser.add_argument("--skip-scan", action="store_true")
    args = parser.parse_args()
    features, path = simulate(args.dates, args.features)
    print(
        f"T={args.dates} K={args.regimes} D={args.features} chains={args.chains} "
        f"draws={args.draws} tune={args.tune}",
        flush=True,
    )

    rows = []
    start = time.perf_counter()
    em = EMHMM(args.regimes, n_restarts=10).fit(features)
    em_wall = time.perf_counter() - start
    smoothed = em.regime_probabilities("smoothed")[("risk_on", "mean")].to_numpy()
    print(
        f"implementation=hmmlearn-em wall_s={em_wall:.3g} "
        f"accuracy={((smoothed > 0.5).astype(int) == path).mean():.3g}",
        flush=True,
    )

    settings = dict(chains=args.chains, seed=1, progressbar=False)
    start = time.perf_counter()
    package = BayesianHMM(args.regimes, draws=args.draws, tune=args.tune, **settings).fit(features)
    rows.append(report("package", package, time.perf_counter() - start, path))
    if not args.skip_scan:
        start = time.perf_counter()
        scan = ScanHMM(args.regimes, draws=args.scan_draws, tune=args.scan_draws, **settings).fit(
            features
        )
        rows.append(report("pytensor-scan", scan, time.perf_counter() - start, path))
        print(f"ESS/s ratio package / scan: {rows[0]['ess_per_s'] / rows[1]['ess_per_s']:.0f}x")


if __name__ == "__main__":
    main()
