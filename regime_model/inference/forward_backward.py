"""Forward filtering and backward smoothing for discrete-state hidden Markov models.

Interface conventions (shared by every function in :mod:`regime_model.inference`):

* ``log_initial``: shape (K,), log P(z_0).
* ``log_transition``: shape (K, K) with row i = "from state i", or shape (T-1, K, K) for a
  time-varying chain, where ``log_transition[t]`` moves z_t to z_{t+1}. Inside, every
  kernel takes a stack (n, K, K) and ``sources`` (T-1,), the matrix each move uses: all 0
  (homogeneous), 0..T-2 (time-varying), or any index into a bank of a few matrices
  (:func:`loglik_and_grad_indexed`: a calendar switching between known moves, without a
  (T-1, K, K) copy); the gradient sums each matrix's moves.
* ``log_emission``: shape (T, K), log p(y_t | z_t = k).  A missing observation is a row of
  zeros.  Entries may be -inf (impossible) but never +inf or NaN.

How the recursions stay both fast and exact
-------------------------------------------
Most steps run in linear space: the emission row is shifted by its maximum before
exponentiation and the forward message is renormalised every step (the classic scaled
forward pass), which costs K^2 multiply-adds and K exponentials per step.

Linear space can silently lose information, though: a probability below ~1e-308 becomes
subnormal or zero, and with extreme emissions (log densities that differ by thousands) such
a "negligible" state can become the only one compatible with a later observation.  So each
linear step checks that every entry it produced is either comfortably representable
(>= ``_SAFE_MIN``) or an exact structural zero (a -inf transition, initial or emission
entry).  If not, the step is redone in log space (logsumexp), and the log-space message is
kept until it is safe to return to linear space.  The backward pass reuses these log-space
messages on exactly the same steps.  The result is never NaN or inf where the exact answer
is finite.

The backward pass propagates smoothed probabilities directly,
``gamma_t(i) = sum_j alpha_t(i) A(i, j) gamma_{t+1}(j) / p_{t+1}(j)``, where ``alpha`` is
the filtered and ``p`` the predicted distribution.  Each term is a probability, so unlike
the classic beta recursion nothing can overflow, and the same terms summed over t are the
expected transition counts, i.e. the gradient with respect to ``log_transition``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

# Linear-space probabilities below this are treated as unreliable.  Doubles turn subnormal
# at ~2.2e-308; the headroom keeps relative errors from products and sums negligible.
_SAFE_MIN = 1e-290
_LOG_SAFE_MIN = math.log(_SAFE_MIN)


class HMMFilterResult(NamedTuple):
    """Output of :func:`hmm_filter`.

    marginal_loglik: log p(y_1..T).
    filtered_probs: (T, K), P(z_t | y_1..t).
    predicted_probs: (T, K), P(z_t | y_1..t-1); row 0 is the initial distribution.
    log_predictive: (T,), log p(y_t | y_1..t-1), the one-step-ahead predictive density of
        each date; they sum to marginal_loglik. (-inf at the first impossible date, NaN
        after it.)
    """

    marginal_loglik: float
    filtered_probs: np.ndarray
    predicted_probs: np.ndarray
    log_predictive: np.ndarray


class HMMSmootherResult(NamedTuple):
    """Output of :func:`hmm_smoother`; as :class:`HMMFilterResult` plus smoothed_probs
    (T, K) = P(z_t | y_1..T)."""

    marginal_loglik: float
    filtered_probs: np.ndarray
    predicted_probs: np.ndarray
    log_predictive: np.ndarray
    smoothed_probs: np.ndarray


class HMMGradient(NamedTuple):
    """Output of :func:`hmm_loglik_and_grad`: log p(y_1..T) and its gradient.

    grad_log_initial: (K,), equals P(z_0 | y_1..T).
    grad_log_transition: same shape as the input transition, expected transition counts
        (summed over t for a (K, K) input, per step for a (T-1, K, K) input).
    grad_log_emission: (T, K), equals P(z_t | y_1..T).
    """

    marginal_loglik: float
    grad_log_initial: np.ndarray
    grad_log_transition: np.ndarray
    grad_log_emission: np.ndarray


# ---------------------------------------------------------------------------------------
# Jitted building blocks.  Transitions are always passed as (n, K, K) arrays with n == 1
# for a homogeneous chain, so one compiled kernel serves both shapes.
# ---------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _safe_log(x: float) -> float:
    # math.log raises on 0 inside numba; log(0) = -inf is the value we want.
    if x > 0.0:
        return math.log(x)
    return -np.inf


@numba.njit(cache=True)
def _logsumexp(values: np.ndarray) -> float:
    largest = np.max(values)
    if largest == -np.inf:
        return -np.inf
    total = 0.0
    for value in values:
        total += math.exp(value - largest)
    return largest + math.log(total)


@numba.njit(cache=True)
def _sources(n_steps: int, n_transitions: int) -> np.ndarray:
    """(T-1,) the matrix of an (n, K, K) stack each move uses: 0 when homogeneous, the
    move's own index when time-varying."""
    if n_transitions == 1:
        return np.zeros(max(n_steps - 1, 0), dtype=np.int64)
    return np.arange(n_steps - 1)


