import re

import pytest

from pipeline.config import IngestParams
from pipeline.errors import IngestError
from pipeline.ingest import read_document
from pipeline.ingest.cleanup import join_lines, normalise_chars
from tests.conftest import make_canvas_pdf

ENGINES = ["pdfium", "plumber"]


def _doc(path, engine="pdfium"):
    return read_document(path, params=IngestParams(pdf_engine=engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_realistic_report_pdf_leaves_no_page_furniture(realistic_pdf, engine):
    doc = _doc(realistic_pdf, engine)
    assert doc.pages >= 3
    texts = [b.text for b in doc.blocks]
    assert not any(t.strip() in {"OFFICIAL", "OFFICIAL-SENSITIVE"} for t in texts)
    assert not any(re.fullmatch(r"(Page )?\d+( of \d+)?", t.strip()) for t in texts)
    assert not any("(cid:" in t for t in texts)
    assert all(b.page >= 1 for b in doc.blocks)
    assert doc.force == "Avon and Somerset"
    # The marking is gone from inside blocks too, not only as whole lines.
    assert "OFFICIAL" not in doc.text


@pytest.mark.parametrize("engine", ENGINES)
def test_headings_bullets_and_table_cells_are_recognised(realistic_pdf, engine):
    doc = _doc(realistic_pdf, engine)
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    assert "Recommendation 2g: the statutory defence" in headings
    bullets = [b for b in doc.blocks if b.kind == "bullet"]
    assert len(bullets) == 3 and bullets[0].text.startswith("signs of control")
    cells = [b for b in doc.blocks if b.kind == "table_cell" and b.context]
    assert any(c.text.startswith("Officers carry a leaflet") and c.context.startswith("2e")
               for c in cells)
    pip2 = next(b for b in doc.blocks if "PIP2" in b.text)
    assert pip2.heading == "Recommendation 3: investigation"


def test_engines_agree_on_the_words(realistic_pdf):
    """Parity: the plumber engine recovers at least 99% of pdfium's tokens and vice versa."""
    a = _doc(realistic_pdf, "pdfium").text.split()
    b = _doc(realistic_pdf, "plumber").text.split()
    from collections import Counter

    ca, cb = Counter(a), Counter(b)
    recall_b = sum((ca & cb).values()) / sum(ca.values())
    recall_a = sum((ca & cb).values()) / sum(cb.values())
    assert recall_b >= 0.99 and recall_a >= 0.99


@pytest.mark.parametrize("engine", ENGINES)
def test_hyphenation_repaired_and_real_hyphens_kept(tmp_path, engine):
    lines = [(100, "The Exploitation Team leads every investi-"),
             (114, "gation and works with multi-"),
             (128, "agency partners in a well-established way.")]
    path = tmp_path / "Kent hyphens.pdf"
    path.write_bytes(make_canvas_pdf([lines]))
    text = _doc(path, engine).text
    assert "investigation" in text
    assert "multi-agency" in text
    assert "well-established" in text


@pytest.mark.parametrize("engine", ENGINES)
def test_paragraph_broken_across_pages_is_rejoined(tmp_path, engine):
    p1 = [(60, "OFFICIAL"), (100, "Kent Police response"),
          (140, "Officers who find a possible victim make"),
          (154, "an immediate referral to the single point of"), (800, "Page 1 of 2")]
    p2 = [(60, "OFFICIAL"), (100, "contact, who arranges a place of safety."),
          (140, "Next paragraph here."), (800, "Page 2 of 2")]
    path = tmp_path / "broken.pdf"
    path.write_bytes(make_canvas_pdf([p1, p2]))
    doc = _doc(path, engine)
    joined = [b for b in doc.blocks if "single point of contact, who arranges" in b.text]
    assert len(joined) == 1 and joined[0].page == 1
    assert "OFFICIAL" not in doc.text and "Page 1" not in doc.text


@pytest.mark.parametrize("engine", ENGINES)
def test_running_header_recurring_on_most_pages_is_removed(tmp_path, engine):
    pages = [[(50, f"Surrey Police - Hidden Victims response - version {i}"),
              (140, f"Paragraph {i} explains how officers refer victims to the NRM."),
              (154, "Each referral is checked by the coordinator."),
              (800, f"{i}")] for i in range(1, 5)]
    path = tmp_path / "surrey.pdf"
    path.write_bytes(make_canvas_pdf(pages))
    doc = _doc(path, engine)
    assert "Hidden Victims response" not in doc.text
    assert doc.text.count("refer victims to the NRM") == 4


def test_glyphs_ligatures_and_spaces_are_normalised():
    assert normalise_chars("(cid:127) ﬁrst\u00a0responders") == "• first responders"
    assert normalise_chars("\uf0b7 item") == "• item"
    assert normalise_chars("referrals\u00b2 were made") == "referrals were made"


def test_join_lines_respects_hyphenated_words_elsewhere_in_document():
    assert join_lines(["the follow-", "up meeting"], {"follow-up"}) == "the follow-up meeting"
    assert join_lines(["an investi-", "gation"]) == "an investigation"


def test_docx_reads_body_in_order_and_leaves_out_headers_and_footers(realistic_docx):
    doc = _doc(realistic_docx)
    assert doc.format == "docx"
    assert "Portishead" not in doc.text  # letterhead lives in the page header
    kinds = {b.kind for b in doc.blocks}
    assert {"heading", "paragraph", "bullet", "table_cell"} <= kinds
    cell = next(b for b in doc.blocks if b.text.startswith("Every referral is quality assured"))
    assert cell.context.startswith("2f")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_text_files_decode_in_common_encodings(tmp_path, encoding):
    text = ("RECOMMENDATION 4\r\n\r\n"
            "We fund a victim navigator \u2013 \u201cNavigate\u201d \u2013 for \u00a3500.\r\n")
    path = tmp_path / "Essex response.txt"
    path.write_bytes(text.encode(encoding))
    doc = _doc(path)
    assert 'We fund a victim navigator \u2013 "Navigate" \u2013 for \u00a3500.' in doc.text
    assert "\r" not in doc.text
    assert doc.blocks[0].kind == "heading"
    assert doc.force == "Essex"


@pytest.mark.parametrize("kind, reason", [
    ("corrupt", "corrupt PDF"),
    ("encrypted", "encrypted PDF"),
    ("image_only", "score --ocr"),
    ("empty", "empty file"),
    ("wrong_ext", "unsupported file type '.xlsx'"),
    ("undecodable", "undecodable text"),
])
def test_bad_inputs_raise_one_line_reasons(bad_inputs, kind, reason):
    with pytest.raises(IngestError) as info:
        _doc(bad_inputs[kind])
    assert reason in info.value.reason
    assert "\n" not in str(info.value)
    assert str(bad_inputs[kind]) in str(info.value)


def test_image_only_reason_names_the_pages(bad_inputs):
    with pytest.raises(IngestError, match=r"pages 1-2"):
        _doc(bad_inputs["image_only"])


def test_mixed_pdf_warns_about_its_image_only_pages(tmp_path):
    path = tmp_path / "mixed.pdf"
    path.write_bytes(make_canvas_pdf([[(100, "Page one has real text about the NRM.")], []],
                                     images={2}))
    doc = _doc(path)
    assert any("image-only pages" in w and "2" in w for w in doc.warnings)


def test_docx_renamed_pdf_is_read_by_its_magic_bytes(bad_inputs):
    doc = _doc(bad_inputs["docx_as_pdf"])
    assert doc.format == "docx"
    assert any("Word document" in w for w in doc.warnings)


def test_latin1_text_falls_back_to_windows_1252(bad_inputs):
    doc = _doc(bad_inputs["latin1"])
    assert "Café workers" in doc.text
    assert any("Windows-1252" in w for w in doc.warnings)


def test_page_cap_refuses_long_documents(realistic_pdf):
    with pytest.raises(IngestError, match="ingest.max_pages"):
        read_document(realistic_pdf, params=IngestParams(max_pages=1))


def test_docx_zip_bomb_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"<w:document/>" + b"\x00" * (20 * 1024 * 1024))
    with pytest.raises(IngestError, match="zip bomb"):
        _doc(path)


@pytest.mark.parametrize("text", [
    "well-being and co-operation", "x1abc-def", "abc-def-ghi", "aaaa-", "-bbb", "a-b c-d",
    "Anti-Slavery Partnership's multi-agency work", "no hyphens here", "ab--cd", "é-a a-é"])
def test_hyphenated_vocabulary_finds_what_the_unanchored_pattern_found(text):
    from pipeline.ingest.cleanup import hyphenated_vocabulary

    old = {m.group(0).lower() for m in re.finditer(r"[A-Za-z]+-[A-Za-z]+", text)}
    assert hyphenated_vocabulary(text) == old


def test_a_10_mb_run_of_letters_is_extracted_without_stalling_the_batch(tmp_path):
    """The hyphenation pattern used to retry from every letter of a run: a 10 MB line took
    over ten minutes. The alarm is a hang guard for the test run, not a speed target."""
    import signal

    from pipeline.config import SegmentParams
    from pipeline.extract import run_extract

    (tmp_path / "letters.txt").write_text("a" * 10_000_000 + "\n", encoding="ascii")
    (tmp_path / "good.txt").write_text("We refer every potential victim to the NRM.\n")

    def hang(*_):
        raise TimeoutError("extraction of a 10 MB line did not finish in 120 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    try:
        summary = run_extract([tmp_path / "letters.txt", tmp_path / "good.txt"], tmp_path / "out",
                              ingest=IngestParams(), seg=SegmentParams())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert summary.n_ok + summary.n_warning + summary.n_error == 2
    assert "refer every potential victim" in (tmp_path / "out" / "passages.jsonl").read_text()


# --- hostile DOCX: entity declarations are refused before any XML parser sees them ---------

_W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _docx_with(tmp_path, name, replace):
    """A minimal valid DOCX (python-docx) with some parts' bytes replaced."""
    import io
    import zipfile

    import docx

    base = docx.Document()
    base.add_paragraph("Kent Police. We refer every potential victim to the NRM.")
    buf = io.BytesIO()
    base.save(buf)
    path = tmp_path / name
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info)))
        for extra, data in replace.items():
            if extra not in zin.namelist():
                zout.writestr(extra, data)
    return path


