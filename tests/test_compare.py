"""Held-out scoring (no look-ahead) and `regime compare` (ranking, standard errors, errors)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from regime_model.cli import main
from regime_model.compare import IncomparableRunsError, compare_runs, load_runs
from regime_model.data.features import FeatureSet
from regime_model.errors import DateRangeError
from regime_model.inference import hmm_filter
from regime_model.models import EMHMM, BayesianHMM
from regime_model.models.em_hmm import em_log_emission
from regime_model.models.observations import prepare_observations, select_features
from tests.test_models import simulate_hmm

HOLDOUT = "2021-01-01"


@pytest.fixture(scope="module")
def synthetic():
    return simulate_hmm(500, seed=11)


def _with_changed_tail(features: FeatureSet, after: str) -> FeatureSet:
    frame = features.frame.copy()
    frame.loc[frame.index >= after] *= -3.0
    return FeatureSet(frame, features.groups, features.freq)


def test_holdout_splits_dates_and_standardises_on_fitted_part_only(synthetic):
    features, _ = synthetic
    observations = prepare_observations(features, 2, holdout_start=HOLDOUT)
    fitted_dates = features.frame.index < HOLDOUT
    assert observations.n_fit == fitted_dates.sum()
    assert observations.n_holdout == (~fitted_dates).sum() > 0
    np.testing.assert_allclose(observations.center, features.frame[fitted_dates].mean())
    changed = prepare_observations(_with_changed_tail(features, HOLDOUT), 2, holdout_start=HOLDOUT)
    np.testing.assert_array_equal(changed.center, observations.center)
    np.testing.assert_array_equal(changed.scale, observations.scale)


@pytest.mark.parametrize("start", ["2000-01-01", "2030-01-01"])
def test_holdout_start_outside_the_data_is_an_error(synthetic, start):
    features, _ = synthetic
    with pytest.raises(DateRangeError, match="holdout start"):
        prepare_observations(features, 2, holdout_start=start)


def test_em_holdout_score_is_the_filter_at_the_fitted_parameters(synthetic):
    features, _ = synthetic
    result = EMHMM(2, n_restarts=3, seed=0).fit(features, holdout_start=HOLDOUT).result_
    observations = prepare_observations(select_features(features, None), 2, None, HOLDOUT)
    estimate = EMHMM(2, n_restarts=3, seed=0).estimate(observations.fitted_part())
    log_emission = em_log_emission(observations, estimate)
    filtered = hmm_filter(np.log(estimate.initial), np.log(estimate.transition), log_emission)
    # log p(y_t | y_1..t-1) = log sum_k P(z_t = k | y_1..t-1) p(y_t | z_t = k), written out
    # here rather than read from the filter's own log_predictive.
    expected = np.log((filtered.predicted_probs * np.exp(log_emission)).sum(axis=1))
    holdout = result.holdout_log_predictive()
    np.testing.assert_allclose(holdout.to_numpy(), expected[observations.n_fit :], rtol=1e-10)
    assert holdout.index[0] >= pd.Timestamp(HOLDOUT)
    assert len(result.log_likelihood()) == observations.n_fit
    assert result.fit_info["holdout_dates"] == observations.n_holdout


def test_holdout_score_has_no_look_ahead(synthetic):
    """Changing data from date c on changes nothing fitted and no score before c."""
    features, _ = synthetic
    model = BayesianHMM(2, sampler="map", seed=0, progressbar=False)
    base = model.fit(features, holdout_start=HOLDOUT).result_
    later = base.holdout_log_predictive().index[30]
    changed = model.fit(
        _with_changed_tail(features, str(later.date())), holdout_start=HOLDOUT
    ).result_
    np.testing.assert_array_equal(
        base.inference_data.posterior["transition"], changed.inference_data.posterior["transition"]
    )
    before, after = base.holdout_log_predictive(), changed.holdout_log_predictive()
    np.testing.assert_allclose(after[:later].iloc[:-1], before[:later].iloc[:-1], rtol=1e-12)
    assert not np.allclose(after[later:], before[later:])


@pytest.fixture(scope="module")
def em_runs(synthetic, tmp_path_factory):
    """A properly fitted EM run and one stopped after a single iteration, both saved."""
    features, _ = synthetic
    root = tmp_path_factory.mktemp("runs")
    good = EMHMM(2, n_restarts=4, seed=0).fit(features, holdout_start=HOLDOUT).result_
    poor = EMHMM(2, n_restarts=1, max_iter=1, seed=5).fit(features, holdout_start=HOLDOUT).result_
    good.save(root / "good")
    poor.save(root / "poor")
    return root


def test_compare_ranks_the_fitted_model_first_with_paired_standard_errors(em_runs):
    runs = load_runs([em_runs / "poor", em_runs / "good"])
    comparison = compare_runs(runs)
    table = comparison.table
    assert comparison.criterion == "holdout"
    assert list(table.index) == ["good", "poor"]
    scores = pd.DataFrame({name: run.holdout_log_predictive() for name, run in runs.items()})
    difference = scores["poor"] - scores["good"]
    assert table.loc["poor", "d_holdout"] == pytest.approx(difference.sum())
    assert table.loc["poor", "d_holdout_se"] == pytest.approx(
        np.sqrt(len(difference) * difference.var(ddof=1))
    )
    assert table.loc["good", "d_holdout"] == 0.0
    # a clear gap: more than two standard errors
    assert -table.loc["poor", "d_holdout"] > 2 * table.loc["poor", "d_holdout_se"]
    assert any("no PSIS-LOO" in message for message in comparison.warnings)


def test_compare_refuses_runs_on_different_observations(synthetic, em_runs, tmp_path):
    features, _ = synthetic
    EMHMM(2, n_restarts=2, seed=0).fit(features, ["eq_return"], holdout_start=HOLDOUT).result_.save(
        tmp_path / "one_column"
    )
    with pytest.raises(IncomparableRunsError, match="different observations"):
        compare_runs(load_runs([em_runs / "good", tmp_path / "one_column"]))
    EMHMM(2, n_restarts=2, seed=0).fit(features, holdout_start="2021-03-01").result_.save(
        tmp_path / "other_cut"
    )
    with pytest.raises(IncomparableRunsError, match="different dates"):
        compare_runs(load_runs([em_runs / "good", tmp_path / "other_cut"]))
    # Same columns, same dates, other values (a rebuilt or edited feature file).
    EMHMM(2, n_restarts=4, seed=0).fit(
        _with_changed_tail(features, "2020-06-01"), holdout_start=HOLDOUT
    ).result_.save(tmp_path / "other_values")
    with pytest.raises(IncomparableRunsError, match="fitted on different data"):
        compare_runs(load_runs([em_runs / "good", tmp_path / "other_values"]))


def test_compare_loo_between_sampled_runs_and_cli_json(synthetic, tmp_path, capsys):
    """PSIS-LOO is computed for sampled runs; K=2 (the truth) is not worse than K=3 by
    more than its standard error on the held-out score."""
    features, _ = synthetic
    for k in (2, 3):
        BayesianHMM(k, draws=150, tune=200, chains=2, seed=1, progressbar=False).fit(
            features, holdout_start=HOLDOUT
        ).result_.save(tmp_path / f"k{k}")
    assert main(["compare", str(tmp_path / "k2"), str(tmp_path / "k3"), "--format", "json"]) == 0
    output = json.loads(capsys.readouterr().out)
    rows = {row["run"]: row for row in output["runs"]}
    assert set(rows) == {"k2", "k3"}
    for row in rows.values():
        assert np.isfinite(row["elpd_loo"]) and row["p_loo"] > 0
        assert np.isfinite(row["holdout_elpd"])
    scores = [row["holdout_elpd"] for row in output["runs"]]
    assert scores == sorted(scores, reverse=True)
    assert output["runs"][0]["d_holdout"] == 0.0
    runner_up = output["runs"][1]
    assert runner_up["d_holdout"] == pytest.approx(scores[1] - scores[0])
    assert runner_up["d_holdout_se"] > 0
    assert max(row["d_loo_se"] for row in rows.values()) > 0
    # the extra regime of K=3 buys nothing significant on data generated with K=2
    gain_of_k3 = rows["k3"]["holdout_elpd"] - rows["k2"]["holdout_elpd"]
    assert gain_of_k3 < 2 * runner_up["d_holdout_se"]
    # One sign convention: 0 for the best, negative for the others, on both criteria.
    for criterion in ("holdout", "loo"):
        differences = sorted(row[f"d_{criterion}"] for row in rows.values())
        assert differences[-1] == 0.0 and differences[0] < 0
    held_out = int((features.frame.index >= pd.Timestamp(HOLDOUT)).sum())
    assert {row["holdout_dates"] for row in rows.values()} == {held_out}
    # The documented rule picks K = 2 (the truth) whether or not K = 3 scores higher,
    # as long as both pass their diagnostics; the text states it in one line.
    verdicts = {name: row["verdict"] for name, row in rows.items()}
    if "fail" not in verdicts.values():
        assert output["recommended"] == "k2", output["reason"]
    assert main(["compare", str(tmp_path / "k2"), str(tmp_path / "k3")]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.startswith("recommended:"))
    assert output["reason"] in line
    assert "negative is worse" in text


def test_the_recommendation_rule_prefers_the_smaller_model_within_two_standard_errors():
    from regime_model.compare import recommend

    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 0.5, 200)
    points = pd.DataFrame({"k2": base, "k3": base + 0.01 + rng.normal(0, 0.2, 200)})
    table = pd.DataFrame(
        {"verdict": ["pass", "pass"], "regimes": [2, 3], "parameters": [10, 18]},
        index=["k2", "k3"],
    )
    assert recommend(table, points, "holdout")[0] == "k2"  # +2 nats, se about 2.8
    points["k3"] = base + 0.2 + rng.normal(0, 0.2, 200)  # +40 nats, se about 2.8
    chosen, reason = recommend(table, points, "holdout")
    assert chosen == "k3" and "beaten by more than two standard errors" in reason
    table.loc["k3", "verdict"] = "fail"  # a failing run is never recommended
    assert recommend(table, points, "holdout")[0] == "k2"
    table["verdict"] = ["n/a", "fail"]  # a point estimate is never recommended
    assert recommend(table, points, "holdout")[0] is None