@numba.njit(cache=True)
def _small_entries_are_structural_zeros(
    t: int,
    unnormalised: np.ndarray,
    filtered: np.ndarray,
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    sources: np.ndarray,
) -> bool:
    """True if every entry of step t's unnormalised filter below _SAFE_MIN is exactly zero
    in exact arithmetic, so the linear step lost nothing.  Requires filtered[t-1] to be
    exact (its zeros are true zeros)."""
    n_states = unnormalised.shape[0]
    source = sources[t - 1] if t > 0 else 0
    for k in range(n_states):
        if unnormalised[k] >= _SAFE_MIN or log_emission[t, k] == -np.inf:
            continue
        if t == 0:
            if log_initial[k] != -np.inf:
                return False
            continue
        for i in range(n_states):
            if filtered[t - 1, i] > 0.0 and log_transition[source, i, k] != -np.inf:
                return False
    return True


@numba.njit(cache=True)
def _log_space_forward_step(
    t: int,
    source: int,
    filtered: np.ndarray,
    log_filtered: np.ndarray,
    log_predicted: np.ndarray,
    log_step: np.ndarray,
    log_initial: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    scratch: np.ndarray,
) -> float:
    """Exact step t in log space: fills log_predicted[t] and the normalised log_filtered[t]
    and returns the log normaliser (-inf if the data are impossible)."""
    n_states = log_emission.shape[1]
    if t == 0:
        log_predicted[0] = log_initial
    else:
        log_previous = scratch[:n_states]
        log_terms = scratch[n_states:]
        for i in range(n_states):
            if log_step[t - 1]:
                log_previous[i] = log_filtered[t - 1, i]
            else:
                log_previous[i] = _safe_log(filtered[t - 1, i])
        for k in range(n_states):
            for i in range(n_states):
                log_terms[i] = log_previous[i] + log_transition[source, i, k]
            log_predicted[t, k] = _logsumexp(log_terms)
    for k in range(n_states):
        log_filtered[t, k] = log_predicted[t, k] + log_emission[t, k]
    log_normaliser = _logsumexp(log_filtered[t])
    for k in range(n_states):
        log_filtered[t, k] -= log_normaliser
    return log_normaliser


