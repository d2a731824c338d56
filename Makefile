# FFAAS — the two commands:
#   make up     install everything on a fresh Debian/Ubuntu machine and start Redis + both planes
#   make test   lint (ruff + mypy), then the whole test suite: exactly what .ci/run calls
# Also: make down, make status, make bench, make fuzz, make lint, make examples, make install.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./data
RUN_DIR := $(DATA_DIR)/run
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := redis-server g++ make clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 python3-venv chromium fonts-dejavu-core
BENCH_PACKAGES := wrk
REDIS_PORT ?= 6379
export FFAAS_DATA_DIR ?= $(DATA_DIR)

CONSOLE_SOURCES := $(wildcard control_plane/console/frontend/*)
CONSOLE_BUILD := build/console

.PHONY: install system-packages node-deps python-deps examples engines console up down status test bench fuzz lint clean

install: system-packages node-deps python-deps examples engines console

# Debian packages, installed only when missing (apt-get update runs only then).
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# esbuild, pinned in package.json/package-lock.json, transpiles TypeScript processors at save time.
# npm (with nodejs) comes from Debian only when missing; `npm ci` reruns when the lock file changes.
node-deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { \
		echo "installing Debian packages: nodejs npm"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; \
	}
	npm ci --no-audit --no-fund
	touch $@

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

examples: system-packages
	$(MAKE) -s -C examples

# The engine worker of runtime "v8" processors: isolated-vm (npm, pinned), built from source with
# node-gyp against Debian's Node headers.  See engines/v8/Makefile.
# ffaas-js, the JavaScript engine of runtime "wasm" processors: quickjs-ng's sources (PyPI sdist,
# pinned) compiled with clang-19, pre-initialised with wizer (npm).  See engines/quickjs/Makefile.
engines: system-packages node-deps python-deps
	$(MAKE) -s -C engines/quickjs PIP="$(abspath $(BIN))/pip"
	$(MAKE) -s -C engines/v8

# The web console's scripts and styles (control_plane/console/frontend/), bundled with CodeMirror 6
# (npm, pinned) by esbuild into build/console/, which the control plane serves at /ui/static/.
console: $(CONSOLE_BUILD)/.built

$(CONSOLE_BUILD)/.built: $(CONSOLE_SOURCES) node_modules/.installed
	node_modules/.bin/esbuild control_plane/console/frontend/console.js control_plane/console/frontend/editor.js \
		control_plane/console/frontend/console.css --bundle --minify --target=es2020 --log-level=warning \
		--outdir=$(CONSOLE_BUILD)
	touch $@

# Start Redis (unless one answers on REDIS_PORT) and both planes in the background.
up: install
	@mkdir -p $(RUN_DIR)
	@if ! redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --daemonize yes --dir $(abspath $(DATA_DIR)) \
			--appendonly yes --pidfile $(abspath $(RUN_DIR))/redis.pid --logfile $(abspath $(RUN_DIR))/redis.log; \
		echo "redis-server started on :$(REDIS_PORT)"; \
	fi
	@for plane in control_plane data_plane; do \
		if [ -f $(RUN_DIR)/$$plane.pid ] && kill -0 $$(cat $(RUN_DIR)/$$plane.pid) 2>/dev/null; then \
			echo "$$plane already running (pid $$(cat $(RUN_DIR)/$$plane.pid))"; continue; fi; \
		nohup $(BIN)/python -m $$plane >$(RUN_DIR)/$$plane.log 2>&1 & echo $$! >$(RUN_DIR)/$$plane.pid; \
	done
	@for url in http://127.0.0.1:$${FFAAS_CONTROL_PLANE_PORT:-3000}/status http://127.0.0.1:$${FFAAS_DATA_PLANE_PORT:-4000}/status; do \
		for i in $$(seq 100); do curl -sf $$url >/dev/null && break; sleep 0.1; done; \
		curl -sf $$url >/dev/null || { echo "$$url is not answering; see $(RUN_DIR)/*.log"; exit 1; }; \
	done
	@echo "FFAAS is up: control plane http://127.0.0.1:$${FFAAS_CONTROL_PLANE_PORT:-3000}, data plane http://127.0.0.1:$${FFAAS_DATA_PLANE_PORT:-4000} (logs in $(RUN_DIR))"

down:
	@for plane in data_plane control_plane redis; do \
		if [ -f $(RUN_DIR)/$$plane.pid ]; then kill $$(cat $(RUN_DIR)/$$plane.pid) 2>/dev/null || true; rm -f $(RUN_DIR)/$$plane.pid; echo "stopped $$plane"; fi; \
	done

status:
	@curl -s http://127.0.0.1:$${FFAAS_CONTROL_PLANE_PORT:-3000}/status; echo
	@curl -s http://127.0.0.1:$${FFAAS_DATA_PLANE_PORT:-4000}/status; echo

# Lint first: it takes seconds and fails fast; the suite then runs on code that passed it.
test: install
	$(MAKE) -s lint
	$(BIN)/pytest

bench: install
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES); }
	$(BIN)/python -m bench $(BENCH_ARGS)

# Schemathesis against both planes for longer than `make test` does (tests/e2e/fuzz/): each plane
# is fuzzed for FFAAS_FUZZ_SECONDS with up to FFAAS_FUZZ_MAX_EXAMPLES examples per operation and
# phase; the report of each run is printed.
FFAAS_FUZZ_SECONDS ?= 150
FFAAS_FUZZ_MAX_EXAMPLES ?= 200
fuzz: install
	FFAAS_FUZZ_SECONDS=$(FFAAS_FUZZ_SECONDS) FFAAS_FUZZ_MAX_EXAMPLES=$(FFAAS_FUZZ_MAX_EXAMPLES) \
		$(BIN)/pytest tests/e2e/fuzz -s -q -p no:cacheprovider

lint: python-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared control_plane data_plane ffaas_cli

clean:
	rm -rf build $(VENV) node_modules
