"""Markov-switching autoregression (mean-adjusted, Hamilton's form) as an HMM on regime
histories, checked against published maximum-likelihood results.

The oracles are the fixtures statsmodels ships in its wheel (read from it, data and
filtered probabilities; the parameter vectors and log-likelihoods below are copied from
statsmodels/tsa/regime_switching/tests/test_markov_autoregression.py, which took them
from E-views and Stata):

* Hamilton (1989) US real GNP growth, 1951Q1-1984Q4, MS-AR(4) with a switching mean
  (E-views): log-likelihood -181.26339 and the filtered probabilities;
* the same data, MS-AR(2) with switching mean and AR coefficients (Stata's manual,
  mswitch): -179.32354;
* Filardo (1994) US industrial production growth, MS-AR(4) whose transitions depend on
  the lagged leading indicator through a logistic link: -586.5718 and the filtered
  probabilities.

At the published parameters our log-likelihood must match the published value to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy.special import expit

from regime_model.inference import hmm_filter, hmm_loglik_and_grad
from regime_model.inference.stationary import stationary_numpy
from regime_model.models.autoregression import (
    autoregressive_log_density,
    history_log_initial,
    history_log_transition,
    regime_histories,
    regime_marginals,
)
from regime_model.models.stationarity import coefficients_from_partial_autocorrelations

fixtures = pytest.importorskip(
    "statsmodels.tsa.regime_switching.tests.test_markov_autoregression",
    reason="statsmodels (the dev extra) holds the published fixtures",
)
RESULTS = Path(fixtures.__file__).parent / "results"


def _regime_transition(p00: float, p10: float) -> np.ndarray:
    """statsmodels' p[0->0], p[1->0] as a row-stochastic (from, to) matrix."""
    return np.array([[p00, 1.0 - p00], [p10, 1.0 - p10]])


def _history_inputs(y, transition, mean, ar, sigma, order):
    """(log_initial (S,), log_transition, log_emission (T', S)) of the history chain.

    ``transition`` (K, K) or (T, K, K), entry t the move into date t (statsmodels' layout
    for covariate-driven transitions)."""
    k = len(mean)
    log_transition = np.log(np.maximum(transition, 1e-20))  # statsmodels' floor
    if transition.ndim == 2:  # stationary, then p moves by the one matrix
        log_stationary = np.log(np.maximum(stationary_numpy(transition), 1e-20))
        first_moves = np.broadcast_to(log_transition, (order, k, k))
        log_initial = history_log_initial(log_stationary, first_moves, k, order).eval()
        moves = log_transition
    else:
        # statsmodels: the oldest regime (the date before the sample) is stationary under
        # the first matrix, and the moves into dates 0..p build the first history (the
        # oldest regime then summed out).
        oldest = np.log(np.maximum(stationary_numpy(transition[0]), 1e-20))
        joint = history_log_initial(oldest, log_transition[: order + 1], k, order + 1).eval()
        log_initial = np.logaddexp.reduce(joint.reshape(k ** (order + 1), k), axis=-1)
        moves = log_transition[order + 1 :]
    log_history_transition = history_log_transition(moves, k, order)
    log_emission = _log_emission(y, mean, ar, sigma, k, order)[order:].eval()
    return log_initial, log_history_transition, log_emission


def _log_emission(y, mean, ar, sigma, k, order):
    """(T, S) of one series: ``mean`` (K,), ``ar`` (K, p) or (p,), ``sigma`` (K,) or ()."""
    values = np.asarray(y, dtype=float)[:, None]
    return autoregressive_log_density(
        values,
        np.ones_like(values),
        order,
        np.array([0]),
        k,
        pt.as_tensor(mean)[:, None],
        pt.broadcast_to(pt.as_tensor(sigma), (k,))[:, None],
        pt.as_tensor(ar)[..., None],
        mean_adjusted=True,
    )


def test_histories_shift_one_step_and_the_transition_rows_stay_stochastic():
    histories = regime_histories(2, 2)
    assert histories.shape == (8, 3) and list(histories[5]) == [1, 0, 1]  # s_t most significant
    transition = np.array([[0.9, 0.1], [0.3, 0.7]])
    expanded = np.exp(history_log_transition(np.log(transition), 2, 2))
    np.testing.assert_allclose(expanded.sum(axis=1), 1.0)
    # (1, 0, 1) -> (s, 1, 0), states 0b010 and 0b110, with P[1, s]; nothing else.
    expected = np.zeros(8)
    expected[[0b010, 0b110]] = transition[1]
    np.testing.assert_allclose(expanded[0b101], expected)
    # The stationary joint law of three consecutive regimes sums to one.
    stationary = stationary_numpy(transition)
    first = np.exp(
        history_log_initial(np.log(stationary), np.log(np.stack([transition] * 2)), 2, 2).eval()
    )
    np.testing.assert_allclose(first.sum(), 1.0)
    np.testing.assert_allclose(regime_marginals(first, 2, 2), stationary)


