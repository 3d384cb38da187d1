"""The runtime package stands without the dev extras: no module of pipeline/ imports the
developer tools in scripts/ or what only they need (reportlab)."""

import subprocess
import sys

from tests.conftest import REPO

_IMPORT_ALL = """
import importlib, pkgutil, sys
import pipeline
for mod in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
    if mod.name != "pipeline.__main__":
        importlib.import_module(mod.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("reportlab", "scripts"))
print(len(list(pkgutil.walk_packages(pipeline.__path__))), loaded)
"""


def test_importing_every_pipeline_module_loads_no_dev_tool():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n_modules, loaded = proc.stdout.split(" ", 1)
    assert int(n_modules) > 20 and loaded.strip() == "[]"


def test_no_pipeline_source_names_the_dev_tools():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "pipeline").rglob("*.py")
                 if "reportlab" in p.read_text(encoding="utf-8")
                 or "from scripts" in p.read_text(encoding="utf-8")]
    assert offenders == []
