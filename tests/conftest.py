"""Fixture builders: every test document is generated here by code."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

# Each line of the body is one paragraph or table row of the rendered document, so lines run long.
REALISTIC_SOURCE = """---
force: Avon and Somerset Police
output: pdf
layout: sections
letterhead: "Avon and Somerset Police | Office of the Chief Constable | Portishead"
marking: OFFICIAL
gold: {}
---

# Response to the super-complaint recommendations

## Recommendation 2a: force systems

Our intranet hosts a modern slavery page with first responder guidance, the duty to notify form and contact details for the specialist team. The page was refreshed in September and is linked from the home page of every officer's mobile device app.

## Recommendation 2b: identifying victims

Every student officer receives a full day of modern slavery training. Frontline refresher training covers the indicators of exploitation:

- signs of control, such as someone else holding identity documents;
- workers living at their place of work;
- injuries, poor health or signs of neglect.

## Recommendation 2g: the statutory defence

The section 45 defence is now a mandatory field on every case file. Custody sergeants check that the defence was considered before any charging decision, and the Crown Prosecution Service reviews a sample each quarter.

## Recommendation 3: investigation

Modern slavery is a priority in our control strategy. All modern slavery crimes are allocated to PIP2 detectives in the Exploitation Team, and a detective inspector reviews every investigation after seven days.

## Recommendation 4: victim support

Working with the Police and Crime Commissioner, we fund two Justice and Care Victim Navigators and a commissioned advocacy service that supports victims before and after a referral to the National Referral Mechanism, including those who decline a referral.

| Recommendation | Response |
|---|---|
| 2e: advise victims what support is available | Officers carry a leaflet in twelve languages explaining the support on offer and how to reach the Salvation Army. |
| 2f: understand the NRM | Every referral is quality assured by the modern slavery coordinator before it is submitted. |
"""  # noqa: E501


def _png(width: int = 40, height: int = 40) -> bytes:
    """A tiny grey PNG, written by hand so tests need no imaging library."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def make_canvas_pdf(pages: list[list[tuple[float, str]]], *, encrypt: str | None = None,
                    images: set[int] = frozenset(), font_size: float = 11) -> bytes:
    """A PDF drawn line by line: pages[i] is a list of (y from top, text) for page i+1."""
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    rl_config.invariant = 1
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, encrypt=encrypt)
    w, h = A4
    for i, lines in enumerate(pages, start=1):
        for y, text in lines:
            c.setFont("Helvetica", font_size)
            c.drawString(72, h - y, text)
        if i in images:
            c.drawImage(ImageReader(io.BytesIO(_png())), 72, 200, width=400, height=400)
        c.showPage()
    c.save()
    return buf.getvalue()


@pytest.fixture(scope="session")
def realistic_pdf(tmp_path_factory) -> Path:
    from scripts.render import parse_source, render_pdf

    # Pad the source so it runs over several pages: real responses are multi-page.
    extra = "\n\n".join(
        f"## Further detail {i}\n\nThe modern slavery coordinator reviewed referral number {i} "
        "with the officer in the case and recorded the learning on the case file. "
        "Supervisors discussed the outcome at the monthly tactical meeting." for i in range(1, 25)
    )
    src = parse_source(REALISTIC_SOURCE + "\n" + extra, slug="avon-and-somerset")
    path = tmp_path_factory.mktemp("pdf") / "Avon and Somerset response.pdf"
    path.write_bytes(render_pdf(src))
    return path


@pytest.fixture(scope="session")
def realistic_docx(tmp_path_factory) -> Path:
    from scripts.render import parse_source, render_docx

    src = parse_source(REALISTIC_SOURCE.replace("output: pdf", "output: docx"), slug="kent")
    path = tmp_path_factory.mktemp("docx") / "Kent Police response.docx"
    path.write_bytes(render_docx(src))
    return path


