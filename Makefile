# The two commands of the README: `make grade` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint grade clean

venv: $(STAMP)

# Reinstall only when the declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check autograder tests

# Two test processes: most of the suite waits on grading subprocesses that use one core each.
TEST_WORKERS ?= 2

test: venv lint
	$(BIN)/python -m autograder template --check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# Grade the reference notebook on the default (synthetic) profile, preparing it first if needed.
grade: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m autograder prepare --profile synthetic
	HF_HUB_OFFLINE=1 $(BIN)/python -m autograder grade reference/ps7_solution.ipynb --results results.json --suite all

clean:
	rm -rf $(VENV) .pytest_cache
