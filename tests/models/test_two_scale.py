"""The two-scale family on a synthetic world with a known truth (a monthly liquidity
regime driving two markets' weekly regimes, equity closely and crypto barely): both
state paths and each market's coupling recovered; the coarse observations used when
they are published and not before; the exact forecast keeps the coarse regime within its
month; the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regime_model.cli import main
from regime_model.data.features import FeatureSet
from regime_model.data.synthetic import simulate_two_scale_features
from regime_model.models import TwoScaleHMM
from regime_model.models.two_scale_report import marginal, scale_probabilities

SETTINGS = dict(coarse_columns=["liquidity"], draws=500, chains=4, seed=2, progressbar=False)


@pytest.fixture(scope="module")
def world():
    return simulate_two_scale_features(520, seed=0)


@pytest.fixture(scope="module")
def fitted(world):
    features, _ = world
    return TwoScaleHMM(2, **SETTINGS).fit(features)


def _risk_on(result, scale: str) -> np.ndarray:
    table = scale_probabilities(result, scale, "smoothed")
    return table[("risk_on", "mean")].to_numpy()


def test_both_scales_and_each_markets_coupling_are_recovered(fitted, world):
    """Ten years of weeks (120 months): accuracy >= 0.9 on the coarse path and on each
    market's path, every coupling (P(risk_on | coarse risk_on) - P(risk_on | coarse
    risk_off)) within two posterior sd of the truth, and equity's coupling told apart
    from crypto's."""
    _, truth = world
    result = fitted.result_
    assert result.diagnostics()["verdict"] == "pass", result.diagnostics()["failures"]
    assert ((_risk_on(result, "coarse") > 0.5) == truth.coarse).mean() >= 0.9
    for m, market in enumerate(truth.markets):
        assert ((_risk_on(result, market) > 0.5) == truth.fine[:, m]).mean() >= 0.9
    posterior = result.inference_data.posterior
    coupling = {}
    for market in truth.markets:
        entry = posterior[f"{market}_entry"].to_numpy().reshape(-1, 2, 2)
        draws = entry[:, 1, 1] - entry[:, 0, 1]
        coupling[market] = draws
        assert abs(draws.mean() - truth.coupling[market]) < 2 * draws.std()
    assert (coupling["equity"] - coupling["crypto"]).mean() > 3 * np.hypot(
        coupling["equity"].std(), coupling["crypto"].std()
    )
    table = result.fit_info["model_summary"]["coupling"]
    differences = [
        row for row in table if row["quantity"].startswith("P(risk_on | coarse risk_on) -")
    ]
    assert [row["market"] for row in differences] == ["equity", "crypto"]
    assert differences[0]["mean"] == pytest.approx(coupling["equity"].mean())


def test_the_restart_form_recovers_its_own_world():
    """fHMM's form (each month's fine chains start afresh) on data it generated."""
    features, truth = simulate_two_scale_features(520, fine_entry="restart", seed=1)
    result = TwoScaleHMM(2, fine_entry="restart", **SETTINGS).fit(features).result_
    assert ((_risk_on(result, "coarse") > 0.5) == truth.coarse).mean() >= 0.9
    for m, market in enumerate(truth.markets):
        assert ((_risk_on(result, market) > 0.5) == truth.fine[:, m]).mean() >= 0.9
        entry = result.inference_data.posterior[f"{market}_entry"].to_numpy().reshape(-1, 2, 2)
        draws = entry[:, 1, 1] - entry[:, 0, 1]
        assert abs(draws.mean() - truth.coupling[market]) < 2 * draws.std()


def test_a_coarse_value_enters_when_its_period_ends_and_only_then(fitted, world):
    """Only each ended month's last-week value is used: other weeks' values do not matter,
    and the probabilities of the weeks before a month's end do not depend on its value."""
    features, _ = world
    frame = features.frame.copy()
    last_of_month = frame.index.to_period("M") != frame.index.shift(1, "W-FRI").to_period("M")
    moved = frame.copy()
    moved.loc[~last_of_month, "liquidity"] += 5.0  # every week but a month's last
    ours = fitted.observations(features)
    theirs = fitted.observations(FeatureSet(moved, features.groups, features.freq))
    np.testing.assert_array_equal(ours.values, theirs.values)
    # A month's end revalued: filtered probabilities change from that date on, not before
    # (in the features' own units, so that no standardisation moves with the value).
    closing = np.flatnonzero(last_of_month)[40]
    frame.iloc[closing, frame.columns.get_loc("liquidity")] += 3.0
    raw = TwoScaleHMM(2, **{**SETTINGS, "standardise": False})
    later = raw.quantities_at(_point(fitted), raw.observations(features)).filtered
    changed = raw.quantities_at(
        _point(fitted), raw.observations(FeatureSet(frame, features.groups, features.freq))
    ).filtered
    np.testing.assert_allclose(changed[:closing], later[:closing], rtol=0, atol=1e-12)
    assert np.abs(changed[closing] - later[closing]).max() > 1e-3


