"""The options' choices are defined once (regime_model/choices.py): the registries they
name must hold exactly those keys, and the CLI must read them without importing PyMC."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regime_model.choices import MODEL_NAMES, SAMPLER_NAMES
from regime_model.models import MODELS
from regime_model.models.samplers import SAMPLERS


def test_the_registries_hold_exactly_the_listed_choices():
    assert tuple(MODELS) == MODEL_NAMES
    assert tuple(SAMPLERS) == SAMPLER_NAMES


def test_the_cli_parser_is_built_without_importing_the_models():
    code = (
        "import sys; from regime_model.cli import build_parser; build_parser(); "
        "print('pymc' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "False"


# Keywords of the constructors that are not command-line options, on purpose: display
# and execution settings, the simulation switch, EM's numerical settings, and two family
# options the CLI does not expose yet.
NOT_ON_THE_COMMAND_LINE = {
    "standardise",
    "band_draws",
    "target_accept",
    "initial",
    "max_iter",
    "tol",
    "signs",
}


REQUIRED_SETTINGS = {"tvtp": {"covariates": ["x"]}, "two-scale": {"coarse_columns": ["x"]}}


def _default_instance(name: str):
    return MODELS[name](**REQUIRED_SETTINGS.get(name, {}))


def test_every_model_option_matches_the_families_constructors():
    """The CLI's model flags come from MODEL_OPTIONS: each option must be a keyword of
    exactly the families it lists, with the default it shows."""
    from regime_model.model_options import MODEL_OPTIONS

    for name in MODELS:
        config = _default_instance(name).get_config()
        listed = {option.name for option in MODEL_OPTIONS if name in option.families}
        for option in MODEL_OPTIONS:
            if name not in option.families:
                continue
            assert option.name in config, (name, option.name)
            if option.default is not None:
                assert config[option.name] == option.default, (name, option.name)
        unlisted = set(config) - listed - NOT_ON_THE_COMMAND_LINE - {"model"}
        # What a family accepts but refuses to change (hierarchical: switching,
        # covariance, order_by; bayes-hmm: covariates) is not listed for it either.
        refused = {
            "switching": {"switching": "mean"},
            "covariance": {"covariance": "full"},
            "order_by": {"order_by": "volatility"},
            "covariates": {"covariates": ["x"]},
            "coefficient_scale": {"covariates": ["x"], "coefficient_scale": 2.0},
            "ar_order": {"ar_order": 1},
            "ar_columns": {"ar_columns": ["x"]},
            "switching_ar": {"switching_ar": True},
            "ar_form": {"ar_form": "mean-adjusted"},
            "ar_matrix": {"ar_matrix": "full"},
        }
        assert unlisted <= set(refused), (name, unlisted)
        for option in unlisted:
            with pytest.raises(ValueError):
                MODELS[name](**refused[option])


def test_an_option_for_another_family_is_a_one_line_error(capsys):
    from regime_model.cli import main

    arguments = ["fit", "--features", "f.csv", "--out", "o", "--model", "em-hmm"]
    assert main([*arguments, "--lag", "2"]) == 2
    assert capsys.readouterr().err.strip() == "regime: error: --lag is for --model leadlag"
    assert main([*arguments[:-2], "--model", "tvtp"]) == 2
    assert "--model tvtp needs --covariates COL,COL" in capsys.readouterr().err
    assert main([*arguments[:-2], "--stickiness", "-1"]) == 2
    assert "must be a number > 0" in capsys.readouterr().err
