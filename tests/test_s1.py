"""Mechanics of s1 budget forcing (reasonbook.s1) on the tiny random-weight model (conftest's `tiny` HFBackend) and
on a scripted thinker (`ScriptedThinker`: a fixed number of thinking tokens per call, then the delimiter). The
notebook's own examples (next to each function) cover the metrics, the delimiters and each experiment function;
these tests are the grids, the real decode loop, the whole experiment pipeline and the config profiles."""
import itertools
import json
from pathlib import Path

import pytest
import yaml

from reasonbook.backends import Sampling
from reasonbook.s1 import (Delimiters, S1Config, budget_force, budget_sweep, parallel_scaling, rejection_sample)
from reasonbook.testing import ScriptedThinker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def newline_delims():
    # The tiny random model greedily emits "\n" (token 198) forever: with "\n" as the end-of-thinking token it ends
    # its thinking at once, which gives natural ends on a real decode loop.
    return Delimiters("newline", "", ("\n",), None)


def prompts_for(backend, n=4):
    return [backend.chat(f"What is {i} + {i + 2}?") for i in range(n)]


# --- the cap ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cap", [1, 7, 24])
@pytest.mark.parametrize("k", [0, 2])
def test_cap_never_exceeded_tiny_sampled(tiny, cap, k):
    "Random weights at temperature 1 produce arbitrary tokens (partial UTF-8 included): the cap still holds."
    recs = budget_force(tiny, prompts_for(tiny), max_thinking_tokens=cap, num_ignore=k, delimiters="plain",
                        sampling=Sampling(temperature=1.0, seed=3), answer_max_tokens=4)
    for r in recs:
        assert len(r.thinking_ids) <= cap
        assert r.thinking_tokens <= cap
        assert tiny.count_tokens(r.thinking) == r.thinking_tokens


@pytest.fixture(scope="module")
def tok(tiny):
    return tiny.tokenizer


def test_cap_never_exceeded_scripted_grid(tok):
    for cap, k, think, ext in itertools.product([1, 5, 10, 11, 12, 30], [0, 1, 3], [10, 3], [4, 1]):
        sb = ScriptedThinker(tok, think_len=think, extend_len=ext)
        for r in budget_force(sb, ["Q1", "Q2"], max_thinking_tokens=cap, num_ignore=k, delimiters="s1"):
            assert r.thinking_tokens <= cap, (cap, k, think, ext)
            assert r.num_extensions <= k


# --- extensions ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3])
def test_extension_suppresses_the_delimiter_tiny(tiny, k):
    """On the real decode loop: the model ends its thinking at once ("\n"), the delimiter is stripped and "Wait"
    appended; the continuation runs with min_tokens=1 and stops on the delimiter token ids. The random model never
    ends its thinking again (it repeats one token), so exactly one extension happens and the cap ends the thinking."""
    delims = Delimiters("newline", "", ("\n", "Wait"), None)   # a generated "Wait" would also end (and be stripped)
    calls = []
    orig = tiny.generate_samples

    def spy(requests, sampling, desc=None):
        calls.append(sampling)
        return orig(requests, sampling, desc)

    tiny.generate_samples = spy
    try:
        recs = budget_force(tiny, prompts_for(tiny, 3), max_thinking_tokens=40, num_ignore=k, delimiters=delims,
                            answer_max_tokens=2, in_loop=False)     # the round-based path: one call per round
    finally:
        del tiny.generate_samples
    assert recs == budget_force(tiny, prompts_for(tiny, 3), max_thinking_tokens=40, num_ignore=k, delimiters=delims,
                                answer_max_tokens=2)                # the one-loop path: the same records
    for r in recs:
        assert r.thinking.startswith("Wait") and "\n" not in r.thinking
        assert r.num_extensions == 1 and r.thinking.count("Wait") == 1
        assert r.capped and r.final_answer_appended and r.rounds == 2
    assert [c.min_tokens for c in calls] == [0, 1, 0]          # thinking, one continuation, the forced answer
    stop_ids = tuple(tiny.encode(t)[0] for t in ("\n", "Wait"))                # the delimiters' token ids
    assert [c.stop_token_ids for c in calls[:2]] == [stop_ids] * 2


