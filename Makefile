# Two commands do all set-up on a fresh machine with python3 and make:
#   make run   - create .venv, install, start the app
#   make test  - create .venv, install (+ test tools, Debian's chromium), run every test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
SHARED ?= ../shared

.PHONY: run test bench install install-test chromium keras-cache clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
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

run: install keras-cache
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# Debian's chromium drives the end-to-end tests; Playwright never downloads a browser here.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji; }

test: install-test chromium
	$(PY) -m pytest

bench: install
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) tests/screenshots bench/out