@pytest.fixture
def bad_inputs(tmp_path, realistic_docx) -> dict[str, Path]:
    """One file per kind of bad input the batch must survive."""
    files = {}
    files["corrupt"] = tmp_path / "corrupt.pdf"
    files["corrupt"].write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nthis is not a pdf\n%%EOF")
    files["encrypted"] = tmp_path / "encrypted.pdf"
    files["encrypted"].write_bytes(
        make_canvas_pdf([[(100, "Secret response text.")]], encrypt="pw"))
    files["image_only"] = tmp_path / "scanned letter.pdf"
    files["image_only"].write_bytes(make_canvas_pdf([[], []], images={1, 2}))
    files["empty"] = tmp_path / "empty.txt"
    files["empty"].write_bytes(b"")
    files["wrong_ext"] = tmp_path / "spreadsheet.xlsx"
    files["wrong_ext"].write_bytes(b"PK\x03\x04not really a workbook")
    files["docx_as_pdf"] = tmp_path / "renamed.pdf"
    files["docx_as_pdf"].write_bytes(realistic_docx.read_bytes())
    files["undecodable"] = tmp_path / "garbled.txt"
    files["undecodable"].write_bytes(b"Modern slavery \x81\x8d\x8f\x90\x9d response")
    files["zip_bomb"] = tmp_path / "bomb.docx"
    import zipfile

    with zipfile.ZipFile(files["zip_bomb"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"<w:document/>" + b"\x00" * (50 * 1024 * 1024))
    files["latin1"] = tmp_path / "latin1.txt"
    files["latin1"].write_bytes(
        "Caf\u00e9 workers were safeguarded by Kent Police \u00a3500.".encode("latin-1"))
    return files


REPO = Path(__file__).resolve().parent.parent


def small_corpus(per_voice: int = 45, seed: int = 0):
    """A code-built subset of the shipped labelled corpus: quick to train on."""
    from pipeline.corpus import load_corpus
    from pipeline.taxonomy import load_taxonomy

    corpus = load_corpus(REPO / "data" / "labelled", load_taxonomy(), validate=False)
    return corpus.groupby("voice").sample(n=per_voice, random_state=seed).reset_index(drop=True)


def depth_label(i, status="in_place", specificity="specific", **extra):
    """One depth annotation of passage x<i>, as data/labelled/depth/*.jsonl holds it."""
    return {"id": f"x{i}", "status": status, "specificity": specificity,
            "annotator": "test", "created": "2026-11-30", **extra}


def depth_corpus():
    """Code-built passages whose status and sub-point show in their words, and their depth
    annotations."""
    import pandas as pd

    from pipeline.taxonomy import load_taxonomy

    categories = load_taxonomy().labels
    rows, labels = [], []
    things = ["a reception centre", "welfare packs", "a safe house", "interpreters",
              "a leaflet on support", "an NRM referral checklist", "training on the signs",
              "a duty to notify form", "an app", "a victim navigator", "a place of safety",
              "a referral hub"]
    for i in range(96):
        thing = things[i % len(things)]
        sub = ["2d", "2e", "2f", "2b"][i % 4]
        status, text = [("in_place", f"We have {thing} in every district and it is used daily."),
                        ("planned", f"We will introduce {thing} next year."),
                        ("gap", f"We do not yet have {thing}; nothing has started."),
                        ("in_place", f"Officers use {thing} at every custody suite.")][i % 4]
        word = {"2d": "safety", "2e": "support", "2f": "referral", "2b": "identify"}[sub]
        rows.append({"id": f"x{i}", "text": f"{text} It helps us {word} victims.",
                     "labels": ["nrm"], "subpoints": [sub], "genre": f"g{i % 3}",
                     **{c: int(c == "nrm") for c in categories}})
        labels.append(depth_label(i, status, "specific" if i % 2 else "general"))
    return pd.DataFrame(rows), pd.DataFrame(labels)


def fast_params():
    """Real parameters, with the slow parts turned down for tests."""
    from pipeline.config import load_params

    params = load_params(REPO / "params.yaml")
    params = params.override("cv", n_splits=3)
    return params.override("features", max_features_char=20000, max_features_word=10000)


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A throwaway project root (params, labelled subset, models/) with a trained model."""
    import json

    import yaml

    from pipeline.modelstore import save_model
    from pipeline.taxonomy import load_taxonomy
    from pipeline.train import train

    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(fast_params().as_dict()))
    (root / "data" / "labelled").mkdir(parents=True)
    corpus = small_corpus()
    keep = ["id", "text", "labels", "voice", "source", "author", "created", "heading", "kind"]
    with open(root / "data" / "labelled" / "subset.jsonl", "w") as fh:
        for rec in corpus[keep].to_dict("records"):
            fh.write(json.dumps(rec) + "\n")
    result = train(corpus, load_taxonomy(), fast_params(), version="vtest")
    save_model(result.model, root / "models", {"cv_metrics": result.cv_metrics})
    return root
