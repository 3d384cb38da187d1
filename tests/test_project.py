"""One Project per command: root, parameters (with --params and --set) and taxonomy."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.config import Params
from pipeline.errors import ForcecovError
from pipeline.project import open_project, parse_override, with_overrides
from tests.conftest import REPO


def test_overrides_are_typed_like_their_defaults():
    params = with_overrides(Params(), ["coverage.addressed_min=0.6", "score.jobs=2",
                                       "ingest.ocr=true", "coverage.planned_weight=1",
                                       "ingest.ocr_lang=eng+cym"])
    assert params.coverage.addressed_min == 0.6
    assert params.score.jobs == 2 and params.ingest.ocr is True
    assert params.coverage.planned_weight == 1.0 and isinstance(params.coverage.planned_weight,
                                                                float)
    assert params.ingest.ocr_lang == "eng+cym"
    # Everything else is left as it was.
    assert params.coverage.top_evidence == Params().coverage.top_evidence


@pytest.mark.parametrize("text, says", [
    ("coverage.addressed_min=high", "expected float"),
    ("score.jobs=1.5", "expected int"),
    ("ingest.ocr=maybe", "expected bool"),
    ("coverage.nope=1", "no key 'nope' in coverage (keys: addressed_min"),
    ("nothing.x=1", "no section 'nothing'"),
    ("coverage.addressed_min", "expected section.key=value"),
])
def test_a_bad_override_names_itself_and_what_is_allowed(text, says):
    with pytest.raises(ForcecovError, match=None) as caught:
        with_overrides(Params(), [text])
    assert says in str(caught.value) and text.split("=")[0] in str(caught.value)


def test_parse_override_keeps_equals_signs_in_the_value():
    assert parse_override("ingest.ocr_lang=a=b") == ("ingest", "ocr_lang", "a=b")


def test_a_project_reads_its_own_params_file_or_the_one_named(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"coverage": {"top_evidence": 7}}))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"coverage": {"top_evidence": 2}}))
    saved = os.environ.get("FORCECOV_ROOT")
    try:
        assert open_project(tmp_path).params.coverage.top_evidence == 7
        assert open_project(tmp_path, other).params.coverage.top_evidence == 2
        project = open_project(tmp_path, other, overrides=["coverage.top_evidence=4"])
        assert project.params.coverage.top_evidence == 4
        assert project.paths.labelled == tmp_path.resolve() / "data" / "labelled"
        assert project.packaged_taxonomy
        with pytest.raises(ForcecovError, match="no params.yaml"):
            open_project(tmp_path / "missing")
        with pytest.raises(ForcecovError, match="no such parameters file"):
            open_project(tmp_path, tmp_path / "absent.yaml")
    finally:
        if saved is None:
            os.environ.pop("FORCECOV_ROOT", None)
        else:
            os.environ["FORCECOV_ROOT"] = saved


def _cli(*args, root=REPO):
    return subprocess.run([sys.executable, "-m", "pipeline", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_set_reaches_the_stage(project, tmp_path, realistic_pdf):
    """--set changes what the stage computes: nothing counts as addressed above 1.0."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Kent Police response.pdf").write_bytes(realistic_pdf.read_bytes())
    plain = _cli("score", folder, "--out", tmp_path / "a", "--no-cache", root=project)
    strict = _cli("--set", "coverage.addressed_min=1.01", "score", folder, "--out",
                  tmp_path / "b", "--no-cache", root=project)
    assert plain.returncode == 0 and strict.returncode == 0, plain.stderr + strict.stderr

    def addressed(run):
        summary = json.loads((run / "summary.json").read_text())
        return sum(c["n_addressed"] for c in summary["categories"].values())

    assert addressed(tmp_path / "a") > 0 and addressed(tmp_path / "b") == 0


def test_a_bad_set_is_one_line_and_a_usage_error():
    proc = _cli("--set", "coverage.addressed_min=lots", "extract", "x.pdf")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "coverage.addressed_min" in lines[0] and "float" in lines[0]
