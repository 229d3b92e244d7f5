# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format typecheck install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build on this disk (a later, unpinned resolve would pull CUDA).
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet -e '.[dev,eval]'
	# A Chromium for the chat panel's browser test (tests/test_chat_web.py); optional where apt is not ours.
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt) for the browser tests"; \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } || \
		echo "could not install chromium with apt; tests/test_chat_web.py will be skipped"; \
	else \
		echo "no /usr/bin/chromium (and not root with apt-get): tests/test_chat_web.py will be skipped"; \
	fi
	@touch $(STAMP)

install: $(STAMP)

## run: create the venv, install, migrate, seed, and start the platform on BASTION_HOST:BASTION_PORT
run: $(STAMP)
	$(BIN)/bastion db upgrade
	$(BIN)/bastion registry seed
	$(BIN)/bastion demo prepare
	$(BIN)/bastion index
	$(BIN)/bastion train conversion --if-missing
	$(BIN)/bastion serve --print-dev-token

## test: create/update the venv and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: run the benchmarks (tables printed; results also written under bench/results)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

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
