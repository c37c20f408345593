"""The documentation site (`make docs`, scripts/docs.py): one notebook's page is built here, as `make docs` builds every
page (nbdev's processing, then Quarto when installed, else nbconvert), and opened in headless Chromium.

Only nbs/06_plots.ipynb is built: the whole site took 128 s on two cores shared with other work, more than this suite's
budget allows; `make docs` builds the rest the same way."""
import html, json, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT
from test_browser import SHOTS, chromium_path

PAGE, HTML = "06_plots", "plots.html"   # the notebook and its page (Quarto's name: nbdev's output-file)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "_docs"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs.py"), "--renderer", "nbconvert",
                        "--only", f"{PAGE}.ipynb", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"scripts/docs.py failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert "0 cells failed" in r.stdout, r.stdout
    return out


def test_docs_page_has_signatures_prose_and_examples(site):
    page = site / HTML
    assert page.exists(), f"no {page.name} in {sorted(p.name for p in site.iterdir())}"
    assert json.loads((site / "pages.json").read_text()) == {"plots": "Plots"}
    text = page.read_text()
    for name in ("setup_style", "figure_title", "save_figure", "paper_vs_ours", "write_metrics", "run_versions"):
        assert f'id="{name}"' in text, f"no show_doc section for {name} on {page.name}"
    plain = html.unescape(re.sub(r"<[^>]+>", "", text))    # what the page shows (code is split into highlight spans)
    assert "seaborn" in plain and "whitegrid" in plain, "the prose about the seaborn style is missing"
    assert "assert figure_title(" in plain, "the checked examples are missing"
    assert "#| export" not in plain and "#| default_exp" not in plain, "nbdev directives leaked into the page"


@pytest.mark.slow
def test_docs_page_in_browser(site):
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium: `make install` installs Debian's chromium when run as root (or set $CHROMIUM)")
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto((site / HTML).as_uri())
        assert page.locator("h1").first.inner_text().strip().startswith("Plots")
        sig = page.locator("#write_metrics")
        assert sig.count() == 1, "write_metrics has no section"
        sig.scroll_into_view_if_needed()
        shown = page.locator("body").inner_text()
        shown = " ".join(shown.split())
        assert "def write_metrics( run_dir, metrics:dict, name:str='metrics.json', versions:bool=True )->Path:" in shown, \
            "write_metrics's signature is not shown"
        assert "show_doc(" not in shown, "the show_doc calls themselves are shown"
        assert page.locator(".rb-sidebar a").count() >= 1, "no navigation"
        page.screenshot(path=str(SHOTS / f"docs_{PAGE}.png"))
        browser.close()
