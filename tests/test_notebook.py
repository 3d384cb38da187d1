"""The exploration notebook runs headless from the repository root, and is committed clean."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "01-coverage-exploration.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell.get("outputs") == [], "strip outputs before committing the notebook"
        assert cell.get("execution_count") is None, "strip execution counts before committing"


@pytest.mark.slow
def test_notebook_runs_headless_and_draws(monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # The notebook finds the project from its working directory, like an analyst's session.
    monkeypatch.delenv("FORCECOV_ROOT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "expected the heatmap and the calibration plot"
    # The evidence table names pages to open in the original documents.
    assert any("page" in o.get("data", {}).get("text/html", "") for o in outputs)
