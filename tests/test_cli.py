"CLI: parameter checking and a headless papermill run of a paper notebook on its tiny profile."
import json
import pytest
from conftest import ROOT
from reasonbook.cli import main, reproduce, run_parameters, ReproduceError, PAPERS, parse_overrides


def test_unknown_notebook_and_parameter_are_errors(tmp_path, capsys):
    assert main(["reproduce", "--only", "nope"]) == 2
    present = [n for n, f in PAPERS.items() if (ROOT / "nbs" / f).exists()]
    assert present == list(PAPERS), f"paper notebooks missing: {set(PAPERS) - set(present)}"
    with pytest.raises(ReproduceError, match="unknown parameter"):
        run_parameters(ROOT, present[0], "smoke", {"no_such_knob": 1}, tmp_path)
    with pytest.raises(ReproduceError, match="no profile"):
        run_parameters(ROOT, present[0], "nonexistent", {}, tmp_path)


def test_run_parameters_paths(tmp_path):
    present = [n for n, f in PAPERS.items() if (ROOT / "nbs" / f).exists()]
    assert present == list(PAPERS), f"paper notebooks missing: {set(PAPERS) - set(present)}"
    p = run_parameters(ROOT, present[0], "smoke", {}, tmp_path)
    assert p["profile"] == "smoke" and p["run_dir"].endswith(f"smoke/{present[0]}")


def test_list_runs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in PAPERS)
