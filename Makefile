# Two commands on a fresh machine: `make demo` and `make test`. Both create the venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
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
	$(VENV)/bin/leadscore sample-data --leads 20000 --seed 7 --out data/sample
	$(VENV)/bin/leadscore features

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed '1i # Exact versions for reproducible installs (make uses: pip install -c constraints.txt -e .[dev]).\n# Regenerate after changing pyproject.toml: make lock' > constraints.txt

clean:
	rm -rf $(VENV) data outputs mlruns mlflow.db
