"""Render response sources (YAML front matter + a small Markdown subset) into the files a
force would send: PDF (reportlab), DOCX (python-docx), TXT or MD, with page furniture.

Used by ``make data`` to rebuild ``data/raw`` deterministically, by the tests to build
fixtures, and by the benchmark to generate corpora. reportlab is a dev dependency.

    python -m scripts.render data/raw/source data/raw
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import write_bytes, write_frame_csv


@dataclass
class Element:
    kind: str  # heading | paragraph | bullets | table
    text: str = ""
    level: int = 1
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    meta: dict[str, Any]
    elements: list[Element]
    slug: str

    @property
    def output(self) -> str:
        return str(self.meta.get("output", "pdf"))

    @property
    def filename(self) -> str:
        return str(self.meta.get("filename") or f"{self.slug}.{self.output}")


def parse_source(text: str, slug: str = "doc") -> Source:
    """Split front matter from body and parse the body into elements."""
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        _, fm, body = text.split("---", 2)
        meta = yaml.safe_load(fm) or {}
    elements: list[Element] = []
    for chunk in re.split(r"\n\s*\n", body.strip()):
        lines = [ln.rstrip() for ln in chunk.strip().split("\n") if ln.strip()]
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            m = re.match(r"^(#{1,3})\s+(.*)$", line)
            if m:
                elements.append(Element("heading", m.group(2).strip(), level=len(m.group(1))))
            elif line.startswith("- "):
                items = []
                while i < len(lines) and lines[i].strip().startswith("- "):
                    items.append(lines[i].strip()[2:].strip())
                    i += 1
                elements.append(Element("bullets", items=items))
                continue
            elif line.startswith("|"):
                rows = []
                while i < len(lines) and lines[i].strip().startswith("|"):
                    row = lines[i].strip()
                    if not re.match(r"^\|?[\s:|-]+\|?$", row):
                        rows.append([c.strip() for c in row.strip("|").split("|")])
                    i += 1
                elements.append(Element("table", rows=rows))
                continue
            else:
                elements.append(Element("paragraph", line))
            i += 1
    return Source(meta, elements, slug)


def _seed(slug: str) -> int:
    return int(hashlib.sha256(slug.encode()).hexdigest()[:8], 16)


def _marking(src: Source) -> str:
    m = str(src.meta.get("marking", "OFFICIAL"))
    return "" if m.lower() == "none" else m


# ----------------------------------------------------------------------------- PDF

def render_pdf(src: Source) -> bytes:
    """A PDF with letterhead, a protective marking at top and bottom of every page, and page
    numbers."""
    try:
        from reportlab import rl_config
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
        from reportlab.lib.units import mm
        from reportlab.platypus import (
            ListFlowable,
            ListItem,
            Paragraph,
            SimpleDocTemplate,
            Spacer,
            Table,
            TableStyle,
        )
    except ImportError as e:  # pragma: no cover - dev dependency
        raise RuntimeError("rendering PDFs needs reportlab: pip install -e '.[dev]'") from e
    from xml.sax.saxutils import escape

    rl_config.invariant = 1  # no timestamps or random ids: the same source gives the same bytes
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName="Helvetica", fontSize=10.5,
                          leading=13.5, spaceAfter=7)
    cell = ParagraphStyle("cell", parent=body, fontSize=9.5, leading=12, spaceAfter=0)
    heads = {1: ParagraphStyle("h1", parent=styles["Heading1"], fontSize=15, leading=19,
                               spaceAfter=8),
             2: ParagraphStyle("h2", parent=styles["Heading2"], fontSize=13, leading=16,
                               spaceAfter=6),
             3: ParagraphStyle("h3", parent=styles["Heading3"], fontSize=11.5, leading=14,
                               spaceAfter=5)}
    marking = _marking(src)
    letterhead = str(src.meta.get("letterhead") or "")
    of_total = _seed(src.slug) % 2 == 0

    story: list[Any] = []
    if letterhead:
        story.append(Paragraph(escape(letterhead), ParagraphStyle("lh", parent=body, fontSize=9,
                                                                   textColor=colors.HexColor("#333366"))))
        story.append(Spacer(1, 4 * mm))
    for el in src.elements:
        if el.kind == "heading":
            story.append(Paragraph(escape(el.text), heads[min(el.level, 3)]))
        elif el.kind == "paragraph":
            story.append(Paragraph(escape(el.text), body))
        elif el.kind == "bullets":
            story.append(ListFlowable([ListItem(Paragraph(escape(t), body), leftIndent=14)
                                       for t in el.items], bulletType="bullet", start="•",
                                      leftIndent=14))
        elif el.kind == "table" and el.rows:
            ncol = max(len(r) for r in el.rows)
            rows = [[Paragraph(escape(c), cell) for c in r] + [""] * (ncol - len(r))
                    for r in el.rows]
            width = 170 * mm
            first = width * (0.32 if ncol == 2 else 0.25)
            widths = [first] + [(width - first) / (ncol - 1)] * (ncol - 1) if ncol > 1 else [width]
            t = Table(rows, colWidths=widths, repeatRows=1)
            t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("TOPPADDING", (0, 0), (-1, -1), 6),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8f0"))]))
            story.append(t)
            story.append(Spacer(1, 4 * mm))

    from reportlab.pdfgen import canvas as rl_canvas

    class FurnitureCanvas(rl_canvas.Canvas):  # type: ignore[misc]  # reportlab is untyped
        """Draws marking and page numbers once the page count is known ("Page x of y")."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont("Helvetica", 8.5)
                w, h = A4
                if marking:
                    self.drawCentredString(w / 2, h - 12 * mm, marking)
                    self.drawCentredString(w / 2, 8 * mm, marking)
                label = f"Page {self._pageNumber} of {total}" if of_total else str(self._pageNumber)
                self.drawRightString(w - 20 * mm, 14 * mm, label)
                super().showPage()
            super().save()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm,
                            topMargin=22 * mm, bottomMargin=24 * mm,
                            title=f"{src.meta.get('force', '')} response", author="", creator="",
                            invariant=1)
    doc.build(story, canvasmaker=FurnitureCanvas)
    return buf.getvalue()


