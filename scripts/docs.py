"""`make docs`: the documentation site in _docs/, a page per notebook (signatures, prose, checked examples).

With Quarto on PATH (or in the virtualenv: the PyPI `quarto-cli` package, `pip install quarto-cli`), this is
`nbdev-docs`, run in this process with two changes to nbdev's processing that both renderers share (below:
`only_pure_import_cells`, `keep_prose_under_titles`), and a cell whose show_doc still fails is listed instead of
stopping the site. Without Quarto, the same nbdev processing (`nbdev.serve.proc_nbs`: show_doc signatures executed, directives
applied, into _proc/) is rendered to HTML by nbconvert instead of Quarto: the same pages and content, a plain sidebar
instead of Quarto's theme, no site search. The PyPI `quarto-cli` package is a source distribution whose build downloads
Quarto from GitHub, so on a machine that reaches only the package registries it cannot install and this path is used.
Each paper notebook's page ends with the committed figures of figures/<paper>/.

Usage: python scripts/docs.py [--renderer auto|quarto|nbconvert] [--only GLOB --out DIR]"""
import argparse, html, json, os, re, shutil, sys, time
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def only_pure_import_cells():
    """nbdev executes, for the docs, every cell that contains an import (to define what `show_doc` shows). A cell that
    mixes imports with example code then runs without the cells before it and fails (NameError). Here only cells whose
    top-level statements are all imports run (exported cells and show_doc cells as before): the notebooks' style puts
    imports in their own cells, and example cells with an import are shown as written, not executed."""
    import ast
    import nbdev.processors as P
    orig = P._do_eval
    def _do_eval(cell):
        if not orig(cell): return None
        trees = cell.parsed_()
        if cell.directives_.keys() & {"export", "exports", "exporti", "exec_doc"} or P._show_docs(trees): return True
        return all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees) or None
    P._do_eval = _do_eval
    # A cell that still fails (a signature that names a type defined later, ...) is reported and shown without its
    # output instead of stopping the whole site; `DOC_ERRORS` lists them and the build prints them at the end.
    call = P.exec_show_docs.__call__
    def __call__(self, cell):
        try:
            return call(self, cell)
        except Exception as e:
            title = getattr(self.nb, "frontmatter_", {}).get("title", "?")
            DOC_ERRORS.append(f"{title!r} cell {cell.idx_}: {str(e).strip().splitlines()[-1]}")
            self.k.exc = None
            cell.outputs = []
    P.exec_show_docs.__call__ = __call__


DOC_ERRORS = []


def keep_prose_under_titles():
    """nbdev reads a notebook's first markdown cell as its front matter (`# title`, `> description`, `- key: value`)
    and drops the whole cell, so prose written under the title in the same cell vanishes from the site (index,
    05_train, 08_reasoners and three paper notebooks are written that way). Here the cell keeps everything but the
    title line and the description line."""
    import nbdev.frontmatter as F
    update = F.FrontmatterProc._update
    def _update(self, f, cell):
        src = cell.get("source")
        update(self, f, cell)
        if getattr(f, "__name__", "") == "md_frontmatter" and src and cell.source is None:
            lines, seen = [], set()
            for line in src.splitlines():
                kind = "title" if re.match(r"^#\s+\S", line) else "desc" if re.match(r"^>\s+\S", line) else None
                if kind and kind not in seen:
                    seen.add(kind); continue
                lines.append(line)
            if "\n".join(lines).strip(): cell.source = "\n".join(lines).strip() + "\n"
    F.FrontmatterProc._update = _update


def find_quarto():
    "The quarto executable on PATH or beside this Python, else None."
    return shutil.which("quarto") or shutil.which("quarto", path=str(VENV_BIN))


def build_quarto():
    "`nbdev-docs` in this process (so the import-cell rule above applies), Quarto from PATH or the virtualenv."
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.chdir(ROOT)
    only_pure_import_cells(); keep_prose_under_titles()
    from nbdev.quarto import nbdev_docs
    nbdev_docs.__wrapped__(n_workers=0)