def _document_xml(dtd, body, encoding="utf-8"):
    xml = (f'<?xml version="1.0" encoding="{encoding.upper()}" standalone="yes"?>\n{dtd}'
           f'<w:document {_W_NS}><w:body>{body}</w:body></w:document>')
    return xml.encode(encoding)


EXTERNAL_ENTITY = _document_xml(
    '<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    "<w:p><w:r><w:t>Before.</w:t></w:r></w:p><w:p><w:r><w:t>&xxe;</w:t></w:r></w:p>"
    "<w:p><w:r><w:t>We refer every potential victim to the NRM after it.</w:t></w:r></w:p>")
BILLION_LAUGHS = _document_xml(
    "<!DOCTYPE w:document [<!ENTITY lol \"lol\">"
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10)) + "]>",
    "<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>")
ENTITY_REFUSAL = ("DOCX refused: {part} declares XML entities (<!DOCTYPE>/<!ENTITY>), which Word "
                  "never writes; an external or recursive entity could read files or exhaust "
                  "memory")


@pytest.mark.parametrize("xml", [EXTERNAL_ENTITY, BILLION_LAUGHS], ids=["external", "laughs"])
def test_docx_declaring_entities_is_refused_with_one_line(tmp_path, xml):
    """An external entity used to drop the text after it with status ok; a billion laughs
    was a parser error reported as a corrupt file."""
    from pipeline.config import SegmentParams
    from pipeline.extract import extract_one

    path = _docx_with(tmp_path, "Kent response.docx", {"word/document.xml": xml})
    out = extract_one(path, ingest=IngestParams(), seg=SegmentParams())
    assert out.result.status == "error" and not out.passages
    assert out.result.reason == ENTITY_REFUSAL.format(part="word/document.xml")