@numba.njit(cache=True)
def _forward(
    log_initial: np.ndarray,
    transition: np.ndarray,
    log_transition: np.ndarray,
    log_emission: np.ndarray,
    sources: np.ndarray,
):
    """Scaled forward pass with per-step log-space fallback; the move into step t uses
    matrix ``sources[t-1]`` of the stack.

    Returns (marginal_loglik, filtered (T, K), predicted (T, K), log_filtered (T, K),
    log_predicted (T, K), log_step (T,), log_increment (T,)), where ``log_increment[t]``
    is step t's term of the marginal log-likelihood: log p(y_t | y_1..t-1) when the
    transition rows sum to one.  ``predicted`` is the unnormalised predicted mass
    (it only sums to one if the transition rows do).  Where ``log_step[t]`` is True, step t
    was computed in log space and rows t of ``log_filtered``/``log_predicted`` hold the exact
    values (the linear rows may have underflowed); elsewhere those rows are undefined.  If
    the likelihood is exactly zero, returns -inf with NaN probabilities from that step on.
    """
    n_steps, n_states = log_emission.shape
    filtered = np.empty((n_steps, n_states))
    predicted = np.empty((n_steps, n_states))
    log_filtered = np.empty((n_steps, n_states))
    log_predicted = np.empty((n_steps, n_states))
    log_step = np.zeros(n_steps, dtype=np.bool_)
    log_increment = np.empty(n_steps)
    scratch = np.empty(2 * n_states)
    marginal_loglik = 0.0
    # Whether filtered[t-1] is exact in linear space, i.e. no entry was lost to underflow.
    previous_is_exact = True

    for t in range(n_steps):
        source = sources[t - 1] if t > 0 else 0
        # Fast path: scaled linear-space step, valid if nothing underflows or overflows.
        if previous_is_exact:
            if t == 0:
                for k in range(n_states):
                    predicted[0, k] = math.exp(log_initial[k])
            else:
                for k in range(n_states):
                    predicted[t, k] = 0.0
                for i in range(n_states):
                    weight = filtered[t - 1, i]
                    for k in range(n_states):
                        predicted[t, k] += weight * transition[source, i, k]
            # Shift by the largest log emission so the exponentials cannot all underflow.
            shift = log_emission[t, 0]
            for k in range(1, n_states):
                shift = max(shift, log_emission[t, k])
            normaliser = 0.0
            any_small = False
            for k in range(n_states):
                value = predicted[t, k] * math.exp(log_emission[t, k] - shift)
                filtered[t, k] = value
                normaliser += value
                any_small = any_small or value < _SAFE_MIN
            exact = _SAFE_MIN <= normaliser < np.inf and (
                not any_small
                or _small_entries_are_structural_zeros(
                    t, filtered[t], filtered, log_initial, log_transition, log_emission, sources
                )
            )
            if exact:
                scale = 1.0 / normaliser
                for k in range(n_states):
                    filtered[t, k] *= scale
                log_increment[t] = math.log(normaliser) + shift
                marginal_loglik += log_increment[t]
                continue

        log_step[t] = True
        log_normaliser = _log_space_forward_step(
            t,
            source,
            filtered,
            log_filtered,
            log_predicted,
            log_step,
            log_initial,
            log_transition,
            log_emission,
            scratch,
        )
        log_increment[t] = log_normaliser
        marginal_loglik += log_normaliser
        if log_normaliser == -np.inf:
            filtered[t:] = np.nan
            predicted[t:] = np.nan
            log_increment[t + 1 :] = np.nan
            break
        previous_is_exact = True
        for k in range(n_states):
            filtered[t, k] = math.exp(log_filtered[t, k])
            predicted[t, k] = math.exp(log_predicted[t, k])
            if -np.inf < log_filtered[t, k] < _LOG_SAFE_MIN:
                previous_is_exact = False
    return (
        marginal_loglik,
        filtered,
        predicted,
        log_filtered,
        log_predicted,
        log_step,
        log_increment,
    )


