"""The fails-at-scale classes, at the engine level (reasonbook.runs: per-role engine settings, the engine ledger,
`TrainCache`, and `CachedBackend`'s rounds): each test here fails on the code before the engine-ledger commit, where
settings were global, any number of engines could be alive, training could start beside a live engine, and nothing
counted engine calls per round. No model is loaded: `load_backend` is replaced by a recorder that returns
`reasonbook.testing` doubles. Also the checker the rehearsal and notebook tests apply to engines.json."""
import json
import pytest

import reasonbook.runs as runs
from reasonbook.backends import Sampling
from reasonbook.runs import ConfigError, PaperConfig, TrainCache
from reasonbook.store import CachedBackend
from reasonbook.testing import ScriptedBackend
from reasonbook.train import TrainResult
from test_vllm_rehearsal import engine_problems

# looked up at test time, so that on code without the ledger each test fails on its own rather than the module
def ledger(): return runs.ENGINES
def lifecycle_error(): return getattr(runs, "EngineLifecycleError", type("NoLedger", (Exception,), {}))


class FakeVLLM(ScriptedBackend):
    "A scripted engine that calls itself vLLM (one call per round expected); `calls` lists each call's request count."
    engine = "vllm"
    max_model_len = 512


class FakeHF(ScriptedBackend):
    "A scripted engine that calls itself transformers, with a batch size (CachedBackend chunks by it)."
    engine, batch_size = "transformers", 64


@pytest.fixture(autouse=True)
def fresh_ledger():
    if hasattr(runs, "ENGINES"): ledger().reset()
    yield
    if hasattr(runs, "ENGINES"): ledger().reset()


@pytest.fixture
def loads(monkeypatch):
    "Every `load_backend(spec, **kw)` that `runs` makes, as (spec, kw); it returns a fake of the spec's engine."
    seen = []
    def fake_load(spec, **kw):
        seen.append((spec, kw))
        return (FakeVLLM if spec.startswith("vllm:") else FakeHF)(["42"], model_id=spec)
    monkeypatch.setattr(runs, "load_backend", fake_load)
    return seen


def config(**params) -> PaperConfig:
    return PaperConfig.from_params(params)


# ------------------------------------------------------------------------------------------ per-role settings
def test_role_settings_reach_load_backend_for_their_engine_only(loads):
    cfg = config(engines={"policy": {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.5, "batch_size": 8},
                          "judge": {"max_model_len": 4096}})
    with cfg.open_backend("policy", "vllm:big-model"): pass
    with cfg.open_backend("policy", "hf:small-model"): pass
    with cfg.open_backend("judge", "vllm:judge-model"): pass
    with cfg.open_backend("base", "vllm:base-model"): pass          # no settings for this role
    (s1, v), (s2, h), (s3, j), (s4, b) = loads
    assert (s1, v) == ("vllm:big-model", {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.5})
    assert s2 == "hf:small-model" and h["batch_size"] == 8 and "tensor_parallel_size" not in h and "gpu_memory_utilization" not in h
    assert j == {"max_model_len": 4096}                              # the judge's settings, not the policy's
    assert b == {}


def test_the_role_settings_win_over_the_notebook_defaults(loads):
    cfg = config(engines={"policy": {"batch_size": 8, "max_model_len": 1024}})
    with cfg.open_backend("student", "hf:m", batch_size=32): pass                 # no role setting: the default
    with cfg.open_backend("policy", "hf:m", batch_size=32): pass                  # the user's role setting wins
    with cfg.open_backend("policy", "vllm:m", batch_size=32, max_model_len=256): pass
    (_, h), (_, h2), (_, v) = loads
    assert h["batch_size"] == 32 and h2["batch_size"] == 8
    assert v == {"max_model_len": 1024}                 # the role's setting wins; vLLM schedules its own batches


def test_unknown_engine_setting_raises_naming_the_role(loads):
    cfg = config(engines={"judge": {"tensor_paralel_size": 2}})
    with pytest.raises(ConfigError, match=r"engines\['judge'\].*tensor_paralel_size"):
        with cfg.open_backend("judge", "vllm:judge-model"): pass
    assert loads == [] and ledger().live == []


def test_engines_parameter_is_type_checked():
    with pytest.raises(ConfigError, match="'engines'"): config(engines={"policy": 4})
    with pytest.raises(ConfigError, match="'co_resident'"): config(co_resident=["policy", "prm"])


# ------------------------------------------------------------------------------------------ the engine ledger
def test_two_engines_refused_unless_declared_co_resident(loads):
    cfg = config()
    with cfg.open_backend("policy", "hf:policy-model"):
        with pytest.raises(lifecycle_error(), match=r"opening 'base'.*'policy'.*alive"):
            with cfg.open_backend("base", "hf:base-model"): pass
    assert [s for s, _ in loads] == ["hf:policy-model"]              # the refused engine was never loaded
    with cfg.open_backend("base", "hf:base-model"): pass             # one after the other is fine
    assert ledger().max_live == 1 and ledger().live == [] and all(r.closed for r in ledger().records)

    ledger().reset()
    cfg = config(co_resident=[["policy", "prm"]])
    with cfg.open_backend("policy", "hf:policy-model"):
        with cfg.open_backend("prm", "hf:prm-model"): pass
        with pytest.raises(lifecycle_error(), match="'judge'"):      # declared with the PRM, not with a judge
            with cfg.open_backend("judge", "hf:judge-model"): pass
    assert ledger().max_live == 2 and ledger().report()["co_resident"] == [["policy", "prm"]]