@pytest.mark.parametrize("part", ["word/styles.xml", "word/numbering.xml", "_rels/.rels"])
def test_entities_in_any_part_python_docx_parses_are_refused(tmp_path, part):
    dtd = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    path = _docx_with(tmp_path, "k.docx", {part: b'<?xml version="1.0"?>\n' + dtd + b"<x/>"})
    with pytest.raises(IngestError) as info:
        _doc(path)
    assert info.value.reason == ENTITY_REFUSAL.format(part=part)


def test_entity_declarations_cannot_hide_in_another_encoding(tmp_path):
    utf16 = _docx_with(tmp_path, "utf16.docx", {"word/document.xml": b"\xff\xfe" + _document_xml(
        '<!DOCTYPE w:document [<!ENTITY e "x">]>', "<w:p/>", "utf-16-le")})
    with pytest.raises(IngestError, match="declares XML entities"):
        _doc(utf16)
    utf7 = _docx_with(tmp_path, "utf7.docx", {"word/document.xml": _document_xml(
        "", "<w:p/>").replace(b'encoding="UTF-8"', b'encoding="UTF-7"')})
    with pytest.raises(IngestError, match=r"is not UTF-8 or UTF-16 XML \(encoding 'UTF-7'\)"):
        _doc(utf7)


def test_a_main_part_under_another_name_is_scanned_too(tmp_path):
    """python-docx finds the main part through the relationships and its content type, not
    by name: here word/doc.dat, declared in a UTF-16 [Content_Types].xml."""
    import zipfile

    probe = _docx_with(tmp_path, "probe.docx", {})
    with zipfile.ZipFile(probe) as zf:
        types = zf.read("[Content_Types].xml").decode().replace(
            "/word/document.xml", "/word/doc.dat").replace('encoding="UTF-8"', 'encoding="UTF-16"')
        rels = zf.read("_rels/.rels").replace(b"word/document.xml", b"word/doc.dat")
        doc_rels = zf.read("word/_rels/document.xml.rels")
    path = _docx_with(tmp_path, "Kent.docx", {
        "[Content_Types].xml": b"\xff\xfe" + types.encode("utf-16-le"), "_rels/.rels": rels,
        "word/doc.dat": EXTERNAL_ENTITY, "word/_rels/doc.dat.rels": doc_rels})
    with pytest.raises(IngestError) as info:
        _doc(path)
    assert info.value.reason == ENTITY_REFUSAL.format(part="word/doc.dat")