def test_hamilton_1989_ar4_switching_mean_matches_e_views():
    p00, p10, mean0, mean1, variance, *ar = np.r_[
        0.754673, 0.095915, -0.358811, 1.163516, np.exp(-0.262658) ** 2,
        0.013486, -0.057521, -0.246983, -0.212923,
    ]  # fmt: skip
    inputs = _history_inputs(
        np.asarray(fixtures.rgnp),
        _regime_transition(p00, p10),
        np.array([mean0, mean1]),
        np.array(ar),
        np.sqrt(variance),
        order=4,
    )
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-181.26339)) < 1e-4
    filtered = regime_marginals(hmm_filter(*inputs).filtered_probs, 2, 4)
    np.testing.assert_allclose(filtered[:, 1], fixtures.hamilton_ar4_filtered, atol=1e-5)


def test_hamilton_data_ar2_switching_mean_and_ar_matches_stata():
    p00, p10, mean0, mean1, variance, ar1_0, ar1_1, ar2_0, ar2_1 = np.r_[
        0.3812383, 0.3564492, -0.0055216, 1.195482, 0.6677098**2,
        0.3710719, 0.4621503, 0.7002937, -0.3206652,
    ]  # fmt: skip
    inputs = _history_inputs(
        np.asarray(fixtures.rgnp),
        _regime_transition(p00, p10),
        np.array([mean0, mean1]),
        np.array([[ar1_0, ar2_0], [ar1_1, ar2_1]]),  # (K, p): regime 0's lags, regime 1's
        np.sqrt(variance),
        order=2,
    )
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-179.32354)) < 1e-4


def _filardo_data():
    import pandas as pd

    return pd.read_csv(RESULTS / "mar_filardo.csv")


def _filardo_features():
    """Monthly industrial production growth and the leading indicator, every month of the
    fixture (statsmodels drops the first one, whose leading value drives the move into
    its first modelled month; here the transition into month t uses month t-1's value)."""
    import pandas as pd

    from regime_model.data.features import FeatureSet

    data = _filardo_data()
    dates = pd.date_range("1948-01-31", periods=len(data), freq="ME", name="date")
    frame = pd.DataFrame(
        {"ip_growth": data["dlip"].to_numpy(), "leading": data["dmdlleading"].to_numpy()},
        index=dates,
    )
    return FeatureSet(frame, {"ip_growth": "macro", "leading": "macro"}, "weekly")


# Filardo's MS-AR(4) as statsmodels reports it: logit P(0 -> 0) = c0 + b0 x and
# logit P(1 -> 0) = c1 + b1 x in the raw leading indicator x; regime 0 is expansion.
FILARDO = dict(
    c0=4.35941747, c1=-1.6493936, b0=1.7702123, b1=0.9945672,
    means=np.array([0.517298, -0.865888]), sigma=np.exp(-0.362469),
    ar=np.array([0.189474, 0.079344, 0.110944, 0.122251]),
)  # fmt: skip


def _filardo_logit(center: float, scale: float, regimes=(0, 1)):
    """Filardo's transition parameters in ours: (intercept (2,), coefficient (2, 1)) of
    the moves regimes[0] -> regimes[1] and back, against staying, in the covariate
    standardised with ``center`` and ``scale`` (x = center + scale z)."""
    f = FILARDO
    leave = {0: (-f["c0"], -f["b0"]), 1: (f["c1"], f["b1"])}  # log P(i -> j) / P(i -> i)
    pairs = [leave[origin] for origin in regimes]
    intercept = np.array([c + b * center for c, b in pairs])
    return intercept, np.array([[b * scale] for _, b in pairs])


