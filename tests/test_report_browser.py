"""The report in a real browser: the heatmap is there, hostile passage text runs nothing."""

import shutil
from pathlib import Path

import pytest

from tests.test_cli import run_in_project

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (make test installs it)")

HOSTILE = """# Kent Police response

Our SPOC refers every victim to the NRM. <script>window.__pwned = 1; alert('x')</script>
<img src=x onerror="window.__pwned = 2">

See [our page](javascript:window.__pwned=3) and <a href="javascript:window.__pwned=4">this link</a>
about the PCC-commissioned advocacy service that supports survivors after the NRM.
"""


def test_report_renders_heatmap_and_runs_no_injected_code(project, tmp_path):
    from playwright.sync_api import sync_playwright

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Kent Police response.md").write_text(HOSTILE)
    run = tmp_path / "run"
    proc = run_in_project(project, "score", folder, "--out", run)
    assert proc.returncode == 0, proc.stderr
    html = (run / "report.html").read_text()
    assert "<script>window.__pwned" not in html
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((run / "report.html").as_uri())
        assert page.locator("#heatmap").is_visible()
        assert page.locator("#heatmap tbody tr").count() == 1
        for link in page.locator("a").all():  # no link the document wrote is clickable code
            assert not (link.get_attribute("href") or "").startswith("javascript:")
        page.locator("details summary").first.click()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert dialogs == []
        assert "window.__pwned" in page.content()  # shown as text, not run
        browser.close()


def test_every_theme_and_summary_link_lands_on_its_passage(tmp_path):
    """The shipped demo data with the shipped model: each theme's and each drafted sentence's
    evidence link resolves to a quote in the evidence section, for all five categories."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from tests.conftest import REPO
    from tests.test_cli import run_cli

    run = tmp_path / "run"
    proc = run_cli("score", REPO / "data" / "raw", "--out", run)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(run / "themes.csv")
    assert set(table["category"]) == {"force_systems", "nrm", "section45", "investigation",
                                      "victim_support"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto((run / "report.html").as_uri())
        links = page.locator("#themes ~ table a, #action ~ p a[href^='#ev-']").all()
        hrefs = {link.get_attribute("href") for link in links}
        assert len(hrefs) >= 20
        for href in hrefs:
            target = page.locator(f"[id='{href[1:]}']")
            assert target.count() == 1, href
            assert target.evaluate("e => e.tagName") == "BLOCKQUOTE"
        # Following a link opens the force's collapsed section at the quote.
        first = sorted(hrefs)[0]
        page.locator(f"a[href='{first}']").first.click()
        assert page.locator(f"[id='{first[1:]}']").is_visible()
        browser.close()
