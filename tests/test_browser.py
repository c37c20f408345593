"""JupyterLab in a real browser: `jupyter lab` on 127.0.0.1 with a token, driven by headless Chromium through
Playwright's Python API (Debian's /usr/bin/chromium via `executable_path`; `make install` installs it when root).

A copy of a paper notebook with its tiny-profile parameters injected (papermill's `prepare_only`, the same parameters
`reasonbook reproduce --profile tiny` would pass) is opened in JupyterLab and run with "Run All Cells"; the test checks
that every cell ran without an error, that the figure rendered as an image and the paper-vs-ours table as an HTML table,
and that progress bars are widgets (ipywidgets), not text. Screenshots go to runs/browser/."""
import json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT

PAPER = os.environ.get("REASONBOOK_BROWSER_PAPER", "wcse")   # the paper notebook opened in JupyterLab
# Over configs/wcse/tiny.yaml: reasonbook's char-level reasoners instead of SmolLM2 / Gemma-3 (seconds, not minutes,
# on two cores), no LLM judge (the exact step checker only), fewer problems, one SFT step, no number-matched control.
# Every stage still runs and both figures and the paper-vs-ours table are drawn; the numbers mean nothing (the
# reasoners were trained on bare chain questions and solve none of these prompts: the bars are zero). The two
# sampling engines show their progress bars, which JupyterLab draws as widgets.
OVERRIDES = {"wcse": {"model": "reasoner-s", "se_model": "reasoner-m", "judge_model": None, "n_train": 4, "n_test": 2,
                      "n_shots": 0, "control_samples": 0, "sft_steps": 1, "fpr_limit": 4, "eval_k": [1],
                      # progress bars on (cfg.open_backend turns transformers' bars off unless a role's engine asks)
                      "engines": {"wc": {"progress": True}, "se": {"progress": True}}}}
TIMEOUT = float(os.environ.get("REASONBOOK_BROWSER_TIMEOUT", "600"))   # seconds for "Run All Cells"
SHOTS = ROOT / "runs" / "browser"
DONE = "REASONBOOK-BROWSER-RUN-COMPLETE"


def chromium_path():
    "Debian's Chromium (or $CHROMIUM); None when absent."
    p = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return p if p and Path(p).exists() else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def prepare_notebook(paper: str, dest: Path, profile: str = "tiny", overrides: dict | None = None) -> Path:
    """A copy of `paper`'s notebook under `dest/nbs` with `profile`'s parameters (and `overrides`) injected, as
    `reasonbook reproduce` would inject them, without the `#| slow` example cells (nbdev-test skips those too), and
    with a closing marker cell."""
    import nbformat, papermill as pm
    from reasonbook.cli import PAPERS, run_parameters
    params = run_parameters(ROOT, paper, profile, overrides or {}, dest / "runs", dest / "figures")
    out = dest / "nbs" / PAPERS[paper]
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(ROOT / "nbs" / PAPERS[paper]), str(out), parameters=params, prepare_only=True,
                        kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and re.match(r"#\|\s*slow\b", c.source))]
    nb.cells.append(nbformat.v4.new_code_cell(f"print({DONE!r})"))
    nbformat.write(nb, out)
    return out


def _lab_settings(home: Path):
    "JupyterLab settings for an unattended run: no 'notified about Jupyter news?' toast over the notebook."
    d = home / "settings" / "@jupyterlab" / "apputils-extension"
    d.mkdir(parents=True, exist_ok=True)
    (d / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _lab_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # conftest's Agg would hide inline figures
    # Jupyter's per-user folders in `home`: no user kernel (a `python3` outside this virtualenv) or setting applies.
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               IPYTHONDIR=str(home / "ipython"), PYTHONUNBUFFERED="1")
    return env


