"""Execute the notebooks in place at full size, storing their outputs (``make notebooks``).

Each notebook runs with its stored parameters (the real data snapshot beside the
repository when it exists, the package's default chain lengths), in this interpreter, with
docs/notebooks as the working directory, and is written back with every output, so it
renders on a code host. The test suite executes them again at small size
(tests/test_notebooks.py) without writing.

    .venv/bin/python docs/notebooks/execute.py [NAME.ipynb ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("regime_history.ipynb", "model_comparison.ipynb")


def main(names: list[str]) -> int:
    sys.path.insert(0, str(HERE.parents[1] / "tests"))
    from test_notebooks import KERNEL_NAME, kernel_manager  # one kernel definition

    for name in names or NOTEBOOKS:
        path = HERE / name
        notebook = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as kernels:
            client = NotebookClient(
                notebook,
                km=kernel_manager(Path(kernels)),
                kernel_name=KERNEL_NAME,
                timeout=3600,
                resources={"metadata": {"path": str(HERE)}},
            )
            client.execute()
        # Written whole or not at all (a failed cell raised above: the old file stays).
        partial = path.with_suffix(".ipynb.partial")
        nbformat.write(notebook, partial)
        partial.replace(path)
        print(f"{name}: executed in {time.perf_counter() - started:.0f} s, outputs stored")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
