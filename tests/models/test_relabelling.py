"""Consistent labels across draws (Stephens' relabelling), naming on the anchor, the
permutation of every regime-carrying variable, and the label-mixing checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from regime_model.models import BayesianHMM
from regime_model.models.diagnostics import (
    MAX_MEAN_OUTSIDE_BAND,
    MAX_SPLIT_DATES,
    _label_failures,
    label_checks,
)
from regime_model.models.relabelling import (
    all_permutations,
    consistent_labels,
    label_draws,
    match_to_pivot,
    move_permutations,
    name_order,
    permute_draws,
    permute_posterior,
)


def _probability_draws(
    rng, n_draws: int, n_dates: int, n_regimes: int, noise: float = 1.0
) -> np.ndarray:
    """(N, T, K) draws of a persistent path's probabilities, sure up to ``noise``."""
    path = np.repeat(rng.integers(n_regimes, size=n_dates // 20 + 1), 20)[:n_dates]
    shape = (n_draws, n_dates, n_regimes)
    logits = 4.0 * np.eye(n_regimes)[path][None] + rng.normal(0, noise, shape)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=-1, keepdims=True)


def test_matching_picks_the_permutation_of_least_kl_divergence_brute_force():
    rng = np.random.default_rng(0)
    draws = _probability_draws(rng, 30, 50, 3)
    pivot = rng.dirichlet(np.ones(3), size=50)
    chosen = match_to_pivot(draws, pivot)
    for draw, perm in zip(draws, chosen, strict=True):
        divergences = {
            candidate: (draw[:, list(candidate)] * np.log(draw[:, list(candidate)] / pivot)).sum()
            for candidate in itertools.permutations(range(3))
        }
        assert tuple(perm) == min(divergences, key=divergences.get)


def test_randomly_permuted_draws_get_one_consistent_labelling():
    rng = np.random.default_rng(1)
    clean = _probability_draws(rng, 200, 120, 3)
    scrambled = np.empty_like(clean)
    applied = all_permutations(3)[rng.integers(6, size=200)]  # labels as a sampler may give
    for n, perm in enumerate(applied):
        scrambled[n][:, perm] = clean[n]  # old label perm[k] holds true regime k
    permutations, pivot, iterations = consistent_labels(scrambled)
    relabelled = np.stack(
        [draw[:, perm] for draw, perm in zip(scrambled, permutations, strict=True)]
    )
    # Every draw now agrees with every other: one fixed permutation away from the truth.
    offset = {
        tuple(np.argsort(sampled)[perm])  # new label j -> true regime
        for perm, sampled in zip(permutations, applied, strict=True)
    }
    assert len(offset) == 1
    assert np.allclose(relabelled.mean(axis=0), pivot)
    assert iterations > 1
    # The sorted result is a fixed point: matching it again changes nothing.
    assert (match_to_pivot(relabelled, pivot) == np.arange(3)).all()


def test_names_follow_the_anchor_posterior_mean_and_report_how_sure_they_are():
    rng = np.random.default_rng(2)
    anchor = np.column_stack([rng.normal(1.0, 0.1, 1000), rng.normal(-1.0, 0.1, 1000)])
    order, separation = name_order(anchor)
    assert order.tolist() == [1, 0]  # the lower mean is risk_off
    assert separation.tolist() == [1.0]
    close = np.column_stack([rng.normal(0.05, 0.1, 4000), rng.normal(0.0, 0.1, 4000)])
    order, separation = name_order(close)
    assert order.tolist() == [1, 0]
    assert 0.55 < separation[0] < 0.75  # P(N(0.05, 0.14) > 0) = 0.64
    scales = np.column_stack([np.full(10, 2.0), np.full(10, 1.0)])
    assert name_order(scales, descending=True)[0].tolist() == [0, 1]  # calm is risk_on


def test_labelling_names_regimes_after_matching_not_per_draw():
    # Anchor means that cross between draws must not swap a draw's labels: the regime
    # paths agree, so no draw is permuted, and one name order serves them all.
    rng = np.random.default_rng(3)
    draws = _probability_draws(rng, 400, 100, 2)
    anchor = np.column_stack([rng.normal(0.0, 0.1, 400), rng.normal(0.05, 0.1, 400)])
    assert 0.2 < (anchor[:, 0] > anchor[:, 1]).mean() < 0.5  # a per-draw sort would swap these
    labelling = label_draws(draws, anchor)
    assert labelling.switched_share == 0.0
    assert (labelling.permutations == [0, 1]).all()
    assert labelling.discordant_share == 0.0
    assert 0.5 < labelling.separation[0] < 0.8


def test_move_permutation_matches_permuting_the_full_matrix():
    rng = np.random.default_rng(4)
    for perm in all_permutations(3):
        matrix = rng.normal(size=(3, 3))
        off_diagonal = ~np.eye(3, dtype=bool)
        moves = matrix[off_diagonal]  # origin-major, as tvtp's move labels
        permuted = permute_draws(moves[None], perm[None], (("move", 0),))[0]
        assert np.array_equal(permuted, matrix[np.ix_(perm, perm)][off_diagonal])
    assert move_permutations(np.array([[1, 0]])).tolist() == [[1, 0]]


def test_relabelling_a_posterior_permutes_every_regime_variable_alike():
    model = BayesianHMM(3)
    assert model.identification == "relabelled"  # bayes-hmm's default
    rng = np.random.default_rng(5)
    mean = rng.standard_normal((2, 5, 3, 2))
    transition = rng.dirichlet(np.ones(3), size=(2, 5, 3))
    posterior = xr.Dataset(
        {
            "regime_mean": (("chain", "draw", "r", "f"), mean),
            "mean": (("chain", "draw", "r", "f"), mean),
            "sigma": (("chain", "draw", "r", "f"), np.exp(mean)),
            "transition": (("chain", "draw", "regime", "regime_to"), transition),
            "nu": (("chain", "draw", "f"), mean[:, :, 0, :]),  # not per regime: untouched
        }
    )
    permutations = all_permutations(3)[rng.integers(6, size=(2, 5))]
    composition = model.components(None, None)  # the Gaussian family needs no data here
    permuted = permute_posterior(posterior, permutations, composition.permute)
    for chain, draw in np.ndindex(2, 5):
        order = permutations[chain, draw]
        for name in ("regime_mean", "mean"):
            assert np.array_equal(permuted[name][chain, draw], mean[chain, draw][order])
        assert np.array_equal(permuted["sigma"][chain, draw], np.exp(mean[chain, draw][order]))
        expected = transition[chain, draw][np.ix_(order, order)]
        assert np.array_equal(permuted["transition"][chain, draw], expected)
    assert permuted["nu"].equals(posterior["nu"])


def test_label_checks_fail_mixed_labels_and_pass_consistent_ones():
    rng = np.random.default_rng(6)
    consistent = _probability_draws(rng, 400, 200, 2, noise=0.3).astype(np.float32)
    checks = label_checks(consistent)
    assert checks["mean_outside_band_share"] <= MAX_MEAN_OUTSIDE_BAND
    assert checks["split_date_share"] <= MAX_SPLIT_DATES
    # Swap the labels of 7% of the draws: a sort on an uninformative anchor does this.
    mixed = consistent.copy()
    mixed[:28] = mixed[:28, :, ::-1]
    checks = label_checks(mixed)
    assert checks["mean_outside_band_share"] > 0.5
    base = {"label_switching": False, "discordant_draw_share": 0.0, **label_checks(mixed)}
    failures = _label_failures(base, ["risk_off", "risk_on"])
    assert any("outside its own 90% band" in failure for failure in failures)
    # 30% swapped: the band spans nearly [0, 1] on most dates.
    mixed[:120] = consistent[:120, :, ::-1]
    base.update(label_checks(mixed))
    assert base["split_date_share"] > 0.9
    failures = _label_failures(base, ["risk_off", "risk_on"])
    assert any("the labels are mixed" in failure for failure in failures)


@pytest.mark.parametrize("n_regimes", [2, 3])
def test_identity_labelling_is_kept_for_draws_that_agree(n_regimes):
    draws = _probability_draws(np.random.default_rng(7), 50, 80, n_regimes)
    permutations, _, iterations = consistent_labels(draws)
    assert (permutations == np.arange(n_regimes)).all() and iterations == 1
