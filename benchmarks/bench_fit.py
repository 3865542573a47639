"""Fit-time benchmark of the Bayesian HMM against the usual alternatives.

One run, same data (synthetic 2- or 3-regime Gaussian HMM, T dates, D features) and the same
priors and regime identification (``--identification``: the package's default,
relabelled, or ordered) for every Bayesian row:

* cli:     the default ``regime fit`` as a user runs it, timed from outside: a fresh
           process (imports, reading the features file, EM start, compiling or loading
           the compiled code, sampling with the default sampler and tuning, the
           post-processing, writing the run directory); its ESS/s is ESS / that wall;
* em:      hmmlearn EM (10 restarts), for speed and accuracy reference;
* nuts:    the package's BayesianHMM (compiled forward-backward Op with an analytic
           gradient) sampled by PyMC's NUTS;
* nutpie:  the same model sampled by nutpie (the Op's numba dispatch, NUMBA mode);
* full, full-nuts: full-covariance emissions (LKJ correlations, a Cholesky factor per
           regime) by nutpie and by PyMC's NUTS;
* numpyro: the model written by hand in numpyro (forward pass in jax.lax.scan, JAX
           autodiff, numpyro's NUTS; benchmarks/numpyro_reference.py), same EM starts;
* stan:    the same model in Stan with its built-in ``hmm_marginal`` (pystan 3;
           benchmarks/stan_reference.py), same EM starts, relabelled only; its wall is
           the sample call (the model built, or loaded from httpstan's cache, before);
* pymc-extras: the model as a PyMC user writes it with pymc-extras, the regime path a
           ``DiscreteMarkovChain`` summed out by ``pmx.marginalize`` (a scan forward pass,
           autodiff), PyMC's NUTS (benchmarks/pymc_extras_reference.py), same EM starts;
           a shorter run (``--scan-draws``);
* scan:    the PyMC model with the forward algorithm written as a pytensor.scan
           (hand-written max-shifted logsumexp), the common way; a shorter run.

Prints wall time, compile time, min bulk ESS, ESS per second (ESS / wall), max R-hat,
divergences and accuracy of the argmax smoothed regime, then each row's ESS/s as a
multiple of the scan and numpyro rows'. The nutpie rows add the gradient evaluations
(leapfrog steps of tuning and draws, all chains), the median time of one logp + gradient
of the same model compiled in NUMBA mode, and the ideal sampling time, evaluations x
time per gradient / cores: how far the sampler is from the cost of its gradients. A
package row's wall is its whole ``fit()`` call: EM start, compiling (or loading compiled
code from the caches), sampling, and the per-draw forward-backward behind the bands and
diagnostics.

    python benchmarks/bench_fit.py --scan-draws 100   # all rows, T=2500, K=2, D=3, 4 x 1000+1000
    python benchmarks/bench_fit.py --regimes 3 --true-regimes 3 --skip-scan  # K=3 data and fit
    python benchmarks/bench_fit.py --regimes 3 --skip-scan     # K=3 fit of the 2-regime data
    time python benchmarks/bench_fit.py --only nutpie         # one row in a fresh process
    python benchmarks/bench_fit.py --dates 400 --features 2 --only full,full-nuts

For a cold start, point both compile caches at empty directories:
    PYTENSOR_FLAGS=base_compiledir=$(mktemp -d) NUMBA_CACHE_DIR=$(mktemp -d) \\
        python benchmarks/bench_fit.py --only nutpie
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
from bench_kernel import median_seconds

from regime_model.choices import IDENTIFICATIONS
from regime_model.data.features import FeatureSet
from regime_model.inference import hmm_smoother
from regime_model.models import EMHMM, BayesianHMM
from regime_model.models.observations import prepare_observations, select_features
from regime_model.results import RegimeResult

REFERENCE_TUNE = 1000  # Stan's default warm-up, also used for numpyro (which has none)
ROWS = (
    "cli",
    "em",
    "nuts",
    "nutpie",
    "full",
    "full-nuts",
    "ar1",
    "ar1ma",
    "var1",
    "numpyro",
    "stan",
    "pymc-extras",
    "scan",
)
LABELS = {
    "cli": "regime fit (the default, whole process)",
    "em": "hmmlearn-em",
    "nuts": "package (PyMC NUTS)",
    "nutpie": "package (nutpie)",
    "full": "package (nutpie), full covariance",
    "full-nuts": "package (PyMC NUTS), full covariance",
    "ar1": "package (nutpie), AR(1) emissions on every feature",
    "ar1ma": "package (nutpie), AR(1) emissions on every feature, mean-adjusted",
    "var1": "package (nutpie), VAR(1) with a full matrix over every feature",
    "numpyro": "numpyro (hand-written)",
    "stan": "Stan hmm_marginal (pystan)",
    "pymc-extras": "pymc-extras marginalised DiscreteMarkovChain (PyMC NUTS)",
    "scan": "pytensor-scan (PyMC NUTS)",
}


def simulate(
    n_dates: int, n_features: int, n_regimes: int = 2, seed: int = 0
) -> tuple[FeatureSet, np.ndarray]:
    """A sticky K-regime Gaussian HMM (K = 2 or 3); regime 0 is volatile with negative
    drift (risk_off), the last one calm with positive drift (risk_on). Returns the
    features and the true path, coded in that order."""
    rng = np.random.default_rng(seed)
    if n_regimes == 2:
        transition = np.array([[0.98, 0.02], [0.01, 0.99]])
        mean = np.array([np.linspace(-0.8, -0.2, n_features), np.linspace(0.4, 0.1, n_features)])
        scale = np.array([np.full(n_features, 1.6), np.full(n_features, 0.8)])
    elif n_regimes == 3:
        transition = np.array([[0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.005, 0.01, 0.985]])
        mean = np.array(
            [
                np.linspace(-0.9, -0.3, n_features),
                np.linspace(0.0, 0.0, n_features),
                np.linspace(0.6, 0.2, n_features),
            ]
        )
        scale = np.array([np.full(n_features, s) for s in (1.8, 1.0, 0.6)])
    else:
        raise ValueError("the benchmark simulates 2 or 3 regimes")
    path = np.empty(n_dates, dtype=int)
    path[0] = n_regimes - 1
    for t in range(1, n_dates):
        path[t] = rng.choice(n_regimes, p=transition[path[t - 1]])
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


def accuracy(smoothed: np.ndarray, path: np.ndarray) -> float:
    """Share of dates where the argmax smoothed regime is the true one. ``smoothed``
    (T, K) in the fitted order (risk_off first). When K differs from the true number of
    regimes, only risk_on is compared: P(risk_on) > 0.5 against the true calm regime."""
    n_true = int(path.max()) + 1
    if smoothed.shape[1] == n_true:
        return float((smoothed.argmax(axis=1) == path).mean())
    return float(((smoothed[:, -1] > 0.5) == (path == n_true - 1)).mean())


def smoothed_matrix(result) -> np.ndarray:
    """(T, K) posterior mean smoothed probabilities of a package result, risk_off first."""
    table = result.regime_probabilities("smoothed")
    return np.column_stack([table[(name, "mean")].to_numpy() for name in result.regime_names])


def print_row(row: dict) -> None:
    print(
        " ".join(
            f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in row.items()
        ),
        flush=True,
    )


def gradient_seconds(model: BayesianHMM) -> float:
    """Median seconds of one logp + gradient of the fitted ``model``'s PyMC model, NUMBA
    mode (as nutpie evaluates it, with the data as constants), at its initial point."""
    pm_model = model.model_
    values = [pm_model.rvs_to_values[rv] for rv in pm_model.free_RVs]
    logp = pm_model.logp()
    function = pm_model.compile_fn(
        [logp, *pytensor.grad(logp, values)], inputs=values, mode="NUMBA", point_fn=False
    )
    point = pm_model.initial_point()
    arguments = [point[value.name] for value in values]
    return median_seconds(lambda: function(*arguments))


def add_ideal_time(row: dict, model: BayesianHMM, result) -> None:
    """The nutpie row's gradient count, time per gradient and ideal sampling time."""
    evaluations = result.fit_info.get("gradient_evaluations")
    if evaluations is None:
        return
    cores = min(model.chains, os.cpu_count() or 1)
    per_gradient = gradient_seconds(model)
    ideal = evaluations * per_gradient / cores
    row.update(
        gradient_evaluations=int(evaluations),
        us_per_gradient=per_gradient * 1e6,
        ideal_sampling_s=ideal,
        sampling_over_ideal=row["sampling_s"] / ideal,
    )
    print(
        f"  {row['implementation']}: {evaluations} gradients x {per_gradient * 1e6:.0f} us / "
        f"{cores} cores = ideal {ideal:.2f} s; sampling {row['sampling_s']:.2f} s "
        f"({row['sampling_s'] / ideal:.2f}x the ideal)",
        flush=True,
    )


