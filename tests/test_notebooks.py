"Each paper notebook end to end under papermill on its tiny profile (configs/<paper>/tiny.yaml)."
import json
import pytest
from conftest import ROOT
from reasonbook.cli import PAPERS, reproduce


@pytest.mark.slow
@pytest.mark.parametrize("paper", list(PAPERS))
def test_notebook_runs_headless(paper, tmp_path):
    assert (ROOT / "nbs" / PAPERS[paper]).exists(), f"{PAPERS[paper]} is missing"
    assert (ROOT / "configs" / paper / "tiny.yaml").exists(), f"configs/{paper}/tiny.yaml is missing"
    figs = tmp_path / "figures"
    rows = reproduce("tiny", only=[paper], out=tmp_path / "runs", figures=figs, progress=False)
    r = rows[0]
    assert r["status"] == "ok", r["error"]
    assert (tmp_path / "runs" / "tiny" / paper / "metrics.json").exists()
    nb = json.loads((tmp_path / "runs" / "tiny" / f"{paper}.ipynb").read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert list((figs / paper).glob("*.png")), "the notebook wrote no figure"
