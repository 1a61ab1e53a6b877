# The README's commands. Each one sets up what it needs on a fresh Debian machine with
# Python 3.11 (no GPU needed): a .venv, pinned dependencies, the native extension.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PINS   := -c constraints.txt
STAMP  := $(VENV)/.installed
NATIVE := $(shell find csrc -name '*.cc' -o -name '*.h')
EXT    := speechdecode/.native-built

.PHONY: install system-deps demo test bench lint clean

# Debian packages: zlib headers for the extension; real text (bible-kjv, fortunes) and the CMU
# pronouncing dictionary (pocketsphinx-en-us) for tests and benchmarks; OpenFst's command-line
# tools (libfst-tools) to check our graphs; graphviz for `graph draw`. Installed only when missing
# (needs root, as on CI machines).
DEBS := zlib1g-dev bible-kjv fortunes pocketsphinx-en-us libfst-tools graphviz

install: $(EXT)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml setup.py constraints.txt
	$(PIP) install --quiet $(PINS) torch==2.13.0 setuptools wheel pybind11
	$(PIP) install --quiet $(PINS) --no-build-isolation -e ".[test,bench,graphs,gpu,hf,lint]"
	touch $(STAMP)

# Rebuild the extension in place whenever a C++ source changes (editable install).
$(EXT): $(STAMP) $(NATIVE)
	$(BIN)/python -W ignore setup.py --quiet build_ext --inplace
	$(BIN)/python -c "import speechdecode._native"
	touch $(EXT)

demo: install
	$(BIN)/speechdecode demo --out demo-output

system-deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: system-deps install
	$(BIN)/python -m pytest

bench: system-deps install
	$(BIN)/speechdecode bench all --out bench/results

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/clang-format --dry-run --Werror $(NATIVE)

clean:
	rm -rf build $(VENV) speechdecode/_native*.so $(EXT) *.egg-info