# ----------------------------------------------------------------------------- DOCX

def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps so DOCX output is byte-for-byte reproducible."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2021, 11, 24, 9, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def render_docx(src: Source) -> bytes:
    """A Word document; letterhead and marking go in the page header and footer."""
    import datetime as dt

    import docx
    from docx.shared import Pt

    d = docx.Document()
    props = d.core_properties
    props.created = props.modified = dt.datetime(2021, 11, 24, 9, 0, 0)
    props.author = props.last_modified_by = ""
    props.revision = 1
    section = d.sections[0]
    marking = _marking(src)
    header_text = " | ".join(x for x in (marking, str(src.meta.get("letterhead") or "")) if x)
    section.header.paragraphs[0].text = header_text
    section.footer.paragraphs[0].text = marking
    d.styles["Normal"].font.size = Pt(11)
    for el in src.elements:
        if el.kind == "heading":
            d.add_heading(el.text, level=min(el.level, 3))
        elif el.kind == "paragraph":
            d.add_paragraph(el.text)
        elif el.kind == "bullets":
            for item in el.items:
                d.add_paragraph(item, style="List Bullet")
        elif el.kind == "table" and el.rows:
            ncol = max(len(r) for r in el.rows)
            table = d.add_table(rows=0, cols=ncol)
            table.style = "Table Grid"
            for r in el.rows:
                cells = table.add_row().cells
                for i, text in enumerate(r):
                    cells[i].text = text
    buf = io.BytesIO()
    d.save(buf)
    return _fixed_zip(buf.getvalue())


# ----------------------------------------------------------------------------- TXT / MD

