"""The rehearsal tier (issue 13 item 5): each paper notebook on its `rehearsal` profile (configs/<paper>/rehearsal.yaml:
the full profile's topology — the same roles opened in the same order, the same `engines` settings plumbing, the same
cache path — with every model a small local stand-in behind `vllm:` and every count shrunk), run as a user would run
it: `reasonbook reproduce --profile rehearsal --only <paper>` in a subprocess of this interpreter, so papermill's
kernel is this venv's (.venv-vllm, which has vLLM).

What it checks comes from the notebook's own engine ledger, `<run_dir>/engines.json` (`runs.EngineLedger.report()`):
every engine closed; never more engines alive at once than the largest declared co-resident group (1 if none); every
vLLM engine made one engine call per cache-missing round (`engine_calls == rounds`) and never sent a prompt as long as
its `max_model_len`; at least one vLLM engine generated; the notebook wrote figures.

Run by `make test-vllm` (scripts/test_vllm.sh, which sets the VLLM_CPU_* variables); deselected elsewhere (pyproject's
`-m 'not vllm'`). A paper without configs/<paper>/rehearsal.yaml fails, naming the file."""
import json, os, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.vllm

PAPERS = ["s1", "tts", "synthetic", "wcse"]
PROFILE = "rehearsal"
TIMEOUT_S = 900            # one rehearsal; the target is <= 150 s each on a 2-core CPU
ENV_DEFAULTS = dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", MPLBACKEND="Agg",
                    TOKENIZERS_PARALLELISM="false", OMP_WAIT_POLICY="PASSIVE")


def engine_problems(report: dict, need_vllm: bool = True) -> list[str]:
    """What is wrong in an engine ledger report (`EngineLedger.report()`, i.e. engines.json); empty when nothing is.
    `need_vllm`: also require that some vLLM engine generated (the rehearsal; not the transformers tiny profile)."""
    engines, groups = report.get("engines", []), report.get("co_resident") or []
    allowed = max([len(g) for g in groups] or [1])
    out = []
    for i, e in enumerate(engines):
        name = f"engine {i} {e['role']!r} ({e['spec']})"
        if not e.get("closed"): out.append(f"{name} was never closed")
        if not str(e["spec"]).startswith("vllm:"): continue
        if e.get("engine_calls") != e.get("rounds"):
            out.append(f"{name}: {e.get('engine_calls')} engine calls for {e.get('rounds')} rounds (one call per round expected)")
        mpt, mml = e.get("max_prompt_tokens"), e.get("max_model_len")
        if mpt is not None and (mml is None or mpt >= mml):
            out.append(f"{name}: a prompt of {mpt} tokens reached the engine, max_model_len {mml}")
    if report.get("max_live", 0) > allowed:
        out.append(f"{report['max_live']} engines alive at once; the largest declared co-resident group has {allowed} "
                   f"(co_resident={groups})")
    if need_vllm and not any(str(e["spec"]).startswith("vllm:") and e.get("rounds", 0) > 0 for e in engines):
        out.append(f"no vLLM engine generated anything (engines: {[(e['role'], e['spec']) for e in engines]})")
    return out


def notebook_errors(nb_path: Path) -> list[str]:
    "The error outputs of an executed notebook, as 'ename: evalue' lines."
    if not nb_path.exists(): return []
    nb = json.loads(nb_path.read_text())
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb["cells"] for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def rehearse(paper: str, tmp: Path, root: Path = ROOT, python: str = sys.executable) -> dict:
    "Run `reasonbook reproduce --profile rehearsal --only paper` under `python`; where it wrote what, and how long it took."
    out, figs, log = tmp / "runs", tmp / "figures", tmp / f"{paper}-reproduce.log"
    env = {**ENV_DEFAULTS, **os.environ}
    cmd = [python, "-m", "reasonbook.cli", "reproduce", "--profile", PROFILE, "--only", paper, "--root", str(root),
           "--out", str(out), "--figures", str(figs), "--no-progress"]
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=TIMEOUT_S).returncode
    seconds = time.time() - t0
    return dict(rc=rc, seconds=seconds, log=log, run_dir=out / PROFILE / paper, notebook=out / PROFILE / f"{paper}.ipynb",
                figures=figs / paper)


def check_rehearsal(paper: str, r: dict) -> str:
    "Assert a rehearsal ran clean and its engine ledger shows no fails-at-scale pattern; a summary of its engines."
    tail = "\n".join(r["log"].read_text().splitlines()[-25:]) if r["log"].exists() else "(no log)"
    assert r["rc"] == 0, (f"rehearsal of {paper} failed (exit {r['rc']}); notebook errors: {notebook_errors(r['notebook'])}"
                          f"\n--- last lines of {r['log']}:\n{tail}")
    ledger = r["run_dir"] / "engines.json"
    assert ledger.exists(), f"{paper}: the notebook wrote no {ledger} (its last cell must call ENGINES.save)"
    report = json.loads(ledger.read_text())
    problems = engine_problems(report)
    assert not problems, f"{paper} rehearsal ({ledger}):\n  " + "\n  ".join(problems)
    assert r["figures"].is_dir() and any(r["figures"].iterdir()), f"{paper}: no figure written under {r['figures']}"
    return "\n".join(f"    {e['role']:<10} {e['spec']:<28} rounds={e['rounds']} calls={e['engine_calls']} "
                     f"max_prompt={e['max_prompt_tokens']} max_model_len={e['max_model_len']} alive_with={e['alive_with']}"
                     for e in report["engines"]) + f"\n    max_live={report['max_live']} co_resident={report['co_resident']}"


@pytest.mark.parametrize("paper", PAPERS)
def test_rehearsal(paper, tmp_path, capsys):
    cfg = ROOT / "configs" / paper / f"{PROFILE}.yaml"
    assert cfg.exists(), f"{cfg.relative_to(ROOT)} is missing: every paper has a rehearsal profile"
    r = rehearse(paper, tmp_path)
    with capsys.disabled(): print(f"\n  rehearsal {paper}: {r['seconds']:.0f} s wall (exit {r['rc']})")
    summary = check_rehearsal(paper, r)
    with capsys.disabled(): print(summary)