@numba.njit(cache=True)
def _log_space_backward_step(
    t: int,
    source: int,
    smoothed: np.ndarray,
    transition_counts: np.ndarray,
    filtered: np.ndarray,
    predicted: np.ndarray,
    log_filtered: np.ndarray,
    log_predicted: np.ndarray,
    log_step: np.ndarray,
    log_transition: np.ndarray,
    log_ratio: np.ndarray,
) -> None:
    """smoothed[t] and step t's transition counts from smoothed[t+1], forming each term
    alpha_t(i) A(i, j) gamma_{t+1}(j) / p_{t+1}(j) in log space."""
    n_states = filtered.shape[1]
    for j in range(n_states):
        if smoothed[t + 1, j] > 0.0:
            if log_step[t + 1]:
                log_predicted_j = log_predicted[t + 1, j]
            else:
                log_predicted_j = math.log(predicted[t + 1, j])
            log_ratio[j] = math.log(smoothed[t + 1, j]) - log_predicted_j
        else:
            log_ratio[j] = -np.inf
    for i in range(n_states):
        log_alpha = log_filtered[t, i] if log_step[t] else _safe_log(filtered[t, i])
        total = 0.0
        if log_alpha > -np.inf:
            for j in range(n_states):
                if log_ratio[j] > -np.inf:
                    weight = math.exp(log_alpha + log_transition[source, i, j] + log_ratio[j])
                    total += weight
                    transition_counts[source, i, j] += weight
        smoothed[t, i] = total


@numba.njit(cache=True)
def _backward(
    filtered: np.ndarray,
    predicted: np.ndarray,
    log_filtered: np.ndarray,
    log_predicted: np.ndarray,
    log_step: np.ndarray,
    transition: np.ndarray,
    log_transition: np.ndarray,
    sources: np.ndarray,
):
    """Backward smoothing pass over the output of :func:`_forward`.

    Returns (smoothed (T, K), transition_counts (n, K, K)) where transition_counts[s, i, j]
    sums P(z_t = i, z_{t+1} = j | y_1..T) over the steps t that use transition s.
    """
    n_steps, n_states = filtered.shape
    n_transitions = transition.shape[0]
    smoothed = np.empty((n_steps, n_states))
    transition_counts = np.zeros((n_transitions, n_states, n_states))
    smoothed[n_steps - 1] = filtered[n_steps - 1]
    ratio = np.empty(n_states)
    for t in range(n_steps - 2, -1, -1):
        source = sources[t]
        # Log space wherever the forward pass needed it for alpha_t or p_{t+1}.
        if log_step[t] or log_step[t + 1]:
            _log_space_backward_step(
                t,
                source,
                smoothed,
                transition_counts,
                filtered,
                predicted,
                log_filtered,
                log_predicted,
                log_step,
                log_transition,
                ratio,
            )
            continue
        # ratio[j] = P(z_{t+1}=j | y_1..T) / P(z_{t+1}=j | y_1..t); a zero smoothed
        # probability also covers the 0/0 of a structurally unreachable state.
        for j in range(n_states):
            if smoothed[t + 1, j] > 0.0:
                ratio[j] = smoothed[t + 1, j] / predicted[t + 1, j]
            else:
                ratio[j] = 0.0
        for i in range(n_states):
            total = 0.0
            for j in range(n_states):
                weight = transition[source, i, j] * ratio[j]
                total += weight
                transition_counts[source, i, j] += filtered[t, i] * weight
            smoothed[t, i] = filtered[t, i] * total
    return smoothed, transition_counts


@numba.njit(cache=True)
def _normalised_predicted(
    predicted: np.ndarray, log_predicted: np.ndarray, log_step: np.ndarray
) -> np.ndarray:
    """Predicted distributions normalised to sum to one (exact also on log-space steps)."""
    n_steps, n_states = predicted.shape
    result = np.empty((n_steps, n_states))
    for t in range(n_steps):
        if log_step[t]:
            log_total = _logsumexp(log_predicted[t])
            for k in range(n_states):
                result[t, k] = math.exp(log_predicted[t, k] - log_total)
        else:
            result[t] = predicted[t] / np.sum(predicted[t])
    return result


