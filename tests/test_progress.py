"""What a fit shows while it runs: phase lines on stderr when it is not a terminal (a log,
CI), sampling lines with draws done and the time left, and nothing with --quiet. The
reporting path must not change the posterior."""

from __future__ import annotations

import pytest

from regime_model.cli import main
from regime_model.models import nutpie_sampler, samplers
from regime_model.progress import sampling_line

PHASES = [
    "maximum-likelihood start (EM) on",
    "building the model",
    "compiling the log density",
    "sampling with nutpie: 2 chains x (150 tuning + 150 draws)",
    "tuning ",
    "sampled in",
]


def test_the_sampling_line_counts_per_chain_and_estimates_the_time_left():
    line = sampling_line(tuned=800, tune=1000, drawn=0, draws=1000, chains=4, elapsed=20.0)
    # 800 of 8,000 iterations in 20 s: 7,200 more at the same rate take 180 s.
    assert line == "tuning 200/1000, sampling 0/1000 (per chain, 4 chains), 20 s, about 180 s left"
    assert "left" not in sampling_line(0, 10, 0, 10, 2, 0.5)


def _fit(features_file, out, *extra):
    arguments = ["fit", "--features", str(features_file), "--columns", "iwm_return,btc_return"]
    arguments += ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "4"]
    return main([*arguments, "--out", str(out), *extra])


def test_a_fit_reports_its_phases_in_order_and_quiet_silences_them(
    features_file, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(nutpie_sampler, "SAMPLING_INTERVAL", 0.01)
    assert _fit(features_file, tmp_path / "loud") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("regime: ")]
    positions = []
    for phase in PHASES:
        found = [i for i, line in enumerate(lines) if line.startswith(f"regime: {phase}")]
        assert found, f"no phase line {phase!r} in {lines}"
        positions.append(found[0])
    assert positions == sorted(positions)
    assert any("s left" in line and "per chain, 2 chains" in line for line in lines)

    assert _fit(features_file, tmp_path / "quiet", "--quiet") == 0
    assert "regime: " not in capsys.readouterr().err
    # Sampled in the background with lines, or blocking without: the same draws.
    loud = (tmp_path / "loud" / "regime_probabilities.csv").read_text()
    assert loud == (tmp_path / "quiet" / "regime_probabilities.csv").read_text()


@pytest.mark.slow
def test_pymc_nuts_reports_sampling_lines_too(features_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(samplers, "SAMPLING_INTERVAL", 0.01)
    assert _fit(features_file, tmp_path / "nuts", "--sampler", "nuts") == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("regime: sampling with PyMC's NUTS: 2 chains") for line in lines)
    assert any(line.startswith("regime: tuning ") for line in lines)
