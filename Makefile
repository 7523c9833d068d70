# callmeter — `make run` (demo on SQLite) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint format clean

setup: $(STAMP)

# Reinstalls only when the dependency pins or the package metadata change.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

run: setup
	$(BIN)/callmeter migrate
	$(BIN)/callmeter demo
	$(BIN)/callmeter serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check callmeter tests bench
	$(BIN)/ruff format --check callmeter tests bench
	$(BIN)/mypy --strict callmeter

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff check --fix callmeter tests bench
	$(BIN)/ruff format callmeter tests bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
