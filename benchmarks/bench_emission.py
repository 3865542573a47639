"""Timing of the emission densities: one (T, K) log density and its vector-Jacobian
product, as the compiled Ops of regime_model.models.diagonal_densities and as the same
density written as PyTensor operations (what the Student-t emission was before), both
compiled in NUMBA mode as nutpie runs them. Also the vectorised logarithm against libm's,
element for element. Shapes default to the real daily design (T = 2,873, K = 2, D = 6).
Prints median microseconds per evaluation, asserts nothing.

    python benchmarks/bench_emission.py [--dates 2873 --regimes 2 --features 6]
"""

from __future__ import annotations

import argparse
import math

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
from bench_kernel import median_seconds

from regime_model.models.emissions import diagonal_log_density
from regime_model.models.numba_special import log_at_least_one


def elementwise_density(y, observed, mean, sigma, nu):
    """The density as PyTensor operations (gaussian_emissions before the Op)."""
    z = (y[:, None, :] - mean[None]) / sigma[None]
    if nu is None:
        per_feature = -0.5 * z**2 - pt.log(sigma)[None] - 0.5 * np.log(2 * np.pi)
    else:
        nu = nu[None, None, :]
        per_feature = (
            pt.gammaln((nu + 1) / 2)
            - pt.gammaln(nu / 2)
            - 0.5 * pt.log(nu * np.pi)
            - pt.log(sigma)[None]
            - (nu + 1) / 2 * pt.log1p(z**2 / nu)
        )
    return (per_feature * observed[:, None, :]).sum(axis=-1)


@numba.njit(cache=True)
def libm_log(values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    for i in range(values.size):
        out[i] = math.log(values[i])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=2873)
    parser.add_argument("--regimes", type=int, default=2)
    parser.add_argument("--features", type=int, default=6)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t, k, d = args.dates, args.regimes, args.features
    observed = (rng.random((t, d)) > 0.05).astype(float)
    y = np.where(observed == 1.0, rng.standard_t(4.0, (t, d)), 0.0)
    weights = rng.standard_normal((t, k))
    values = {
        "mean": rng.standard_normal((k, d)),
        "sigma": np.exp(0.3 * rng.standard_normal((k, d))),
        "nu": rng.uniform(3.0, 20.0, d),
    }
    print(f"emission log density + gradient, T = {t}, K = {k}, D = {d}, NUMBA mode (us)")
    for family in ("gaussian", "student-t"):
        names = ["mean", "sigma"] if family == "gaussian" else ["mean", "sigma", "nu"]
        symbols = [pt.matrix(n) if n != "nu" else pt.vector(n) for n in names]
        nu = symbols[2] if family == "student-t" else None
        row = []
        for label, build in (("Op", diagonal_log_density), ("elementwise", elementwise_density)):
            density = build(pt.as_tensor(y), pt.as_tensor(observed), *symbols[:2], nu)
            objective = pt.sum(pt.as_tensor(weights) * density)
            function = pytensor.function(
                symbols, [objective, *pytensor.grad(objective, symbols)], mode="NUMBA"
            )
            inputs = [values[n] for n in names]
            row.append((label, median_seconds(lambda f=function, i=inputs: f(*i)) * 1e6))
        ratio = row[1][1] / row[0][1]
        cells = ", ".join(f"{label} {us:.0f}" for label, us in row)
        print(f"  {family:10s} {cells}  (Op {ratio:.1f}x faster)")
    arguments = 1.0 + rng.exponential(1.0, t * k * d)
    vectorised = median_seconds(lambda: log_at_least_one(arguments)) * 1e6
    libm = median_seconds(lambda: libm_log(arguments)) * 1e6
    print(
        f"log of {arguments.size} values (us): vectorised {vectorised:.0f}, libm {libm:.0f} "
        f"({libm / vectorised:.1f}x)"
    )


if __name__ == "__main__":
    main()
