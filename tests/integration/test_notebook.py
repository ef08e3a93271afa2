"""The marketing notebook runs headless against a registered model and shows the audit's tables."""

from __future__ import annotations

import json
import sys

import nbformat
import yaml
from nbclient import NotebookClient

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
    for column in ("mean_abs_contribution", "mean_contribution", "acceptance_rate", "top_rejection_reason",
                   "conversion_rate", "lift", "observed", "overall_mean_abs_contribution"):
        assert column in html, column
    assert "Segment: lead_source = webinar" in markdown
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 6