@numba.njit(cache=True)
def _loglik_and_grad_stacked(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray, sources
):
    """Log-likelihood and gradient for a (n, K, K) transition stack whose matrix
    ``sources[t]`` moves z_t to z_{t+1}."""
    transition = np.exp(log_transition)
    marginal_loglik, filtered, predicted, log_filtered, log_predicted, log_step, _ = _forward(
        log_initial, transition, log_transition, log_emission, sources
    )
    if marginal_loglik == -np.inf:
        # Zero likelihood: the gradient is undefined.
        return (
            marginal_loglik,
            np.full(log_initial.shape, np.nan),
            np.full(log_transition.shape, np.nan),
            np.full(log_emission.shape, np.nan),
        )
    smoothed, transition_counts = _backward(
        filtered,
        predicted,
        log_filtered,
        log_predicted,
        log_step,
        transition,
        log_transition,
        sources,
    )
    return marginal_loglik, smoothed[0].copy(), transition_counts, smoothed


@numba.njit(cache=True)
def _check_shapes(log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray):
    # The numba entry points below skip the Python validation; without this check a shape
    # mismatch would read out of bounds instead of failing.
    n_steps, n_states = log_emission.shape
    if n_steps < 1 or log_initial.shape[0] != n_states:
        raise ValueError("log_emission must be (T, K) with T >= 1 and log_initial (K,)")
    if log_transition.shape[-1] != n_states or log_transition.shape[-2] != n_states:
        raise ValueError("log_transition must be (K, K) or (T-1, K, K)")
    if log_transition.ndim == 3 and log_transition.shape[0] != n_steps - 1:
        raise ValueError("a time-varying log_transition must have T-1 entries")


@numba.njit(cache=True)
def loglik_and_grad_homogeneous(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
):
    """Jitted (value, grads) for a (K, K) transition; callable from other numba code."""
    _check_shapes(log_initial, log_transition, log_emission)
    n_states = log_transition.shape[0]
    stacked = np.ascontiguousarray(log_transition).reshape((1, n_states, n_states))
    sources = _sources(log_emission.shape[0], 1)
    marginal_loglik, grad_initial, grad_transition, grad_emission = _loglik_and_grad_stacked(
        np.ascontiguousarray(log_initial), stacked, np.ascontiguousarray(log_emission), sources
    )
    return marginal_loglik, grad_initial, grad_transition[0], grad_emission


@numba.njit(cache=True)
def loglik_and_grad_time_varying(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
):
    """Jitted (value, grads) for a (T-1, K, K) transition; callable from other numba code."""
    _check_shapes(log_initial, log_transition, log_emission)
    return _loglik_and_grad_stacked(
        np.ascontiguousarray(log_initial),
        np.ascontiguousarray(log_transition),
        np.ascontiguousarray(log_emission),
        _sources(log_emission.shape[0], log_transition.shape[0]),
    )


