# Entry points. `make run` on a fresh machine sets everything up and runs the pipeline; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: setup run test test-fast lint ui serve bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup            ## train, evaluate and tag the seed articles (dvc repro)
	dvc repro

test: setup           ## the whole test suite, slow tests included
	$(PY) -m pytest -q

test-fast: setup      ## unit tests only
	$(PY) -m pytest -q -m "not slow"

lint: setup
	ruff check pipeline tests bench
	ruff format --check pipeline tests bench

ui: setup             ## MLflow UI on the local tracking store
	mlflow ui --backend-store-uri sqlite:///mlruns.db --port 5000

serve: setup          ## the @champion model over HTTP on 127.0.0.1:5001 (docs/mlflow.md)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///mlruns.db} mlflow models serve \
		-m models:/trafficking-topics@champion --env-manager local -h 127.0.0.1 -p 5001

bench: setup
	$(PY) bench/bench_tag.py

clean:
	rm -rf data/prepared data/split data/tokens data/evaluate data/tagged models/*.joblib models/*.json
