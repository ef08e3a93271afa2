"""The marketing notebook runs headless against a registered model and shows the audit's tables as its page does."""

from __future__ import annotations

import json
import re
import sys

import nbformat
import yaml
from nbclient import NotebookClient

from pipelines import audit
from pipelines.config import PARAMS_ENV, PROJECT_ROOT
from pipelines.tracking import tracking_uri

NOTEBOOK = PROJECT_ROOT / "notebooks" / "signal_audit.ipynb"
KERNEL = "leadscore-test"


def test_signal_audit_notebook_executes_on_the_trained_store(trained, sample_params, tmp_path, monkeypatch):
    # A kernel spec of our own that starts this interpreter, wherever Jupyter's default spec points.
    kernel_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    kernel_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernel_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(sample_params.model_dump(mode="json")))
    monkeypatch.setenv(PARAMS_ENV, str(params_file))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(sample_params))
    monkeypatch.setenv("LEADSCORE_SEGMENT_VALUE", "Webinar")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "saved with outputs"
    NotebookClient(notebook, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs)
    markdown = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "Segment: lead_source = webinar" in markdown
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 6
    # The slice's tier section says which leads it is of, as the page's does: it said "held-out leads" alone
    assert re.search(r"\d+ held-out leads \(the newest ones with an outcome, created .*\) of lead source webinar, "
                     r"\d+\.\d% converted", markdown)

    # Every table as the HTML report shows it, by the page's own rule (audit.table_html): headings in words, shares
    # as percentages, not the CSVs' column names and fractions (0.399); the model details' times as a reader writes them.
    for column, table in (("mean_abs_contribution", "signals"), ("mean_contribution", "dependence"),
                          ("acceptance_rate", "by_lead_source"), ("top_rejection_reason", "by_lead_source"),
                          ("conversion_rate", "tiers"), ("lift", "tiers"), ("observed", "calibration"),
                          ("overall_mean_abs_contribution", "signals")):
        assert f"<th>{audit.shown_as(column, table)}</th>" in html, column
        assert f"<th>{column}</th>" not in html, column
    assert re.search(r"<td>\d+\.\d%</td>", html)
    _, training_set = audit.load_inputs(sample_params)  # what the notebook read: its slice as the page words it
    summary, reasons = audit.segment_outcomes(audit.lead_outcomes(training_set, sample_params.label, ["lead_source"]),
                                              "lead_source")
    for name, table in (("by_lead_source", summary), ("rejection_reasons_by_lead_source", reasons)):
        assert audit.table_html(name, table[table["lead_source"] == "webinar"]) in html, name
    shown = html + "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "<td>written at</td>" in html and not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", shown)