def test_an_svg_image_with_a_doctype_is_not_refused(tmp_path):
    """Images are kept as bytes, never parsed; illustrators' SVGs often carry a DOCTYPE."""
    import zipfile

    svg = b'<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd"><svg/>'
    with zipfile.ZipFile(_docx_with(tmp_path, "probe.docx", {})) as zf:
        content_types = zf.read("[Content_Types].xml").replace(
            b"</Types>", b'<Default Extension="svg" ContentType="image/svg+xml"/></Types>')
    path = _docx_with(tmp_path, "Kent.docx", {"word/media/image1.svg": svg,
                                              "[Content_Types].xml": content_types})
    assert "refer every potential victim" in _doc(path).text


def test_paragraph_text_is_python_docx_paragraph_text(tmp_path):
    """The reader's own paragraph text (no XPath per element) is exactly python-docx's."""
    import docx

    from pipeline.ingest.docx import paragraph_text

    body = ('<w:p><w:r><w:t xml:space="preserve">a </w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t>'
            '<w:br w:type="page"/><w:cr/><w:noBreakHyphen/><w:ptab w:alignment="left" '
            'w:relativeTo="margin" w:leader="none"/><w:t/></w:r><!-- note -->'
            '<w:hyperlink><w:r><w:t>link</w:t></w:r></w:hyperlink><w:r><w:t>end</w:t></w:r>'
            '<w:del><w:r><w:delText>gone</w:delText></w:r></w:del></w:p>')
    path = _docx_with(tmp_path, "p.docx", {"word/document.xml": _document_xml("", body)})
    (para,) = docx.Document(str(path)).paragraphs
    assert paragraph_text(para._p) == para.text == "a \tb\nc\n-\tlinkend"


# --- large text: read in pieces, linear in its lines --------------------------------------


def test_text_read_in_pieces_gives_the_blocks_of_the_whole_text(tmp_path, monkeypatch):
    from pipeline.ingest import text as text_reader

    page = ("Kent Police - OFFICIAL\r\n\r\n{area} area\r\nOfficers in {area} refer victims.\r\n"
            "They record each referral.\r\n\r\nWe fund a navi-\r\ngator in {area}.\r\n\r\n"
            "A coordinator checks the {area} referrals.\r\nThe team reviews them.\r\n{n}\r\n")
    areas = ["Ashford", "Dover", "Medway", "Swale"]
    text = "\f".join(page.format(n=i, area=a) for i, a in enumerate(areas, 1))
    text += "\n- bullet\n| a | b |\n"
    path = tmp_path / "kent.txt"
    path.write_bytes(text.encode("utf-8"))
    monkeypatch.setattr(text_reader, "CHUNK", 5)  # CR LF and form feeds straddle the pieces
    blocks, pages, warning = text_reader.read_text_blocks(path, markdown=False, min_fraction=0.5,
                                                          edge_lines=3)
    assert (blocks, pages) == text_reader.text_to_blocks(text, markdown=False, min_fraction=0.5,
                                                         edge_lines=3)
    assert pages == 4 and warning is None
    assert not any("OFFICIAL" in b.text for b in blocks)  # running header found across pieces
    assert any(b.text == "We fund a navigator in Dover." for b in blocks)