def test_k_extensions_scripted_and_batched(tok):
    for k in range(5):
        sb = ScriptedThinker(tok, think_len=6, extend_len=3)
        recs = budget_force(sb, ["A", "B", "C"], max_thinking_tokens=1000, num_ignore=k, delimiters="s1",
                            extension="Hmm")
        for r in recs:
            assert r.num_extensions == k and r.thinking.count("Hmm") == k
            assert "<|im_start|>" not in r.thinking
            assert r.thinking_tokens == 6 + k * (3 + len(tok.encode("Hmm", add_special_tokens=False)))
        # one generate call per round for all three problems, then one answer call
        assert [n for n, _ in sb.calls] == [3] * (k + 2)


def test_extension_stops_when_no_budget_left(tok):
    [r] = budget_force(ScriptedThinker(tok, think_len=10), ["Q"], max_thinking_tokens=11, num_ignore=3,
                       delimiters="s1")
    # 10 tokens then the delimiter: "Wait" would leave no room to generate, so thinking ends naturally
    assert (r.num_extensions, r.capped, r.thinking_tokens) == (0, False, 10)


# --- "Final Answer:" -------------------------------------------------------------------------------------------

def test_final_answer_exactly_when_capped_scripted(tok):
    seen = set()
    for cap, k in itertools.product([3, 10, 11, 15, 21, 22, 23, 40], [0, 1, 2]):
        sb = ScriptedThinker(tok, think_len=10, answer=" 7")
        for r in budget_force(sb, ["Q"], max_thinking_tokens=cap, num_ignore=k, delimiters="s1"):
            assert r.final_answer_appended == r.capped
            assert r.output.count("Final Answer:") == int(r.capped)
            assert r.tail == ("\n<|im_start|>answer\nFinal Answer:" if r.capped else "<|im_start|>answer\n")
            assert r.answer == " 7"
            seen.add(r.capped)
    assert seen == {True, False}


def test_final_answer_exactly_when_capped_tiny(tiny, newline_delims):
    capped = budget_force(tiny, prompts_for(tiny, 2), max_thinking_tokens=5, delimiters="plain", answer_max_tokens=3)
    natural = budget_force(tiny, prompts_for(tiny, 2), max_thinking_tokens=50, num_ignore=0, delimiters=newline_delims,
                           answer_max_tokens=3)
    for r in capped:
        assert r.capped and r.final_answer_appended and r.tail.endswith("Final Answer:")
    for r in natural:
        assert not r.capped and not r.final_answer_appended and "Final Answer:" not in r.output


# --- the sweep and rejection sampling ----------------------------------------------------------------------------

def test_sweep_equals_separate_runs_tiny(tiny, newline_delims):
    settings = [(1, 0), (2, 1), (3, 1), (4, 2), (30, 0), (30, 3)]
    ps = prompts_for(tiny, 3)
    swept = budget_sweep(tiny, ps, settings, delimiters=newline_delims, answer_max_tokens=2)
    for (cap, k), recs in zip(settings, swept):
        direct = budget_force(tiny, ps, max_thinking_tokens=cap, num_ignore=k, delimiters=newline_delims,
                              answer_max_tokens=2)
        for a, b in zip(recs, direct):
            assert (a.thinking_ids, a.capped, a.num_extensions, a.answer) == \
                   (b.thinking_ids, b.capped, b.num_extensions, b.answer), (cap, k)


def test_rejection_sampling_accepts_only_fitting_samples(tok):
    rs = rejection_sample(ScriptedThinker(tok, think_len=8), ["Q1", "Q2"], caps=[8, 9, 20],
                          sampling=Sampling(n=2, temperature=1.0, seed=0), max_rounds=2, delimiters="s1")
    assert all(not r.accepted for r in rs[8])            # 8 tokens + the delimiter do not fit a cap of 8
    assert all(r.accepted and r.thinking_tokens == 8 and not r.capped for r in rs[9] + rs[20])