def _point(model) -> dict:
    """The first posterior draw of every free variable."""
    draws = model.parameter_draws_
    return {name: draws[name].to_numpy()[0, 0] for name in draws.data_vars}


def test_the_forecast_keeps_the_coarse_regime_until_the_next_month(fitted):
    """The exact forecast along the coming weeks: the coarse marginal is the last
    filtered one until the first week of the next month, when it moves; every step's
    marginals are distributions."""
    result = fitted.result_
    rows = pd.DataFrame(result.fit_info["model_summary"]["forecast"])
    coarse = rows[(rows["scale"] == "coarse") & (rows["regime"] == "risk_on")]
    last = marginal(result.probabilities.filtered[:, -1, :].astype(float), result, "coarse")
    dates = pd.DatetimeIndex(coarse["date"])
    assert list(dates) == list(result.dates[-1] + pd.to_timedelta(7 * np.arange(1, 14), "D"))
    same_month = dates.to_period("M") == result.dates[-1].to_period("M")
    assert same_month.sum() < len(dates)  # the horizon reaches the next month
    np.testing.assert_allclose(
        coarse["mean"].to_numpy()[same_month], last[:, 1].mean(), rtol=0, atol=1e-9
    )
    assert abs(coarse["mean"].to_numpy()[~same_month][0] - last[:, 1].mean()) > 1e-4
    totals = rows.groupby(["horizon", "scale"])["mean"].sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0, atol=1e-9)


def test_the_command_line_fits_and_refuses_what_it_cannot_fit(world, tmp_path, capsys):
    features, _ = world
    path = tmp_path / "weekly.csv"
    features.frame.to_csv(path)
    groups = [f"--group={c}={g}" for c, g in features.groups.items()]
    base = ["fit", "--features", str(path), *groups, "--model", "two-scale", "--quiet"]
    small = ["--draws", "100", "--tune", "100", "--chains", "2"]
    code = main([*base, "--coarse-columns", "liquidity", *small, "--out", str(tmp_path / "run")])
    assert code == 0
    assert main(["summary", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "Coupling:" in out and "P(risk_on | coarse risk_on)" in out
    for extra, message in (
        ([], "--model two-scale needs --coarse-columns"),
        (["--coarse-columns", "nope"], "coarse column"),
        (["--coarse-columns", "liquidity", "--markets", "equity"], "belong to none"),
    ):
        code = main([*base, *extra, *small, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("holdout", [None, "2022-06-03"])
def test_the_sampled_likelihood_is_the_kernels_on_the_full_transition_stack(world, holdout):
    """The likelihood the sampler differentiates takes the two moves and which one each
    date makes (a bank and its indices); on the (T-1, S, S) stack the per-draw pass reads,
    the general kernel gives the same value over the fitted dates."""
    import pymc as pm
    from pymc.pytensorf import compile as compile_pymc

    from regime_model.inference import hmm_loglik_and_grad

    features, _ = world
    model = TwoScaleHMM(2, **SETTINGS)
    observations = model.observations(features, holdout_start=holdout)
    composition, pymc_model, graphs = model.compose(observations)
    free = list(pymc_model.free_RVs)
    evaluate = compile_pymc(free, [graphs.log_likelihood, *graphs.inputs[:4]])
    likelihood, log_initial, bank, log_emission, moves = evaluate(*pm.draw(free, random_seed=1))
    # The stack: a period's first date opens it (bank[0]), every other moves within (bank[1]).
    opens = composition.opens(observations)[1:]
    np.testing.assert_array_equal(moves, np.where(opens, 0.0, 1.0))
    log_transition = np.where(opens[:, None, None], bank[0][None], bank[1][None])
    n_fit = observations.n_fit
    expected = hmm_loglik_and_grad(log_initial, log_transition[: n_fit - 1], log_emission[:n_fit])
    assert n_fit == (len(observations.dates) if holdout is None else 387)
    np.testing.assert_allclose(likelihood, expected.marginal_loglik, rtol=1e-12)
