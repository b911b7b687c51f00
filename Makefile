# Two commands do all the set-up on a fresh machine:
#   make run    the main job (end-to-end pipeline on the embedded default)
#   make test   the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: run test lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/nasmeta pipeline

test: $(STAMP)
	$(BIN)/ruff check nasmeta metadata_store flows tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check nasmeta metadata_store flows tests benchmarks

clean:
	rm -rf .nasmeta .pytest_cache
