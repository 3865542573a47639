"""Forward-filtering backward-sampling against the brute-force posterior over paths."""

from __future__ import annotations

import numpy as np
import pytest
from hmm_brute_force import brute_force, random_hmm
from scipy import stats

from regime_model.inference import hmm_posterior_sample, hmm_smoother
from regime_model.inference.forward_backward import _forward

N_DRAWS = 100_000


def path_frequencies(paths: np.ndarray, n_states: int) -> np.ndarray:
    """Empirical frequency of each path, indexed like itertools.product (first state is
    the most significant digit)."""
    codes = paths @ n_states ** np.arange(paths.shape[1] - 1, -1, -1)
    return np.bincount(codes, minlength=n_states ** paths.shape[1]) / len(paths)


@pytest.mark.parametrize(
    ("n_steps", "n_states", "time_varying"), [(4, 2, False), (4, 3, False), (3, 3, True)]
)
def test_path_frequencies_match_exact_posterior(n_steps, n_states, time_varying):
    rng = np.random.default_rng(31 + n_states + time_varying)
    log_initial, log_transition, log_emission = random_hmm(rng, n_steps, n_states, time_varying)
    expected = brute_force(log_initial, log_transition, log_emission).path_probs

    paths = hmm_posterior_sample(
        np.random.default_rng(0), log_initial, log_transition, log_emission, n_samples=N_DRAWS
    )
    observed = path_frequencies(paths, n_states)

    assert paths.shape == (N_DRAWS, n_steps)
    # Pearson chi-square over all K^T paths; with a fixed seed a correct sampler exceeds the
    # 1 - 1e-4 quantile with probability 1e-4, while a wrong conditional shifts some path
    # probability by far more than the sampling noise sqrt(p / N) ~ 1e-3.
    positive = expected > 1e-12
    assert observed[~positive].sum() == 0
    deviation = observed[positive] - expected[positive]
    chi_square = N_DRAWS * np.sum(deviation**2 / expected[positive])
    assert chi_square < stats.chi2.ppf(1 - 1e-4, df=positive.sum() - 1)
    # Same check in plain terms: each path within 5 binomial standard deviations.
    standard_error = np.sqrt(expected * (1 - expected) / N_DRAWS)
    assert np.all(np.abs(observed - expected) <= 5 * standard_error + 1e-12)


def test_samples_are_reproducible_by_seed():
    rng = np.random.default_rng(2)
    log_initial, log_transition, log_emission = random_hmm(rng, 50, 3, time_varying=False)

    def draw(seed):
        return hmm_posterior_sample(
            np.random.default_rng(seed), log_initial, log_transition, log_emission, n_samples=20
        )

    np.testing.assert_array_equal(draw(5), draw(5))
    assert not np.array_equal(draw(5), draw(6))


def test_log_space_steps_sample_the_smoothed_marginals():
    """Every fifth observation is extreme enough to force log-space steps; sampled paths
    must still avoid forbidden moves and reproduce the smoothed marginals."""
    rng = np.random.default_rng(8)
    n_steps, n_draws = 60, 20_000
    transition = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])
    log_emission = rng.normal(size=(n_steps, 3))
    log_emission[::5] *= 2000.0
    log_initial = np.log(np.full(3, 1 / 3))
    with np.errstate(divide="ignore"):
        log_transition = np.log(transition)
    sources = np.zeros(n_steps - 1, dtype=np.int64)  # every move by the one matrix
    log_step = _forward(log_initial, transition[None], log_transition[None], log_emission, sources)[
        5
    ]
    assert log_step.sum() >= n_steps // 5

    paths = hmm_posterior_sample(
        np.random.default_rng(1), log_initial, log_transition, log_emission, n_draws
    )

    assert np.all(transition[paths[:, :-1], paths[:, 1:]] > 0)
    smoothed = hmm_smoother(log_initial, log_transition, log_emission).smoothed_probs
    frequencies = np.stack([np.mean(paths == k, axis=0) for k in range(3)], axis=1)
    standard_error = np.sqrt(np.clip(smoothed * (1 - smoothed), 0, None) / n_draws)
    # 5 standard errors per entry: a correct sampler fails this with probability < 1e-4
    # over all 180 entries.
    assert np.all(np.abs(frequencies - smoothed) <= 5 * standard_error + 1e-12)
