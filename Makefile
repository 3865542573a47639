# Two entry points for a fresh machine that has only python3 and make:
#   make demo  - create .venv if missing, install, run `regime demo` (offline)
#   make test  - the same install, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format install clean notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list or the pins change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/regime demo

# One test process per core (pytest-xdist).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

# The notebooks at full size on the data snapshot beside the repository, outputs stored
# (minutes; `make test` runs them at small size without storing).
notebooks: $(STAMP)
	$(BIN)/python docs/notebooks/execute.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
