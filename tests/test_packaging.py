"""The runtime package stands without the dev extras: no module of pipeline/ imports the
developer tools in scripts/ or what only they need (reportlab). And it stays readable:
small modules, a thin CLI, typed records (the architecture issue's bounds)."""

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


def _sources():
    return sorted((REPO / "pipeline").rglob("*.py"))


def test_every_module_stays_small_enough_to_read():
    # The architecture issue's bounds: a module over 400 lines holds more than one concern.
    too_long = {str(p.relative_to(REPO)): n for p in _sources()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert too_long == {}


def test_the_cli_stays_thin():
    # Parse, call a stage, print: no command function over 25 lines.
    import ast

    tree = ast.parse((REPO / "pipeline" / "cli.py").read_text(encoding="utf-8"))
    long_functions = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
                      if isinstance(node, ast.FunctionDef)
                      and node.end_lineno - node.lineno + 1 > 25}
    assert long_functions == {}


def test_records_are_typed_rather_than_loose_dicts():
    loose = sum(p.read_text(encoding="utf-8").count("dict[str, Any]") for p in _sources())
    assert loose < 20
