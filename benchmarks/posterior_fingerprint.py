"""Fingerprints of small fits of every family, to check that a refactoring keeps the
posterior: run it on two trees and diff the output (one line per configuration: the
posterior draws, the per-date probabilities, the pointwise log-likelihoods and
``fit_info`` without timings, each as a short hash).

    python benchmarks/posterior_fingerprint.py > after.txt
    git worktree add /tmp/before <commit>
    python benchmarks/posterior_fingerprint.py --tree /tmp/before > before.txt
    diff before.txt after.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

SMALL = {"draws": 40, "tune": 40, "chains": 2, "cores": 1, "seed": 4, "progressbar": False}
TWO = ["eq_return", "crypto_return"]
CONFIGS = [  # (config, world, columns, with a held-out stretch)
    ({"model": "bayes-hmm"}, "tvtp", TWO, False),
    ({"model": "bayes-hmm", "emission": "student-t"}, "tvtp", TWO, False),
    ({"model": "bayes-hmm", "covariance": "full"}, "tvtp", TWO, False),
    ({"model": "bayes-hmm", "identification": "ordered"}, "tvtp", TWO, True),
    ({"model": "bayes-hmm", "n_regimes": 3}, "tvtp", TWO, False),
    ({"model": "tvtp", "covariates": ["breadth_change", "spread_change"]}, "tvtp", TWO, False),
    ({"model": "hierarchical"}, "pooled", None, False),
    (
        {"model": "hierarchical", "identification": "ordered", "emission": "student-t"},
        "pooled",
        None,
        False,
    ),
    ({"model": "hierarchical", "covariates": ["breadth_change"]}, "tvtp", None, False),
    ({"model": "leadlag", "lag": 1}, "leadlag", None, False),
    ({"model": "leadlag", "lag": 0, "identification": "ordered"}, "leadlag", None, False),
]


def _hash(values) -> str:
    array = np.ascontiguousarray(np.asarray(values, dtype=float))
    return hashlib.md5(array.tobytes()).hexdigest()[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="a checkout whose regime_model to import first")
    args = parser.parse_args()
    if args.tree:
        sys.path.insert(0, args.tree)
    from regime_model.data.synthetic import (
        simulate_lead_lag_features,
        simulate_pooled_features,
        simulate_tvtp_features,
    )
    from regime_model.models import model_from_config

    worlds = {
        "tvtp": simulate_tvtp_features(200, seed=7)[0],
        "pooled": simulate_pooled_features(200, seed=3)[0],
        "leadlag": simulate_lead_lag_features(200, lag=1, seed=3)[0],
    }
    for config, world, columns, holdout in CONFIGS:
        features = worlds[world]
        holdout_start = str(features.frame.index[150].date()) if holdout else None
        try:
            model = model_from_config({**config, **SMALL}).fit(features, columns, holdout_start)
            result = getattr(model, "result_", model)  # fit returned the result before
        except Exception as exc:  # a configuration that fails is part of the fingerprint
            print(json.dumps(config), "ERROR", repr(exc)[:200])
            continue
        posterior = result.inference_data.posterior
        draws = np.concatenate([np.ravel(posterior[n].values) for n in sorted(posterior)])
        kinds = ("filtered", "smoothed", "predicted")
        # Single precision: the probabilities were stored so before they were float64.
        probabilities = np.concatenate(
            [np.ravel(getattr(result.probabilities, k).astype(np.float32)) for k in kinds]
        )
        loglik = result.inference_data.log_likelihood["y"].values
        info = {
            key: value
            for key, value in result.fit_info.items()
            if key not in ("sample_call_seconds", "sampling_seconds")
        }
        info_hash = hashlib.md5(json.dumps(info, sort_keys=True, default=str).encode())
        print(
            json.dumps(config),
            _hash(draws),
            _hash(probabilities),
            _hash(loglik),
            info_hash.hexdigest()[:10],
        )


if __name__ == "__main__":
    main()