# --- metrics -----------------------------------------------------------------------------------------------------

def test_parallel_scaling_maj_and_cov():
    pts = parallel_scaling([["1", "5", "5", "5"], ["2", "2", "3", "4"]], [[10] * 4, [30] * 4], ["5", "4"], ks=[1, 4])
    assert [p["k"] for p in pts] == [1, 4]
    assert [p["avg_thinking_tokens"] for p in pts] == [20.0, 80.0]
    assert pts[0]["maj"] == 0.0 and pts[1]["maj"] == 50.0
    assert pts[1]["cov"] == 100.0


# --- continuations reuse the prefix --------------------------------------------------------------------------------

def test_extension_rounds_reuse_the_prefix(tiny):
    "With HFBackend's prefix KV reuse, an extension round computes only the new tokens, not the whole prefix again."
    from reasonbook.s1 import extension_overhead
    ps, k, w = prompts_for(tiny, 3), 2, len(tiny.encode("Wait"))
    ov = extension_overhead(tiny, ps, num_ignore=k, round_tokens=6)
    with tiny.prefix_reuse(False):
        cold = extension_overhead(tiny, ps, num_ignore=k, round_tokens=6)
    prompt_tokens = sum(len(tiny.encode(p)) for p in ps)
    # reuse: per prompt, at most the last generated token + the extension per round (+1 recomputed prompt token)
    assert ov["extended_prefill_tokens"] <= len(ps) * (1 + k * (2 + w))
    # no reuse: every round re-reads the prompt and everything generated so far
    assert cold["extended_prefill_tokens"] >= (k + 1) * prompt_tokens
    assert ov["total_tokens"] == (k + 1) * 6 + k * w


# --- the experiment pipeline -----------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["tiny", "full", "full_s1.1", "rehearsal"])
def test_config_profiles_validate(profile):
    "Every profile's values (over the notebook defaults) pass S1Config's type and value checks."
    cfg = S1Config.from_params(yaml.safe_load((ROOT / "configs" / "s1" / f"{profile}.yaml").read_text()))
    from reasonbook.s1 import cap_order
    assert cap_order(max(cfg.fig4a_caps, key=cap_order)) <= cap_order(cfg.top_cap)


def test_wrong_parameter_is_named():
    with pytest.raises(ValueError, match="'rs_caps'"):
        S1Config.from_params({"rs_caps": [8, "16"]})
    with pytest.raises(ValueError, match="'main_benchmark'"):
        S1Config(main_benchmark="aime24")


def test_every_run_and_plot_function_on_a_scripted_thinker(tok, tmp_path):
    "The reproduction half end to end on a fake backend: each run_*/table/plot function, then metrics.json."
    import matplotlib
    matplotlib.use("Agg")
    from reasonbook import s1
    from reasonbook.plots import paper_vs_ours, write_metrics
    tiny = yaml.safe_load((ROOT / "configs" / "s1" / "tiny.yaml").read_text())
    cfg = S1Config.from_params(dict(tiny, main_benchmark="arithmetic-1", overhead_prompts=1))
    sb = ScriptedThinker(tok, think_len=10, extend_len=3, answer=" 3")
    problems = s1.load_problems(sb, cfg)
    bf = s1.run_budget_forcing(sb, cfg, problems)
    assert len(sb.calls) == 4                           # every setting of every experiment: 3 rounds + 1 answer call
    fig1 = s1.fig1_points(bf, cfg, problems)
    par = s1.run_parallel_scaling(sb, cfg, problems)
    rs = s1.run_rejection_sampling(sb, cfg, problems)
    runs = s1.table3_runs(bf, rs, cfg, problems)
    fig6, fig4a = s1.fig6_points(runs, cfg), s1.fig4a_points(bf, cfg, problems)
    for fig in (s1.plot_fig1(fig1), s1.plot_fig4(fig4a, par, problems.main_name, "m", "b"), s1.plot_fig6(fig6)):
        assert fig.axes
    t3, t4 = s1.table3(runs), s1.table4(bf, cfg, problems)
    overhead = s1.run_extension_overhead(sb, cfg, problems)
    s1k, selection = s1.select_from_run(tok, cfg, problems, bf)
    assert len(s1k) == selection["s1K"] == min(cfg.s1k_select, selection["difficulty"])
    rows = s1.paper_vs_this_run(cfg, problems.main_name, "b", t3, fig6, fig4a, par, t4, overhead)
    path = write_metrics(tmp_path, {"fig1": s1.fig1_summary(fig1), "table3": t3, "table4": t4, "fig6": fig6.to_dict("records"),
                                    "paper_vs_ours": paper_vs_ours(rows).to_dict("records"), "config": cfg.to_dict()})
    m = json.loads(path.read_text())
    assert [r["method"] for r in m["table3"]] == list(s1.PAPER["table3"])
    assert m["config"]["caps"] == [8, 16]