def test_vllm_beside_a_co_resident_prm_needs_its_memory_fraction(loads):
    cfg = config(co_resident=[["policy", "prm"]])
    with cfg.open_backend("policy", "vllm:policy-model"):
        with pytest.raises(lifecycle_error(), match=r"gpu_memory_utilization.*\['policy'\]"):
            with ledger().track("prm", "reasoner-prm"): pass
    ledger().reset()
    cfg = config(co_resident=[["policy", "prm"]], engines={"policy": {"gpu_memory_utilization": 0.6}})
    with cfg.open_backend("policy", "vllm:policy-model"):
        with ledger().track("prm", "reasoner-prm") as rec: assert rec.alive_with == ["policy"]
    assert ledger().max_live == 2 and ledger().live == []
    ledger().reset()
    cfg = config(co_resident=[["policy", "prm"]],
                 engines={"policy": {"gpu_memory_utilization": 0.6}, "prm": {"gpu_memory_utilization": 0.5}})
    with cfg.open_backend("policy", "vllm:policy-model"):
        with pytest.raises(lifecycle_error(), match="1.10 of GPU memory"):
            with cfg.open_backend("prm", "vllm:prm-model"): pass


def test_training_refused_while_an_engine_is_alive(loads, tmp_path):
    trained = []
    def train_fn(out):
        trained.append(out); out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"")
        return TrainResult(out, [1.0], 1, 0.1)
    cache, recipe = TrainCache(tmp_path), {"model": "m", "steps": 1}
    with config().open_backend("policy", "hf:policy-model"):
        with pytest.raises(lifecycle_error(), match=r"training 'sft'.*'policy'"):
            cache.get_or_train("sft", recipe, train_fn)
    assert trained == []
    assert cache.get_or_train("sft", recipe, train_fn).steps == 1 and len(trained) == 1   # engine closed: it trains
    with config().open_backend("policy", "hf:policy-model"):
        assert cache.get_or_train("sft", recipe, train_fn).path == trained[0]           # a cache hit trains nothing
    assert len(trained) == 1


# ------------------------------------------------------------------------------------------ rounds and engine calls
def test_cached_vllm_engine_makes_one_call_per_round(tmp_path):
    eng = FakeVLLM(["42"])
    be = CachedBackend(eng, tmp_path / "store")
    prompts = [f"question {i}" for i in range(300)]
    be.generate(prompts, Sampling(max_tokens=4))
    assert eng.calls == [300] and (be.rounds, be.engine_calls) == (1, 1)      # before: 5 calls of <= 64
    be.generate(prompts, Sampling(max_tokens=4))                               # all cached: no round
    be.generate(prompts[:10] + ["a new one"], Sampling(max_tokens=4))          # one miss: one round, one call
    assert eng.calls == [300, 1] and (be.rounds, be.engine_calls, be.misses) == (2, 2, 301)
    hf = FakeHF(["42"])                                                        # transformers: its batch size
    hb = CachedBackend(hf, tmp_path / "store-hf")
    hb.generate(prompts, Sampling(max_tokens=4))
    assert hf.calls == [64, 64, 64, 64, 44] and (hb.rounds, hb.engine_calls) == (1, 5)


def test_ledger_records_rounds_engine_calls_and_prompt_lengths(loads, tmp_path):
    cfg = config()
    with cfg.open_backend("policy", "vllm:policy-model", tmp_path / "store") as be:
        be.inner.stats["max_prompt_tokens"] = 37
        be.generate([f"q{i}" for i in range(300)], Sampling(max_tokens=4))
        be.generate([f"q{i}" for i in range(310)], Sampling(max_tokens=4))
    (rec,) = ledger().report()["engines"]
    assert (rec["rounds"], rec["engine_calls"], rec["requests"]) == (2, 2, 310)
    assert (rec["max_prompt_tokens"], rec["max_model_len"], rec["closed"]) == (37, 512, True)
    assert engine_problems(ledger().report()) == []


# ------------------------------------------------------------------------------------------ the engines.json checker
def test_engine_problems_flags_each_fails_at_scale_pattern(loads, tmp_path):
    led = runs.EngineLedger()
    with runs.open_backend("vllm:m", tmp_path / "store", role="policy", ledger=led) as be:
        be.generate(["q"], Sampling(max_tokens=4))
    good = json.loads(json.dumps(led.report(), default=str))                  # as engines.json reads back
    assert engine_problems(good) == []

    def broken(**change):
        r = json.loads(json.dumps(good)); r["engines"][0].update(change.pop("engine", {})); r.update(change)
        return engine_problems(r)
    assert any("never closed" in p for p in broken(engine=dict(closed=False)))
    assert any("5 engine calls for 1 rounds" in p for p in broken(engine=dict(engine_calls=5)))
    assert any("512 tokens reached" in p for p in broken(engine=dict(max_prompt_tokens=512)))
    assert any("2 engines alive at once" in p for p in broken(max_live=2))
    assert broken(max_live=2, co_resident=[["policy", "prm"]]) == []
    assert any("no vLLM engine generated" in p for p in broken(engine=dict(spec="hf:m")))
    hf_only = json.loads(json.dumps(good)); hf_only["engines"][0]["spec"] = "hf:m"
    assert engine_problems(hf_only, need_vllm=False) == []