def test_a_paragraph_of_300_000_short_lines_is_read_in_linear_time(tmp_path):
    """Joining a paragraph's lines used to copy the text so far for every line (quadratic)."""
    import signal

    path = tmp_path / "lines.txt"
    path.write_text("word\n" * 300_000, encoding="ascii")

    def hang(*_):
        raise TimeoutError("300,000 lines took over 60 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    try:
        doc = _doc(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert sum(b.text.count("word") for b in doc.blocks) == 300_000


def test_a_huge_paragraph_is_cut_into_blocks_the_sentence_splitter_can_take(tmp_path):
    """A 10 MB line of words took a gigabyte in the sentence splitter."""
    from pipeline.ingest import MAX_BLOCK_CHARS

    words = " ".join(f"word{i}" for i in range(100_000))  # 0.79 MB, one line
    path = tmp_path / "one line.txt"
    path.write_text(words + "\n", encoding="ascii")
    blocks = _doc(path).blocks
    assert len(blocks) > 1 and all(len(b.text) <= MAX_BLOCK_CHARS for b in blocks)
    assert " ".join(b.text for b in blocks) == words


def test_the_start_of_each_run_is_found_as_pdfium_finds_it_mostly_without_its_scan():
    """pdfium's own lookup scans every character of the page; the guess from the previous
    run's end must give the same character, and spare the scan for most runs."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from pipeline.ingest.pdf import _first_char_at
    from tests.conftest import REPO

    class Counted:  # pdfium's functions, counting the scans
        scans = 0

        def __getattr__(self, name):
            if name == "FPDFText_GetCharIndexAtPos":
                Counted.scans += 1
            return getattr(pdfium_c, name)

    runs = 0
    for path in sorted((REPO / "data" / "raw").glob("*.pdf"))[:6]:
        pdf = pdfium.PdfDocument(str(path))
        for page_index in range(len(pdf)):
            textpage = pdf[page_index].get_textpage()
            n_chars, next_char = textpage.count_chars(), 0
            box = [ctypes.c_double() for _ in range(4)]
            for r in range(textpage.count_rects()):
                pdfium_c.FPDFText_GetRect(textpage.raw, r, *box)
                left, top, right, bottom = (b.value for b in box)
                text = textpage.get_text_bounded(left, bottom, right, top)
                if not text.strip():
                    continue
                x, y = left + 0.5, (top + bottom) / 2
                expected = pdfium_c.FPDFText_GetCharIndexAtPos(textpage.raw, x, y, 2, 2)
                found = _first_char_at(textpage.raw, Counted(), next_char, n_chars, x, y)
                assert found == expected, (path.name, page_index, r)
                runs += 1
                next_char = (expected if expected >= 0 else next_char) + len(text)
            textpage.close()
        pdf.close()
    assert runs > 100 and Counted.scans < 0.1 * runs


def test_each_run_is_cut_from_the_page_text_exactly_as_pdfium_bounds_it():
    """A run's text cut from the page's text (a character range that pdfium counts as one
    rectangle) must equal what pdfium's own scan of the rectangle gives, on every run of the
    sample responses; the scan is left only for runs whose start is unknown."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from pipeline.ingest.pdf import _first_char_at, _run_text
    from tests.conftest import REPO

    runs = cut = 0
    for path in sorted((REPO / "data" / "raw").glob("*.pdf")):
        pdf = pdfium.PdfDocument(str(path))
        for page_index in range(len(pdf)):
            textpage = pdf[page_index].get_textpage()
            n_chars, next_char = textpage.count_chars(), 0
            page_text = textpage.get_text_range(0, n_chars, errors="strict") if n_chars else ""
            box = [ctypes.c_double() for _ in range(4)]
            rects = []
            for r in range(textpage.count_rects()):
                pdfium_c.FPDFText_GetRect(textpage.raw, r, *box)
                rects.append(tuple(b.value for b in box))
            # Every run's text by pdfium's scan first: cutting recounts the rectangles.
            expected = [textpage.get_text_bounded(left, bottom, right, top)
                        for left, top, right, bottom in rects]
            for rect, text in zip(rects, expected, strict=True):
                if not text.strip():
                    continue
                left, top, right, bottom = rect
                start = _first_char_at(textpage.raw, pdfium_c, next_char, n_chars,
                                       left + 0.5, (top + bottom) / 2)
                found = _run_text(textpage.raw, pdfium_c, page_text, start, rect)
                runs += 1
                if found is not None:
                    cut += 1
                    assert found == text, (path.name, page_index, rect)
                else:
                    assert start < 0, (path.name, page_index, rect)
                next_char = (start if start >= 0 else next_char) + len(text)
            textpage.close()
        pdf.close()
    assert runs > 1000 and cut > 0.99 * runs
