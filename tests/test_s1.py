"""Mechanics of s1 budget forcing (reasonbook.s1) on the tiny random-weight model (conftest's `tiny` HFBackend) and
on a scripted thinker (`ScriptedThinker`: a fixed number of thinking tokens per call, then the delimiter)."""
import itertools
import math

import pytest

from reasonbook.s1 import (Delimiters, ScriptedThinker, budget_force, budget_sweep, control, get_delimiters,
                           parallel_scaling, performance, rejection_sample, scaling, thinking_stop_ids)

AIME24_FIG1 = [(500, 0.0), (1000, 13.3), (2000, 30.0), (3933, 43.3), (5300, 50.0), (6657, 53.3), (7319, 56.7)]


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
                        temperature=1.0, seed=3, answer_max_tokens=4)
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
                            answer_max_tokens=2)
    finally:
        del tiny.generate_samples
    for r in recs:
        assert r.thinking.startswith("Wait") and "\n" not in r.thinking
        assert r.num_extensions == 1 and r.thinking.count("Wait") == 1
        assert r.capped and r.final_answer_appended and r.rounds == 2
    assert [c.min_tokens for c in calls] == [0, 1, 0]          # thinking, one continuation, the forced answer
    assert [c.stop_token_ids for c in calls[:2]] == [(198, 33359)] * 2


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
    rs = rejection_sample(ScriptedThinker(tok, think_len=8), ["Q1", "Q2"], caps=[8, 9, 20], num_samples=2,
                          max_rounds=2, delimiters="s1")
    assert all(not r.accepted for r in rs[8])            # 8 tokens + the delimiter do not fit a cap of 8
    assert all(r.accepted and r.thinking_tokens == 8 and not r.capped for r in rs[9] + rs[20])


# --- metrics -----------------------------------------------------------------------------------------------------

def test_scaling_of_paper_fig1_aime24_points_is_15():
    t, a = zip(*AIME24_FIG1)
    s = scaling(t, a)
    assert round(s, 2) == 14.85
    assert round(s) == 15
    # on raw tokens (not log2) the published number is not recovered
    raw = [(fb - fa) / (b - a) for (a, fa), (b, fb) in itertools.combinations(AIME24_FIG1, 2)]
    assert abs(sum(raw) / len(raw) - 15) > 10


def test_scaling_is_order_free_and_handles_flat_runs():
    assert scaling([4, 1, 2], [30, 10, 20]) == pytest.approx(scaling([1, 2, 4], [10, 20, 30]))
    assert scaling([1, 2, 4], [10, 20, 30]) == pytest.approx(10.0)   # +10 points per doubling
    assert math.isnan(scaling([8, 8], [1, 2]))             # no pair with more tokens: undefined
    with pytest.raises(ValueError):
        scaling([0, 2], [1, 2])


def test_control_and_performance():
    assert control([100, 300, 50], 0, 200) == pytest.approx(2 / 3)
    assert control([100, 300], [0, 250], [200, 400]) == 1.0
    assert performance([3.0, 56.7, 40.0]) == 56.7
    with pytest.raises(ValueError):
        control([], 0, 1)


def test_parallel_scaling_maj_and_cov():
    pts = parallel_scaling([["1", "5", "5", "5"], ["2", "2", "3", "4"]], [[10] * 4, [30] * 4], ["5", "4"], ks=[1, 4])
    assert [p["k"] for p in pts] == [1, 4]
    assert [p["avg_thinking_tokens"] for p in pts] == [20.0, 80.0]
    assert pts[0]["maj"] == 0.0 and pts[1]["maj"] == 50.0
    assert pts[1]["cov"] == 100.0


def test_delimiter_presets_with_smollm2_tokenizer(tok):
    assert len(thinking_stop_ids(get_delimiters("s1"), tok)) == 2
    with pytest.raises(ValueError, match="not exactly one token|is 3 tokens"):
        thinking_stop_ids(get_delimiters("think"), tok)


# --- continuations reuse the prefix --------------------------------------------------------------------------------

def test_extension_rounds_reuse_the_prefix(tiny):
    "With HFBackend's prefix KV reuse, an extension round computes only the new tokens, not the whole prefix again."
    from reasonbook.s1 import extension_overhead
    ps, k, w = prompts_for(tiny, 3), 2, len(tiny.encode("Wait"))
    ov = extension_overhead(tiny, ps, num_ignore=k, round_tokens=6)
    saved, tiny.prefix_cache.max_tokens = tiny.prefix_cache.max_tokens, 0
    try:
        cold = extension_overhead(tiny, ps, num_ignore=k, round_tokens=6)
    finally:
        tiny.prefix_cache.max_tokens = saved
    prompt_tokens = sum(len(tiny.encode(p)) for p in ps)
    # reuse: per prompt, at most the last generated token + the extension per round (+1 recomputed prompt token)
    assert ov["extended_prefill_tokens"] <= len(ps) * (1 + k * (2 + w))
    # no reuse: every round re-reads the prompt and everything generated so far
    assert cold["extended_prefill_tokens"] >= (k + 1) * prompt_tokens
    assert ov["total_tokens"] == (k + 1) * 6 + k * w


# --- SFT entry point -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_s1_sft_cli_one_step_on_tiny(tiny_path, tmp_path):
    "`python -m reasonbook.s1 sft` (what `accelerate launch -m` runs) trains one step and saves a loadable folder."
    import json, subprocess, sys
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"What is {i} + 1?", "trace": f"{i} + 1 = {i + 1}.",
                                          "attempt": str(i + 1)}) for i in range(4)) + "\n")
    out = subprocess.run([sys.executable, "-m", "reasonbook.s1", "sft", "--model", str(tiny_path), "--data", str(data),
                          "--output", str(tmp_path / "sft"), "--max-steps", "1", "--batch-size", "2",
                          "--block-size", "256"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["steps"] == 1 and (tmp_path / "sft" / "config.json").exists()
