"""Build the scanned samples in data/raw/scanned/ from sample submissions (deterministic).

Each chosen PDF in data/raw is rendered page by page at a scanner's resolution, turned a
little, given sensor noise, a slight blur, a "RECEIVED" stamp and a signature, JPEG-
compressed as a scanner would, and saved as an image-only PDF (no text layer). One more
sample is a DOCX whose body is nothing but pasted page images. The text twins stay in
data/raw; ``gold_coverage.csv`` here repeats their gold rows under the scanned file names.

    python scripts/make_scans.py            # writes data/raw/scanned/
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parent.parent
RAW = REPO / "data" / "raw"
OUT = RAW / "scanned"

# (text twin in data/raw, dpi, rotation in degrees, output kind)
SAMPLES = [
    ("Avon and Somerset Police - response to Hidden Victims super-complaint "
     "recommendations 2-4.pdf", 300, 0.8, "pdf"),
    ("Derbyshire Constabulary - Super-complaint Recs 2-4 response table.pdf", 300, -0.6, "pdf"),
    ("Humberside Police - Hidden Victims super-complaint response.pdf", 200, 1.2, "pdf"),
    ("North Wales Police response - hidden victims super-complaint.pdf", 150, -1.0, "pdf"),
    ("South Wales Police and PCC - Hidden Victims response.pdf", 300, 0.4, "docx"),
    # No victim support section: a category the scan must leave unaddressed, as its twin does.
    ("Hampshire Constabulary - Modern Slavery Super-complaint Response (Recs 2 and 3).pdf",
     200, -1.4, "pdf"),
]


def scanned_name(twin: str, kind: str) -> str:
    return f"{Path(twin).stem} (scanned).{kind}"


def render_page(pdf_path: Path, index: int, dpi: int) -> Image.Image:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        bitmap = pdf[index].render(scale=dpi / 72, grayscale=True)
        return bitmap.to_pil().convert("L")
    finally:
        pdf.close()


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def add_stamp(page: Image.Image, dpi: int, rng: np.random.Generator) -> None:
    """A rectangular 'RECEIVED' stamp in the top right margin, a little askew."""
    w = int(2.1 * dpi)
    h = int(0.7 * dpi)
    stamp = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(stamp)
    draw.rectangle([2, 2, w - 3, h - 3], outline=90, width=max(2, dpi // 60))
    draw.text((w // 2, h // 3), "RECEIVED", fill=90, font=_font(int(0.22 * dpi)), anchor="mm")
    draw.text((w // 2, 2 * h // 3 + dpi // 40), "12 NOV 2021", fill=90,
              font=_font(int(0.16 * dpi)), anchor="mm")
    stamp = stamp.rotate(float(rng.uniform(-8, 8)), expand=True, fillcolor=255)
    x = page.width - stamp.width - int(0.35 * dpi)
    y = int(0.15 * dpi)
    page.paste(Image.fromarray(np.minimum(np.asarray(page.crop(
        (x, y, x + stamp.width, y + stamp.height))), np.asarray(stamp))), (x, y))


def add_signature(page: Image.Image, dpi: int, rng: np.random.Generator) -> None:
    """A handwritten-looking squiggle in the bottom margin of the last page."""
    draw = ImageDraw.Draw(page)
    x0, y0 = int(1.1 * dpi), page.height - int(1.0 * dpi)
    points = []
    for i in range(120):
        t = i / 119
        x = x0 + t * 2.2 * dpi
        y = y0 + 0.12 * dpi * math.sin(t * 19 + rng.uniform(-0.2, 0.2)) * (1 - 0.5 * t)
        points.append((x, y + 0.05 * dpi * math.sin(t * 5)))
    draw.line(points, fill=40, width=max(2, dpi // 75), joint="curve")


def scan(page: Image.Image, dpi: int, angle: float, rng: np.random.Generator) -> Image.Image:
    """Rotation, blur, sensor noise and a grey paper tone."""
    page = page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    page = page.filter(ImageFilter.GaussianBlur(radius=0.35 * dpi / 150))
    pixels = np.asarray(page, dtype=np.float32)
    pixels = pixels * 0.93 + 8 + rng.normal(0, 6, size=pixels.shape)
    speckle = rng.random(pixels.shape) < 0.0008
    pixels[speckle] = rng.uniform(0, 120, size=int(speckle.sum()))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg(page: Image.Image, quality: int = 55) -> Image.Image:
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def scanned_pages(twin: Path, dpi: int, angle: float, seed: int) -> list[Image.Image]:
    import pypdfium2 as pdfium

    rng = np.random.default_rng(seed)
    n = len(pdfium.PdfDocument(str(twin)))
    pages = []
    for i in range(n):
        page = render_page(twin, i, dpi)
        if i == 0:
            add_stamp(page, dpi, rng)
        if i == n - 1:
            add_signature(page, dpi, rng)
        pages.append(jpeg(scan(page, dpi, angle + float(rng.uniform(-0.2, 0.2)), rng)))
    return pages


def write_pdf(pages: list[Image.Image], path: Path, dpi: int) -> None:
    pages[0].save(path, "PDF", resolution=float(dpi), save_all=True, append_images=pages[1:])


def write_docx(pages: list[Image.Image], path: Path) -> None:
    """A Word document whose body is only pasted page images, as when a letter is pasted."""
    import docx
    from docx.shared import Inches

    document = docx.Document()
    for i, page in enumerate(pages):
        buffer = io.BytesIO()
        page.save(buffer, "JPEG", quality=80)
        buffer.seek(0)
        document.add_picture(buffer, width=Inches(6.3))
        if i < len(pages) - 1:
            document.add_page_break()
    document.save(str(path))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(RAW / "gold_coverage.csv", newline="", encoding="utf-8") as fh:
        gold = list(csv.DictReader(fh))
    rows = []
    for seed, (twin, dpi, angle, kind) in enumerate(SAMPLES):
        pages = scanned_pages(RAW / twin, dpi, angle, seed)
        target = OUT / scanned_name(twin, kind)
        if kind == "pdf":
            write_pdf(pages, target, dpi)
        else:
            write_docx(pages, target)
        twin_rows = [r for r in gold if r["file"] == twin]
        if not twin_rows:
            print(f"{twin}: no gold rows", file=sys.stderr)
            return 1
        rows += [{**r, "file": target.name, "twin": twin, "dpi": dpi} for r in twin_rows]
        print(f"{target.name}: {len(pages)} pages at {dpi} dpi, "
              f"{target.stat().st_size / 1e6:.1f} MB")
    with open(OUT / "gold_coverage.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