def test_filardo_1994_ar4_with_covariate_driven_transitions_matches_the_fixture():
    data = _filardo_data()
    y = data["dlip"].iloc[1:].to_numpy()
    leading = data["dmdlleading"].iloc[:-1].to_numpy()  # last month's leading indicator
    f = FILARDO
    stay0 = expit(f["c0"] + f["b0"] * leading)
    enter0 = expit(f["c1"] + f["b1"] * leading)
    transition = np.stack([np.stack([stay0, 1 - stay0], -1), np.stack([enter0, 1 - enter0], -1)], 1)
    inputs = _history_inputs(y, transition, f["means"], f["ar"], f["sigma"], order=4)
    assert abs(hmm_loglik_and_grad(*inputs).marginal_loglik - (-586.5718)) < 1e-4
    filtered = regime_marginals(hmm_filter(*inputs).filtered_probs, 2, 4)
    np.testing.assert_allclose(filtered[:, 0], data["filtered_0"].iloc[5:], atol=1e-5)


@pytest.mark.parametrize("initial", ["stationary-first", "stationary"])
def test_the_fitted_tvtp_models_mean_adjusted_form_gives_filardos_likelihood(initial):
    """Through the model class (tvtp, mean-adjusted AR(4), switching mean): at Filardo's
    published parameters the per-date log predictive densities add up to -586.5718 and
    the filtered probabilities are statsmodels', when the chain starts as statsmodels
    starts it (``initial="stationary-first"``: the stationary law of the first month's
    matrix). The default start (of the matrix at average covariates) is another model,
    and its likelihood differs (-586.749): the test tells the two apart.

    The first month's growth is marked unobserved: statsmodels' sample starts a month
    later (that month's leading value only drives the first move), so its likelihood
    conditions on months 1-4 and starts at month 5, and so does ours."""
    from dataclasses import replace

    from regime_model.models.covariates import standardise_covariates
    from regime_model.models.tvtp import TVTPHMM

    model = TVTPHMM(
        2, ar_order=4, ar_form="mean-adjusted", switching="mean", covariates=["leading"],
        initial=initial, standardise=False, progressbar=False,
    )  # fmt: skip
    observations = model.observations(_filardo_features())
    first_unobserved = observations.observed.copy()
    first_unobserved[0] = 0.0
    observations = replace(
        observations,
        observed=first_unobserved,
        values=np.where(first_unobserved > 0, observations.values, 0.0),
    )
    covariates = standardise_covariates(observations)
    intercept, coefficient = _filardo_logit(covariates.center[0], covariates.scale[0])
    parameters = {
        "regime_mean": FILARDO["means"][:, None],
        "shared_scale": np.array([FILARDO["sigma"]]),
        "ar_partial": _partial_autocorrelations(FILARDO["ar"])[:, None],
        "transition_intercept": intercept,
        "transition_coefficient": coefficient,
    }
    quantities = model.quantities_at(parameters, observations)
    np.testing.assert_allclose(quantities.pointwise_loglik[:5], 0.0, atol=1e-12)
    log_likelihood = quantities.pointwise_loglik.sum()
    if initial == "stationary":
        assert abs(log_likelihood - (-586.5718)) > 0.1, log_likelihood
        return
    assert abs(log_likelihood - (-586.5718)) < 1e-4
    np.testing.assert_allclose(
        quantities.filtered[5:, 0], _filardo_data()["filtered_0"].iloc[5:], atol=1e-5
    )


def test_the_gradient_through_the_histories_matches_finite_differences():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(60).cumsum() * 0.1
    k, order = 2, 2

    def log_likelihood(mean, ar, log_sigma, logit_stay):
        from regime_model.inference import hmm_log_likelihood

        stay = pt.sigmoid(logit_stay)
        transition = pt.stack([pt.stack([stay[0], 1 - stay[0]]), pt.stack([1 - stay[1], stay[1]])])
        log_transition = pt.log(transition)
        log_initial = history_log_initial(
            pt.log(pt.as_tensor(np.full(k, 0.5))), pt.stack([log_transition] * order), k, order
        )
        return hmm_log_likelihood(
            log_initial,
            history_log_transition(log_transition, k, order),
            _log_emission(y, mean, ar, pt.exp(log_sigma), k, order),
        )

    import pytensor

    pytensor.gradient.verify_grad(
        log_likelihood,
        [np.array([-0.3, 0.4]), np.array([[0.2, -0.1], [0.5, 0.1]]), np.array([-0.2, 0.1]),
         np.array([1.5, 2.0])],
        rng=rng,
        eps=1e-6,
        abs_tol=1e-5,
        rel_tol=1e-5,
    )  # fmt: skip


