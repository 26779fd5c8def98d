# `make demo` and `make test` work on a fresh Debian machine: both set up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
export GAS_CACHE_DIR ?= $(CURDIR)/.cache
export PYOPENGL_PLATFORM ?= osmesa
export PREFECT_HOME ?= $(CURDIR)/.cache/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# Prefect's ephemeral API must come up within this time; 20 s (its default) is too short on a loaded machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export PREFECT_LOGGING_LEVEL ?= WARNING
export YOLO_CONFIG_DIR ?= $(CURDIR)/.cache/ultralytics
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-slow test-all bench bench-gpu docs clean

setup:
	@VENV=$(VENV) bash scripts/bootstrap.sh
	@mkdir -p $(GAS_CACHE_DIR) $(PREFECT_HOME)

demo: setup
	$(VENV)/bin/gas demo --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest -m "not slow" -q

test-slow: setup
	$(PY) -m pytest -m "slow" -q

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_render.py

# All paper-size GPU figures in one run (docs/benchmarks.md): sets the machine up, times that, then measures.
# Extra options through BENCH_GPU_ARGS, e.g. make bench-gpu BENCH_GPU_ARGS="--budget 400".
bench-gpu:
	@start=$$(date +%s); $(MAKE) --no-print-directory setup && \
	$(PY) benchmarks/gpu_suite.py --setup-seconds $$(( $$(date +%s) - start )) $(BENCH_GPU_ARGS)

# The documentation site (docs/, mkdocs.yml) into site/; a broken link or anchor fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf out .pytest_cache site
