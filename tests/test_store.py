"Run store: crash safety, concurrent writers, and the kill-and-resume guarantee."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from reasonbook.backends import Sampling, HFBackend
from reasonbook.testing import ScriptedBackend
from reasonbook.store import RunStore, CachedBackend, sample_key


def test_torn_last_line_is_discarded(tmp_path):
    st = RunStore(tmp_path / "s.jsonl")
    st.append([{"key": "a"}])
    with open(st.path, "ab") as f: f.write(b'{"key": "b", "comp')
    assert len(RunStore(st.path)) == 1
    with pytest.warns(UserWarning, match="torn"):
        RunStore(st.path).append([{"key": "c"}])
    lines = st.path.read_text().splitlines()
    assert [json.loads(l)["key"] for l in lines] == ["a", "c"]


def test_keys_separate_models_prompts_sampling_and_index():
    s = Sampling(seed=1)
    k = sample_key("e", "m", "p", s, 0)
    assert len({k, sample_key("e", "m2", "p", s, 0), sample_key("e", "m", "q", s, 0),
                sample_key("e", "m", "p", Sampling(seed=2), 0), sample_key("e", "m", "p", s, 1),
                sample_key("e2", "m", "p", s, 0)}) == 6
    assert sample_key("e", "m", "p", Sampling(n=1, seed=1), 0) == sample_key("e", "m", "p", Sampling(n=8, seed=1), 0)


WRITER = textwrap.dedent('''
    import sys
    from reasonbook.store import RunStore
    st = RunStore(sys.argv[1])
    for i in range(200):
        st.append([{"key": f"{sys.argv[2]}-{i}", "pad": "x" * 500}, {"key": f"shared-{i}"}])
''')


def test_two_processes_write_one_store(tmp_path):
    path = tmp_path / "s.jsonl"
    ps = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), w]) for w in ("A", "B")]
    assert all(p.wait(timeout=120) == 0 for p in ps)
    keys = [json.loads(l)["key"] for l in path.read_text().splitlines()]   # every line parses
    assert len(keys) == len(set(keys)) == 600                               # no duplicates, nothing lost


KILLED_RUN = textwrap.dedent('''
    import sys, torch
    from reasonbook.backends import HFBackend, Sampling
    from reasonbook.store import CachedBackend
    torch.set_num_threads(1)
    be = CachedBackend(HFBackend(sys.argv[1], progress=False, batch_size=4), sys.argv[2], chunk_size=4)
    prompts = [be.chat(f"Question {i}") for i in range(12)]
    be.generate(prompts, Sampling(n=2, temperature=1.0, max_tokens=24, seed=5))
''')


def test_killed_run_resumes_without_regenerating(tmp_path, tiny_path):
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tiny_path), str(store)])
    f = store / "generations.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:          # kill it as soon as some (not all) samples are stored
        if f.exists() and 4 <= len(f.read_bytes().splitlines()) < 24: break
        if proc.poll() is not None: break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    done_before = len(RunStore(store))
    assert 0 < done_before < 24, f"the run was not interrupted part-way ({done_before} of 24 stored)"

    inner = HFBackend(tiny_path, progress=False, batch_size=4)
    calls = []
    orig = inner.generate_samples
    inner.generate_samples = lambda reqs, s, desc=None: (calls.append(len(reqs)), orig(reqs, s, desc))[1]
    be = CachedBackend(inner, store, chunk_size=4)
    prompts = [be.chat(f"Question {i}") for i in range(12)]
    s = Sampling(n=2, temperature=1.0, max_tokens=24, seed=5)
    resumed = be.generate(prompts, s)
    assert sum(calls) == 24 - done_before            # nothing already cached was regenerated
    fresh = HFBackend(tiny_path, progress=False, batch_size=7).generate(prompts, s)
    assert [[c.token_ids for c in o] for o in resumed] == [[c.token_ids for c in o] for o in fresh]
    calls.clear()
    be.generate(prompts, s)
    assert calls == []                               # a rerun is free
    assert len(RunStore(store)) == 24


class _OtherEngine(ScriptedBackend):
    "The same model id served by another engine."
    engine = "vllm"


def test_run_store_reused_across_engines_never_replays_the_other_engine(tmp_path):
    "Regression: `embedded` and `vllm:embedded` both report model id SmolLM2-135M-Instruct and used to share keys."
    hf = ScriptedBackend(lambda p, j: f"transformers {j}", model_id="SmolLM2-135M-Instruct")
    vl = _OtherEngine(lambda p, j: f"vllm {j}", model_id="SmolLM2-135M-Instruct")
    assert hf.model_id == vl.model_id and hf.engine != vl.engine
    sp = Sampling(n=2, seed=0)
    a = CachedBackend(hf, tmp_path / "store").generate(["q"], sp)
    b = CachedBackend(vl, tmp_path / "store").generate(["q"], sp)
    assert [c.text for c in a[0]] == ["transformers 0", "transformers 1"]
    assert [c.text for c in b[0]] == ["vllm 0", "vllm 1"] and not b[0][0].cached
    again = CachedBackend(vl, tmp_path / "store").generate(["q"], sp)
    assert again[0][0].cached and again[0][0].text == "vllm 0"


def test_cached_backend_does_not_forward_engine_internals(tmp_path):
    "CachedBackend exposes the Backend interface only: a method reaching into an engine fails loudly."
    cb = CachedBackend(ScriptedBackend(["x"]), tmp_path / "store")
    with pytest.raises(AttributeError):
        cb.responses
    with pytest.raises(TypeError, match="no transformers model"):
        cb.hf_model()
    cb.warm_prefix(["q"]); cb.close()
    with cb.prefix_reuse(False): pass
