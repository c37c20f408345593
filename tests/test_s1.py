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
                            answer_max_tokens=2)
    finally:
        del tiny.generate_samples
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

@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_config_profiles_validate(profile):
    "Every profile's values (over the notebook defaults) pass S1Config's type and value checks."
    cfg = S1Config.from_params(yaml.safe_load((ROOT / "configs" / "s1" / f"{profile}.yaml").read_text()))
    assert max(cfg.fig4a_caps) <= max(cfg.caps)


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
