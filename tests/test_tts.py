"""Compute-optimal TTS methods: beam search / DVTS mechanics (checked on what the backend actually received),
selection rules, difficulty bins, the compute-optimal rule, FLOPs."""
from collections import Counter

import pytest

import ast
import json
from dataclasses import replace

from conftest import ROOT
from reasonbook.backends import Sampling
from reasonbook.cli import run_parameters
from reasonbook.data import Problem, split_steps
from reasonbook.plots import write_metrics
from reasonbook.prm import OraclePRM, aggregate
from reasonbook.runs import ConfigError
from reasonbook.testing import ToyBackend
from reasonbook.tts import (TTSConfig, accuracy_means, accuracy_table, beam_search, compute_optimal_method,
                            cost_table, difficulty_bins, dvts, inference_flops, paper_vs_ours_rows, plot_fig4,
                            plot_fig8, pretraining_flops, prm_label, reward_aware_choice, run_prm, run_samples,
                            search_at_budgets, table2_voting, table4_flops, table5_compute_optimal)

def sp(seed=0):
    "The policy sampling of these tests (the toy policy reads only the seed and the stop strings)."
    return Sampling(temperature=0.8, max_tokens=10_000, seed=seed)


PROBS = [Problem("a", "Add 3, 4, 5, 6, 7 and 8.", "33"), Problem("b", "Add 11, 12, 13, 14, 15 and 16.", "81"),
         Problem("c", "Add 2, 9, 4, 1, 5 and 6.", "27")]


def _by_problem(call):
    """Group one backend call's requests by problem: {question prefix: [(generated prefix, sample index)]}."""
    out = {}
    for prompt, j in call:
        q, _, sol = prompt.partition("\nAnswer: ")
        out.setdefault(q, []).append((sol, j))
    return out


