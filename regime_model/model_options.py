"""The model families' options as specifications: which family takes each, its type,
choices, default and help. The CLI builds its model flags from these (without importing
the models: PyMC takes seconds to import) and turns the flags a user gave into a config
for :func:`~regime_model.models.model_from_config`; a test checks every specification
against the families' constructors (the same names, families and defaults).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from regime_model.choices import (
    AR_FORMS,
    AR_MATRICES,
    COARSE_FREQUENCIES,
    COARSE_ORDERS,
    COVARIANCES,
    EMISSIONS,
    FINE_ENTRIES,
    IDENTIFICATIONS,
    MODEL_NAMES,
    ORDER_BY,
    SAMPLER_NAMES,
    SWITCHING,
)

BAYESIAN = tuple(name for name in MODEL_NAMES if name != "em-hmm")
GAUSSIAN = ("bayes-hmm", "tvtp", "leadlag")  # the families with free switching and covariance
COVARIATE_FAMILIES = ("tvtp", "hierarchical", "leadlag")  # covariate-driven transitions
AUTOREGRESSIVE = ("bayes-hmm", "tvtp")  # the families whose emissions can be AR(p)
TWO_SCALE = ("two-scale",)


def comma_list(value: str) -> list[str]:
    """ "a, b,c" -> ["a", "b", "c"] (empty items dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class ModelOption:
    """One option: ``name`` the constructors' keyword, ``flag`` the CLI's, ``families``
    the --model names taking it; ``default`` is the constructors' (shown in the help);
    ``section`` groups the flags in the help."""

    name: str
    flag: str
    help: str
    families: tuple[str, ...] = MODEL_NAMES
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    default: Any = None
    section: str = "model"
    metavar: str | None = None
    minimum: float | None = None  # the allowed range (None: unbounded on that side)
    maximum: float | None = None
    above: bool = False  # True: values must exceed ``minimum``, not just reach it

    def rule(self) -> str:
        """The allowed range in words, e.g. 'an integer >= 1'."""
        kind = "an integer" if self.type is int else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{kind} {'>' if self.above else '>='} {self.minimum:g}"
        return kind

    def check(self, value: Any) -> Any:
        """``value`` if it is of the option's type and in its range; ValueError naming the
        option and the range otherwise. Choices and lists are checked by the models."""
        if self.type not in (int, float) or value is None:
            return value
        integral = isinstance(value, int | np.integer) and not isinstance(value, bool)
        number = integral or (isinstance(value, float | np.floating) and np.isfinite(value))
        if not (integral if self.type is int else number):
            raise ValueError(f"{self.name} must be {self.rule()}, got {value!r}")
        low, high = self.minimum, self.maximum
        if (low is not None and (value <= low if self.above else value < low)) or (
            high is not None and value > high
        ):
            raise ValueError(f"{self.name} must be {self.rule()}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """The CLI's conversion: the option's type, then its range."""
        try:
            return self.check(self.type(text))
        except ValueError as exc:  # not of the type, or out of range: the same message
            if self.type not in (int, float):  # a parser of its own says what is wrong
                raise argparse.ArgumentTypeError(str(exc)) from exc
            raise argparse.ArgumentTypeError(f"must be {self.rule()}, got {text!r}") from exc


def normalise_lags(lag: int | Sequence[int]) -> tuple[int, ...]:
    """An int or a sequence of distinct lags >= 0 -> the sorted tuple; ValueError naming
    the problem otherwise."""
    values = [lag] if np.ndim(lag) == 0 else list(lag)  # type: ignore[arg-type]
    if not values:
        raise ValueError("lag needs at least one value")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"lag must be an integer >= 0 or a list of them, got {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"lag lists a value twice: {values}")
    return tuple(sorted(int(value) for value in values))


def parse_lags(text: str) -> int | tuple[int, ...]:
    """The CLI's --lag: "3", "0-6" (a range, both ends in) or "0,1,2,4"."""
    text = text.strip()
    try:
        if "-" in text[1:]:
            first, last = (int(part) for part in text.split("-", 1))
            if last <= first:
                raise ValueError
            return normalise_lags(list(range(first, last + 1)))
        if "," in text:
            return normalise_lags([int(part) for part in text.split(",") if part.strip()])
        return normalise_lags(int(text))[0]
    except ValueError as exc:
        raise ValueError(
            f"lag must be an integer >= 0, a range such as 0-6 or a list such as 0,1,2,4, "
            f"got {text!r}"
        ) from exc


MODEL_OPTIONS: tuple[ModelOption, ...] = (
    ModelOption(
        "n_regimes", "--regimes", "number of regimes K", type=int, default=2, minimum=2, maximum=5
    ),
    ModelOption(
        "emission",
        "--emission",
        "regime densities",
        BAYESIAN,
        choices=EMISSIONS,
        default="gaussian",
    ),
    ModelOption(
        "switching",
        "--switching",
        "what differs between regimes: means and covariances (both), means with one shared "
        "covariance (mean), or covariances around one common mean (variance)",
        GAUSSIAN,
        choices=SWITCHING,
        default="both",
    ),
    ModelOption(
        "covariance",
        "--covariance",
        "diagonal or full covariance per regime",
        (*GAUSSIAN, "em-hmm"),
        choices=COVARIANCES,
        default="diag",
    ),
    ModelOption(
        "anchor", "--anchor", "column the regimes are named on (default: first equity return)"
    ),
    ModelOption(
        "order_by",
        "--order-by",
        "name regimes by the anchor's mean (default) or volatility",
        (*GAUSSIAN, "em-hmm", *TWO_SCALE),
        choices=ORDER_BY,
    ),
    ModelOption(
        "identification",
        "--identification",
        "exchangeable priors, every draw's labels matched to the others' regime probabilities "
        "and named on the anchor afterwards (relabelled: every Bayesian family's default) or "
        "the order built into the priors (ordered)",
        BAYESIAN,
        choices=IDENTIFICATIONS,
    ),
    ModelOption(
        "stickiness",
        "--stickiness",
        "Dirichlet weight on staying",
        BAYESIAN,
        float,
        default=10.0,
        minimum=0,
        above=True,
    ),
    ModelOption(
        "sampler",
        "--sampler",
        "nutpie (the default) or PyMC's NUTS; MAP or ADVI for a quick look",
        BAYESIAN,
        choices=SAMPLER_NAMES,
        default="nutpie",
    ),
    ModelOption(
        "draws", "--draws", "posterior draws per chain", BAYESIAN, int, default=1000, minimum=1
    ),
    ModelOption(
        "tune",
        "--tune",
        "tuning steps per chain (default: 300 with nutpie, its own default; 1000 with nuts)",
        BAYESIAN,
        int,
        minimum=0,
    ),
    ModelOption("chains", "--chains", "MCMC chains", BAYESIAN, int, default=4, minimum=1),
    ModelOption("seed", "--seed", "random seed", type=int, default=0, minimum=0),
    ModelOption(
        "n_restarts",
        "--restarts",
        "EM random restarts",
        ("em-hmm",),
        int,
        default=10,
        metavar="N",
        minimum=1,
    ),
    ModelOption(
        "covariates",
        "--covariates",
        "columns that drive the transitions (lagged one step), not used as emissions",
        (*COVARIATE_FAMILIES,),
        comma_list,
        section="covariate-driven transitions",
        metavar="COL,COL",
    ),
    ModelOption(
        "coefficient_scale",
        "--coefficient-scale",
        "prior sd of each transition coefficient per covariate sd",
        COVARIATE_FAMILIES,
        float,
        default=1.0,
        section="covariate-driven transitions",
        minimum=0,
        above=True,
    ),
    ModelOption(
        "ar_order",
        "--ar-order",
        "P >= 1: regime-switching AR(P) dynamics on the --ar-columns",
        AUTOREGRESSIVE,
        int,
        default=0,
        section="autoregressive emissions",
        metavar="P",
        minimum=0,
    ),
    ModelOption(
        "ar_columns",
        "--ar-columns",
        "the features with AR dynamics (default: every feature; the others stay i.i.d.)",
        AUTOREGRESSIVE,
        comma_list,
        section="autoregressive emissions",
        metavar="COL,COL",
    ),
    ModelOption(
        "ar_form",
        "--ar-form",
        "intercept (the regime sets the intercept) or mean-adjusted (Hamilton's form: "
        "the regime sets the level; K^(P+1) regime histories)",
        AUTOREGRESSIVE,
        choices=AR_FORMS,
        default="intercept",
        section="autoregressive emissions",
    ),
    ModelOption(
        "ar_matrix",
        "--ar-matrix",
        "diagonal (each AR column on its own lags) or full (a VAR(1): each AR column on "
        "the lags of all of them; --ar-order 1)",
        AUTOREGRESSIVE,
        choices=AR_MATRICES,
        default="diagonal",
        section="autoregressive emissions",
    ),
    ModelOption(
        "switching_ar",
        "--switching-ar",
        "the AR coefficients differ between regimes (default: shared)",
        AUTOREGRESSIVE,
        bool,
        section="autoregressive emissions",
    ),
    ModelOption(
        "lead_group",
        "--lead-group",
        "group of the leading chain",
        ("leadlag",),
        default="equity",
        section="leadlag model",
    ),
    ModelOption(
        "lag_group",
        "--lag-group",
        "group of the lagging chain",
        ("leadlag",),
        default="crypto",
        section="leadlag model",
    ),
    ModelOption(
        "lag",
        "--lag",
        "the lagging chain's transitions depend on the leading regime LAG steps earlier; "
        "a range (0-6) or a list (0,1,2,4) marginalises the lag over those values "
        "(uniform prior) and reports its posterior",
        ("leadlag",),
        parse_lags,
        default=1,
        section="leadlag model",
    ),
    ModelOption(
        "lag_anchor",
        "--lag-anchor",
        "column the lagging chain is named on (default: its first return)",
        ("leadlag",),
        section="leadlag model",
    ),
    ModelOption(
        "coupling_sd",
        "--coupling-sd",
        "prior sd of the coupling log odds ratios",
        ("leadlag",),
        float,
        default=1.5,
        section="leadlag model",
        minimum=0,
        above=True,
    ),
)

TWO_SCALE_OPTIONS: tuple[ModelOption, ...] = (
    ModelOption(
        "coarse_columns",
        "--coarse-columns",
        "the slow (liquidity, credit) features, each kept once per coarse period, on its last "
        "date, as known then",
        TWO_SCALE,
        comma_list,
        section="two-scale model",
        metavar="COL,COL",
    ),
    ModelOption(
        "coarse_freq",
        "--coarse-freq",
        "the coarse calendar: months (M), quarters (Q) or weeks (W)",
        TWO_SCALE,
        choices=COARSE_FREQUENCIES,
        default="M",
        section="two-scale model",
    ),
    ModelOption(
        "coarse_regimes",
        "--coarse-regimes",
        "number of coarse regimes",
        TWO_SCALE,
        int,
        default=2,
        section="two-scale model",
        minimum=2,
        maximum=3,
    ),
    ModelOption(
        "coarse_anchor",
        "--coarse-anchor",
        "coarse column its regimes are named on (default: the first)",
        TWO_SCALE,
        section="two-scale model",
    ),
    ModelOption(
        "coarse_order",
        "--coarse-order",
        "the coarse regime with the highest anchor mean is risk_on (mean: liquidity, flows) "
        "or the one with the lowest (inverse: spreads, volatility)",
        TWO_SCALE,
        choices=COARSE_ORDERS,
        default="mean",
        section="two-scale model",
    ),
    ModelOption(
        "markets",
        "--markets",
        "feature groups with a fine chain each (default: every group of a non-coarse column)",
        TWO_SCALE,
        comma_list,
        section="two-scale model",
        metavar="GROUP,GROUP",
    ),
    ModelOption(
        "fine_entry",
        "--fine-entry",
        "at a coarse period's first date a fine chain moves on from where it was by the new "
        "coarse regime's matrix (carry) or starts afresh from its law under it (restart, "
        "fHMM's)",
        TWO_SCALE,
        choices=FINE_ENTRIES,
        default="carry",
        section="two-scale model",
    ),
    ModelOption(
        "coarse_stickiness",
        "--coarse-stickiness",
        "Dirichlet weight on staying in a coarse regime",
        TWO_SCALE,
        float,
        default=10.0,
        section="two-scale model",
        minimum=0,
        above=True,
    ),
)
MODEL_OPTIONS = (*MODEL_OPTIONS, *TWO_SCALE_OPTIONS)

MODEL_HELP = (
    "bayes-hmm (default), em-hmm (maximum likelihood), hierarchical (one regime, asset "
    "parameters pooled by group), tvtp (covariate-driven transitions), leadlag (a leading "
    "and a lagging regime chain), two-scale (a monthly liquidity regime driving each "
    "market's weekly or daily regimes)"
)
# Options a family cannot go without.
REQUIRED = {"tvtp": "covariates", "two-scale": "coarse_columns"}


def help_text(option: ModelOption) -> str:
    """The option's help with its default and, when not every family takes it, which do."""
    text = option.help
    if option.default is not None:
        shown = f"{option.default:g}" if isinstance(option.default, float) else option.default
        text += f" (default {shown})"
    if option.families == BAYESIAN:
        text += "; Bayesian models only"
    elif set(option.families) != set(MODEL_NAMES):
        text += f"; for {', '.join(option.families)}"
    return text


def option_config(
    model: str, given: dict[str, Any], tolerated: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A config for ``model_from_config``: ``model`` and the options a user gave
    (constructor name -> value). An option ``model`` does not take is dropped when one of
    the ``tolerated`` families takes it (a command fitting two models from one set of
    flags) and otherwise an error (ValueError naming its flag and the families taking it)."""
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    config: dict[str, Any] = {"model": model}
    for option in MODEL_OPTIONS:
        if option.name not in given or given[option.name] is None:
            continue
        if model in option.families:
            config[option.name] = given[option.name]
        elif not set(tolerated) & set(option.families):
            raise ValueError(f"{option.flag} is for --model {' or '.join(option.families)}")
    for name in (required for family, required in REQUIRED.items() if family == model):
        if not config.get(name):
            flag = next(option.flag for option in MODEL_OPTIONS if option.name == name)
            raise ValueError(f"--model {model} needs {flag} COL,COL")
    return config


def check_option_values(values: dict[str, Any]) -> None:
    """Range-check every option in ``values`` (constructor name -> value) that has a
    specification: the one place the models and the CLI share."""
    for option in MODEL_OPTIONS:
        if option.name in values:
            option.check(values[option.name])
