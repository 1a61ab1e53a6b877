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

.PHONY: install system-deps demo test test-sanitize test-gpu bench lint clean acoustic-model

# Debian packages: zlib headers for the extension; real text (bible-kjv, fortunes) and the CMU
# pronouncing dictionary (pocketsphinx-en-us) for tests and benchmarks; OpenFst's command-line
# tools (libfst-tools) to check our graphs; graphviz for `graph draw`. Installed only when missing
# (needs root, as on CI machines). Speech synthesizers (espeak-ng, flite, festival and its voices)
# and sox make the acoustic model's audio (`make acoustic-model`, the demo, tests, benchmarks).
DEBS := zlib1g-dev bible-kjv fortunes pocketsphinx-en-us libfst-tools graphviz \
	espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox

install: $(EXT)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"

# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml setup.py constraints.txt
	$(PIP) install --quiet $(PINS) torch==2.13.0 setuptools wheel pybind11
	$(PIP) install --quiet $(PINS) --no-build-isolation -e ".[test,bench,graphs,gpu,hf,lint,ray]"
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

# The whole suite, then the sanitizer run of a subset (see test-sanitize below): the fuzz tests at a
# quarter of their examples, the thread tests, and the native ARPA reader's and WFST search's tests.
# About 4 minutes on 2 cores for a first sanitizer build, 1 for its tests; `make test-sanitize`
# runs everything native at full size.
SAN_QUICK := $(addprefix tests/reliability/,test_fuzz_arpa.py test_fuzz_kenlm.py test_fuzz_text_files.py \
	test_fuzz_npz.py test_threads.py) tests/lm/test_arpa_read_native.py tests/decoding/test_wfst_decoder.py

test: system-deps install
	SPEECHDECODE_NO_SKIPS=1 $(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-sanitize SAN_TESTS="$(SAN_QUICK)" SAN_SCALE=0.25

# The native tests under AddressSanitizer + UndefinedBehaviorSanitizer (a use after free, an
# overflow or undefined behaviour aborts the run with a report). The extension is built into
# build/sanitize/ (objects kept there, so a rebuild compiles only what changed); the in-place
# speechdecode/_native*.so stays the normal build. tests/reliability/sanitize/sitecustomize.py
# makes `import speechdecode._native` load the sanitized one, in pytest and in the worker
# processes the fuzz tests start. libasan is preloaded because python itself is not built with
# it, and libstdc++ with it (else ASan finds no __cxa_throw to intercept and aborts on the first
# C++ exception); leak detection is off because CPython keeps objects alive until exit by design.
SAN_DIR   := build/sanitize
SAN_SCALE ?= 1
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
SAN_TESTS ?= $(addprefix tests/reliability/,test_fuzz_arpa.py test_fuzz_kenlm.py test_fuzz_text_files.py \
	test_fuzz_npz.py test_threads.py) tests/lm/test_arpa_read_native.py tests/lm/test_kenlm_binary.py \
	tests/lm/test_model.py tests/decoding/test_wfst_decoder.py tests/decoding/test_ctc_prefix_beam_search.py \
	tests/decoding/test_ctc_greedy.py tests/decoding/test_ras.py tests/kernels/test_sampling.py
SAN_ENV   := LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_odr_violation=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONPATH=$(CURDIR)/tests/reliability/sanitize SPEECHDECODE_SANITIZED_LIB=$(CURDIR)/$(SAN_DIR)/lib \
	SPEECHDECODE_FUZZ_SCALE=$(SAN_SCALE)

test-sanitize: install
	CFLAGS="$(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" $(BIN)/python -W ignore setup.py --quiet build_ext \
		--build-lib $(SAN_DIR)/lib --build-temp $(SAN_DIR)/temp
	$(SAN_ENV) $(BIN)/python -c "import speechdecode._native as m; assert '$(SAN_DIR)' in m.__file__, m.__file__"
	$(SAN_ENV) $(BIN)/python -m pytest -p no:cacheprovider $(SAN_TESTS)

# Every Triton path compiled for the GPU (no interpreter) against its reference: the CUDA cases of
# the kernel and decoder tests (the backend_device fixture adds them when CUDA is present), the
# Triton prefix search's tests, and tests/gpu/. Without CUDA it says so and runs nothing.
GPU_TESTS := tests/kernels tests/decoding/test_ctc_greedy.py tests/decoding/test_ras.py \
	tests/decoding/test_guided_ras.py
test-gpu: install
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		env -u TRITON_INTERPRET $(BIN)/python -m pytest -p no:cacheprovider tests/gpu \
			tests/kernels/test_ctc_prefix_beam_triton.py && \
		env -u TRITON_INTERPRET $(BIN)/python -m pytest -p no:cacheprovider $(GPU_TESTS) -k "cuda"; \
	else \
		echo "make test-gpu: skipped: torch sees no CUDA device (torch.cuda.is_available() is False)"; \
	fi

# The shipped acoustic model (models/weights/), deterministic given AM_SEED, CPU only: synthesize
# and featurize AM_UTTERANCES training utterances into AM_WORK, train AM_STEPS steps, then print
# held-out CER/WER per voice (recipes/acoustic_model/; models/weights/MODEL_CARD.md has the run).
AM_WORK       ?= /tmp/speechdecode-acoustic-model
AM_SEED       ?= 0
AM_UTTERANCES ?= 10000
AM_FLITE_SHARE ?= 0.5
AM_STEPS      ?= 10000
# Training threads: 2 on an idle 2-core machine (bfloat16 steps: 0.092 s against 0.148 with
# one). On a shared machine use AM_THREADS=1: a second thread waits at every barrier for a core
# another job holds (2.75 s/step with 2 threads vs about 0.5 with one, under load 5).
AM_THREADS    ?= 2
AM_WEIGHTS    ?= models/weights/char_ctc.safetensors

acoustic-model: system-deps install
	mkdir -p $(AM_WORK)
	nice $(BIN)/python recipes/acoustic_model/synthesize.py --out $(AM_WORK) --utterances $(AM_UTTERANCES) --seed $(AM_SEED) \
		--flite-share $(AM_FLITE_SHARE)
	nice $(BIN)/python recipes/acoustic_model/train.py --data $(AM_WORK) --steps $(AM_STEPS) --seed $(AM_SEED) \
		--threads $(AM_THREADS) --weights $(AM_WEIGHTS)
	nice $(BIN)/python recipes/acoustic_model/evaluate.py --weights $(AM_WEIGHTS) --work $(AM_WORK)

bench: system-deps install
	$(BIN)/speechdecode bench all --out bench/results

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/clang-format --dry-run --Werror $(NATIVE)

clean:
	rm -rf build $(VENV) speechdecode/_native*.so $(EXT) *.egg-info