@pytest.mark.parametrize("n,m", [(8, 2), (16, 4), (4, 4)])
def test_beam_search_keeps_n_over_m_and_expands_each_into_m(n, m):
    toy = ToyBackend(p_correct=0.6, noise=True)       # noise: no duplicate texts, so exactly N/M survive
    prm = OraclePRM()
    res = beam_search(toy, prm, PROBS, n=n, m=m, sampling=sp(3), max_iterations=4, agg="min")
    assert len(toy.calls) == 4                         # one call per iteration, all problems together
    first = _by_problem(toy.calls[0])
    assert len(first) == len(PROBS)
    for reqs in first.values():                        # iteration 0: N samples of the bare prompt
        assert [j for _, j in reqs] == list(range(n)) and all(sol == "" for sol, _ in reqs)
    for t in range(1, 4):
        prev, cur = _by_problem(toy.calls[t - 1]), _by_problem(toy.calls[t])
        assert set(cur) == set(prev)
        for q, reqs in cur.items():
            prefixes = Counter(sol for sol, _ in reqs)
            assert len(prefixes) == n // m, (t, q, len(prefixes))     # exactly N/M survivors ...
            assert set(prefixes.values()) == {m}                      # ... each expanded into M children
            assert sorted(j for _, j in reqs) == sorted(list(range(m)) * (n // m))
            # the survivors are children of the previous iteration, and the best-scoring ones
            prev_prefixes = {sol for sol, _ in prev[q]}
            assert all(any(p.startswith(pp) and len(p) > len(pp) for pp in prev_prefixes) for p in prefixes)
    for r in res:
        assert [t["kept"] for t in r.trace[:3]] == [n // m] * 3
        assert [t["generated"] for t in r.trace] == [n] * 4
        assert 0 < len(r.candidates) <= n


def test_beam_search_survivors_are_top_scoring():
    """Re-score every child the search saw: no dropped child outscores a kept one (agg=min, oracle PRM)."""
    toy = ToyBackend(p_correct=0.5, noise=True)
    prm = OraclePRM()
    beam_search(toy, prm, PROBS[:1], n=8, m=2, sampling=sp(5), max_iterations=3, agg="min")
    q = PROBS[0].question
    for t in range(1, 3):
        kept = {sol for sol, _ in _by_problem(toy.calls[t])[next(iter(_by_problem(toy.calls[t])))]}
        # children of call t-1: regenerate them with the same seeds through the toy backend
        step = replace(sp(5), stop=("\n\n",), include_stop_str_in_output=True)
        outs = ToyBackend(p_correct=0.5, noise=True).generate_samples(toy.calls[t - 1], step)
        children = [p.partition("\nAnswer: ")[2] + c.text for (p, _), c in zip(toy.calls[t - 1], outs)]
        score = {c: aggregate(s, "min") for c, s in zip(children, prm.score([(q, split_steps(c)) for c in children]))}
        assert kept <= set(children)
        assert min(score[k] for k in kept) >= max(score[c] for c in children if c not in kept)


def test_beam_search_filters_duplicates():
    toy = ToyBackend(p_correct=1.0, noise=False)      # every sample identical
    beam_search(toy, OraclePRM(), PROBS[:2], n=8, m=2, sampling=sp(0), max_iterations=3)
    for t in (1, 2):
        for reqs in _by_problem(toy.calls[t]).values():
            assert len({sol for sol, _ in reqs}) == 1 and len(reqs) == 2    # 1 unique survivor x M children


def test_beam_search_stops_finished_beams_and_returns_them():
    toy = ToyBackend(p_correct=1.0, noise=True)
    res = beam_search(toy, OraclePRM(), [Problem("s", "Add 1 and 2.", "3")], n=4, m=2, sampling=sp(0),
                      max_iterations=40)
    r = res[0]
    assert r.iterations == 2 and len(toy.calls) == 2           # step, then the boxed answer + EOS
    assert all(c.finish_reason == "stop" and c.answer == "3" for c in r.candidates)
    assert len(r.candidates) == 4


def test_beam_search_batched_equals_one_problem_at_a_time():
    kw = dict(n=8, m=2, sampling=sp(7), max_iterations=5)
    batched_backend = ToyBackend(p_correct=0.6, noise=True)
    batched = beam_search(batched_backend, OraclePRM(), PROBS, **kw)
    single_backend = ToyBackend(p_correct=0.6, noise=True)
    single = [beam_search(single_backend, OraclePRM(), [p], **kw)[0] for p in PROBS]
    assert [[c.text for c in r.candidates] for r in batched] == [[c.text for c in r.candidates] for r in single]
    assert len(batched_backend.calls) < len(single_backend.calls)


def test_beam_search_rejects_bad_budget():
    with pytest.raises(ValueError, match="divisible"):
        beam_search(ToyBackend(), OraclePRM(), PROBS, n=6, m=4)


@pytest.mark.parametrize("n,m", [(8, 2), (16, 4), (4, 1)])
def test_dvts_returns_n_candidates_from_n_over_m_independent_subtrees(n, m):
    toy = ToyBackend(p_correct=0.6, noise=False)      # no noise: subtrees often share prefixes -> must stay apart
    res = dvts(toy, OraclePRM(), PROBS, n=n, m=m, sampling=sp(2), max_iterations=4)
    for r in res:
        assert len(r.candidates) == n
        assert Counter(c.subtree for c in r.candidates) == {t: m for t in range(n // m)}
    # every call: per problem, each active subtree asks for M children with its own sample indices
    for call in toy.calls:
        for reqs in _by_problem(call).values():
            subtrees = Counter(j // m for _, j in reqs)
            assert set(subtrees.values()) == {m}
            assert len({j for _, j in reqs}) == len(reqs)          # no two requests share a sample index
    # independence: a subtree's prefix only ever extends its own previous prefix
    hist = {}
    for call in toy.calls:
        for q, reqs in _by_problem(call).items():
            for sol, j in reqs:
                key = (q, j // m)
                if key in hist:
                    assert sol.startswith(hist[key])
                hist[key] = sol
    # the M candidates of a subtree are siblings: children of the subtree's last requested prefix
    for r in res:
        q = next(k for k in {k for k, _ in hist} if r.problem.question in k)
        for t in range(n // m):
            sib = [c for c in r.candidates if c.subtree == t]
            assert all(c.text.startswith(hist[(q, t)]) and len(c.text) > len(hist[(q, t)]) for c in sib)


def test_dvts_one_call_per_iteration_across_problems():
    toy = ToyBackend(p_correct=0.6, noise=True)
    res = dvts(toy, OraclePRM(), PROBS, n=8, m=2, sampling=sp(0), max_iterations=3)
    assert len(toy.calls) == 3 and all(len(_by_problem(c)) == len(PROBS) for c in toy.calls)
    assert all(len(c) == len(PROBS) * 8 for c in toy.calls)


def test_difficulty_bins():
    assert difficulty_bins([1.0, 0.5, 0.3, 0.1, 0.05, 0.0]) == ["easy", "easy", "medium", "medium", "hard", "hard"]
    q = difficulty_bins([0.95, 0.8, 0.6, 0.4, 0.2, 0.9, 0.7, 0.5, 0.3, 0.1], "quintile")
    assert Counter(q) == {f"level{i}": 2 for i in range(1, 6)}
    assert q[0] == "level1" and q[9] == "level5"
    with pytest.raises(ValueError):
        difficulty_bins([1.2])


def test_compute_optimal_rule_and_reward_aware_choice():
    assert compute_optimal_method(1e9) == "beam_search" and compute_optimal_method(6.9e9) == "beam_search"
    assert compute_optimal_method(7e9, difficulty="medium") == "dvts"
    assert compute_optimal_method(32e9, difficulty="hard") == "beam_search"
    assert compute_optimal_method(72e9, difficulty="easy") == "best_of_n"
    assert compute_optimal_method(8e9, "aime24") == "dvts" and compute_optimal_method(32e9, "aime24") == "best_of_n"
    assert compute_optimal_method(1.5e9, r1_distilled=True) == "best_of_n"
    pp = {"bon": [1, 1, 0, 0, 1, 1], "beam": [0, 1, 1, 1, 0, 1]}
    bins = ["easy", "easy", "hard", "hard", "easy", "hard"]
    choice, acc, used = reward_aware_choice(pp, bins)
    assert choice == {"easy": "bon", "hard": "beam"} and acc == [1, 1, 1, 1, 1, 1]



def test_reward_aware_choice_cross_fits():
    """With folds, a problem's method is chosen on the other folds only: the choice can differ from the full one, the
    accuracy is read from the method actually used, and a bin absent from the other folds falls back to the full
    choice."""
    pp = {"x": [1, 0, 0, 1], "y": [0, 1, 1, 0]}
    bins = ["easy", "easy", "easy", "hard"]
    full, acc, used = reward_aware_choice(pp, bins, folds=4)        # leave-one-out: independent of the seed
    assert full == {"easy": "y", "hard": "x"}
    # easy problems: without problem 0 y leads 2-0; without 1 or 2 it is 1-1, and ties go to the first method, x
    assert used == ["y", "x", "x", "x"]                             # problem 3 is the only "hard": full choice
    assert acc == [pp[m][i] for i, m in enumerate(used)] == [0, 0, 0, 1]
    # two folds: recompute the choice by hand from the same seeded permutation
    import random
    perm = list(range(4)); random.Random(5).shuffle(perm)
    fold = {i: k % 2 for k, i in enumerate(perm)}
    _, acc2, used2 = reward_aware_choice(pp, bins, folds=2, seed=5)
    for i in range(4):
        train = [j for j in range(4) if fold[j] != fold[i] and bins[j] == bins[i]]
        want = max(pp, key=lambda m: (sum(pp[m][j] for j in train), -list(pp).index(m))) if train else full[bins[i]]
        assert used2[i] == want and acc2[i] == pp[want][i]


def test_flops_table4():
    assert pretraining_flops(3e9, 9e12) == pytest.approx(1.62e23)          # Llama-3.2-3B
    assert pretraining_flops(405e9, 15e12) == pytest.approx(3.645e25)      # Llama-3.1-405B
    assert inference_flops(405e9, 1000)["policy"] == pytest.approx(8.1e14)   # 2 x 405e9 x 1000, by hand
    f = inference_flops(3e9, 1e6, prm_params=7e9, prm_tokens=2e6)
    assert f["policy"] == pytest.approx(6e15) and f["prm"] == pytest.approx(2.8e16)
    assert f["total"] == pytest.approx(3.4e16)


def _parameters_cell():
    # that TTSConfig's defaults are this cell: tests/test_structure.py::test_typed_config_is_the_parameters_cell
    from conftest import parameters_cell
    return parameters_cell("20_tts_compute_optimal.ipynb")


@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_profiles_validate(profile, tmp_path):
    params = {**_parameters_cell(), **run_parameters(ROOT, "tts", profile, {}, tmp_path)}
    cfg = TTSConfig.from_params(params)
    assert cfg.profile == profile


def test_wrong_values_fail_before_any_model_loads():
    with pytest.raises(ConfigError, match="'search_budgets'.*multiples of beam_width=4"):
        TTSConfig.from_params({"beam_width": 4, "search_budgets": [4, 6]})
    with pytest.raises(ConfigError, match="'max_tokens' expects int"):
        TTSConfig.from_params({"max_tokens": 6.5})
    with pytest.raises(ConfigError, match="'difficulty_scheme'"):
        TTSConfig(difficulty_scheme="deciles")
    with pytest.raises(ValueError, match="aggregation"):
        TTSConfig(search_agg="median")


def test_search_at_budgets_equals_one_run_per_budget():
    for search in (beam_search, dvts):
        kw = dict(sampling=sp(4), max_iterations=4)
        by_n = search_at_budgets(search, ToyBackend(p_correct=0.6, noise=True), OraclePRM(), PROBS, [2, 4, 8], 2, **kw)
        for N, rr in by_n.items():
            alone = search(ToyBackend(p_correct=0.6, noise=True), OraclePRM(), PROBS, N, 2, **kw)
            assert [r.problem for r in rr] == PROBS and all(r.n == N for r in rr)
            assert [[c.text for c in r.candidates] for r in rr] == [[c.text for c in r.candidates] for r in alone]
    with pytest.raises(ValueError, match="distinct"):
        search_at_budgets(beam_search, ToyBackend(), OraclePRM(), PROBS, [2, 2], 2)


def test_pipeline_end_to_end_on_the_toy_policy(tmp_path):
    """Every run_*/plot_*/table function of the reproduction, on the toy policy with two PRMs of which one guides
    search: the shapes, the cross-references between tables, and a metrics dict that writes as strict JSON."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cfg = TTSConfig(prms=["oracle-arith", "oracle-arith+gold"], search_prms=["oracle-arith"], budgets=[1, 2, 4],
                    search_budgets=[2, 4], beam_width=2, max_iterations=6, max_tokens=200, subset_trials=4, prompt_style="short")
    toy = ToyBackend(p_correct=0.6)
    samples = run_samples(toy, cfg, PROBS)
    runs = {"oracle-arith": run_prm(toy, OraclePRM(), cfg, samples, search=True),
            "oracle-arith+gold": run_prm(toy, OraclePRM(golds={p.question: p.answer for p in PROBS}), cfg, samples,
                                         search=False)}
    labels = {s: prm_label(s, r.name) for s, r in runs.items()}
    table = accuracy_table(samples, runs, cfg)
    means = accuracy_means(table)
    assert list(means["oracle-arith"]) == ["Pass@k", "Majority", "BoN", "Weighted BoN", "Beam search", "DVTS"]
    assert list(means["oracle-arith+gold"]) == ["Pass@k", "Majority", "BoN", "Weighted BoN"]
    assert len(table) == len(PROBS) * (2 * 4 * 3 + 2 * 2)
    # the outcome oracle knows the gold answer: its Best-of-N is at the Pass@k ceiling on all the samples
    assert means["oracle-arith+gold"]["BoN"]["4"] == means["oracle-arith+gold"]["Pass@k"]["4"]
    figs = [plot_fig4(table, cfg, labels, "toy"), plot_fig8(table, cfg, labels, "toy")]
    assert "not run" in figs[0].axes[1].get_title()
    plt.close("all")
    t2 = table2_voting(runs)
    t5 = table5_compute_optimal(table, samples, cfg, labels, "toy", 1e6)
    t4 = table4_flops(cost_table(samples, runs, cfg), table, samples, runs, cfg, labels, "toy", 1e6)
    assert len(t2) == 2 * 7 and len(t5) == 2
    assert list(t5["paper rule (Beam search)@4"]) == [round(means["oracle-arith"]["Beam search"]["4"], 1), "not run"]
    assert [r["accuracy %"] for r in t4.to_dict("records")][:3] == [
        round(means["oracle-arith"][m]["4"], 1) for m in ("Beam search", "DVTS", "BoN")]
    rows = paper_vs_ours_rows(table, t2, samples, cfg, labels)
    assert rows[0]["ours"] == round(means["oracle-arith"]["Beam search"]["4"] - 100 * sum(samples.cot_acc) / 3, 1)
    metrics = {"accuracy": means, "table2": {p: dict(zip(t.selection, t.accuracy)) for p, t in t2.groupby("prm")},
               "table5": t5.to_dict("records"), "flops": t4.to_dict("records")}
    back = json.loads(write_metrics(tmp_path, metrics).read_text())
    assert back["flops"][-1]["accuracy %"] is None and back["table5"][1]["paper rule (Beam search)@4"] == "not run"


# --- issue 13 (paper scale): the fails-at-scale and wrong-result findings of the fidelity review (T-1 ... T-13)

def test_prm_beside_a_vllm_policy_needs_a_memory_fraction_and_is_freed_after_use():
    """T-1: a PRM loaded beside a vLLM policy that keeps vLLM's default 0.9 of the GPU is refused; with the policy's
    gpu_memory_utilization set (the full profile: 0.5) it loads as role 'prm', and each PRM is freed before the next."""
    from reasonbook.runs import EngineLedger, EngineLifecycleError
    from reasonbook.tts import open_prm
    cfg = TTSConfig()
    assert cfg.co_resident == [["policy", "prm"]]
    ledger = EngineLedger()
    pol = ledger.opening("policy", "vllm:meta-llama/Llama-3.2-1B-Instruct", {})
    with pytest.raises(EngineLifecycleError, match="gpu_memory_utilization"):
        with open_prm(cfg, "tiny:math-shepherd", ledger=ledger):
            pass
    ledger.closing(pol)
    ledger.opening("policy", "vllm:meta-llama/Llama-3.2-1B-Instruct", {"gpu_memory_utilization": 0.5})
    prms = []
    for spec in ("tiny:qwen-math-prm", "tiny:rlhflow"):
        with open_prm(cfg, spec, ledger=ledger) as prm:
            assert [r.role for r in ledger.live] == ["policy", "prm"] and prm.model is not None
            prms.append(prm)
        assert prm.model is None and [r.role for r in ledger.live] == ["policy"]
    assert ledger.max_live == 2 and [r.spec for r in ledger.records if r.role == "prm"] == ["tiny:qwen-math-prm", "tiny:rlhflow"]
    # without the co-residence declaration a PRM beside the policy is refused outright
    ledger2 = EngineLedger()
    ledger2.opening("policy", "vllm:x", {"gpu_memory_utilization": 0.5})
    with pytest.raises(EngineLifecycleError, match="declare the roles co-resident"):
        with open_prm(replace(cfg, co_resident=[]), "tiny:rlhflow", ledger=ledger2):
            pass


def test_full_profile_sets_the_policy_memory_fraction_and_reference_budgets(tmp_path):
    """T-1, T-5, T-6, T-11: the full profile leaves half the GPU to the PRM, samples with top-p 1.0 (both references),
    gives CoT/BoN samples 8192 tokens and search solutions 40 steps x 2048 tokens."""
    params = {**_parameters_cell(), **run_parameters(ROOT, "tts", "full", {}, tmp_path)}
    cfg = TTSConfig.from_params(params)
    assert cfg.engine_settings("policy")["gpu_memory_utilization"] == 0.5 and cfg.co_resident == [["policy", "prm"]]
    assert cfg.top_p == 1.0 and cfg.sample_tokens == 8192 and cfg.solution_tokens == 40 * 2048
    from reasonbook.tts import policy_sampling, sample_sampling
    assert policy_sampling(cfg).max_tokens == 81920 and sample_sampling(cfg).max_tokens == 8192


@pytest.mark.parametrize("profile", ["rehearsal", "table2"])
def test_other_profiles_validate(profile, tmp_path):
    params = {**_parameters_cell(), **run_parameters(ROOT, "tts", profile, {}, tmp_path)}
    cfg = TTSConfig.from_params(params)
    assert "gpu_memory_utilization" in cfg.engine_settings("policy")     # the ledger requires it beside a PRM


def test_compute_optimal_bucket_uses_nominal_size():
    """T-3: Qwen2.5-32B-Instruct counts 32.8B parameters; by its nominal size (policy_params=32e9, or the size its id
    names) it is a 7-32B policy: DVTS on easy/medium, beam search on hard -- not Best-of-N."""
    from reasonbook.tts import policy_size
    model = "vllm:Qwen/Qwen2.5-32B-Instruct"
    for p in (policy_size(32e9, [model], counted=32.8e9), policy_size(None, [model], counted=32.8e9)):
        assert p == 32e9
        assert compute_optimal_method(p, difficulty="easy") == "dvts"
        assert compute_optimal_method(p, difficulty="hard") == "beam_search"
    # no snapshot (0 counted parameters) and no size in the id: an error, never a size of 0
    with pytest.raises(ValueError, match="policy_params"):
        policy_size(None, ["vllm:org/policy"], counted=0)
    # a profile's policy_params left behind after -p model changed the policy
    with pytest.raises(ValueError, match="names 3.2e\\+10"):
        policy_size(1e9, [model], counted=32.8e9)


def test_prompt_styles_qwen_and_r1():
    """T-4: the paper's code prompts Qwen2.5 policies with its CoT system prompt and R1-distilled ones in the user
    turn, sampled at T=0.6, top-p 0.95, 32768 tokens."""
    from reasonbook.tts import COT_PROMPT, build_prompt, sample_sampling

    class Chat(ToyBackend):
        def chat(self, messages, system=None, add_generation_prompt=True):
            return f"[system]{system}[user]{messages}"
    assert build_prompt(Chat(), "Q?", "qwen") == f"[system]{COT_PROMPT}[user]Q?"
    assert build_prompt(Chat(), "Q?", "r1") == f"[system]None[user]Q?\n\n{COT_PROMPT}"
    sp = sample_sampling(TTSConfig(prompt_style="r1", temperature=0.7, top_p=1.0))
    assert (sp.temperature, sp.top_p, sp.max_tokens) == (0.6, 0.95, 32768)


def test_fit_context_keeps_every_request_inside_max_model_len():
    """The overflow path: with budgets beyond the policy's context, every request beam search and the samples send
    stays below max_model_len (prompt + completion), and beams that reach the lowered budget finish by length."""
    from reasonbook.tts import fit_context, policy_sampling, sample_sampling

    class Ctx(ToyBackend):
        max_model_len = 60
        def generate_samples(self, requests, sampling, desc=None):
            outs = super().generate_samples(requests, sampling, desc)
            for (p, _), o in zip(requests, outs):
                assert len(self.encode(p)) + len(o.token_ids) <= self.max_model_len - 1
            return outs
    toy = Ctx(p_correct=0.6, noise=True)
    cfg = TTSConfig(max_tokens=None, max_iterations=40, max_step_tokens=8, sample_max_tokens=8192, prompt_style="none",
                    budgets=[4], search_budgets=[4], beam_width=2)
    fitted, rec = fit_context(cfg, toy, PROBS, margin=1)
    assert rec["solution_tokens"][0] == 320 and fitted.solution_tokens < 60 and fitted.sample_tokens < 60
    res = beam_search(toy, OraclePRM(), PROBS, 4, 2, sampling=policy_sampling(fitted), max_iterations=40,
                      max_step_tokens=8, prompt_style="none")
    assert all(c.num_tokens <= fitted.solution_tokens + 8 for r in res for c in r.candidates)
    run_samples(toy, fitted, PROBS)
    assert sample_sampling(fitted).max_tokens == fitted.sample_tokens


def test_table2_column_by_prm_and_bon_at_four_times_the_beam_budget():
    """T-13: the paper's Table 2 column is chosen by the PRM's family (none for another PRM), and 'beam N=4 ~ BoN
    N=16' compares beam search at the smallest search budget with Best-of-N at 4x it."""
    from reasonbook.tts import table2_column
    assert table2_column("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B") == 0
    assert table2_column("Qwen/Qwen2.5-Math-PRM-7B") == 1
    assert table2_column("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data") is None
    prm = "Qwen/Qwen2.5-Math-PRM-7B"
    cfg = TTSConfig(prms=[prm], search_prms=[prm], budgets=[1, 2, 4, 8], search_budgets=[2], beam_width=2,
                    max_iterations=6, max_tokens=200, subset_trials=4, prompt_style="short")
    toy = ToyBackend(p_correct=0.6)
    samples = run_samples(toy, cfg, PROBS)
    runs = {prm: run_prm(toy, OraclePRM(), cfg, samples)}
    table, t2 = accuracy_table(samples, runs, cfg), table2_voting(runs)
    rows = paper_vs_ours_rows(table, t2, samples, cfg, {prm: prm})
    means = accuracy_means(table)[prm]
    assert rows[2]["ours"] == f"beam@2 {means['Beam search']['2']:.1f} vs BoN@8 {means['BoN']['8']:.1f}"
    assert rows[3]["paper"] == 87.6 and "Qwen2.5-Math-PRM-7B" in rows[3]["what"]          # PRM-Last-Vote, Qwen column
    rows_r = paper_vs_ours_rows(table.replace(prm, "RLHFlow/x"), t2.replace(prm, "RLHFlow/x"), samples,
                                replace(cfg, prms=["RLHFlow/x"], search_prms=["RLHFlow/x"]), {"RLHFlow/x": "RLHFlow/x"})
    assert rows_r[3]["paper"] == "no Table 2 column for RLHFlow/x"


# --- issue 15: an effect of the smoke run, on reasonbook's reasoners (a direction no random-weight model can give)

def test_effect_weighted_bon_beats_vanilla_bon():
    """On the reasoners (policy reasoner-s, 8 samples at T=0.8 per problem, the trained reasoner-prm), weighted
    Best-of-N (PRM-Last-Vote) beats vanilla Best-of-N (PRM-Last-Max) at N=8, paired over problems: the direction of
    the HF study and of Table 2 (Skywork-PRM-7B: 87.0 vs 84.4) that the smoke run shows clearly. A slice the smoke run
    does not use (seed 1, levels 3-4, 20 problems each). The paper's central comparison -- compute-optimal search
    beating CoT and the large model -- did not appear in the smoke run, so no test asserts it."""
    from reasonbook.prm import load_prm
    from reasonbook.runs import open_backend
    from reasonbook.stats import paired_diff
    from reasonbook.tts import load_problems, per_problem
    cfg = TTSConfig(levels=[3, 4], n_problems=20, seed=1, budgets=[8], search_budgets=[], prms=["reasoner-prm"],
                    search_prms=[])
    problems = load_problems(cfg)
    with open_backend("reasoner-s", role="policy", batch_size=512) as backend:
        samples = run_samples(backend, cfg, problems)
    prm = load_prm("reasoner-prm", max_sequences=256, max_tokens=32768)
    try:
        runs = {"reasoner-prm": run_prm(None, prm, cfg, samples, search=False)}
    finally:
        prm.close()
    table = accuracy_table(samples, runs, cfg)
    d = paired_diff([100 * a for a in per_problem(table, "reasoner-prm", "Weighted BoN", 8)],
                    [100 * a for a in per_problem(table, "reasoner-prm", "BoN", 8)])
    assert d.n == 40 and d.lo > 0, f"weighted BoN - BoN at N=8: {d}"


def _load_bench():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_beam", ROOT / "benchmarks" / "beam_search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_search_bench_compares_arms_and_profiles():
    "benchmarks/beam_search.py's `bench`: one generate call per round batched, one per problem and round one at a time, same candidates, and a profile whose parts add up to the wall time."
    mod = _load_bench()
    out = mod.bench(lambda: ToyBackend(p_correct=0.6, noise=True), OraclePRM, PROBS, n=4, m=2, repeats=2,
                    sampling=sp(1), max_iterations=3)
    assert [r["method"] for r in out["rows"]] == ["beam search N=4 M=2, 3 problems", "DVTS N=4 M=2, 3 problems"]
    for r in out["rows"]:
        assert r["same_outputs"] and r["same_problems"] == "3/3"
        assert len(r["all_seconds"]["batched"]) == len(r["all_seconds"]["sequential"]) == 2
        b, s = r["profile"]["batched"], r["profile"]["sequential"]
        assert b["generate_calls"] <= 3 and s["generate_calls"] >= len(PROBS) and b["rows"] == s["rows"] > 0
        assert b["prm_calls"] == b["generate_calls"] and b["prm_sequences"] == b["rows"]
        for p in (b, s):
            assert abs(p["generate_s"] + p["prm_s"] + p["search_python_s"] - p["wall_s"]) < 0.05
    toy = ToyBackend()                                   # the wrappers are removed after each arm
    mod.bench(lambda: toy, OraclePRM, PROBS[:1], n=2, m=2, repeats=1, methods=("beam search",), sampling=sp(),
              max_iterations=2)
    assert "generate_samples" not in vars(toy)


def test_search_bench_prm_scoring_arms_agree():
    "`bench_prm_scoring` scores every round's PRM inputs of one batched search one at a time and batched: same scores."
    mod = _load_bench()
    prm = OraclePRM()
    out = mod.bench_prm_scoring(lambda: ToyBackend(p_correct=0.6, noise=True), lambda: prm, PROBS, n=4, m=2,
                                repeats=1, sampling=sp(1), max_iterations=3)
    assert out["same_outputs"] and out["calls"] >= 2 and out["sequences"] >= 3 * 4
    assert set(out["all_seconds"]) == {"one at a time", "batched"}      # the oracle shares no prefixes
    assert "score" not in vars(prm)
