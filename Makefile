# Entry points. `make run` on a fresh machine sets everything up and runs the pipeline; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: setup run test test-fast lint ui serve bench cv clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# `make run` shows progress bars and one line per stage; pip's, DVC's and MLflow's notes go to the log.
RUN_LOG ?= $(CURDIR)/logs/run.log

run:                  ## set up, then train, evaluate and tag the seed articles (dvc repro); the last line names the log
	@mkdir -p $(dir $(RUN_LOG)) && : > $(RUN_LOG)
	@echo "setup: $(VENV) (pip output in the log)"
	@$(MAKE) --no-print-directory setup >>$(RUN_LOG) 2>&1 || { tail -n 20 $(RUN_LOG); echo "setup failed; full output in $(RUN_LOG)"; exit 1; }
	@$(PY) -m pipeline.quiet $(RUN_LOG) -- dvc repro

test: setup           ## the whole test suite, slow tests included
	$(PY) -m pytest -q

test-fast: setup      ## the code tier: unit tests on text written for them (no corpus, no trained model)
	$(PY) -m pytest -q tests/code

lint: setup
	ruff check pipeline tests bench
	ruff format --check pipeline tests bench

# MLflow 3.17's UI opens on its GenAI pages unless the address says workflowType=machine_learning
# (the experiment's mlflow.experimentKind tag, which training sets, is what older 3.x releases read).
ui: setup             ## MLflow UI on the local tracking store: open the address it prints (the training runs)
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	mlflow ui --backend-store-uri sqlite:///mlruns.db --host 127.0.0.1 --port 5000

serve: setup          ## the @champion model over HTTP on 127.0.0.1:5001 (docs/mlflow.md)
	$(PY) -m pipeline serve --alias champion --host 127.0.0.1 --port 5001

bench: setup
	$(PY) bench/bench_tag.py

cv: setup             ## grouped 5-fold cross-validation: metrics/cv/$NAME.json (NAME=x SET="-S train.C=5" for a variant)
	dvc repro prepare
	$(PY) -m pipeline crossval --name $${NAME:-default} $${SET}

clean:
	rm -rf data/prepared data/split data/tokens data/evaluate data/tagged models/*.joblib models/*.json
