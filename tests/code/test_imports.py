"""Every module of the project imports on its own: a cycle between two modules breaks only the commands whose
first import is one of them, which a run of the suite (importing in its own order) would not show."""

from __future__ import annotations

import subprocess
import sys

from pipelines.config import PROJECT_ROOT

PACKAGES = ("pipelines", "features", "models", "serving")

# One interpreter: third-party packages stay imported, the project's modules are dropped before each import.
IMPORT_EACH_FIRST = """
import importlib, pathlib, sys
root, packages = pathlib.Path(sys.argv[1]), sys.argv[2:]
modules = sorted(".".join(p.relative_to(root).with_suffix("").parts) for package in packages
                 for p in (root / package).glob("*.py") if p.name != "__init__.py")
failed = []
for module in modules:
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    try:
        importlib.import_module(module)
    except Exception as err:
        failed.append(f"{module}: {type(err).__name__}: {err}")
print(len(modules))
print("\\n".join(failed))
"""


def test_each_module_imports_first_without_a_cycle():
    run = subprocess.run([sys.executable, "-c", IMPORT_EACH_FIRST, str(PROJECT_ROOT), *PACKAGES], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    count, *failed = run.stdout.strip().split("\n")
    assert int(count) > 40 and failed == [], failed
