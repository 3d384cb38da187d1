"""The benchmark: generate a corpus of N documents x P pages with realistic furniture, run
the pipeline, and print throughput, peak memory and per-stage seconds.

    python -m scripts.bench                     # the README's table (a few minutes)
    python -m scripts.bench --docs 20 --pages 5 # a quick look

Figures are printed, never asserted: timing on a shared 2-core machine varies.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.config import paths

PARAGRAPHS = [
    "Officers who suspect exploitation make an immediate referral to the National Referral "
    "Mechanism, and the modern slavery SPOC checks every referral for quality before it goes to "
    "the Single Competent Authority.",
    "The Police and Crime Commissioner funds an independent advocacy service that supports "
    "survivors before and after their NRM decision, including those who decline a referral, with "
    "accommodation and legal advice.",
    "Custody sergeants must record whether the section 45 statutory defence was considered, and "
    "the CPS liaison officer reviews a sample of charging files every month to confirm it.",
    "Modern slavery is a priority in the control strategy. Crimes are allocated to PIP2 detectives "
    "in the dedicated exploitation team, and a detective inspector reviews every investigation "
    "within seven days.",
    "Guidance for all staff sits on the intranet modern slavery page and in the app on every "
    "officer's mobile device, with contact details for the specialist team and a short video on "
    "spotting the signs.",
    "The force continues to work with partners across the region to improve its response and "
    "will report progress to the strategic board each quarter.",
]


def make_source(i: int, pages: int) -> str:
    """A response of roughly ``pages`` pages: headings, paragraphs, bullets and a table."""
    forces = ["Kent", "Essex", "Surrey", "Sussex", "Dorset", "Durham", "Gwent", "Cheshire",
              "Norfolk", "Suffolk"]
    force = forces[i % len(forces)]
    parts = [f"---\nforce: {force} Police\noutput: pdf\n"
             f"letterhead: \"{force} Police | Headquarters\"\nmarking: OFFICIAL\n---\n",
             f"# {force} Police response {i}"]
    for page in range(pages):
        parts.append(f"## Section {page + 1}")
        for k in range(4):
            paragraph = PARAGRAPHS[(i + page + k) % len(PARAGRAPHS)]
            parts.append(f"{paragraph} Reference {i}-{page}-{k}.")
        parts.append("The review found:\n\n- referrals checked within two days;\n"
                     "- victims offered support;\n- cases allocated to trained investigators.")
    return "\n\n".join(parts)


def generate(folder: Path, docs: int, pages: int) -> list[Path]:
    from scripts.render import parse_source, render_pdf

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    template: bytes | None = None
    for i in range(docs):
        path = folder / f"doc-{i:05d}.pdf"
        if not path.exists():
            if template is None or i < 10:
                data = render_pdf(parse_source(make_source(i, pages), slug=f"doc{i}"))
                template = data if i == 9 else template
            else:
                # Past ten rendered documents, copies keep generation quick; a comment makes
                # each unique.
                data = template + f"\n%{i}\n".encode()
            path.write_bytes(data)
        out.append(path)
    return out


def raw_extraction_seconds(files: list[Path], engine: str) -> float:
    """Reference: the library's own text extraction with nothing of ours on top."""
    start = time.perf_counter()
    for f in files:
        if engine == "plumber":
            import pdfplumber

            with pdfplumber.open(str(f)) as pdf:
                for page in pdf.pages:
                    page.extract_text()
                    page.close()
        else:
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(str(f))
            for i in range(len(pdf)):
                page = pdf[i]
                tp = page.get_textpage()
                tp.get_text_range()
                tp.close()
                page.close()
            pdf.close()
    return time.perf_counter() - start


def extraction_alone_seconds(folder: Path, engine: str) -> float:
    """Our extraction stage by itself (reading and segmenting every file in ``folder``, one
    reading worker, nothing else running), in a fresh process: what the stage costs. In a
    scoring run it overlaps classification, so the main process's wait for it (the run's
    ``extract`` seconds) is less than its cost."""
    code = (
        "import json, time\n"
        "from pathlib import Path\n"
        "from pipeline.config import load_params\n"
        "from pipeline.extract import extract_many\n"
        "from pipeline.taxonomy import load_taxonomy\n"
        f"params = load_params().override('ingest', pdf_engine={engine!r})\n"
        f"files = sorted(Path({str(folder)!r}).iterdir())\n"
        "tax = load_taxonomy()\n"
        "start = time.perf_counter()\n"
        "for _ in extract_many(files, ingest=params.ingest, seg=params.segment, taxonomy=tax):\n"
        "    pass\n"
        "print(json.dumps(time.perf_counter() - start))\n"
    )
    return float(_in_fresh_process(code))


