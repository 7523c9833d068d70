# callmeter — `make run` (demo on SQLite) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILD := web/dist/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/copy-docs-assets.mjs
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint web-test browser fuzz stress bench format clean api

setup: $(STAMP) $(WEB_BUILD)

# Reinstalls only when the dependency pins or the package metadata change.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_BUILD): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build --silent

run: setup
	$(BIN)/callmeter migrate
	$(BIN)/callmeter demo
	$(BIN)/callmeter serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check callmeter tests bench
	$(BIN)/ruff format --check callmeter tests bench
	$(BIN)/mypy --strict callmeter
	$(BIN)/lint-imports --no-logo
	@# nothing a person typed may become markup: no HTML from a string in the web client
	@! grep -rnE 'dangerouslySetInnerHTML|\.innerHTML *=|insertAdjacentHTML|document\.write' web/src \
		--include='*.ts' --include='*.tsx' --exclude='safety.test.ts' \
		|| (echo "web/src sets HTML from a string (see docs/chat.md)"; exit 1)

web-test: $(WEB_STAMP)
	cd web && npm run api:check --silent
	cd web && npm test --silent

# The web client's API types from the server's OpenAPI document (commit both files).
api: $(STAMP) $(WEB_STAMP)
	$(BIN)/callmeter openapi --out web/openapi.json
	cd web && npm run api --silent

browser:
	scripts/ensure-chromium.sh

test: setup lint web-test browser
	$(BIN)/pytest $(PYTEST_ARGS)

stress: setup
	$(BIN)/python -m tests.stress.driver --calls $${STRESS_CALLS:-500} --kills $${STRESS_KILLS:-20} $(STRESS_ARGS)

fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} $(BIN)/pytest -s tests/security/test_fuzz.py

# Not part of CI: rewrites docs/benchmarks.md, docs/benchmarks.png and docs/benchmarks.json.
# Needs the PostgreSQL on 127.0.0.1:5432 (uses a scratch database callmeter_bench);
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--sizes 1000,10000 --skip-steady" or
# BENCH_ARGS="--only api,capacity" (re-measure those sections, keep the rest).
bench: setup
	scripts/ensure-bench-tools.sh
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.lock
	$(BIN)/python -m bench.run $(BENCH_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix callmeter tests bench
	$(BIN)/ruff format callmeter tests bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .import_linter_cache .pytest_cache .hypothesis web/node_modules web/dist