# --- SFT -----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_s1_sft_one_step_on_tiny(tiny_path, tmp_path):
    "s1_sft through train.launch (in-process) trains one step on s1K-format rows and saves a loadable folder."
    from reasonbook.s1 import s1_sft
    rows = [{"question": f"What is {i} + 1?", "trace": f"{i} + 1 = {i + 1}.", "attempt": str(i + 1)} for i in range(4)]
    res = s1_sft(str(tiny_path), rows, tmp_path / "sft", max_steps=1, batch_size=2, block_size=256)
    assert res.steps == 1 and (tmp_path / "sft" / "config.json").exists()


# --- paper scale (issue 13): the context clip, one engine at a time, what is graded -------------------------------

def _spy(backend):
    "Record (prompt lengths, sampling) of every generate call of `backend`."
    seen, orig = [], backend.generate_samples

    def spy(requests, sampling, desc=None):
        seen.append(([len(p) if not isinstance(p, str) else len(backend.encode(p)) for p, _ in requests], sampling))
        return orig(requests, sampling, desc)
    backend.generate_samples = spy
    return seen


@pytest.mark.parametrize("cap", [1000, "auto"])
def test_context_clip_keeps_the_answer_inside_max_model_len(tok, cap):
    """S1-1: a cap as large as the context (s1's 32768) used to let the thinking fill the context, so the answer
    prompt (prompt + thinking + tail) was longer than max_model_len and vLLM refused the whole answer call. Clipped
    like the harness's 'auto', every answer prompt leaves room for answer_max_tokens."""
    mml, amt = 64, 8
    sb = ScriptedThinker(tok, think_len=500)              # never ends its thinking by itself
    sb.max_model_len = mml
    calls = _spy(sb)
    [r] = budget_force(sb, ["Q"], max_thinking_tokens=cap, answer_max_tokens=amt, delimiters="s1")
    (think_lens, _), (answer_lens, answer_sp) = calls
    assert r.capped and r.final_answer_appended
    assert max(answer_lens) + answer_sp.max_tokens <= mml       # the answer fits
    assert max(think_lens) + r.max_thinking_tokens <= mml
    if cap == "auto":
        return
    unclipped = ScriptedThinker(tok, think_len=500)           # max_model_len unknown: the old behaviour
    calls = _spy(unclipped)
    budget_force(unclipped, ["Q"], max_thinking_tokens=cap, answer_max_tokens=amt, delimiters="s1")
    assert max(calls[-1][0]) >= mml                           # this answer prompt would have overflowed