def _partial_autocorrelations(phi: np.ndarray) -> np.ndarray:
    """(..., p) AR coefficients -> (..., p) partial autocorrelations: the step-down
    recursion, inverse of the model's Durbin-Levinson map."""
    phi = np.array(phi, dtype=float)
    order = phi.shape[-1]
    partial = np.empty_like(phi)
    for k in range(order, 0, -1):
        r = phi[..., k - 1].copy()
        partial[..., k - 1] = r
        head = phi[..., : k - 1]
        phi = (head + r[..., None] * head[..., ::-1]) / (1.0 - r[..., None] ** 2)
    return partial


def _gnp_features():
    import pandas as pd

    from regime_model.data.features import FeatureSet

    y = np.asarray(fixtures.rgnp, dtype=float)
    dates = pd.date_range("1951-03-31", periods=len(y), freq="QE", name="date")
    frame = pd.DataFrame({"gnp_growth": y}, index=dates)
    return FeatureSet(frame, {"gnp_growth": "macro"}, "weekly")


@pytest.mark.parametrize(
    ("order", "switching_ar", "ar", "loglik"),
    [
        (4, False, [0.013486, -0.057521, -0.246983, -0.212923], -181.26339),
        (2, True, [[0.3710719, 0.7002937], [0.4621503, -0.3206652]], -179.32354),
    ],
)
def test_the_fitted_models_mean_adjusted_form_gives_the_published_likelihood(
    order, switching_ar, ar, loglik
):
    """Through the model class (BayesianHMM(ar_form="mean-adjusted")), not the kernel
    functions alone: at the published parameters its per-date log predictive densities
    add up to E-views' / Stata's log-likelihood, and (AR(4)) its filtered regime
    probabilities are E-views'."""
    from regime_model.models import BayesianHMM

    if order == 4:  # E-views
        p00, p10, means, sigma = 0.754673, 0.095915, [-0.358811, 1.163516], np.exp(-0.262658)
    else:  # Stata
        p00, p10, means, sigma = 0.3812383, 0.3564492, [-0.0055216, 1.195482], 0.6677098
    model = BayesianHMM(
        2, ar_order=order, ar_form="mean-adjusted", switching="mean", switching_ar=switching_ar,
        standardise=False, progressbar=False,
    )  # fmt: skip
    observations = model.observations(_gnp_features())
    partial = _partial_autocorrelations(np.asarray(ar))
    np.testing.assert_allclose(
        coefficients_from_partial_autocorrelations(partial[..., None], order)[..., 0], ar
    )
    parameters = {
        "regime_mean": np.array(means)[:, None],
        "shared_scale": np.array([sigma]),
        "ar_partial": partial[..., None],
        "transition": _regime_transition(p00, p10),
    }
    quantities = model.quantities_at(parameters, observations)
    np.testing.assert_allclose(
        quantities.pointwise_loglik[:order], 0.0, atol=1e-12
    )  # conditioned on
    assert abs(quantities.pointwise_loglik.sum() - loglik) < 1e-4
    if order == 4:
        np.testing.assert_allclose(
            quantities.filtered[order:, 1], fixtures.hamilton_ar4_filtered, atol=1e-5
        )


# Divergent transitions allowed in these 4 x 1000-draw fits. The count is not the same
# in every process (the compiled log density's last bits depend on the order of
# PyTensor's rewrites, and NUTS trajectories amplify them): Hamilton's fit gave 0 warm
# and 1 in a fresh clone. A handful among 4,000 is noise; a real geometry problem gives
# tens. Every other diagnostic must pass.
MAX_DIVERGENCES = 5


def _assert_within_two_sd(model, published: dict[str, np.ndarray]) -> None:
    """Every published estimate within two posterior sd of the posterior mean."""
    posterior = model.result_.inference_data.posterior
    for name, value in published.items():
        draws = posterior[name]
        mean = draws.mean(("chain", "draw")).to_numpy()
        sd = draws.std(("chain", "draw")).to_numpy()
        assert np.all(np.abs(mean - value) <= 2 * sd), (name, mean, sd, value)


def _assert_covers(model, published: dict[str, np.ndarray]) -> None:
    """:func:`_assert_within_two_sd`, and the fit's diagnostics passing (up to
    ``MAX_DIVERGENCES`` divergences)."""
    _assert_within_two_sd(model, published)
    diagnostics = model.result_.diagnostics()
    others = [failure for failure in diagnostics["failures"] if "divergent" not in failure]
    assert not others, diagnostics["failures"]
    assert diagnostics["divergences"] <= MAX_DIVERGENCES, diagnostics["failures"]


