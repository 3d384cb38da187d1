"""Mutated PDFs, DOCX and text never raise past the per-document boundary: each yields ok,
warning or error with a one-line reason."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import IngestParams, SegmentParams
from pipeline.extract import extract_one

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(n):
        op = rng.randrange(3)
        i = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[i] = rng.randrange(256)
        elif op == 1 and buf:
            del buf[i:i + rng.randrange(1, 64)]
        else:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return bytes(buf)


def _check(path):
    for engine in ("pdfium", "plumber"):
        out = extract_one(path, ingest=IngestParams(pdf_engine=engine, timeout_seconds=20),
                          seg=SegmentParams())
        assert out.result.status in ("ok", "warning", "error")
        assert "\n" not in out.result.reason
        if out.result.status == "error":
            assert out.result.reason and not out.passages
            assert not out.result.reason.startswith("internal error"), out.result.reason
        if path.suffix != ".pdf":
            break


@SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 40))
def test_mutated_pdf(realistic_pdf, tmp_path_factory, seed, n):
    path = tmp_path_factory.mktemp("fz") / "m.pdf"
    path.write_bytes(_mutate(realistic_pdf.read_bytes(), seed, n))
    _check(path)


@SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 40))
def test_mutated_docx(realistic_docx, tmp_path_factory, seed, n):
    path = tmp_path_factory.mktemp("fz") / "m.docx"
    path.write_bytes(_mutate(realistic_docx.read_bytes(), seed, n))
    _check(path)


@SETTINGS
@given(data=st.binary(max_size=4000))
def test_arbitrary_bytes_as_text(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "t.txt"
    path.write_bytes(data)
    _check(path)


@SETTINGS
@given(text=st.text(max_size=3000))
def test_arbitrary_unicode_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fz") / "t.md"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    _check(path)
