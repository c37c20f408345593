"Each paper notebook end to end under papermill on its tiny profile (configs/<paper>/tiny.yaml)."
import json
import pytest
from conftest import ROOT
from reasonbook.cli import PAPERS, reproduce
from test_vllm_rehearsal import engine_problems


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
    # the engine ledger (runs.ENGINES, saved by the notebook's last cell): every engine closed, never more alive at
    # once than the largest declared co-resident group, one engine call per round on vLLM
    ledger = tmp_path / "runs" / "tiny" / paper / "engines.json"
    assert ledger.exists(), f"{paper}: the notebook wrote no {ledger.name} (its last cell must call ENGINES.save)"
    report = json.loads(ledger.read_text())
    assert report["engines"], f"{paper}: {ledger.name} records no engine (open every model with cfg.open_backend)"
    problems = engine_problems(report, need_vllm=False)
    assert not problems, f"{paper} ({ledger}):\n  " + "\n  ".join(problems)