@numba.njit(cache=True)
def loglik_and_grad_indexed(
    log_initial: np.ndarray, log_bank: np.ndarray, log_emission: np.ndarray, sources: np.ndarray
):
    """Jitted (value, grads) for moves that each use one matrix of a bank (B, K, K):
    ``sources`` (T-1,) ints in 0..B-1; the bank's gradient sums the moves of each matrix."""
    n_steps, n_states = log_emission.shape
    if n_steps < 1 or log_initial.shape[0] != n_states:
        raise ValueError("log_emission must be (T, K) with T >= 1 and log_initial (K,)")
    if log_bank.ndim != 3 or log_bank.shape[1] != n_states or log_bank.shape[2] != n_states:
        raise ValueError("log_bank must be (B, K, K)")
    if sources.shape[0] != n_steps - 1:
        raise ValueError("sources must give one matrix per move (T-1)")
    for source in sources:
        if source < 0 or source >= log_bank.shape[0]:
            raise ValueError("sources must index the bank")
    return _loglik_and_grad_stacked(
        np.ascontiguousarray(log_initial),
        np.ascontiguousarray(log_bank),
        np.ascontiguousarray(log_emission),
        np.ascontiguousarray(sources).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------
# Public Python API.
# ---------------------------------------------------------------------------------------


def _validated_inputs(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and return float64 C-contiguous arrays, the transition as (n, K, K)."""
    log_initial = np.ascontiguousarray(log_initial, dtype=np.float64)
    log_transition = np.ascontiguousarray(log_transition, dtype=np.float64)
    log_emission = np.ascontiguousarray(log_emission, dtype=np.float64)
    if log_emission.ndim != 2 or log_emission.shape[0] < 1:
        raise ValueError(
            f"log_emission must have shape (T, K) with T >= 1, got {log_emission.shape}"
        )
    n_steps, n_states = log_emission.shape
    if log_initial.shape != (n_states,):
        raise ValueError(f"log_initial must have shape ({n_states},), got {log_initial.shape}")
    if log_transition.shape == (n_states, n_states):
        return log_initial, log_transition[np.newaxis], log_emission
    if log_transition.shape == (n_steps - 1, n_states, n_states):
        return log_initial, log_transition, log_emission
    raise ValueError(
        f"log_transition must have shape ({n_states}, {n_states}) or "
        f"({n_steps - 1}, {n_states}, {n_states}), got {log_transition.shape}"
    )


def _forward_from_inputs(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
):
    """Validate inputs and run the forward pass; returns (transition, log_transition,
    sources, pass)."""
    log_initial, log_transition, log_emission = _validated_inputs(
        log_initial, log_transition, log_emission
    )
    transition = np.exp(log_transition)
    sources = _sources(log_emission.shape[0], log_transition.shape[0])
    forward_pass = _forward(log_initial, transition, log_transition, log_emission, sources)
    return transition, log_transition, sources, forward_pass


def hmm_filter(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> HMMFilterResult:
    """Forward filter.  Shapes: log_initial (K,), log_transition (K, K) or (T-1, K, K),
    log_emission (T, K).  Returns filtered and predicted probabilities, each (T, K).

    If the data have zero likelihood (every path impossible), marginal_loglik is -inf and
    the probabilities are NaN from the first impossible step on."""
    *_, forward_pass = _forward_from_inputs(log_initial, log_transition, log_emission)
    marginal_loglik, filtered, predicted, _, log_predicted, log_step, log_increment = forward_pass
    return HMMFilterResult(
        float(marginal_loglik),
        filtered,
        _normalised_predicted(predicted, log_predicted, log_step),
        log_increment,
    )


def hmm_smoother(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> HMMSmootherResult:
    """Forward filter and backward smoother; shapes as :func:`hmm_filter`, plus
    smoothed_probs (T, K) = P(z_t | y_1..T) (all NaN if the likelihood is zero)."""
    transition, log_transition, sources, forward_pass = _forward_from_inputs(
        log_initial, log_transition, log_emission
    )
    marginal_loglik, filtered, predicted, log_filtered, log_predicted, log_step, log_increment = (
        forward_pass
    )
    if marginal_loglik == -np.inf:
        smoothed = np.full(filtered.shape, np.nan)
    else:
        smoothed, _ = _backward(
            filtered,
            predicted,
            log_filtered,
            log_predicted,
            log_step,
            transition,
            log_transition,
            sources,
        )
    return HMMSmootherResult(
        float(marginal_loglik),
        filtered,
        _normalised_predicted(predicted, log_predicted, log_step),
        log_increment,
        smoothed,
    )


def hmm_loglik_and_grad(
    log_initial: np.ndarray, log_transition: np.ndarray, log_emission: np.ndarray
) -> HMMGradient:
    """Marginal log-likelihood and its exact gradient with respect to all three inputs, in
    one forward-backward pass.  The transition entries are treated as free parameters
    (rows need not be normalised).  Gradients are NaN if the likelihood is exactly zero."""
    time_varying = np.ndim(log_transition) == 3
    log_initial, stacked_transition, log_emission = _validated_inputs(
        log_initial, log_transition, log_emission
    )
    sources = _sources(log_emission.shape[0], stacked_transition.shape[0])
    marginal_loglik, grad_initial, grad_transition, grad_emission = _loglik_and_grad_stacked(
        log_initial, stacked_transition, log_emission, sources
    )
    if not time_varying:
        grad_transition = grad_transition[0]
    return HMMGradient(float(marginal_loglik), grad_initial, grad_transition, grad_emission)