def _front(nb):
    "The title and description nbdev moved into the front matter (from the notebook's `# Title` and `> description`)."
    import yaml
    for c in nb.cells:
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            try:
                fm = yaml.safe_load(c.source.strip().strip("-")) or {}
            except yaml.YAMLError:
                return {}
            return fm if isinstance(fm, dict) else {}
    return {}


def _title(nb, stem):
    if _front(nb).get("title"): return str(_front(nb)["title"])
    for c in nb.cells:
        if c.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", c.source, re.M)
            if m: return m.group(1).strip()
        if c.cell_type == "raw" and "title:" in c.source:
            m = re.search(r"^title:\s*\"?(.+?)\"?\s*$", c.source, re.M)
            if m: return m.group(1)
    return stem


def _strip_directives(nb):
    "What Quarto would do with the Quarto cell options nbdev leaves behind: hide echo:false inputs, drop the options."
    keep = []
    for c in nb.cells:
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            continue                                            # front matter: the title is taken separately
        if c.cell_type == "code":
            lines = c.source.splitlines()
            opts = [l for l in lines if re.match(r"^#\|\s*\w[\w-]*\s*:", l)]
            body = "\n".join(l for l in lines if l not in opts).strip()
            if any(re.match(r"^#\|\s*(echo|include)\s*:\s*false", o) for o in opts):
                if any(re.match(r"^#\|\s*include\s*:\s*false", o) for o in opts) or not c.get("outputs"):
                    continue
                c.metadata["transient_hide_input"] = True
            c.source = body
            if not body and not c.get("outputs"): continue
        keep.append(c)
    nb.cells = keep
    return nb


def _read(path):
    "A processed notebook; nbdev's per-cell execution timings (numbers where nbformat wants strings) are dropped."
    import nbformat
    nb = json.loads(Path(path).read_text())
    j = lambda x: "".join(x) if isinstance(x, list) else x
    for c in nb["cells"]:
        c.get("metadata", {}).pop("execution", None)
        c["source"] = j(c.get("source", ""))
        for o in c.get("outputs", []):
            if "text" in o: o["text"] = j(o["text"])
            for k, v in o.get("data", {}).items():
                if not k.endswith("json"): o["data"][k] = j(v)
                if k == "text/markdown":   # Quarto's link attributes, which plain Markdown prints as text
                    o["data"][k] = re.sub(r'\)\{target="_blank"[^}]*\}', ")", o["data"][k])
    return nbformat.from_dict(nb)


