"""Score the sample submissions plus hostile files, and print time and peak memory.

The acceptance check of the security issue: the good files in data/raw plus a 10 MB line of
letters, a 200 MB text file, a DOCX whose XML expands to 54 MB, a billion-laughs DOCX, an
external-entity DOCX and a file named like a spreadsheet formula must finish within 2
minutes and 2 GB on 2 cores, with one documents.csv line per hostile file.

    python scripts/hostile_batch.py [--jobs 2] [--keep DIR]

Peak memory is the largest sum over the process tree of PSS (proportional set size: pages
shared between the forked workers are counted once), sampled every 0.1 s, and the plain
RSS sum beside it.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _minimal_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("We refer every potential victim to the NRM.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _replace_body(base: bytes, xml: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as zin, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename,
                          xml if info.filename == "word/document.xml" else zin.read(info))
    return out.getvalue()


def _bloated_xml(megabytes: float) -> bytes:
    """A table of short cells: small when zipped (under the zip-bomb ratio), huge when parsed."""
    words = ["officers", "victim", "referral", "force"]
    rows, size, i = [f'<?xml version="1.0" encoding="UTF-8"?><w:document {W}><w:body><w:tbl>'
                     .encode()], 0, 0
    while size < megabytes * 1e6:
        cell = f"<w:tc><w:p><w:r><w:t>{words[i % 4]} {i}</w:t></w:r></w:p></w:tc>"
        row = f"<w:tr>{cell}{cell}</w:tr>".encode()
        rows.append(row)
        size += len(row)
        i += 1
    rows.append(b"</w:tbl></w:body></w:document>")
    return b"".join(rows)


def _entity_xml(kind: str) -> bytes:
    if kind == "external":
        dtd = '<!DOCTYPE w:document [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        body = ("<w:p><w:r><w:t>Before.</w:t></w:r></w:p><w:p><w:r><w:t>&ext;</w:t></w:r></w:p>"
                "<w:p><w:r><w:t>We refer every potential victim to the NRM.</w:t></w:r></w:p>")
    else:
        entities = ['<!ENTITY l0 "lol">'] + [
            f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
        dtd = "<!DOCTYPE w:document [" + "".join(entities) + "]>"
        body = "<w:p><w:r><w:t>&l9;</w:t></w:r></w:p>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>{dtd}<w:document {W}><w:body>{body}'
            "</w:body></w:document>").encode()


def build_hostile(folder: Path) -> list[str]:
    """Write the hostile files into ``folder``; return their names."""
    base = _minimal_docx()
    files = {
        "letters only.txt": b"a" * 10_000_000 + b"\n",
        "bloated xml.docx": _replace_body(base, _bloated_xml(54)),
        "billion laughs.docx": _replace_body(base, _entity_xml("laughs")),
        "external entity.docx": _replace_body(base, _entity_xml("external")),
        "=HYPERLINK(\"http:__x\")+cmd.txt": b"We refer every potential victim to the NRM.\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # 200 MB of real-looking prose (the sample text files repeated), just under the limit.
    samples = [p.read_bytes() for p in sorted((REPO / "data" / "raw").glob("*.txt"))]
    prose = b"\n\n".join(b for b in samples if b"\0" not in b)  # UTF-8 ones, not UTF-16
    with open(folder / "two hundred MB.txt", "wb") as fh:
        written = 0
        while written + len(prose) <= 199 * 1024 * 1024:
            fh.write(prose)
            written += len(prose)
    return [*files, "two hundred MB.txt"]


def _tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        pids += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return pids


def _memory_mb(pids: list[int]) -> tuple[float, float]:
    pss = rss = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return pss, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="Build the batch here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="forcecov-hostile-"))
    batch = work / "batch"
    batch.mkdir(parents=True, exist_ok=True)
    for f in (REPO / "data" / "raw").iterdir():
        if f.is_file() and f.suffix in (".pdf", ".docx", ".txt", ".md"):
            shutil.copy2(f, batch / f.name)
    hostile = build_hostile(batch)
    forcecov = Path(sys.executable).parent / "forcecov"
    cmd = [str(forcecov), "score", str(batch), "--out", str(work / "run"), "--no-cache",
           "--jobs", str(args.jobs)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0.0
    while proc.poll() is None:
        pss, rss = _memory_mb(_tree(proc.pid))
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    with open(work / "run" / "documents.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_name = {Path(r["path"].lstrip("'")).name: r for r in rows}
    print(f"{len(rows)} documents ({len(hostile)} hostile), --jobs {args.jobs}: "
          f"{seconds:.0f} s, peak {peak_pss / 1024:.2f} GB PSS ({peak_rss / 1024:.2f} GB RSS sum), "
          f"exit code {proc.returncode}")
    for name in hostile:
        row = by_name.get(name)
        print(f"  {name[:40]:40s} {row['status'] if row else 'MISSING':8s} "
              f"{(row or {}).get('reason', '')[:110]}")
    ok = (proc.returncode == 0 and seconds <= 120 and peak_pss <= 2048
          and all(name in by_name for name in hostile))
    print("within 2 minutes and 2 GB, one line per hostile file" if ok else "NOT within limits")
    if not ok:
        print(stderr[-2000:], file=sys.stderr)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
