# The two commands of the README: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= ray,gpu,train,airflow,s3,test

export HF_HUB_OFFLINE = 1
export OMP_NUM_THREADS ?= 1
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: run test setup clean airflow airflow-stop

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the CPU wheel on disk; a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/moon run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Airflow standalone on 127.0.0.1 with dags/, a local Ray head and the ray_default connection; prints URL and login.
airflow: $(STAMP)
	$(PY) -m augment.orchestrate.local_stack start $(AIRFLOW_ARGS)

airflow-stop:
	$(PY) -m augment.orchestrate.local_stack stop

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