def _score_in_subprocess(folder: Path, out: Path, *, jobs: int, engine: str,
                         extra: list[str] | None = None, ocr: bool = False) -> dict[str, Any]:
    """Run one scoring in a fresh process, so peak RSS belongs to that run alone."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from pipeline.config import load_params, paths\n"
        "from pipeline.modelstore import load_model, resolve_model_dir\n"
        "from pipeline.score import run_score\n"
        "from pipeline.taxonomy import load_taxonomy\n"
        "p = paths(); tax = load_taxonomy()\n"
        f"params = load_params().override('ingest', pdf_engine={engine!r}, ocr={ocr!r})\n"
        "model = load_model(resolve_model_dir(p.models), tax)\n"
        "def cpu(who):\n"
        "    u = resource.getrusage(who)\n"
        "    return u.ru_utime + u.ru_stime\n"
        "cpu0 = cpu(resource.RUSAGE_SELF)\n"
        f"s = run_score([Path({str(folder)!r})], Path({str(out)!r}), model=model, params=params, "
        f"taxonomy=tax, jobs={jobs})\n"
        # Workers are counted once reaped: end them first.
        "from pipeline.ingest.budget import stop_workers\n"
        "stop_workers()\n"
        # CPU seconds of the run itself, this process's (from the model's load on) and its
        # workers' (counted once reaped), for how many cores the run kept busy.
        "busy = cpu(resource.RUSAGE_SELF) - cpu0 + cpu(resource.RUSAGE_CHILDREN)\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        # Linux carries the parent's peak into ru_maxrss across exec (the benchmark itself,
        # grown by generating files, would be counted): VmHWM is this process's own peak.
        "status = Path('/proc/self/status')\n"
        "if status.exists():\n"
        "    hwm = [l for l in status.read_text().splitlines() if l.startswith('VmHWM:')]\n"
        "    me = int(hwm[0].split()[1]) if hwm else me\n"
        "print(json.dumps({'seconds': s.seconds, 'pages': s.n_pages, 'passages': s.n_passages,"
        " 'peak_rss_mb': max(me, kids) / 1024, 'main_rss_mb': me / 1024,"
        " 'worker_rss_mb': kids / 1024, 'cpu_seconds': busy}))\n"
    )
    figures: dict[str, Any] = _in_fresh_process(code, extra)
    return figures


def _in_fresh_process(code: str, extra: list[str] | None = None) -> Any:
    """Run ``code`` in a new Python process and read the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", code, *(extra or [])], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ocr_rates(samples: Path, work: Path) -> dict[int, dict[str, Any]]:
    """Pages per second reading scanned files with Tesseract, with one job and with two. The
    samples are image-only, so every page goes through OCR; extraction dominates the run."""
    runs: dict[int, dict[str, Any]] = {}
    for jobs in (1, 2):
        r = _score_in_subprocess(samples, work / f"out-ocr-{jobs}", jobs=jobs, engine="pdfium",
                                 ocr=True)
        r["pages_per_s"] = r["pages"] / r["seconds"]["total"]
        runs[jobs] = r
        print(f"OCR jobs={jobs}: {r['pages']} scanned pages in {r['seconds']['total']:.1f} s = "
              f"{r['pages_per_s']:.2f} pages/s end to end ({r['seconds']['extract']:.1f} s "
              f"extracting); peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    return runs


def classify_rate(n: int = 20000) -> float:
    """Passages per second through the default model (features, probabilities, echo)."""
    import pandas as pd

    from pipeline.modelstore import load_model, resolve_model_dir
    from pipeline.taxonomy import load_taxonomy

    p = paths()
    model = load_model(resolve_model_dir(p.models), load_taxonomy())
    texts = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} Case {i}." for i in range(n)]
    frame = pd.DataFrame({"text": texts, "heading": ["Recommendation 2"] * n, "context": [""] * n})
    model.predict(frame.head(100))
    start = time.perf_counter()
    model.predict(frame)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200, help="documents in the main corpus")
    ap.add_argument("--pages", type=int, default=10, help="pages per document")
    ap.add_argument("--rss-small", type=int, default=50, help="documents for the small memory run")
    ap.add_argument("--rss-large", type=int, default=1000,
                    help="documents for the large memory run")
    ap.add_argument("--rss-pages", type=int, default=2,
                    help="pages per document in the memory and scale runs")
    ap.add_argument("--skip-rss", action="store_true",
                    help="skip the 50 vs 1,000 document memory runs")
    ap.add_argument("--skip-ocr", action="store_true", help="skip reading scanned samples")
    ap.add_argument("--ocr-samples", type=Path, default=None,
                    help="scanned files for the OCR figures (default: data/raw/scanned)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated files here")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="forcecov-bench-"))
    print(f"generating {args.docs} documents x {args.pages} pages in {work} ...", flush=True)
    files = generate(work / "main", args.docs, args.pages)
    sample = files[: min(len(files), 20)]
    results: dict[str, Any] = {"docs": args.docs, "pages_per_doc": args.pages,
                               "cores": os.cpu_count()}

    rows = []
    for engine in ("pdfium", "plumber"):
        runs = {}
        for jobs in (1, 2):
            if engine == "plumber" and jobs == 2:
                continue
            target = files if engine == "pdfium" else sample
            folder = work / f"set-{engine}"
            folder.mkdir(exist_ok=True)
            for f in target:
                link = folder / f.name
                if not link.exists():
                    os.link(f, link)
            r = _score_in_subprocess(folder, work / f"out-{engine}-{jobs}", jobs=jobs,
                                     engine=engine)
            r["pages_per_s"] = r["pages"] / r["seconds"]["total"]
            r["cores_busy"] = r["cpu_seconds"] / r["seconds"]["total"]
            runs[jobs] = r
            rows.append((engine, jobs, r))
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["seconds"].items() if k != "total")
            print(f"{engine:7s} jobs={jobs}: {r['pages']} pages in {r['seconds']['total']:.1f} s = "
                  f"{r['pages_per_s']:.0f} pages/s end to end; peak RSS {r['peak_rss_mb']:.0f} MB; "
                  f"{r['cores_busy']:.2f} cores busy; stages {stages}", flush=True)
        results[engine] = runs
    speedup = results["pdfium"][2]["pages_per_s"] / results["pdfium"][1]["pages_per_s"]
    results["jobs2_speedup"] = speedup
    print(f"--jobs 2 vs --jobs 1 on {args.docs} documents: {speedup:.2f}x")
    # The most any number of jobs can gain on this machine: the same work spread over all
    # its cores, against the cores one job already keeps busy (reader and main process).
    bound = (os.cpu_count() or 1) / results["pdfium"][1]["cores_busy"]
    results["jobs_speedup_bound"] = bound
    print(f"--jobs 1 keeps {results['pdfium'][1]['cores_busy']:.2f} of {os.cpu_count()} cores "
          f"busy: at most {bound:.2f}x from more jobs on this machine")

    for engine, target in (("pdfium", files), ("plumber", sample)):
        raw = raw_extraction_seconds(target, engine)
        pages = results[engine][1]["pages"]
        alone = extraction_alone_seconds(work / f"set-{engine}", engine)
        waited = results[engine][1]["seconds"]["extract"]
        results[f"raw_{engine}_pages_per_s"] = pages / raw
        results[f"{engine}_overhead"] = alone / raw
        results[f"{engine}_wait_overhead"] = waited / raw
        print(f"raw {engine}: {pages / raw:.0f} pages/s; our {engine} extraction stage alone: "
              f"{pages / alone:.0f} pages/s, {alone / raw:.2f}x the raw library's time (in the "
              f"--jobs 1 run, which overlaps it with classifying, the main process waited "
              f"{waited / raw:.2f}x)", flush=True)

    if not args.skip_ocr:
        results["ocr"] = ocr_rates(args.ocr_samples or paths().raw / "scanned", work)

    rate = classify_rate()
    results["classify_passages_per_s"] = rate
    print(f"classify: {rate:,.0f} passages/s")

    if not args.skip_rss:
        rss = {}
        for n in (args.rss_small, args.rss_large):
            folder = work / f"rss-{n}"
            generate(folder, n, args.rss_pages)
            r = _score_in_subprocess(folder, work / f"out-rss-{n}", jobs=1, engine="pdfium")
            rss[n] = r
            print(f"peak RSS scoring {n} documents ({r['pages']} pages): "
                  f"{r['peak_rss_mb']:.0f} MB (main process {r['main_rss_mb']:.0f} MB, "
                  f"largest worker {r['worker_rss_mb']:.0f} MB); "
                  f"{r['pages'] / r['seconds']['total']:.0f} pages/s", flush=True)
        small, large = rss[args.rss_small], rss[args.rss_large]
        results["rss_mb"] = {n: r["peak_rss_mb"] for n, r in rss.items()}
        results["rss_ratio"] = large["peak_rss_mb"] / small["peak_rss_mb"]
        # Cost grows linearly when the large run keeps the small run's pages per second.
        results["scale_rate_ratio"] = ((large["pages"] / large["seconds"]["total"])
                                       / (small["pages"] / small["seconds"]["total"]))
        print(f"{args.rss_large} vs {args.rss_small} documents: peak RSS "
              f"{results['rss_ratio']:.2f}x, pages/s {results['scale_rate_ratio']:.2f}x")
        # The yardstick: the large run's pages/s against the main corpus's.
        main_rate = results["pdfium"][1]["pages_per_s"]
        results["scale_vs_main_rate"] = large["pages"] / large["seconds"]["total"] / main_rate
        print(f"{args.rss_large} documents vs the main corpus ({args.docs} documents, "
              f"--jobs 1): pages/s {results['scale_vs_main_rate']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    _ = resource  # resource is used inside the child processes
    return 0


if __name__ == "__main__":
    sys.exit(main())
