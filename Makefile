# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The optional extras installed with bastion (pyproject.toml); CI adds spark (.ci/run). The stamp names
# them, so a changed EXTRAS installs again.
EXTRAS ?= dev,eval
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# The step runner: standard library only, so the system Python runs it before the venv exists.
STEPS = $(shell command -v $(PYTHON) || command -v python3) scripts/steps.py

.PHONY: run test bench screenshots lint format typecheck install clean

# Each step prints its name and its duration; pip's steps show what pip is doing meanwhile (scripts/steps.py).
# Torch goes first, pinned: the CPU build on this disk (a later, unpinned resolve would pull CUDA).
$(STAMP): pyproject.toml
	@$(STEPS) --title install \
		"virtualenv $(VENV)" "test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)" \
		"pip" "$(BIN)/python -m pip install --upgrade pip" \
		"torch (CPU build)" "$(BIN)/python -m pip install 'torch==2.13.0'" \
		"bastion and its dependencies" "$(BIN)/python -m pip install -e '.[$(EXTRAS)]'" \
		"chromium for the browser tests" "sh scripts/install-chromium.sh"
	@touch $(STAMP)

install: $(STAMP)

## run: create the venv, install, migrate, seed, and start the platform on BASTION_HOST:BASTION_PORT
run: $(STAMP)
	@$(STEPS) --title run \
		"database migrations" "$(BIN)/bastion db upgrade" \
		"registry seed" "$(BIN)/bastion registry seed" \
		"demo warehouse and query history" "$(BIN)/bastion demo prepare" \
		"knowledge index" "$(BIN)/bastion index" \
		"conversion model" "$(BIN)/bastion train conversion --if-missing"
	@$(BIN)/bastion serve --print-dev-token

## test: create/update the venv and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: run the benchmarks (tables printed; results also written under bench/results)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## screenshots: each console page, from the browser tests, into bench/results/ui (shown in the README)
screenshots: $(STAMP)
	BASTION_UI_SCREENSHOTS=bench/results/ui $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_console_web.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .bastion .pytest_cache .mypy_cache .ruff_cache
