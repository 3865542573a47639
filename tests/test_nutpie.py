"""BayesianHMM sampled by nutpie (NUMBA-mode logp through the kernel Op's numba dispatch).

One small fit (T = 400, 2 chains x 300 + 300 draws), shared by the tests; a second one
with the same seed checks reproducibility. About 10 s with warm caches; the first run
compiles the model's NUMBA-mode graph (2-3 minutes on 2 cores), hence the slow mark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_models import assert_recovers_truth, simulate_hmm

from regime_model.models import BayesianHMM
from regime_model.results import RegimeResult

pytestmark = pytest.mark.slow

# No tune: the default, nutpie's 300 steps.
SETTINGS = dict(sampler="nutpie", draws=300, chains=2, seed=3, progressbar=False)


@pytest.fixture(scope="module")
def synthetic():
    return simulate_hmm(400, seed=1)


@pytest.fixture(scope="module")
def nutpie_fit(synthetic):
    return BayesianHMM(2, **SETTINGS).fit(synthetic[0]).result_


def test_nutpie_recovers_truth_with_diagnostics(nutpie_fit, synthetic):
    """The same recovery checks as PyMC's NUTS in test_models; diagnostics computed from
    nutpie's sample stats."""
    assert nutpie_fit.fit_info["sampler"] == "nutpie"
    posterior = nutpie_fit.inference_data.posterior
    assert (posterior.sizes["chain"], posterior.sizes["draw"]) == (2, 300)
    assert_recovers_truth(nutpie_fit, synthetic[1])
    diagnostics = nutpie_fit.diagnostics()
    assert diagnostics["max_rhat"] < 1.05
    assert diagnostics["min_ess_bulk"] > 100
    assert not diagnostics["label_switching"]
    assert nutpie_fit.fit_info["sampling_seconds"] > 0  # nutpie's own draw time
    assert nutpie_fit.fit_info["tuning_steps"] == 300
    # The gradient count covers tuning too: more than the kept draws' steps, and at least
    # one step per iteration of every chain.
    kept = int(nutpie_fit.inference_data.sample_stats["n_steps"].sum())
    counted = nutpie_fit.fit_info["gradient_evaluations"]
    assert counted > kept and counted >= 2 * (300 + 300)


def test_nutpie_chains_start_in_order_and_are_reproducible(nutpie_fit, synthetic):
    posterior = nutpie_fit.inference_data.posterior
    anchor = posterior["emission_mean"].sel(feature="eq_return")
    # Every chain keeps risk_on above risk_off from its first draw: started from EM, in order.
    first = anchor.isel(draw=slice(0, 20)).mean("draw")
    assert (first.sel(regime="risk_on") > first.sel(regime="risk_off") + 1.0).all()
    again = BayesianHMM(2, **SETTINGS).fit(synthetic[0]).result_
    np.testing.assert_array_equal(
        again.inference_data.posterior["transition"].to_numpy(),
        posterior["transition"].to_numpy(),
    )


def test_nutpie_result_round_trips(nutpie_fit, tmp_path):
    nutpie_fit.save(tmp_path / "run")
    loaded = RegimeResult.load(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.transition_matrix(), nutpie_fit.transition_matrix())
    assert loaded.diagnostics() == nutpie_fit.diagnostics()


def test_without_nutpie_the_default_sampler_says_what_to_install(monkeypatch, tmp_path, capsys):
    """nutpie is a dependency, but an environment can lack it: one line naming the
    package, exit 2, nothing written; --sampler nuts still works."""
    import sys

    from regime_model.cli import main
    from regime_model.models.nutpie_sampler import MissingBackendError

    monkeypatch.setitem(sys.modules, "nutpie", None)  # import nutpie -> ImportError
    features, _ = simulate_hmm(120, seed=1)
    with pytest.raises(MissingBackendError, match="pip install nutpie"):
        BayesianHMM(2, draws=20, tune=20, chains=2, progressbar=False).fit(features)
    path = tmp_path / "features.csv"
    features.save(path)
    arguments = ["fit", "--features", str(path), "--draws", "20", "--tune", "20"]
    assert main([*arguments, "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.splitlines()  # the phases reached, then the error
    error = lines[-1]
    assert [line for line in lines if "error" in line] == [error]
    assert error.startswith("regime: error: ")
    assert "pip install nutpie" in error and "--sampler nuts" in error
    assert not (tmp_path / "run").exists()
    assert main([*arguments, "--sampler", "nuts", "--out", str(tmp_path / "nuts")]) == 0