def build_nbconvert(n_workers: int = 0, file_glob: str = "", out=None):
    "nbdev's processing into _proc/, then each processed notebook (those matching `file_glob`) to `out`/<name>.html."
    import nbformat
    from nbconvert import HTMLExporter
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    only_pure_import_cells(); keep_prose_under_titles()
    cfg = get_config()
    refresh_quarto_yml()      # nbs/nbdev.yml and nbs/_quarto.yml, as nbdev-docs writes them (Quarto's settings)
    cache = proc_nbs(str(cfg.nbs_path), n_workers=n_workers, file_glob=file_glob)
    out = Path(out) if out else cfg.doc_path
    shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
    nbs = sorted(p for p in cache.glob("*.ipynb") if (cfg.nbs_path / p.name).exists()
                 and (not file_glob or fnmatch(p.name, file_glob)))
    pages = [(p, _read(p)) for p in nbs]
    # Quarto's page names: nbdev's `output-file` (the notebook's name without its number: 06_plots -> plots.html)
    names = {p.stem: str(_front(nb).get("output-file", p.stem + ".html")).removesuffix(".html") for p, nb in pages}
    titles = {p.stem: _title(nb, p.stem) for p, nb in pages}
    sys.path.insert(0, str(ROOT))
    from reasonbook.cli import PAPERS
    paper_of = {Path(f).stem: k for k, f in PAPERS.items()}
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    css = (cfg.nbs_path / "styles.css").read_text() if (cfg.nbs_path / "styles.css").exists() else ""
    nav = "".join(f'<li><a href="{names[p.stem]}.html">{html.escape(titles[p.stem])}</a></li>'
                  for p, _ in sorted(pages, key=lambda x: (x[0].stem != "index", x[0].stem)))
    for p, nb in pages:
        fm = _front(nb)
        nb.metadata.pop("widgets", None)
        head = (f'<header class="rb-head"><h1>{html.escape(titles[p.stem])}</h1>'
                + (f'<p class="rb-description">{html.escape(str(fm["description"]))}</p>' if fm.get("description") else "")
                + "</header>")
        nb = _strip_directives(nb)
        for c in nb.cells:
            if c.metadata.pop("transient_hide_input", False):
                c.metadata["transient"] = {"remove_source": True}
        body, _ = exporter.from_notebook_node(nb)
        figs = ""
        if p.stem in paper_of:
            pngs = sorted((ROOT / "figures" / paper_of[p.stem]).glob("*.png"))
            if pngs:
                d = out / "figures" / paper_of[p.stem]; d.mkdir(parents=True, exist_ok=True)
                items = []
                for f in pngs:
                    shutil.copy2(f, d / f.name)
                    items.append(f'<figure><img src="figures/{paper_of[p.stem]}/{f.name}" alt="{f.stem}">'
                                 f'<figcaption>figures/{paper_of[p.stem]}/{f.name}</figcaption></figure>')
                figs = ('<section id="committed-figures"><h2>Committed figures</h2><p>The figures this notebook wrote '
                        'in the committed run (smoke profile unless the title says otherwise).</p>' + "".join(items) + "</section>")
        side = (f'<nav class="rb-sidebar"><a class="rb-home" href="index.html">{html.escape(cfg.title)}</a>'
                f'<ul>{nav}</ul></nav>')
        body = body.replace("<body", "<body data-rb-page", 1)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + side + '<main class="rb-main">' + head, body, count=1)
        body = body.replace("</body>", figs + "</main></body>", 1)
        body = body.replace("</head>", f"<style>{RB_CSS}\n{css}</style></head>", 1)
        body = re.sub(r"<title>.*?</title>", lambda m: f"<title>{html.escape(titles[p.stem])} – {html.escape(cfg.title)}</title>",
                      body, count=1, flags=re.S)
        (out / f"{names[p.stem]}.html").write_text(body)
    (out / "pages.json").write_text(json.dumps({names[p.stem]: titles[p.stem] for p, _ in pages}, indent=1))
    return out


RB_CSS = """.rb-sidebar{position:fixed;top:0;left:0;bottom:0;width:230px;overflow:auto;padding:1em;background:#f7f7f9;
border-right:1px solid #ddd;font:14px system-ui,sans-serif}.rb-sidebar ul{list-style:none;padding:0}
.rb-sidebar li{margin:.35em 0}.rb-home{font-weight:bold;font-size:16px}.rb-main{margin-left:260px;max-width:1100px}
figure img{max-width:100%}.rb-head{padding:1em 0 0 1em}.rb-description{color:#555;font-size:1.1em}figcaption{font-size:12px;color:#666}"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renderer", choices=["auto", "quarto", "nbconvert"], default="auto")
    ap.add_argument("--only", default="", help="a glob of notebook names: build only those pages (nbconvert)")
    ap.add_argument("--out", default=None, help="output folder (nbconvert; default: nbdev's doc_path, _docs/)")
    ap.add_argument("--n-workers", type=int, default=0, help="0: in this process (the import-cell rule needs it)")
    a = ap.parse_args(argv)
    t0 = time.time()
    quarto = find_quarto()
    if a.renderer == "quarto" or (a.renderer == "auto" and quarto and not (a.only or a.out)):
        if not quarto: sys.exit("no quarto: `pip install quarto-cli` (needs GitHub for its binary) or use --renderer nbconvert")
        build_quarto(); site, how = ROOT / "_docs", f"nbdev-docs with {quarto}"
    else:
        print("docs: Quarto is not installed (the PyPI quarto-cli package downloads its binary from GitHub at build "
              "time); rendering nbdev's processed notebooks with nbconvert")
        site = build_nbconvert(a.n_workers, a.only, a.out); how = "nbdev proc_nbs + nbconvert"
    for e in DOC_ERRORS: print(f"docs: not executed for the docs (shown without output): {e}")
    print(f"docs: {site} built by {how} in {time.time() - t0:.0f} s ({len(DOC_ERRORS)} cells failed)")


if __name__ == "__main__":
    main()