def test_context_clip_in_the_sweep(tok):
    "The sweep clips every setting per prompt; a setting below the room is untouched, two above it coincide."
    sb = ScriptedThinker(tok, think_len=500)
    sb.max_model_len = 80
    calls = _spy(sb)
    small, big, auto = budget_sweep(sb, ["Q", "A longer question here"], [(8, 0), (10_000, 0), ("auto", 0)],
                                    answer_max_tokens=8, delimiters="s1")
    assert [r.max_thinking_tokens for r in small] == [8, 8]
    assert [r.max_thinking_tokens for r in big] == [r.max_thinking_tokens for r in auto]
    assert big[0].max_thinking_tokens > big[1].max_thinking_tokens     # each prompt gets its own room
    lens, sp = calls[-1]
    assert max(lens) + sp.max_tokens <= 80


def test_cap_auto_needs_a_known_context(tok):
    with pytest.raises(ValueError, match="max_model_len"):
        budget_force(ScriptedThinker(tok), ["Q"], max_thinking_tokens="auto", delimiters="s1")


def _fake_loader(tok, loaded):
    def load(spec, **kw):
        loaded.append((spec, kw))
        return ScriptedThinker(tok, think_len=6, extend_len=3, answer=" 3")
    return load


def _four_models_cfg(**kw):
    tiny = yaml.safe_load((ROOT / "configs" / "s1" / "tiny.yaml").read_text())
    return S1Config.from_params(dict(tiny, model="vllm:s1", base_model="vllm:base", tcc_model="vllm:tcc",
                                     scc_model="vllm:scc", main_benchmark="arithmetic-1", overhead_prompts=1, **kw))


def test_models_open_one_at_a_time(tok, monkeypatch, tmp_path):
    """S1-2/S1-3: the notebook's stages (run_models) open policy, tcc, scc, base in turn, each closed before the next
    and each with its own engine settings; opening the base model while the policy is alive (the old notebook) is
    what the engine ledger refuses."""
    from reasonbook import runs, s1
    from reasonbook.store import RunStore
    loaded = []
    monkeypatch.setattr(runs, "load_backend", _fake_loader(tok, loaded))
    cfg = _four_models_cfg(engines={"policy": {"tensor_parallel_size": 2, "enforce_eager": False},
                                    "base": {"gpu_memory_utilization": 0.8}, "tcc": {"max_model_len": 4096}})
    runs.ENGINES.reset()
    try:
        out = s1.run_models(cfg, RunStore(tmp_path / "store"))
        rep = runs.ENGINES.report()
        assert [(e["role"], e["alive_with"], e["closed"]) for e in rep["engines"]] == \
               [("policy", [], True), ("tcc", [], True), ("scc", [], True), ("base", [], True)]
        assert rep["max_live"] == 1
        assert [kw for _, kw in loaded] == [{"tensor_parallel_size": 2, "enforce_eager": False}, {"max_model_len": 4096},
                                            {}, {"gpu_memory_utilization": 0.8}]
        assert all(e["engine_calls"] == e["rounds"] for e in rep["engines"])
        assert {"TCC 8", "TCC+BF 16", "SCC 1", "SCC+BF 1", "CCC long", "bf 16 x1"} <= set(out["bf"])
        runs.ENGINES.reset()
        with pytest.raises(runs.EngineLifecycleError, match="'base'"):
            with cfg.open_backend("policy", cfg.model):
                with cfg.open_backend("base", cfg.base_model):
                    pass
    finally:
        runs.ENGINES.reset()


def test_base_model_gets_the_plain_chat_format(tok):
    "S1-6: Fig. 4b's base model is sampled in its plain chat format, not the s1 think format of the policy."
    from reasonbook import s1
    cfg = _four_models_cfg(delimiters="s1")
    sb = ScriptedThinker(tok, think_len=4)
    problems = s1.load_problems(sb, cfg)
    calls = _spy(sb)
    s1.run_parallel_scaling(sb, cfg, problems)
    (_, sp), = calls
    assert sp.stop_token_ids == tuple(s1.thinking_stop_ids(s1.get_delimiters("plain"), tok))
    assert "<|im_start|>" not in [tok.convert_ids_to_tokens(i) for i in sp.stop_token_ids]


