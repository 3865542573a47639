"""The notebooks in docs/notebooks run end to end, so they cannot rot, and are stored with
the outputs of a full run on the real data (``make notebooks``).

Each notebook is executed with nbclient in a kernel running this interpreter, with its
parameters overridden the way papermill does it (a cell after the one tagged
``parameters``): ``QUICK = True`` and a ``DATA_DIR`` that does not exist, so the test never
depends on the data snapshot and always takes the synthetic fallback. The kernel works in a
temporary directory; the notebooks write nothing into the repository.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"
KERNEL_NAME = "regime-model-tests"
CELL_TIMEOUT = 600  # seconds per cell; a QUICK cell takes seconds, a first compile ~1 min
COMPARISON_RUNS = ["em_k2", "bayes_k2", "bayes_k3", "tvtp_k2", "hierarchical_k2"]


def parameters_index(notebook: nbformat.NotebookNode) -> int:
    """Index of the code cell tagged ``parameters``."""
    tagged = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def kernel_manager(directory: Path) -> KernelManager:
    """A kernel running this very interpreter (with the package installed), whatever
    kernel specs the user has installed elsewhere."""
    spec = directory / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "regime-model tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    specs = KernelSpecManager(kernel_dirs=[str(directory)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def execute(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, str]:
    """Run a notebook (QUICK, no data directory); -> (executed notebook, all text output)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    injected = "\n".join(
        [
            "QUICK = True",
            f"DATA_DIR = {str(tmp_path / 'no-such-data-dir')!r}",
            "import sys",
            "print('kernel interpreter:', sys.executable)",
        ]
    )
    cell = nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(parameters_index(notebook) + 1, cell)
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = NotebookClient(
        notebook,
        km=kernel_manager(tmp_path / "kernels"),
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors, errors
    assert not any(workdir.iterdir()), f"the notebook wrote {sorted(workdir.iterdir())}"
    return notebook, _text(notebook.cells)


def _text(cells: list[nbformat.NotebookNode]) -> str:
    """Every stream and text/plain output of ``cells``, in order."""
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _has_png(notebook: nbformat.NotebookNode) -> bool:
    return any(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def _check_common(text: str) -> None:
    assert f"kernel interpreter: {sys.executable}" in text, "the kernel ran another Python"
    assert "does not exist: using the package's synthetic market" in text


@pytest.mark.parametrize("name", ["regime_history.ipynb", "model_comparison.ipynb"])
def test_notebooks_are_stored_executed_with_default_parameters(name):
    """Committed with the outputs of a full run (``make notebooks``), so they render on a
    code host: every code cell executed once, in order, without an error, and the
    parameters cell holds the real-data defaults it ran with."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code[0] is notebook.cells[parameters_index(notebook)], "parameters come first"
    assert 'DATA_DIR = "../../../shared/data"' in code[0].source
    assert re.search(r"^QUICK = False\b", code[0].source, re.MULTILINE)
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "run it top to bottom: make notebooks"
    for cell in code:
        assert not [output for output in cell.outputs if output.output_type == "error"]
    if name == "regime_history.ipynb":  # the comparison notebook draws no figure
        assert _has_png(notebook), "stored without its figures"
    assert "Data: the CSV snapshot in" in _text(code), "stored from a run on synthetic data"


@pytest.mark.slow
def test_regime_history_notebook_runs(tmp_path):
    notebook, text = execute("regime_history.ipynb", tmp_path)
    _check_common(text)
    # The verdict is printed whatever it is (a QUICK run fails on ESS).
    assert re.search(r"Diagnostics verdict: (PASS|FAIL)", text), text
    assert re.search(r"max R-hat\s+\d", text)
    assert _has_png(notebook), "no figure of P(risk_on) over prices"
    assert re.search(r"\d+ smoothed episodes; the filtered path has \d+", text)
    assert "P(risk_on) > 0.5 matches the true regime" in text


@pytest.mark.slow
def test_model_comparison_notebook_runs(tmp_path):
    notebook, text = execute("model_comparison.ipynb", tmp_path)
    _check_common(text)
    printed = [_text([cell]) for cell in notebook.cells]
    comparison = [output for output in printed if "ranked by" in output]
    assert len(comparison) == 1, "the comparison table was not printed"
    for run in COMPARISON_RUNS:  # one row per run, named after its saved directory
        assert re.search(rf"^{run}\s", comparison[0], re.MULTILINE), f"{run} not ranked"
    assert "ranked by held-out one-step score" in comparison[0]
    assert "observed_frequency" in text and "brier_always_base_rate" in text
