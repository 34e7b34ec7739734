# Two commands set everything up on a fresh machine:
#   make run   - create .venv if missing, install, run the main job on the bundled data
#   make test  - install everything the tests need, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.twmb-installed
OUT    ?= out
# the Turso CLI (npm package "turso", pinned): a local Turso server for the publish tests
TURSO_VERSION := 0.6.0
TURSO_STAMP   := .tools/.turso-$(TURSO_VERSION)
# Debian Chromium (headless): the offline HTML map browser test

.PHONY: run test install lint bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twmb --out $(OUT) run

$(TURSO_STAMP):
	mkdir -p .tools
	npm install --prefix .tools --no-audit --no-fund --silent --save-exact turso@$(TURSO_VERSION)
	.tools/node_modules/.bin/turso --version
	touch $(TURSO_STAMP)

# Debian chromium for the browser test of the HTML map; checked on every run (cheap)
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)
	@chromium --version

test: $(STAMP) $(TURSO_STAMP) chromium
	# two workers, a file each (module fixtures stay in one process), slowest files first
	# (tests/conftest.py); one OpenMP thread per worker so the two do not oversubscribe the cores
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=20

lint: $(STAMP)
	$(BIN)/ruff check twmb_geo tests benchmarks examples
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