def test_answer_section_is_graded(tok):
    """S1-8: under delimiters with an answer section only the tail and the answer are graded: a \\boxed{} in the
    thinking no longer wins over the answer; plain delimiters still grade the whole output."""
    from reasonbook.s1 import accuracy
    sb = ScriptedThinker(tok, think_len=3, answer=" 41")
    [r] = budget_force(sb, ["Q"], max_thinking_tokens=50, delimiters="s1")
    boxed = r.__class__(**{**r.__dict__, "thinking": "so it is \\boxed{42}."})
    assert boxed.answer_only and accuracy([boxed], ["42"]) == 0.0 and accuracy([boxed], ["41"]) == 100.0
    [p] = budget_force(ScriptedThinker(tok, think_len=3), ["Q"], max_thinking_tokens=2, delimiters="plain")
    plain = p.__class__(**{**p.__dict__, "thinking": "so it is \\boxed{42}.", "answer": ""})
    assert not plain.answer_only and accuracy([plain], ["42"]) == 100.0


def test_rejection_sampling_answers_at_the_sampling_temperature(tok):
    "S1-9: the RS answer pass runs at temperature 1, as the harness; acceptance is reported per cap."
    from reasonbook import s1
    cfg = _four_models_cfg(rs_rounds=3, delimiters="s1")
    sb = ScriptedThinker(tok, think_len=10, answer=" 3")
    problems = s1.load_problems(sb, cfg)
    rs = s1.run_rejection_sampling(sb, cfg, problems)
    assert (sb.calls[-1][1].temperature, sb.calls[-1][1].max_tokens) == (1.0, cfg.answer_max_tokens)
    assert len(sb.calls) == 3 + 1          # cap 8 never fits 10 tokens: resampled for all rs_rounds, then the answers
    assert [s1.summarize_run(rs[c], ["3"] * len(rs[c]))["accepted"] for c in cfg.rs_caps] == [0.0, 1.0]


class _MarkerThinker(ScriptedThinker):
    "Thinks `think_len` tokens, then writes the SCC '0 steps left' marker (a stop string) when asked to stop there."
    def _one(self, ids, sp):
        if self.tokenizer.decode(ids).endswith(self.answer_triggers) or not sp.stop:
            return super()._one(ids, sp)
        from reasonbook.backends import Completion
        body = [self.word_id] * self.think_len
        marker = self.encode(sp.stop[0])
        return Completion(self.decode(body), body + marker, "stop", sp.stop[0])


def test_scc_bf_stops_at_the_step_marker(tok):
    """S1-7: with scc_step_marker set, SCC+BF thinks from `<|im_start|>` until the model writes the marker (a natural
    end: the answer delimiter follows, no 'Final Answer:'), not until a token cap of steps x tokens per step."""
    from reasonbook import s1
    cfg = _four_models_cfg(scc_step_marker="<|im_start|>0", baseline_max_tokens=64)
    sb = _MarkerThinker(tok, think_len=20, answer=" 3")
    problems = s1.load_problems(sb, cfg)
    bf = s1.run_budget_forcing(sb, cfg, problems, ["SCC"])
    assert set(bf) == {f"SCC {s}" for s in cfg.scc_steps} | {f"SCC+BF {s}" for s in cfg.scc_steps}
    for r in bf[f"SCC+BF {cfg.scc_steps[0]}"]:
        assert (r.thinking_tokens, r.capped, r.tail, r.answer) == (20, False, "<|im_start|>answer\n", " 3")
        assert r.prompt.endswith("<|im_start|>assistant\n")
    marker_calls = [sp for _, sp in sb.calls if sp.stop]
    assert marker_calls and marker_calls[0].stop == ("<|im_start|>0", "<|im_start|>answer")
    with pytest.raises(ValueError, match="stop strings"):
        budget_force(sb, ["Q"], max_thinking_tokens=50, num_ignore=1, delimiters=s1.scc_step_delimiters("<|im_start|>0"))


