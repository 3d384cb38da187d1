"""`make data`: sample submissions are rendered from Markdown sources, deterministically."""

import pandas as pd
import pytest

from pipeline.ingest import read_document
from scripts.render import build_folder, main, parse_source, render, render_text

SOURCE = """---
force: {force}
output: {output}
encoding: {encoding}
letterhead: "{force} | Headquarters"
marking: OFFICIAL
gold:
  nrm: [2f]
  victim_support: []
---

# {force} response to the recommendations

## Recommendation 2f

Every referral to the National Referral Mechanism is checked by the modern slavery
coordinator before it is submitted.

- first responders are trained;
- the SPOC reviews each referral within two days.

| Recommendation | Response |
|---|---|
| 4: victim support | The PCC funds an advocacy service for survivors. |
"""


def _source(force="Kent Police", output="txt", encoding="utf-8"):
    return parse_source(SOURCE.format(force=force, output=output, encoding=encoding), slug="kent")


def test_plain_text_has_pages_furniture_and_wrapped_lines():
    text = render_text(_source(), markdown=False)
    assert text.startswith("Kent Police | Headquarters\n\nOFFICIAL\n")
    assert "KENT POLICE RESPONSE TO THE RECOMMENDATIONS" in text
    assert "* first responders are trained;" in text
    assert "| 4: victim support | The PCC funds an advocacy service for survivors. |" in text
    assert text.rstrip().endswith("Page 1 of 1")
    assert all(len(line) <= 80 for line in text.splitlines())


def test_markdown_keeps_headings_and_bullets():
    text = render_text(_source(output="md"), markdown=True)
    assert "# Kent Police response to the recommendations" in text
    assert "## Recommendation 2f" in text and "- the SPOC reviews each referral" in text
    assert "Page 1 of" not in text


@pytest.mark.parametrize("encoding, start", [("utf-8", b"Kent"), ("utf-8-sig", b"\xef\xbb\xbf"),
                                             ("utf-16", b"\xff\xfe"), ("cp1252", b"Kent")])
def test_text_files_are_written_in_the_encoding_asked_for(encoding, start, tmp_path):
    data = render(_source(encoding=encoding))
    assert data.startswith(start)
    path = tmp_path / "Kent Police response.txt"
    path.write_bytes(data)
    doc = read_document(path)
    assert doc.force == "Kent"
    assert any("National Referral Mechanism" in b.text for b in doc.blocks)
    if encoding == "cp1252":
        assert b"\r\n" in data


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="unknown output 'rtf'"):
        render(_source(output="rtf"))


def test_build_folder_renders_every_source_and_the_gold_file(tmp_path, capsys):
    sources = tmp_path / "source"
    sources.mkdir()
    for slug, output in (("kent", "txt"), ("essex", "md"), ("surrey", "docx"), ("dorset", "pdf")):
        force = f"{slug.title()} Police"
        (sources / f"{slug}.md").write_text(SOURCE.format(force=force, output=output,
                                                          encoding="utf-8"))
    out = tmp_path / "raw"
    assert main([str(sources), str(out)]) == 0
    assert "rendered 4 files" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dorset.pdf", "essex.md", "gold_coverage.csv", "kent.txt", "surrey.docx"]
    gold = pd.read_csv(out / "gold_coverage.csv")
    kent = gold[gold["file"] == "kent.txt"].set_index("category")
    assert kent.loc["nrm", "addressed"] == 1 and kent.loc["nrm", "subpoints"] == "2f"
    assert kent.loc["victim_support", "addressed"] == 0
    assert set(gold["force"]) == {"Kent", "Essex", "Surrey", "Dorset"}
    # Deterministic: rendering again gives the same bytes.
    again = tmp_path / "again"
    written = build_folder(sources, again)
    assert len(written) == 4
    for path in written:
        assert path.read_bytes() == (out / path.name).read_bytes(), path.name


def test_usage_error_without_two_folders(capsys):
    assert main(["only-one"]) == 2
    assert "usage: python -m scripts.render" in capsys.readouterr().err
