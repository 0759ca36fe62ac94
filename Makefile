# The two commands: `make demo` and `make test`. Both create .venv if missing and install
# the project into it (offline apart from the package registries).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint figures install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project metadata changes (the source is an editable install).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlstrategy run recipes/quickstart.yaml
	@echo "Next: $(BIN)/tensorboard --logdir logs   (Scalars tab: the cost chart, train vs dev)"

# One torch thread: the suite trains many tiny nets, where a second thread only adds
# synchronization (and on a shared 2-core machine oversubscription slows steps 4-7x).
# Two worker processes instead (pytest-xdist), one test file each at a time: most of the
# time goes to console-script tests that wait on importing torch, and that parallelizes.
test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -n $${TEST_WORKERS:-2} --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

# Every figure the READMEs quote, measured again (about 55 minutes on 2 cores): the recipes
# and benchmarks they come from write benchmarks/figures.json, then the READMEs' marked
# sections are rendered from it. `make test` fails when a section and the file disagree.
figures: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/figures.py
	$(BIN)/python benchmarks/readme_figures.py

clean:
	rm -rf $(VENV) logs/*/ .pytest_cache .ruff_cache .mypy_cache