def test_out_of_vocabulary_ids_go_back_as_ids(tok):
    """S1-10: continuations are sent back as token ids (never re-encoded text), so VLLMBackend's in_vocab filter sees
    every sampled id, and drops the ones past the tokenizer's vocabulary."""
    from reasonbook.serving import in_vocab
    oov = len(tok) + 5
    sb = ScriptedThinker(tok, think_len=4, extend_len=2)
    sb.word_id = oov                                     # the model "samples" an id of a padded embedding row
    calls = []
    orig = sb.generate_samples
    sb.generate_samples = lambda req, sp, desc=None: (calls.append([p for p, _ in req]), orig(req, sp, desc))[1]
    budget_force(sb, ["Q"], max_thinking_tokens=20, num_ignore=1, delimiters="s1")
    sent = calls[1][0]                                   # the continuation after "Wait"
    assert isinstance(sent, list) and oov in sent
    assert oov not in in_vocab(sent, len(tok)) and len(in_vocab(sent, len(tok))) == len(sent) - 4


@pytest.mark.parametrize("profile", ["full", "full_s1.1", "rehearsal"])
def test_paper_scale_profiles(profile):
    "The paper-scale profiles: a model per role, engine settings per role, the clip reaching the context."
    from reasonbook import s1
    cfg = S1Config.from_params(yaml.safe_load((ROOT / "configs" / "s1" / f"{profile}.yaml").read_text()))
    assert set(cfg.engines) == {"policy", "tcc", "scc", "base"} and cfg.co_resident == []
    assert cfg.top_cap == "auto" and cfg.scc_step_marker == "<|im_start|>0"
    assert len({cfg.role_model(r) for r in ("policy", "tcc", "scc")}) == 3       # three engines, as the paper
    assert set(s1.role_methods(cfg)) == {"policy", "tcc", "scc"}
    if profile != "rehearsal":
        assert cfg.tcc_budgets == [2048, 4096, 8192, 16384] and cfg.scc_steps == [16, 32, 64, 128, 256]
        assert cfg.engines["policy"]["tensor_parallel_size"] == 2
    if profile == "full":
        assert cfg.model == "vllm:simplescaling/s1-32B"
        assert cfg.engines["policy"]["tokenizer"] == "Qwen/Qwen2.5-32B-Instruct"
    if profile == "rehearsal":
        assert all(e["enforce_eager"] and e["max_model_len"] <= 512 for e in cfg.engines.values())
        assert cfg.engines["policy"]["max_model_len"] in cfg.caps


def test_auto_cap_through_the_tables(tok):
    "A cap 'auto' (full.yaml's) flows through Fig. 1, Fig. 4a, Table 3 (its Control window: the clipped caps), Table 4."
    from reasonbook import s1
    tiny = yaml.safe_load((ROOT / "configs" / "s1" / "tiny.yaml").read_text())
    cfg = S1Config.from_params(dict(tiny, caps=[8, "auto"], main_benchmark="arithmetic-1", delimiters="s1"))
    sb = ScriptedThinker(tok, think_len=10, extend_len=3, answer=" 3")
    sb.max_model_len = 160
    problems = s1.load_problems(sb, cfg)
    bf = s1.run_budget_forcing(sb, cfg, problems)
    auto = bf[s1.bf_name("auto", 0)]
    assert all(8 < r.max_thinking_tokens < 160 - len(tok.encode(r.prompt)) for r in auto)   # clipped to the room
    rs = s1.run_rejection_sampling(sb, cfg, problems)
    runs = s1.table3_runs(bf, rs, cfg, problems)
    assert runs["BF"][1][1][1] == max(auto[i].max_thinking_tokens for i in problems.main)
    t3 = s1.table3(runs)
    assert next(r for r in t3 if r["method"] == "BF")["control"] == 100.0
    assert list(s1.fig1_points(bf, cfg, problems).setting[:2]) == ["cap 8", "cap auto"]
    assert [r["appended"] for r in s1.table4(bf, cfg, problems)] == ["no extrapolation", "nothing", "Wait"]


