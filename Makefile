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

# Three test processes, each given whole files (`loadfile`), so that a module's shared fixtures (the hostile
# corpus graded up front, a module's worker, the full grades) are made once. Three on two cores: much of a
# grade is waiting (a worker's time limits, a hostile submission's sleep); two left the cores idle.
# Not `loadgroup`: pytest-xdist 3.8 marks groups by renaming `item._nodeid`, which pytest 9 no longer reads, so
# groups are ignored.
TEST_WORKERS ?= 3
# Torch threads per process: the cores shared out between the test processes. Torch's default (one thread per
# core in every process) oversubscribes the cores, and its spinning threads then made grades 2-5x slower.
TEST_THREADS ?= $(shell n=$$(( $$(nproc) / $(TEST_WORKERS) )); [ $$n -ge 1 ] && echo $$n || echo 1)

test: venv lint
	$(BIN)/python -m autograder template --check
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Grade the reference notebook on the default (synthetic) profile, preparing it first if needed.
grade: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m autograder prepare --profile synthetic
	HF_HUB_OFFLINE=1 $(BIN)/python -m autograder grade reference/ps7_solution.ipynb --results results.json --suite all

clean:
	rm -rf $(VENV) .pytest_cache
