import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_path():
    from reasonbook.backends import tiny_llama_path
    return tiny_llama_path()


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from reasonbook.backends import HFBackend
    return HFBackend(tiny_path, progress=False)


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.exists():
        pytest.skip(f"real benchmark files not available: {SHARED_DATA} is absent (they live in ../shared/data beside the checkout)")
    return SHARED_DATA


def parameters_cell(notebook: str) -> dict:
    "The values of a paper notebook's papermill `parameters` cell (each assignment a Python literal)."
    import ast, json
    nb = json.loads((ROOT / "nbs" / notebook).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse("".join(cell["source"])).body
            if isinstance(n, ast.Assign)}
