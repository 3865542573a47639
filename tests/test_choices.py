"""The options' choices are defined once (regime_model/choices.py): the registries they
name must hold exactly those keys, and the CLI must read them without importing PyMC."""

from __future__ import annotations

import subprocess
import sys

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
