"""`make bench` (benchmarks/run.py): results.md states the machine, date and repeats; every comparison carries its
goal, met or not, and its equality check; a failing section is reported and does not stop the others."""
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_comparison_goal_and_alternation(run):
    assert run.comparison("x", 5.2, (">=", 5.0, "issue 16"))["met"] is True
    assert run.comparison("x", 1.3, ("<=", 1.05, "issue 16"))["met"] is False
    assert run.comparison("x", 1.3)["met"] is None
    order = []
    r = run.alternate({"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 2}, 3)
    assert order == ["a", "b"] * 3                     # arms alternate
    assert r["out"] == {"a": 1, "b": 2} and all(r["stable"].values()) and len(r["times"]["a"]) == 3
    flip = iter([1, 2, 1])
    assert run.alternate({"a": lambda: next(flip)}, 3)["stable"]["a"] is False   # a repeat that changes is caught


def test_failing_section_is_reported_and_the_rest_run(run, tmp_path, monkeypatch):
    def boom(c): raise RuntimeError("boom in section a")
    ok = lambda c: dict(rows=[dict(k=1, speedup=2.0)], repeats=c.repeats,
                        comparisons=[run.comparison("b vs b'", 2.0, (">=", 3.0, "a goal"), True, c.repeats)])
    monkeypatch.setattr(run, "SECTIONS", {"a": ("Section A", (1, 1), boom), "b": ("Section B", (1, 1), ok)})
    run.main(["--quick", "--out", str(tmp_path / "results.md")])
    md = (tmp_path / "results.md").read_text()
    assert "FAILED: `RuntimeError: boom in section a`" in md
    assert "| b | b vs b' | 2.00 | >= 3 (a goal) | not met | yes | 1 |" in md
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense", "--out", str(tmp_path / "x.md")])


def test_quick_bench_writes_machine_date_repeats(tmp_path):
    "The acceptance check of issue 16's header, on the two sections that need no GPU and little time."
    out = tmp_path / "results.md"
    t = time.time()
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "grader,store",
                        "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    md = out.read_text()
    for line in ("- date: 20", "- machine: ", "native bf16: ", "CPU cores, torch ", "threads)", "- repeats: 1 per comparison",
                 "- load average (1, 5, 15 min): ", "at the end"):
        assert line in md, f"results.md lacks {line!r}"
    assert "| grader | grader: worst wall / 2 s deadline" in md and "| store | run store: cached rerun / first run" in md
    for name in ("grader", "store"):
        assert any(l.startswith(f"| {name} |") and l.rstrip().endswith("| ok |") for l in md.splitlines()), name
    meta = json.loads(out.with_suffix(".json").read_text())["meta"]
    assert meta["repeats"] == 1 and meta["quick"] and meta["ran"] == ["grader", "store"]
    assert meta["machine_info"]["cores"] >= 1 and meta["seconds"] <= time.time() - t