def package_row(name: str, result, wall: float, path: np.ndarray) -> dict:
    posterior = result.inference_data
    names = ["transition", "emission_mean", "emission_scale"]
    sampling = float(result.fit_info.get("sampling_seconds") or np.nan)
    ess = float(az.ess(posterior, var_names=names, method="bulk").to_array().min())
    rhat = float(az.rhat(posterior, var_names=names).to_array().max())
    smoothed = smoothed_matrix(result)
    row = {
        "implementation": f"{name} [tune {result.fit_info.get('tuning_steps', '?')}]",
        "wall_s": wall,
        "compile_s": float(result.fit_info["sample_call_seconds"]) - sampling,
        "sampling_s": sampling,
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "max_rhat": rhat,
        "divergences": int(posterior.sample_stats["diverging"].sum()),
        "accuracy": accuracy(smoothed, path),
    }
    print_row(row)
    return row


def cli_row(features: FeatureSet, args, path: np.ndarray) -> dict:
    """``regime fit`` in a fresh process on ``features`` written to a file; the row of
    the run it writes, its wall the whole process."""
    with tempfile.TemporaryDirectory() as directory:
        csv = features.save(Path(directory) / "synthetic.csv")
        run = Path(directory) / "run"
        command = [
            *(sys.executable, "-m", "regime_model.cli", "fit", "--quiet"),
            *("--features", str(csv), "--out", str(run), "--regimes", str(args.regimes)),
            *("--chains", str(args.chains), "--draws", str(args.draws), "--seed", "1"),
            *("--identification", args.identification),
            *(() if args.tune is None else ("--tune", str(args.tune))),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        result = RegimeResult.load(run)
        return package_row(LABELS["cli"], result, wall, path)


def reference_starts(features: FeatureSet, args) -> tuple:
    """(observations, the package's EM-based chain starts, its target_accept): what the
    hand-written references start from."""
    model = BayesianHMM(
        args.regimes, identification=args.identification, chains=args.chains, seed=1
    )
    observations = prepare_observations(select_features(features, None), args.regimes)
    fitted = observations.fitted_part()
    start = model.initial_estimate(fitted)
    initvals = model.components(fitted, start).starts(start, fitted, model.chains, model.seed)
    return observations, initvals, model.target_accept


def draws_row(name: str, draws: dict, wall: float, compile_s: float, diverging, smoothed, path):
    """A reference's row from its (chain, draw, ...) draws of mean, sigma, transition."""
    ess = min(float(az.ess(az.convert_to_dataset(v)).to_array().min()) for v in draws.values())
    rhat = max(float(az.rhat(az.convert_to_dataset(v)).to_array().max()) for v in draws.values())
    row = {
        "implementation": name,
        "wall_s": wall,
        "compile_s": compile_s,
        "sampling_s": wall - compile_s,
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "max_rhat": rhat,
        "divergences": int(np.sum(diverging)),
        "accuracy": accuracy(smoothed, path),
    }
    print_row(row)
    return row


def stan_row(features: FeatureSet, args, path: np.ndarray) -> dict:
    """Stan's hmm_marginal from the package's own EM-based chain starts (relabelled)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from stan_reference import fit_stan

    observations, initvals, target_accept = reference_starts(features, args)
    tune = reference_tune(args)
    fit = fit_stan(observations, args.regimes, initvals, args.draws, tune, target_accept, seed=1)
    draws = {"mean": fit.mean, "sigma": fit.sigma, "transition": fit.transition}
    initial = _stationary(fit.transition)
    smoothed = _reference_smoothed(fit.mean, fit.sigma, fit.transition, initial, observations)
    label = f"{LABELS['stan']} [tune {tune}], build {fit.build_seconds:.3g} s not in wall"
    row = draws_row(label, draws, fit.wall_seconds, 0.0, fit.diverging, smoothed, path)
    print(f"stan leapfrog steps (kept draws, all chains): {fit.leapfrog_steps}")
    return row


def pymc_extras_row(features: FeatureSet, args, path: np.ndarray) -> dict:
    """pymc-extras' marginalised DiscreteMarkovChain from the package's EM-based starts,
    ``--scan-draws`` tuning steps and draws (its scan forward pass is slow)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pymc_extras_reference import fit_pymc_extras

    observations, initvals, target_accept = reference_starts(features, args)
    length = args.scan_draws
    fit = fit_pymc_extras(
        observations, args.regimes, initvals, length, length, target_accept, seed=1
    )
    draws = {"mean": fit.mean, "sigma": fit.sigma, "transition": fit.transition}
    smoothed = _reference_smoothed(fit.mean, fit.sigma, fit.transition, fit.initial, observations)
    label = f"{LABELS['pymc-extras']} {fit.pymc_extras_version}, {length} tune + {length} draws"
    return draws_row(label, draws, fit.wall_seconds, 0.0, fit.diverging, smoothed, path)


def numpyro_row(features: FeatureSet, args, path: np.ndarray) -> dict:
    """The hand-written numpyro model from the package's own EM-based chain starts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from numpyro_reference import fit_numpyro

    observations, initvals, target_accept = reference_starts(features, args)
    fit = fit_numpyro(
        observations,
        args.regimes,
        initvals,
        draws=args.draws,
        tune=reference_tune(args),
        target_accept=target_accept,
        seed=1,
        chain_method=args.numpyro_chain_method,
        identification=args.identification,
    )
    draws = {"mean": fit.mean, "sigma": fit.sigma, "transition": fit.transition}
    smoothed = _reference_smoothed(fit.mean, fit.sigma, fit.transition, fit.initial, observations)
    name = f"{LABELS['numpyro']} [{fit.chain_method}, tune {reference_tune(args)}]"
    return draws_row(
        name, draws, fit.wall_seconds, fit.compile_seconds, fit.diverging, smoothed, path
    )


def reference_tune(args) -> int:
    """Tuning steps of the numpyro and Stan rows: ``--tune``, else Stan's default."""
    return REFERENCE_TUNE if args.tune is None else args.tune


def _stationary(transition: np.ndarray) -> np.ndarray:
    """(..., K) stationary distributions of (..., K, K) transition matrices."""
    k = transition.shape[-1]
    system = np.swapaxes(transition, -1, -2) - np.eye(k)
    system[..., -1, :] = 1.0
    unit_last = np.zeros(transition.shape[:-1])
    unit_last[..., -1] = 1.0
    return np.linalg.solve(system, unit_last[..., None])[..., 0]


def _reference_smoothed(mean, sigma, transition, initial, observations, n_draws: int = 400):
    """(T, K) posterior mean of P(regime | all data) over evenly spaced draws (not timed)
    from a reference's (chain, draw, ...) draws."""
    mean, sigma, transition, initial = (
        x.reshape(-1, *x.shape[2:]) for x in (mean, sigma, transition, initial)
    )
    values, observed = observations.values, observations.observed
    total = np.zeros((len(values), mean.shape[1]))
    picks = np.unique(np.linspace(0, len(mean) - 1, n_draws).astype(int))
    for i in picks:
        z = (values[:, None, :] - mean[i][None]) / sigma[i][None]
        log_density = -0.5 * z**2 - np.log(sigma[i])[None] - 0.5 * np.log(2 * np.pi)
        log_emission = (log_density * observed[:, None, :]).sum(axis=-1)
        smoothed = hmm_smoother(np.log(initial[i]), np.log(transition[i]), log_emission)
        total += smoothed.smoothed_probs
    return total / len(picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=2500)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--regimes", type=int, default=2, help="K of the fitted models")
    parser.add_argument(
        "--true-regimes", type=int, default=2, help="K of the simulated data (2 or 3)"
    )
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument(
        "--tune",
        type=int,
        help="tuning steps per chain for every row (default: each row's own default: the "
        f"package's sampler default, {REFERENCE_TUNE} for numpyro and Stan)",
    )
    parser.add_argument("--scan-draws", type=int, default=150, help="draws and tune for scan")
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument(
        "--identification",
        default=IDENTIFICATIONS[0],
        choices=IDENTIFICATIONS,
        help="every Bayesian row's regime identification (default: the package's)",
    )
    parser.add_argument(
        "--only", default=",".join(ROWS), help=f"comma-separated rows among {','.join(ROWS)}"
    )
    parser.add_argument(
        "--numpyro-chain-method",
        default="parallel",
        choices=("sequential", "vectorized", "parallel"),
        help="parallel (fastest on 2 cores): one XLA host device per chain, chains in threads",
    )
    args = parser.parse_args()
    wanted = [row.strip() for row in args.only.split(",") if row.strip()]
    unknown = set(wanted) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {', '.join(sorted(unknown))}; choose among {', '.join(ROWS)}")
    if args.skip_scan and "scan" in wanted:
        wanted.remove("scan")
    features, path = simulate(args.dates, args.features, args.true_regimes)
    if args.regimes != args.true_regimes:
        # Extra or missing regimes have no true counterpart; only risk_on is compared.
        print("K differs from the truth: accuracy = P(risk_on) > 0.5 vs true calm", flush=True)
    print(
        f"T={args.dates} K={args.regimes} true K={args.true_regimes} D={args.features} "
        f"chains={args.chains} identification={args.identification} "
        f"draws={args.draws} tune={args.tune or 'each row default'} rows={','.join(wanted)}",
        flush=True,
    )

    rows: dict[str, dict] = {}
    if "cli" in wanted:
        rows["cli"] = cli_row(features, args, path)
    if "em" in wanted:
        start = time.perf_counter()
        em = EMHMM(args.regimes, n_restarts=10).fit(features).result_
        em_wall = time.perf_counter() - start
        smoothed = smoothed_matrix(em)
        print(
            f"implementation={LABELS['em']} wall_s={em_wall:.3g} "
            f"accuracy={accuracy(smoothed, path):.3g}",
            flush=True,
        )

    settings = dict(chains=args.chains, seed=1, progressbar=False)
    for row, sampler, covariance in (
        ("nuts", "nuts", "diag"),
        ("nutpie", "nutpie", "diag"),
        ("full", "nutpie", "full"),
        ("full-nuts", "nuts", "full"),
    ):
        if row in wanted:
            model = BayesianHMM(
                args.regimes,
                sampler=sampler,
                covariance=covariance,
                draws=args.draws,
                tune=args.tune,
                identification=args.identification,
                **settings,
            )
            start = time.perf_counter()
            result = model.fit(features).result_
            rows[row] = package_row(LABELS[row], result, time.perf_counter() - start, path)
            add_ideal_time(rows[row], model, result)
    # The AR(1) component on the same data (phi -> 0): intercept form (K states),
    # mean-adjusted form (the kernel on K^2 regime histories), and a VAR(1) whose full
    # matrix links every feature to every lag (D^2 coefficients).
    for row, form, matrix in (
        ("ar1", "intercept", "diagonal"),
        ("ar1ma", "mean-adjusted", "diagonal"),
        ("var1", "intercept", "full"),
    ):
        if row not in wanted:
            continue
        model = BayesianHMM(
            args.regimes,
            draws=args.draws,
            tune=args.tune,
            identification=args.identification,
            ar_order=1,
            ar_form=form,
            ar_matrix=matrix,
            **settings,
        )
        start = time.perf_counter()
        result = model.fit(features).result_
        rows[row] = package_row(LABELS[row], result, time.perf_counter() - start, path)
        add_ideal_time(rows[row], model, result)
        if "nutpie" in rows:
            ratio = rows[row]["wall_s"] / rows["nutpie"]["wall_s"]
            print(f"wall ratio {LABELS[row]} / {LABELS['nutpie']}: {ratio:.3g}x")
    if "stan" in wanted and args.identification != "relabelled":
        print("implementation=stan skipped: the Stan reference is written for relabelled")
        wanted.remove("stan")
    for name, reference_row in (
        ("numpyro", numpyro_row),
        ("stan", stan_row),
        ("pymc-extras", pymc_extras_row),
    ):
        if name not in wanted:
            continue
        try:
            rows[name] = reference_row(features, args, path)
        except FloatingPointError as exc:  # a reference that cannot sample this problem
            print(f"implementation={name} failed: {exc}")
        except ImportError as exc:  # an optional backend: one line, the other rows go on
            print(
                f"implementation={name} skipped: {exc}; install the benchmark extra "
                "(pip install -c constraints.txt -e '.[bench]')"
            )
    if "scan" in wanted:
        model = ScanHMM(
            args.regimes,
            identification=args.identification,
            draws=args.scan_draws,
            tune=args.scan_draws,
            **settings,
        )
        start = time.perf_counter()
        result = model.fit(features).result_
        label = f"{LABELS['scan']}, {args.scan_draws} tune + {args.scan_draws} draws"
        rows["scan"] = package_row(label, result, time.perf_counter() - start, path)

    for reference in ("scan", "pymc-extras", "numpyro", "stan"):
        if reference not in rows:
            continue
        for name, row in rows.items():
            if name != reference:
                ratio = row["ess_per_s"] / rows[reference]["ess_per_s"]
                print(f"ESS/s ratio {LABELS[name]} / {LABELS[reference]}: {ratio:.3g}x")


if __name__ == "__main__":
    main()