def render_text(src: Source, *, markdown: bool) -> str:
    """Plain text (wrapped, with furniture and form feeds) or Markdown."""
    import textwrap

    out: list[str] = []
    marking = _marking(src)
    if src.meta.get("letterhead"):
        out += [str(src.meta["letterhead"]), ""]
    if marking:
        out += [marking, ""]
    for el in src.elements:
        if el.kind == "heading":
            out += [("#" * el.level + " " + el.text) if markdown else
                    (el.text.upper() if el.level == 1 else el.text), ""]
        elif el.kind == "paragraph":
            out += ([el.text] if markdown else textwrap.wrap(el.text, 78)) + [""]
        elif el.kind == "bullets":
            for item in el.items:
                if markdown:
                    out.append(f"- {item}")
                else:
                    wrapped = textwrap.wrap(item, 74)
                    out.append("* " + wrapped[0])
                    out += ["  " + w for w in wrapped[1:]]
            out.append("")
        elif el.kind == "table" and el.rows:
            out.append("| " + " | ".join(el.rows[0]) + " |")
            out.append("|" + "---|" * len(el.rows[0]))
            out += ["| " + " | ".join(r) + " |" for r in el.rows[1:]]
            out.append("")
    if markdown:
        return "\n".join(out).rstrip() + "\n"
    # Plain text gets pages: a form feed every 60 lines, with a page footer.
    pages = [out[i:i + 60] for i in range(0, len(out), 60)]
    total = len(pages)
    text_pages = []
    for n, lines in enumerate(pages, start=1):
        footer = [""] + ([marking] if marking else []) + [f"Page {n} of {total}"]
        text_pages.append("\n".join(lines + footer))
    return "\f".join(text_pages) + "\n"


def _text_bytes(src: Source, text: str) -> bytes:
    """Encode text files the ways forces' systems do: mostly UTF-8, some legacy encodings."""
    choice = str(src.meta.get("encoding", "utf-8"))
    if choice == "cp1252":
        return text.replace("\n", "\r\n").encode("cp1252", errors="replace")
    if choice == "utf-16":
        return text.encode("utf-16")
    if choice == "utf-8-sig":
        return text.encode("utf-8-sig")
    return text.encode("utf-8")


def render(src: Source) -> bytes:
    if src.output == "pdf":
        return render_pdf(src)
    if src.output == "docx":
        return render_docx(src)
    if src.output in ("txt", "md"):
        return _text_bytes(src, render_text(src, markdown=src.output == "md"))
    raise ValueError(f"{src.slug}: unknown output {src.output!r}")


def gold_rows(src: Source, categories: list[str]) -> list[dict[str, Any]]:
    gold = src.meta.get("gold") or {}
    rows = []
    for cat in categories:
        subs = gold.get(cat) or []
        rows.append({"file": src.filename, "force": str(src.meta.get("force_canonical") or ""),
                     "category": cat, "addressed": int(bool(subs)),
                     "subpoints": ";".join(str(s) for s in subs)})
    return rows


def build_folder(source_dir: Path, out_dir: Path) -> list[Path]:
    """Render every ``*.md`` source in ``source_dir`` into ``out_dir``; write gold_coverage.csv."""
    import pandas as pd

    from pipeline.forces import canonical_force
    from pipeline.taxonomy import load_taxonomy

    categories = load_taxonomy().labels
    written, gold = [], []
    for path in sorted(source_dir.glob("*.md")):
        src = parse_source(path.read_text(encoding="utf-8"), slug=path.stem)
        src.meta["force_canonical"] = canonical_force(str(src.meta.get("force", "")))
        target = out_dir / src.filename
        write_bytes(target, render(src))
        written.append(target)
        gold += gold_rows(src, categories)
    write_frame_csv(out_dir / "gold_coverage.csv", pd.DataFrame(gold))
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m scripts.render SOURCE_DIR OUT_DIR", file=sys.stderr)
        return 2
    written = build_folder(Path(argv[0]), Path(argv[1]))
    print(f"rendered {len(written)} files into {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

