# Two commands on a fresh machine: `make demo` and `make test`. Both create the venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BENTOML_DO_NOT_TRACK := true
# OpenMP threads that sleep instead of spin while waiting: on a busy 2-core machine spinning made a
# 100k-lead fit 9x slower (measured by pipelines/bench.py); on an idle one this costs ~20%.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv test demo lock clean serve bench-serve bench

# A venv whose creation was interrupted (no pip in it) is made again rather than failing every later run;
# pip retries a registry that drops a connection more often than its default 5 times.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m pip --version >/dev/null 2>&1 || python3 -m venv --clear $(VENV)
	$(PY) -m pip install -q --retries 10 --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(BIN)/leadscore sample-data --leads 20000 --seed 7 --out data/sample
	$(BIN)/leadscore features
	$(BIN)/leadscore train
	$(BIN)/leadscore score --input data/sample/open_leads.csv --activities data/sample/activities.csv \
		--as-of 2026-01-01 --output outputs/open_lead_scores.csv --explain
	$(BIN)/leadscore audit --out outputs/audit
	@echo
	@echo "Scores of the open leads:  outputs/open_lead_scores.csv (with each lead's top factors)"
	@echo "Signal audit:              outputs/audit/audit.html"
	@echo "MLflow UI:                 $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000"
	@echo "                           then open http://127.0.0.1:5000 (experiment 'leadscore', model 'leadscore')"

SERVE_PORT ?= 3000
# The scoring service on 127.0.0.1 with the registry's champion (train first: `make demo`).
serve: $(STAMP)
	@test -n "$$LEADSCORE_API_KEY" || { echo "set the API key clients must send first, e.g."; \
		echo "  export LEADSCORE_API_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')"; exit 2; }
	$(BIN)/bentoml serve serving.service:LeadScoreService --host 127.0.0.1 --port $(SERVE_PORT)

# Latency and load benchmark against a running `make serve` (same LEADSCORE_API_KEY).
bench-serve: $(STAMP)
	$(PY) -m serving.bench --url http://127.0.0.1:$(SERVE_PORT)

# Training time and batch throughput at 10k/100k/1M synthetic leads, X Education cross-validated
# quality (issue 3); ends with a markdown summary. Took 10 min on 2 cores; e.g. SIZES=10000,100000.
SIZES ?= 10000,100000,1000000
bench: $(STAMP)
	$(PY) -m pipelines.bench --sizes $(SIZES)

# constraints.txt from the venv, and the bento's requirements (bento-requirements.txt) from it.
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed '1i # Exact versions for reproducible installs (make uses: pip install -c constraints.txt -e .[dev]).\n# Regenerate after changing pyproject.toml: make lock' > constraints.txt
	$(PY) -m serving.bento --write-requirements

clean:
	rm -rf $(VENV) data outputs mlruns mlflow.db
