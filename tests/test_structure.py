"Structure: notebooks and package in sync, one parameters cell per paper notebook, configs name real parameters."
import json, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml
from conftest import ROOT
from reasonbook.cli import PAPERS, notebook_parameters

PAPER_NBS = [ROOT / "nbs" / f for f in PAPERS.values() if (ROOT / "nbs" / f).exists()]


def _cells(nb): return json.loads(nb.read_text())["cells"]


@pytest.mark.parametrize("nb", PAPER_NBS, ids=lambda p: p.stem)
def test_paper_notebook_has_one_parameters_cell_and_no_export_call(nb):
    cells = _cells(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name} has {len(tagged)} cells tagged 'parameters'"
    params = notebook_parameters(nb)
    for k in ("profile", "run_dir", "figures_dir", "model", "seed"):
        assert k in params, f"{nb.name}: parameters cell lacks {k!r}"
    assert params["profile"].strip("'\"") == "smoke"
    import ast
    assigned = {t.id for node in ast.parse("".join(tagged[0]["source"])).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert assigned == set(params), f"papermill does not see {sorted(assigned - set(params))} (a comment with '=' hides it)"
    src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "nbdev_export()" not in src and "notebook2script" not in src


def test_no_executed_copies_in_nbs():
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        for c in _cells(nb):
            assert not c.get("outputs"), f"{nb.name} holds outputs: executed copies go to runs/, and nbs/ is kept clean"


@pytest.mark.parametrize("cfg", sorted(p for p in (ROOT / "configs").glob("*/*.yaml") if p.parent.name != "accelerate"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_keys_are_notebook_parameters(cfg):
    paper = cfg.parent.name
    assert paper in PAPERS and (ROOT / "nbs" / PAPERS[paper]).exists(), f"configs/{paper}/ has no paper notebook"
    keys = set(yaml.safe_load(cfg.read_text()) or {})
    known = set(notebook_parameters(ROOT / "nbs" / PAPERS[paper]))
    assert keys <= known, f"{cfg}: unknown parameters {sorted(keys - known)}"


def test_nbdev_export_leaves_package_unchanged(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv*", ".git", "runs", "figures", "__pycache__", "*.egg-info"))
    exe = Path(sys.executable).parent / "nbdev-export"
    subprocess.run([str(exe)], cwd=dst, check=True, capture_output=True)
    for f in sorted((ROOT / "reasonbook").glob("*.py")):
        assert (dst / "reasonbook" / f.name).read_text() == f.read_text(), \
            f"reasonbook/{f.name} differs from what nbdev-export writes: run `make export` (never edit reasonbook/*.py)"
    assert sorted(p.name for p in (dst / "reasonbook").glob("*.py")) == sorted(p.name for p in (ROOT / "reasonbook").glob("*.py"))


def test_import_without_vllm():
    code = "import sys, reasonbook, reasonbook.backends, reasonbook.store, reasonbook.cli; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


CONFIGS = {"s1": ("reasonbook.s1", "S1Config"), "tts": ("reasonbook.tts", "TTSConfig"),
           "synthetic": ("reasonbook.synthetic", "SyntheticConfig"), "wcse": ("reasonbook.wcse", "WCSEConfig")}


@pytest.mark.parametrize("paper", list(PAPERS))
def test_typed_config_is_the_parameters_cell(paper):
    "Each paper's typed config has exactly the notebook's parameters, with the parameters cell's values as defaults."
    import importlib
    from conftest import parameters_cell
    mod, name = CONFIGS[paper]
    cls = getattr(importlib.import_module(mod), name)
    params = parameters_cell(PAPERS[paper])
    assert set(params) == set(cls.__dataclass_fields__), set(params) ^ set(cls.__dataclass_fields__)
    import dataclasses       # output folders: the base class's generic defaults, the notebook's relative paths
    assert cls.from_params(params) == dataclasses.replace(cls(), run_dir=params["run_dir"], figures_dir=params["figures_dir"])