def start_lab(root_dir: Path, home: Path, port: int, token: str) -> subprocess.Popen:
    "`jupyter lab` on 127.0.0.1:`port` with `token`, the app exposed to the page (`window.jupyterapp`)."
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}", "--ServerApp.allow_root=True",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--ServerApp.port_retries=0"]
    _lab_settings(home)
    log = open(home / "lab.log", "w")
    p = subprocess.Popen(cmd, env=_lab_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({p.returncode}): {(home / 'lab.log').read_text()[-2000:]}")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200: return p
        except OSError:
            time.sleep(0.5)
    p.terminate()
    raise RuntimeError(f"jupyter lab did not answer on 127.0.0.1:{port} within 60 s: {(home / 'lab.log').read_text()[-2000:]}")


# JavaScript run in the page: the open notebook's cells (type, outputs as nbformat JSON).
CELLS_JS = """() => { const w = window.jupyterapp.shell.currentWidget; if (!w || !w.content || !w.content.model) return null;
  const out = []; for (const c of w.content.model.cells) out.push({type: c.type,
    outputs: c.type === 'code' ? c.outputs.toJSON() : []}); return out; }"""


def _errors(cells):
    return [o for c in cells or [] for o in c["outputs"] if o.get("output_type") == "error"]


def _has_done(cells):
    return any(DONE in "".join(o.get("text", "")) for c in cells or [] for o in c["outputs"])


@pytest.mark.slow
def test_paper_notebook_runs_in_jupyterlab(tmp_path):
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium: `make install` installs Debian's chromium when run as root "
                    "(or `apt-get install chromium`, or set $CHROMIUM)")
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").sync_playwright
    from reasonbook.cli import PAPERS
    t0 = time.time()
    nb = prepare_notebook(PAPER, tmp_path, overrides=OVERRIDES.get(PAPER))
    port, token = _free_port(), secrets.token_hex(16)
    lab = start_lab(tmp_path, tmp_path, port, token)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/nbs/{nb.name}?token={token}", timeout=60_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
            page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                                   " return w && w.sessionContext && w.sessionContext.session &&"
                                   " w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'; }",
                                   timeout=60_000)
            t_open = time.time()
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            deadline, cells, widget_bars = time.time() + TIMEOUT, None, 0
            while time.time() < deadline:
                cells = page.evaluate(CELLS_JS)
                widget_bars = max(widget_bars, page.locator(".jp-OutputArea-output .widget-progress").count())
                if _errors(cells) or _has_done(cells): break
                page.wait_for_timeout(500)
            t_run = time.time()
            errs = _errors(cells)
            if errs or not _has_done(cells):
                page.screenshot(path=str(SHOTS / f"jupyterlab_{PAPER}_failed.png"))
            assert not errs, f"{PAPERS[PAPER]} raised in JupyterLab: {errs[0]['ename']}: {errs[0]['evalue']}"
            assert _has_done(cells), f"{PAPERS[PAPER]} did not finish in JupyterLab within {TIMEOUT:.0f} s"
            outs = [o for c in cells for o in c["outputs"]]
            assert any("image/png" in o.get("data", {}) for o in outs), "no cell produced a figure"
            # What the browser drew: the figure as a loaded image, the closing table as an HTML table.
            imgs = page.locator(".jp-RenderedImage img")
            assert imgs.count() >= 1, "no figure rendered in JupyterLab"
            imgs.first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 100", arg=imgs.first.element_handle())
            imgs.first.screenshot(path=str(SHOTS / f"figure_{PAPER}.png"))
            page.screenshot(path=str(SHOTS / f"jupyterlab_{PAPER}.png"))
            tables = page.locator(".jp-RenderedHTMLCommon table")
            heads = [tables.nth(i).locator("thead").inner_text() for i in range(tables.count())]
            pvo = [i for i, h in enumerate(heads) if all(w in h for w in ("what", "paper", "ours", "diff"))]
            assert pvo, f"no paper-vs-ours table rendered (table headers: {heads})"
            tables.nth(pvo[-1]).scroll_into_view_if_needed()
            tables.nth(pvo[-1]).screenshot(path=str(SHOTS / f"paper_vs_ours_{PAPER}.png"))
            # Progress bars: widgets in JupyterLab (tqdm.auto + ipywidgets), never tqdm's text fallback.
            text_bars = [o for o in outs if "IProgress not found" in "".join(o.get("text", ""))]
            assert not text_bars, "tqdm fell back to text bars: ipywidgets is missing from the kernel's environment"
            views = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
            assert views >= 1, "the sampling engines' progress bars were not widgets (tqdm.auto + ipywidgets)"
            print(f"\nwidget progress bars: {views} widget outputs, at most {widget_bars} drawn at once; "
                  f"start to open {t_open - t0:.0f} s, run all {t_run - t_open:.0f} s")
            browser.close()
    finally:
        os.killpg(lab.pid, 15)
        lab.wait(timeout=30)
    print(f"JupyterLab run of {PAPERS[PAPER]} (tiny profile): {time.time() - t0:.0f} s")