def test_the_posterior_of_hamiltons_model_covers_the_published_estimates():
    """Hamilton (1989) MS-AR(4), switching mean, fitted by the default sampler with the
    default weak priors (standardised units, stickiness 10): every published estimate
    (E-views) lies within two posterior sd of the posterior mean, and the diagnostics
    pass. Measured: the largest distance is 1.65 sd (phi_1: 0.23 +- 0.13 against 0.013);
    the low-growth mean is wide (-0.36 published, posterior sd 0.67), as 135 quarters
    with a few recessions leave it."""
    from regime_model.models import BayesianHMM

    model = BayesianHMM(
        2, ar_order=4, ar_form="mean-adjusted", switching="mean", seed=1, progressbar=False
    ).fit(_gnp_features())
    published = {
        "emission_mean": np.array([[-0.358811], [1.163516]]),
        "emission_scale": np.full((2, 1), np.exp(-0.262658)),
        "ar_coefficient": np.array([0.013486, -0.057521, -0.246983, -0.212923])[:, None],
        "transition": _regime_transition(0.754673, 0.095915),
    }
    _assert_covers(model, published)


def test_the_posterior_of_filardos_model_covers_the_published_estimates():
    """Filardo (1994) MS-AR(4) with logistic covariate-driven transitions (tvtp,
    mean-adjusted, switching mean), fitted by the default sampler with the default weak
    priors and statsmodels' start: every published estimate lies within two posterior sd
    of the posterior mean, transitions included (in the standardised leading indicator),
    and the diagnostics pass. Measured: the largest distance is 0.9 sd (the expansion's
    exit intercept: -3.90 +- 0.52 against -4.36); warm, 15 s."""
    from regime_model.models.covariates import standardise_covariates
    from regime_model.models.tvtp import TVTPHMM

    model = TVTPHMM(
        2, ar_order=4, ar_form="mean-adjusted", switching="mean", covariates=["leading"],
        initial="stationary-first", seed=1, progressbar=False,
    ).fit(_filardo_features())  # fmt: skip
    covariates = standardise_covariates(model.observations_)
    # Ours are named on the mean, low first: (recession, expansion) = Filardo's (1, 0).
    intercept, coefficient = _filardo_logit(covariates.center[0], covariates.scale[0], (1, 0))
    published = {
        "emission_mean": FILARDO["means"][::-1, None],
        "emission_scale": np.full((2, 1), FILARDO["sigma"]),
        "ar_coefficient": FILARDO["ar"][:, None],
        "transition_intercept": intercept,
        "transition_coefficient": coefficient,
    }
    _assert_covers(model, published)


def test_the_posterior_of_statas_model_covers_the_published_estimates():
    """Stata's MS-AR(2) with switching mean and AR coefficients (mswitch, on Hamilton's
    GNP data), fitted by the default sampler with a flat transition prior (stickiness 1:
    the published regimes barely persist, P(stay) 0.38 and 0.64, which the default
    sticky prior pulls 3 sd away) and longer chains (4 x 3000 after 1000 tuning steps):
    every published estimate lies within two posterior sd of the posterior mean,
    the chains agree (R-hat < 1.01) and at most MAX_DIVERGENCES diverge.

    The package's verdict itself fails on most seeds, and rightly: regimes this short
    leave 1.5-2.2% of the quarters with two readings (the posterior mean of P(regime)
    outside its own band), which is asserted too. Measured on seeds 0-4: largest
    distance 1.15-1.2 sd, R-hat 1.001-1.008; 4-5 s warm."""
    from regime_model.models import BayesianHMM

    model = BayesianHMM(
        2, ar_order=2, ar_form="mean-adjusted", switching="mean", switching_ar=True,
        stickiness=1.0, draws=3000, tune=1000, seed=1, progressbar=False,
    ).fit(_gnp_features())  # fmt: skip
    published = {
        # Ours are named on the mean, low first, as Stata's regime 0 (mean -0.0055).
        "emission_mean": np.array([[-0.0055216], [1.195482]]),
        "emission_scale": np.full((2, 1), 0.6677098),
        "transition": _regime_transition(0.3812383, 0.3564492),
        "ar_coefficient": np.array([[0.3710719, 0.7002937], [0.4621503, -0.3206652]])[..., None],
    }
    _assert_within_two_sd(model, published)
    diagnostics = model.result_.diagnostics()
    assert diagnostics["max_rhat"] < 1.01, diagnostics["failures"]
    assert diagnostics["divergences"] <= MAX_DIVERGENCES, diagnostics["failures"]
    assert diagnostics["mean_outside_band_share"] < 0.05, diagnostics["failures"]
