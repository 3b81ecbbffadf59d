# Two commands do all set-up on a fresh machine with python3 and make:
#   make run   - create .venv, install, start the app
#   make test  - create .venv, install (+ test tools, Debian's chromium if missing), lint, type-check, run every test
# While working: make test-fast (no browser, nothing slow), make lint, make typecheck, make check (what works offline).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
SHARED ?= ../shared

.PHONY: run serve test test-fast lint typecheck check chromium bench install install-test keras-cache clean

# requirements.txt holds the exact pins; the editable install makes cnnviz and ui importable anywhere.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The app reads ImageNet class names (and the demo data sets) from Keras's cache.
# Offline machines get them from ../shared/keras-cache when it is there; nothing is overwritten.
keras-cache:
	@if [ -d "$(SHARED)/keras-cache" ]; then \
	  mkdir -p "$${KERAS_HOME:-$$HOME/.keras}" && \
	  cp -rn "$(SHARED)/keras-cache/." "$${KERAS_HOME:-$$HOME/.keras}/" 2>/dev/null || true; \
	fi

# serve.py = app.py with a warm start (models load when the server starts) and /_cnnviz/ready.
# MALLOC_ARENA_MAX=2: every session's script thread would otherwise get its own glibc arena, which
# keeps what a forward pass freed (README, "Serving many visitors").
run: install keras-cache
	MALLOC_ARENA_MAX=2 $(VENV)/bin/streamlit run serve.py --server.port $(PORT)

# A public server on one host: N processes (default 2) behind nginx with sticky sessions, on
# http://127.0.0.1:8500/ (deploy/serve.sh lists its settings; README "Serving many visitors").
N ?= 2
serve: install keras-cache
	deploy/serve.sh $(N)

# What works offline on this machine (after `make run`'s copy of ../shared/keras-cache): one table.
check: install keras-cache
	@$(PY) -m cnnviz.offline

# Debian's chromium drives the end-to-end tests; Playwright never downloads a browser here.
# A file target: `make test` runs it only while /usr/bin/chromium is missing, never otherwise.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "The browser tests need Debian's chromium, which is missing: installing it with apt-get (needs root)."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji
chromium: $(CHROMIUM)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

# Everything but the browser and the slow tests (doctests included): the loop to run while working.
test-fast: install-test
	$(PY) -m pytest -n 2 -m "not browser and not slow"

# Library and page tests on both cores, then the browser tests one at a time (each starts a real server).
test: lint typecheck install-test $(CHROMIUM)
	$(PY) -m pytest -n 2 -m "not browser"
	$(PY) -m pytest -m browser

bench: install
	for b in bench/[a-z]*.py; do $(PY) -m bench.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf $(VENV) tests/screenshots bench/out
