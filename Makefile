# Two commands on a fresh machine: `make demo` and `make test`. Both create the venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BENTOML_DO_NOT_TRACK := true

.PHONY: venv test demo lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(BIN)/leadscore sample-data --leads 20000 --seed 7 --out data/sample
	$(BIN)/leadscore features
	$(BIN)/leadscore train
	$(BIN)/leadscore score --input data/sample/open_leads.csv --activities data/sample/activities.csv \
		--as-of 2026-01-01 --output outputs/open_lead_scores.csv
	@echo
	@echo "Scores of the open leads:  outputs/open_lead_scores.csv"
	@echo "MLflow UI:                 $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000"
	@echo "                           then open http://127.0.0.1:5000 (experiment 'leadscore', model 'leadscore')"

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed '1i # Exact versions for reproducible installs (make uses: pip install -c constraints.txt -e .[dev]).\n# Regenerate after changing pyproject.toml: make lock' > constraints.txt

clean:
	rm -rf $(VENV) data outputs mlruns mlflow.db