# --- the paper's central effect on a trained model --------------------------------------------------------------

def test_effect_budget_forcing_scaling():
    """s1's sequential scaling on reasonbook's largest reasoner (level-4 chains, fixed seed, greedy): accuracy rises with
    the thinking cap, i.e. the Scaling of caps 8..64 (the statistic bootstrapped over problems) is positive with its
    whole 95% interval. The smoke run (nbs/10_s1_budget_forcing.ipynb, 200 problems) shows the same direction."""
    from reasonbook.backends import load_backend
    from reasonbook.reasoners import chain_dataset
    from reasonbook.s1 import s1_prompt, scaling_ci, summarize_run
    be = load_backend("reasoner-l", batch_size=64, progress=False)
    problems = chain_dataset(40, level=4, seed=1)
    golds = [p.answer for p in problems]
    caps = [8, 16, 32, 64]
    runs = budget_sweep(be, [s1_prompt(be, p.question) for p in problems], [(c, 0) for c in caps], delimiters="s1",
                        answer_max_tokens=16)
    points = [summarize_run(r, golds) for r in runs]
    assert [p["capped"] for p in points][0] == 1.0 and points[-1]["capped"] < 0.5   # caps below and above the natural length
    est = scaling_ci(points)
    assert est.lo > 0, f"Scaling {est} points per doubling: the paper's direction (+) did not appear"


# --- one decode loop (issue 16) -------------------------------------------------------------------------------------

def _both_paths(backend, prompts, **kw):
    return (budget_force(backend, prompts, in_loop=True, **kw), budget_force(backend, prompts, in_loop=False, **kw))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_one_loop_gives_the_round_records_tiny(tiny, newline_delims, temperature):
    "On HFBackend budget forcing runs as one decode loop; its records equal the round-based path's (natural ends,"
    "extensions, caps, forced tails and answers after an answer delimiter)."
    answer_delims = Delimiters("newline-answer", "", ("\n",), "Answer:")
    ps = prompts_for(tiny, 4)
    seen = set()
    for delims, k in [("plain", 0), (newline_delims, 0), (newline_delims, 2), (answer_delims, 1), (answer_delims, 3)]:
        a, b = _both_paths(tiny, ps, max_thinking_tokens=[5, 12, 30, 7], num_ignore=k, delimiters=delims,
                           answer_max_tokens=4, sampling=Sampling(temperature=temperature, seed=3))
        assert a == b, (delims, k)
        seen |= {(r.capped, r.num_extensions > 0, bool(r.answer)) for r in a}
    if temperature == 0:      # greedy: the tiny model's "\n" gives natural ends, extensions and answers
        assert {(False, False, False), (True, True, True), (True, False, True)} <= seen, seen


def test_one_loop_only_where_the_backend_chains(tok):
    "A backend without generate_chained (scripted, vLLM, a run store) takes the round-based path; forcing the loop fails."
    from reasonbook.s1 import in_one_loop, get_delimiters
    sb = ScriptedThinker(tok, think_len=10)
    assert not in_one_loop(sb, get_delimiters("s1"))
    with pytest.raises(ValueError, match="generate_chained"):
        budget_force(sb, ["Q"], max_thinking_tokens=20, delimiters="s1", in_loop=True)


@pytest.mark.slow
def test_one_loop_gives_the_round_records_embedded():
    "On SmolLM2 (the bench's setting, fewer tokens): the same records from both paths, extensions and caps included."
    from reasonbook.backends import load_backend
    from reasonbook.data import arithmetic_dataset
    be = load_backend("embedded", progress=False)
    ps = [be.chat(p.question) for p in arithmetic_dataset(4, level=2, seed=1)]
    for k in (0, 4):
        a, b = _both_paths(be, ps, max_thinking_tokens=64, num_ignore=k, delimiters="plain", answer_max_tokens=8)
        assert a == b, k
        assert any(r.capped for r in a)
