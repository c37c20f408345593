"""reasonbook.synthetic: per-step credit (step values, advantages, first pit), pair construction, RFT/negatives,
synthetic-problem filtering and scaling-law fitting — on fake backends with known answers; the experiment's
run_*/plot_* functions on a scripted Lab; SyntheticConfig against the parameters cell and the profiles."""
import random
import re
import zlib
from contextlib import nullcontext
from dataclasses import fields, replace
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from reasonbook.backends import Sampling
from reasonbook.data import Problem, split_steps
from reasonbook.grading import grade
from reasonbook.runs import ConfigError
from reasonbook.testing import ScriptedBackend
from reasonbook.train import TrainResult
from reasonbook import synthetic as S
from conftest import ROOT


# --- a fake environment where the true success probability of every prefix is known --------------------------
# Every step (and the question, for the empty prefix) carries "[p=…]": a rollout continued from a prefix reaches the
# correct answer with the probability of the LAST such tag in the prompt. Under Best-of-K the true value of the
# prefix is 1 − (1 − p)^K.


# The scripted tests run with the small settings of the old arithmetic smoke profile; the notebook's parameters cell
# (and SyntheticConfig's defaults) hold the reasoner smoke profile.
OLD = dict(model="embedded", seed_problems="arithmetic", test_set="arithmetic", level=2, data_sizes=[2, 4, 8], n_test=10,
           max_tokens=56, sft_epochs=1, sft_lr=1e-4, batch_size=8, dpo_lr=1e-5, dpo_epochs=1, min_steps=0,
           rollout_max_tokens=48, n_boot=500, cpu_threads=None)


def _cfg(**kw):
    return S.SyntheticConfig(**{**OLD, **kw})

def env(prompt, j):
    p = float(re.findall(r"\[p=([0-9.]+)\]", prompt)[-1])
    u = random.Random(zlib.crc32(f"{prompt}|{j}".encode())).random()
    return "so the answer is \\boxed{7}." if u < p else "so the answer is \\boxed{8}."


def make_trace(pid, q_p, step_ps, final="\\boxed{8}", finish="stop"):
    prob = Problem(pid, f"Question {pid} [p={q_p}]", "7")
    steps = [f"step {i + 1} of {pid} [p={p}]" for i, p in enumerate(step_ps)]
    text = "\n\n".join(steps + ([final] if final else []))
    return S.Trace(prob, f"User: {prob.question}\nAssistant:", text, grade(text, "7"), finish)


@pytest.mark.parametrize("K", [1, 5])
def test_step_values_converge_to_true_success_probability(K):
    # truncated traces (finish "length"): every prefix, the last one included, is rolled out
    traces = [make_trace("a", 0.6, [0.5, 0.2, 0.05], final=None, finish="length"),
              make_trace("b", 0.3, [0.9, 0.1], final=None, finish="length")]
    true = [[1 - (1 - p) ** K for p in ps] for ps in ([0.6, 0.5, 0.2, 0.05], [0.3, 0.9, 0.1])]
    err = {}
    for n in (K, 10 * K, 3000):
        vals = S.step_values(ScriptedBackend(env), traces, K=K, n_rollouts=n)
        assert [len(v) for v in vals] == [4, 3]
        err[n] = np.mean([abs(a - b) for v, t in zip(vals, true) for a, b in zip(v, t)])
    assert err[3000] < 0.02, err
    assert err[3000] < err[10 * K] < err[K], err


def test_step_values_terminal_value_is_the_grade_and_calls_are_batched():
    be = ScriptedBackend(env)
    t1 = make_trace("a", 0.9, [0.9, 0.0])               # complete, wrong final answer
    t2 = make_trace("a", 0.9, [0.9, 0.5])               # same problem, shares the empty prefix and step 1
    t3 = make_trace("c", 0.5, [0.5], final="\\boxed{7}")  # complete and correct
    vals, rolls = S.step_values(be, [t1, t2, t3], K=5, n_rollouts=5, return_rollouts=True)
    assert len(be.calls) == 1                            # ONE backend call for all prefixes of all traces
    # unique rolled-out prefixes: a:{∅, s1, s1+s2(p=0), s1+s2(p=.5)}, c:{∅, s1} = 6, times 5 rollouts
    assert be.calls[0] == 6 * 5
    assert vals[0][-1] == 0.0 and vals[2][-1] == 1.0    # complete traces are graded, not rolled out
    assert rolls[0][-1] == [("", False)] and len(rolls[0][0]) == 5
    assert vals[0][0] == vals[1][0] and vals[0][1] == vals[1][1]
    with pytest.raises(ValueError, match="n_rollouts"):
        S.step_values(be, [t1], K=5, n_rollouts=3)


def test_best_of_k_value_is_indicator_when_n_equals_k():
    assert S.best_of_k_value(5, 0, 5) == 0.0 and S.best_of_k_value(5, 1, 5) == 1.0
    assert np.isclose(S.best_of_k_value(10, 1, 5), 0.5)   # 1 − C(9,5)/C(10,5)


def test_per_step_pairs_choose_a_correct_solution_and_reject_the_prefix_up_to_the_pit():
    be = ScriptedBackend(env)
    traces = [make_trace("a", 0.9, [0.9, 0.0, 0.0]),      # pit at step 2 (a prefix)
              make_trace("b", 0.0, [0.0]),                # unsolvable from the start: pit at step 1
              make_trace("d", 0.9, [0.9, 0.9])]           # recovers until the wrong final answer: pit = last step
    vals = S.step_values(be, traces, K=5)
    positives = {"a": ["7 = 7, so the answer is \\boxed{7}."], "b": ["\\boxed{7}"], "d": ["it is \\boxed{7}"]}
    pairs = S.per_step_pairs(traces, vals, positives)
    assert len(pairs) == 3
    for t, q, p in zip(traces, vals, pairs):
        steps = split_steps(t.text)
        c = S.first_pit(q)
        assert grade(p["chosen"], t.problem.answer)                 # chosen: a correct solution
        assert p["rejected"] == "\n\n".join(steps[:c])              # rejected: ŷ_{1:c}
        assert p["prompt"] == t.prompt and p["pit"] == c
        assert p["rejected_is_prefix"] == (c < len(steps))
    assert [p["pit"] for p in pairs] == [2, 1, 3]
    assert pairs[2]["rejected"] == traces[2].text and not pairs[2]["rejected_is_prefix"]
    # a problem without any correct solution gives no pair
    assert S.per_step_pairs(traces[:1], vals[:1], {}) == []


def test_self_explore_pairs():
    t = make_trace("a", 0.9, [0.9, 0.0, 0.0])
    vals, rolls = S.step_values(ScriptedBackend(env), [t], K=4, return_rollouts=True)
    assert S.first_failed_step([[ok for _, ok in r] for r in rolls[0]], k=4) == 2
    (p,) = S.self_explore_pairs([t], rolls, k=4)
    steps = split_steps(t.text)
    assert p["prompt"] == t.prompt + steps[0] + "\n\n"
    assert p["rejected"] == steps[1] and p["rejected_is_prefix"]
    assert grade(steps[0] + "\n\n" + p["chosen"], "7")
    assert S.first_failed_step([[True], [True, False], [False]], k=4) == 2
    assert S.first_failed_step([[True], [True]], k=4) is None


def _policy(prompt, j):
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", prompt).groups())
    s = a + b + (1 if j in (1, 3) else 2 if j == 5 else 0)
    return f"{a} + {b} = {s}.\n\nThe answer is \\boxed{{{s}}}."


def test_rft_and_negatives_keep_dedupe_and_cap():
    probs = [Problem("p0", "What is 1 + 1?", "2", "1 + 1 = 2.\n\nThe answer is \\boxed{2}.")]
    be = ScriptedBackend(_policy)
    traces = S.sample_traces(be, probs, k=6)
    assert [t.correct for t in traces[0]] == [True, False, True, False, True, False]
    rows = S.rft(be, probs, k=6, max_per_problem=4)
    assert len(rows) == 1 and grade(rows[0]["completion"], "2")     # 3 correct samples, identical: 1 kept
    negs = S.negatives(traces, per_problem=8)
    assert sorted(n.text[-4:-2] for n in negs) == ["{3", "{4"]      # 3 wrong samples, 2 distinct
    assert len(S.negatives(traces, per_problem=1)) == 1
    traces[0][0].finish_reason = "length"                            # truncated samples are not positives
    assert S.rft_data([[traces[0][0]]]) == []
    pairs = S.dpo_pairs(negs, S.positives_by_problem(traces, probs))
    assert all(grade(p["chosen"], "2") and not grade(p["rejected"], "2") for p in pairs)


def test_synthesize_problems_keeps_only_verified_positives():
    def gen(prompt, j):
        if "Here is a math problem" in prompt:
            a = int(re.search(r"What is (\d+)", prompt)[1]) + 10
            wrong = 1 if a == 12 else 0    # the problem made from seed 2 comes with a wrong solution
            return f"Problem: What is {a} + 1?\n\nSolution: {a} + 1 = {a + 1 + wrong}.\n\nThe answer is \\boxed{{{a + 1 + wrong}}}."
        a = int(re.search(r"What is (\d+)", prompt)[1])
        return f"\\boxed{{{a + 1}}}"
    seeds = [Problem(f"s{i}", f"What is {i} + 1?", str(i + 1), f"\\boxed{{{i + 1}}}") for i in (1, 2, 3)]
    kept = S.synthesize_problems(ScriptedBackend(gen), seeds, verify_k=3)
    assert [p.question for p in kept] == ["What is 11 + 1?", "What is 13 + 1?"]
    assert all(p.solution and grade(p.solution, p.answer) for p in kept)
    assert len(S.synthesize_problems(ScriptedBackend(gen), seeds, verify_k=0)) == 3


def test_scaling_table_bootstrap_ci_covers_the_point_estimate():
    m = 60
    acc = {20: 15, 40: 24, 80: 32, 160: 39, 320: 45}
    col = lambda k: [True] * k + [False] * (m - k)
    corr = {"SFT": {n: col(k) for n, k in acc.items()},
            "X": {20: col(32), 40: col(39), 80: col(45)}}          # X at n ≈ SFT at 4n
    tab = S.scaling_table(corr, n_boot=300, seed=1).set_index("method")
    x = tab.loc["X"]
    assert 3.0 < x.multiplier < 5.5 and x.mult_lo <= x.multiplier <= x.mult_hi
    assert np.isclose(tab.loc["SFT"].multiplier, 1.0)
    with pytest.raises(ValueError, match="test results"):
        S.scaling_table({"SFT": {1: [True], 2: [True, False]}})


def test_step_values_on_a_tiny_model_batches_all_prefixes_in_one_call():
    "The real backend path: a 2-layer random Llama through HFBackend; every rollout of every prefix in one call."
    import torch
    from reasonbook.backends import HFBackend
    from reasonbook.testing import tiny_llama_path
    torch.set_num_threads(2)
    be = HFBackend(str(tiny_llama_path()), progress=False)
    calls = []
    inner = be.generate_samples
    be.generate_samples = lambda reqs, sp, desc=None: calls.append(len(reqs)) or inner(reqs, sp, desc)
    probs = [Problem(f"t{i}", f"What is {i} + 1?", str(i + 1)) for i in range(2)]
    traces = S.sample_traces(be, probs, k=2, sampling=Sampling(temperature=1.0, max_tokens=12, seed=0))
    traces = [t for per in traces for t in per]
    vals = S.step_values(be, traces, K=2, n_rollouts=3, sampling=Sampling(temperature=1.0, max_tokens=6, seed=0))
    assert len(calls) == 2                               # one call to sample, ONE call for all rollouts
    for t, q in zip(traces, vals):
        assert len(q) == len(split_steps(t.text)) + 1   # Q_0 … Q_L
        assert all(0.0 <= v <= 1.0 for v in q)


# --- the experiment's functions on a scripted Lab (no model, no training) -------------------------------------

def _arith(model, prompt, j):
    "Base model: always wrong; π_sft: right on even samples; DPO-trained policies: always right."
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", prompt).groups())
    s = a + b + (0 if "dpo" in model or (model.startswith("sft") and j % 2 == 0) else 1)
    return f"{a} + {b} = {s}.\n\nThe answer is \\boxed{{{s}}}."


def scripted_lab(respond=_arith):
    trained = []
    def train_(name, recipe, base, rows, **hp):
        trained.append((name, recipe.__name__, len(rows), hp))
        return TrainResult(Path(name), [1.0], 1, 0.0)
    def open_(model, role="student"):
        mid = model.path.name if isinstance(model, TrainResult) else str(model)
        return nullcontext(ScriptedBackend(lambda p, j: respond(mid, p, j), model_id=mid))
    lab = S.Lab(open_, train_)
    lab.trained = trained
    return lab


def _problems(n):
    return [Problem(f"q{i}", f"What is {i} + {i + 1}?", str(2 * i + 1),
                    f"{i} + {i + 1} = {2 * i + 1}.\n\nThe answer is \\boxed{{{2 * i + 1}}}.") for i in range(n)]


def test_every_run_and_plot_function_on_a_scripted_lab():
    cfg = _cfg(data_sizes=[2, 4], n_test=3, pass_k=2, n_boot=20, betas=[0.1, 0.5], self_explore=True)
    P = _problems(7)
    D, test = P[:4], P[4:]
    lab = scripted_lab()
    with lab.open(cfg.model) as base:
        rows = S.sft_data(D, base)
        base_error = S.test_error(S.evaluate(base, test, cfg.greedy))
    assert base_error == 1.0
    runs = S.run_scaling(lab, cfg, D, rows, test)
    assert list(runs) == [2, 4] and all(set(r.evals) == set(S.METHODS) for r in runs.values())
    # every model is trained once, from the right base, with the right recipe
    names = [t[0] for t in lab.trained]
    assert names == ["sft-n2", "rft-n2", "dpo-n2-b0.1", "psdpo-n2-b0.1", "sft-n4", "rft-n4", "dpo-n4-b0.1", "psdpo-n4-b0.1"]
    assert [t[1] for t in lab.trained[:4]] == ["sft", "sft", "dpo", "per_step_dpo"]
    assert lab.trained[2][3] == dict(beta=0.1, lr=cfg.dpo_lr, epochs=cfg.dpo_epochs, batch_size=cfg.batch_size, lora=None)
    errors = S.error_table(runs)
    tab = S.scaling_table(S.method_correct(runs), n_boot=cfg.n_boot, seed=cfg.seed)
    assert errors.loc[4].to_dict() == {"SFT": 0.0, "RFT": 1.0, "DPO": 0.0, "per-step DPO": 0.0}
    passk = S.pass_at_k_table(runs, cfg.pass_k)
    betas = S.run_beta_sweep(lab, cfg, runs[4], test)
    assert [t[0] for t in lab.trained[8:]] == ["dpo-n4-b0.5", "psdpo-n4-b0.5"] and betas.attrs["n"] == 4
    se = S.run_self_explore(lab, cfg, runs[4], test)
    assert se["pairs"] == 4 and lab.trained[-1][0] == "selfexplore-n4-b0.1"
    sft_error = S.test_error(runs[4].evals["SFT"].correct)
    figs = [S.plot_error_vs_data(errors, tab, base_error, len(test), "tiny", "scripted"),
            S.plot_efficiency_multipliers(tab, "tiny", "scripted"),
            S.plot_pass_at_k(passk, cfg.pass_k, cfg.temperature, "tiny", "scripted"),
            S.plot_dpo_vs_per_step_beta(betas, sft_error, se, cfg.dpo_beta, "tiny", "scripted"),
            S.plot_advantages(S.advantage_examples(runs[4].samples.negs, runs[4].samples.vals), cfg.rollout_K)]
    assert all(isinstance(f, plt.Figure) for f in figs)
    for f in figs:
        plt.close(f)
    cmp = S.paper_table(tab, betas, sft_error)
    assert list(cmp.what) == [
        "RFT data-efficiency multiplier vs SFT", "per-step DPO data-efficiency multiplier vs SFT",
        "standard DPO beats π_sft for some β (paper: MATH; ours: arithmetic)", "per-step DPO beats π_sft for some β",
        "scaling exponent α: per-step DPO vs SFT"]
    assert list(cmp.paper) == [S.PAPER[k] for k in S.PAPER]


def test_a_method_without_training_data_is_pi_sft():
    "No correct samples: RFT has only D_syn's rows (or none); no negatives: both DPO variants are π_sft."
    cfg = _cfg(data_sizes=[2, 4], n_test=2, pass_k=0, rft_include_syn=False, betas=[0.1, 0.5])
    P = _problems(4)
    always_right = lambda model, p, j: _arith("dpo", p, j)
    lab = scripted_lab(always_right)
    run = S.run_size(lab, cfg, P[:2], S.sft_data(P[:2], ScriptedBackend(lambda *a: "")), P[2:])
    assert [t[0] for t in lab.trained] == ["sft-n2", "rft-n2"]           # nothing to DPO on
    assert run.evals["DPO"] is run.evals["SFT"] and run.info["DPO note"] == "no pairs: policy = π_sft"
    betas = S.run_beta_sweep(lab, cfg, run, P[2:])
    assert len(lab.trained) == 2 and betas.to_dict() == {"DPO": {0.1: 0.0, 0.5: 0.0}, "per-step DPO": {0.1: 0.0, 0.5: 0.0}}
    lab = scripted_lab(lambda model, p, j: _arith("base", p, j))      # never right: RFT has no rows at all
    run = S.run_size(lab, cfg, P[:2], S.sft_data(P[:2], ScriptedBackend(lambda *a: "")), P[2:])
    assert run.info["rft_note"] == "no correct samples: RFT = SFT" and run.evals["RFT"] is run.evals["SFT"]


def test_config_fields_are_the_notebook_parameters_and_every_profile_validates():
    from reasonbook.cli import notebook_parameters
    params = notebook_parameters(ROOT / "nbs" / "30_synthetic_negatives.ipynb")
    assert set(params) == {f.name for f in fields(S.SyntheticConfig)}
    for prof in sorted((ROOT / "configs" / "synthetic").glob("*.yaml")):
        cfg = S.SyntheticConfig.from_params(yaml.safe_load(prof.read_text()))
        assert cfg.profile in ("smoke", prof.stem)


@pytest.mark.parametrize("bad, msg", [
    ({"data_sizes": "2,4"}, "'data_sizes' expects list[int]"),
    ({"temperature": "hot"}, "'temperature' expects float"),
    ({"lora": [16]}, "'lora'"),
    ({"betas": []}, "'betas' expects β values > 0"),
    ({"pass_k": -1}, "'pass_k' expects a value >= 0"),
    ({"rollout_K": 5, "n_rollouts": 4}, "'n_rollouts'"),
])
def test_config_rejects_a_wrong_parameter_naming_the_key(bad, msg):
    with pytest.raises(ConfigError, match=re.escape(msg)):
        S.SyntheticConfig.from_params(bad)



# --- issue 13: paper scale (findings S1-S15 of shared/reviews/fidelity_synthetic_wcse.md) ----------------------

@pytest.fixture
def fresh_ledger():
    from reasonbook.runs import ENGINES
    ENGINES.reset()
    yield ENGINES
    ENGINES.reset()


def _fake_loader(calls):
    "A stand-in for runs.load_backend: records (spec, settings) and answers like the scripted π_sft / generator."
    def load(spec, **kw):
        calls.append((spec, kw))
        def respond(prompt, j):
            if "Here is a math problem" in prompt:          # the generator writes a new problem
                a = zlib.crc32(f"{prompt}|{j}".encode()) % 100000
                return f"Problem: What is {a} + 1?\n\nSolution: {a} + 1 = {a + 1}.\n\nThe answer is \\boxed{{{a + 1}}}."
            a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", prompt).groups())
            return f"\\boxed{{{a + b}}}"
        return ScriptedBackend(respond, model_id=str(spec))
    return load


def test_generator_is_closed_before_the_learner_opens_with_per_role_settings(monkeypatch, fresh_ledger, tmp_path):
    "S1/S2: the generator opens as its own role with its own settings (TP 4) and is closed before the learner opens."
    import reasonbook.runs as R
    calls = []
    monkeypatch.setattr(R, "load_backend", _fake_loader(calls))
    cfg = _cfg(model="some/learner", generator="vllm:big/generator", engine="vllm", seed_problems="arithmetic",
                            data_sizes=[2, 4], verify_k=2, synth_per_seed=1,
                            engines={"generator": {"tensor_parallel_size": 4}, "learner": {"gpu_memory_utilization": 0.5},
                                     "student": {"max_model_len": 1024}})
    D, note, cfg2 = S.write_d_syn(cfg)
    assert len(D) == 4 and cfg2.data_sizes == [2, 4] and "4 of 4" in note
    assert fresh_ledger.live == []                                   # closed before returning
    lab = S.synthetic_lab(cfg2, None, tmp_path / "models")
    with lab.open(cfg2.model, "learner"):
        pass
    with lab.open(TrainResult(tmp_path / "sft-n2", [], 0, 0.0), "student"):
        pass
    roles = [(r.role, r.spec, r.alive_with) for r in fresh_ledger.records]
    assert roles == [("generator", "vllm:big/generator", []), ("learner", "vllm:some/learner", []),
                     ("student", f"vllm:{tmp_path / 'sft-n2'}", [])]
    assert calls[0] == ("vllm:big/generator", {"tensor_parallel_size": 4})          # TP only for the generator
    assert calls[1] == ("vllm:some/learner", {"gpu_memory_utilization": 0.5})
    assert calls[2][1] == {"max_model_len": 1024}
    assert fresh_ledger.max_live == 1
    # opening the learner while the generator is alive is what the ledger refuses
    with cfg.open_backend("generator", cfg.generator):
        with pytest.raises(R.EngineLifecycleError, match="close it first"):
            with lab.open(cfg2.model, "learner"):
                pass


def test_student_engine_overrides_the_engine_for_trained_policies(monkeypatch, fresh_ledger, tmp_path):
    import reasonbook.runs as R
    calls = []
    monkeypatch.setattr(R, "load_backend", _fake_loader(calls))
    cfg = _cfg(model="reasoner-s", engine="vllm", student_engine="hf")
    lab = S.synthetic_lab(cfg, None, tmp_path)
    with lab.open("reasoner-s", "learner"), pytest.raises(ValueError, match="role must be"):
        with lab.open("reasoner-s", "judge"):
            pass
    with lab.open(TrainResult(tmp_path / "m", [], 0, 0.0), "student"):
        pass
    assert [c[0] for c in calls] == ["vllm:reasoner-s", str(tmp_path / "m")]


def test_no_engine_is_alive_while_any_method_trains(fresh_ledger):
    "S1: every training of the experiment (SFT, RFT, both DPOs, the β sweep, Self-Explore) happens with no engine alive."
    cfg = _cfg(data_sizes=[2, 4], n_test=2, pass_k=2, n_boot=10, betas=[0.1, 0.5], self_explore=True)
    lab = scripted_lab()
    inner_open, trained = lab.open, []
    def open_(model, role="student"):
        from contextlib import contextmanager
        @contextmanager
        def cm():
            with fresh_ledger.track(role, str(getattr(model, "path", model))), inner_open(model, role) as be:
                yield be
        return cm()
    def train_(name, recipe, base, rows, **hp):
        fresh_ledger.check_idle(f"training {name!r}")
        trained.append(name)
        return TrainResult(Path(name), [1.0], 1, 0.0)
    lab2 = S.Lab(open_, train_)
    P = _problems(6)
    runs = S.run_scaling(lab2, cfg, P[:4], S.sft_data(P[:4], ScriptedBackend(lambda *a: "")), P[4:])
    S.run_beta_sweep(lab2, cfg, runs[4], P[4:])
    S.run_self_explore(lab2, cfg, runs[4], P[4:])
    assert len(trained) == 2 * 4 + 2 + 1 and fresh_ledger.max_live == 1
    assert {r.role for r in fresh_ledger.records} == {"learner", "student"}


def _wrong_then_right(model, prompt, j):
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", prompt).groups())
    s = a + b + (j + 1 if j < 16 else 0)
    return f"{a} + {b} = {s}.\n\nThe answer is \\boxed{{{s}}}."


def test_eight_negatives_per_question_are_reachable():
    "S3: with negative_samples = 16 the negatives come from their own call: 8 per question, though rft_samples = 4."
    P = _problems(3)
    be = ScriptedBackend(lambda p, j: _wrong_then_right("sft", p, j))
    cfg = _cfg(rft_samples=4, negative_samples=16, negatives_per_problem=8)
    s = S.sample_pi_sft(be, cfg, P)
    counts = {p.id: sum(t.problem_id == p.id for t in s.negs) for p in P}
    assert counts == {"q0": 8, "q1": 8, "q2": 8}
    assert be.calls[:2] == [3 * 4, 3 * 16]
    with pytest.raises(ConfigError, match="'negatives_per_problem' expects at most the 4 samples"):
        _cfg(rft_samples=4, negatives_per_problem=8)          # the old full profile: unreachable
    full = yaml.safe_load((ROOT / "configs" / "synthetic" / "full.yaml").read_text())
    assert S.SyntheticConfig.from_params(full).negatives_per_problem == 8 and full["negative_samples"] >= 8


def test_rollout_prompts_and_rejected_prefixes_are_slices_of_the_sampled_text():
    "S4: with '\\n' as the delimiter on blank-line text, nothing is re-joined: every prefix is the model's own text."
    text = "First step.\n\n\nSecond:\n    3 + 4 = 8\n\nThe answer is \\boxed{8}."
    t = S.Trace(Problem("p", "What is 3 + 4?", "7"), "PROMPT|", text, False)
    plan, prompts = S.plan_rollouts([t], "\n")
    for pr in prompts:
        assert pr.startswith("PROMPT|") and text.startswith(pr[len("PROMPT|"):])
    assert prompts[1] == "PROMPT|First step.\n\n\n" and prompts[2] == "PROMPT|First step.\n\n\nSecond:\n    "
    vals = [[1.0, 1.0, 0.0, 0.0, 0.0]]
    (pair,) = S.per_step_pairs([t], vals, {"p": ["\\boxed{7}"]}, delimiter="\n")
    assert pair["pit"] == 2 and pair["rejected"] == "First step.\n\n\nSecond:" and text.startswith(pair["rejected"])
    full = yaml.safe_load((ROOT / "configs" / "synthetic" / "full.yaml").read_text())
    assert full["step_delimiter"] == "\n\n" and "blank line between steps" in S.SOLVE_INSTRUCTION


def test_d_syn_is_filled_in_rounds_and_a_short_one_is_reported():
    "S5: oversampled seeds and rounds fill the largest size; what cannot be filled trims the grid with a note."
    def gen(prompt, j):
        a = int(re.search(r"What is (\d+)", prompt)[1])
        if "Here is a math problem" in prompt:
            return f"Problem: What is {a + 100} + 1?\n\nSolution: \\boxed{{{a + 101}}}"
        return f"\\boxed{{{a + 1 + a % 2}}}"                     # only even seeds' problems verify
    seeds = [Problem(f"s{i}", f"What is {i} + 1?", str(i + 1), f"\\boxed{{{i + 1}}}") for i in range(40)]
    cfg = _cfg(generator="g", data_sizes=[4, 8], verify_k=2)
    D, note, c = S.synthetic_data(ScriptedBackend(gen), cfg, seeds)
    assert len(D) == 8 and c.data_sizes == [4, 8] and len({p.question for p in D}) == 8
    D, note, c = S.synthetic_data(ScriptedBackend(gen), _cfg(generator="g", data_sizes=[2, 4, 8],
                                                                          verify_k=2, synth_rounds=1), seeds)
    assert c.data_sizes == [2, 4] and "grid trimmed to [2, 4]" in note and "sizes [8]" in note


def test_pit_rules_and_how_often_they_differ():
    "S7: min-Q and min-advantage agree on 0/1 values with Q_0 = 1 and differ when Q_0 = 0."
    assert S.first_pit([0.0, 0.0, 1.0, 0.0]) == 1 and S.first_pit([0.0, 0.0, 1.0, 0.0], rule="min_advantage") == 3
    assert S.first_pit([1.0, 1.0, 0.0, 0.0], rule="min_advantage") == S.first_pit([1.0, 1.0, 0.0, 0.0]) == 2
    t = make_trace("a", 0.9, [0.9, 0.0, 0.0])
    (p,) = S.per_step_pairs([t], [[0.0, 0.0, 1.0, 0.0, 0.0]], {"a": ["\\boxed{7}"]}, rule="min_advantage")
    assert p["pit"] == 3 and p["pit_other_rule"] == 1


def test_one_bos_at_sampling_and_at_training():
    "S8: a BOS-adding tokenizer: the sampling prompt carries the BOS text once; training rows drop it (TRL adds it)."
    class Tok:
        bos_token, bos_token_id = "<s>", 1
        def __call__(self, text): return {"input_ids": [1, 7]}
    be = ScriptedBackend(lambda *a: "")
    be.tokenizer, be.chat = Tok(), (lambda m: f"[INST] {m} [/INST]")
    prompt = S.solve_prompt(be, "What is 1 + 1?")
    assert prompt.startswith("<s>[INST]") and prompt.count("<s>") == 1
    (row,) = S.train_rows([{"prompt": prompt, "completion": "2"}], bos=S.tokenizer_bos(Tok()))
    assert row["prompt"] == prompt[3:] and not row["prompt"].startswith("<s>")


def test_min_steps_and_recorded_effective_batch():
    "S9: small sizes train at least min_steps; every run's steps and effective batch are recorded."
    cfg = _cfg(min_steps=250, batch_size=8, trl_kwargs={"gradient_accumulation_steps": 8})
    hp = {**S.sft_hparams(cfg), "epochs": 3}
    assert S.with_min_steps(cfg, hp, 1000)["max_steps"] == 250          # 16 · 3 = 48 steps < 250
    assert "max_steps" not in S.with_min_steps(cfg, hp, 16000)           # 250 · 3 = 750 steps
    lab = scripted_lab()
    P = _problems(5)
    run = S.run_size(lab, replace(_cfg(data_sizes=[2, 4], n_test=1, pass_k=0), min_steps=5), P[:2],
                     S.sft_data(P[:2], ScriptedBackend(lambda *a: "")), P[4:])
    assert all(t[3].get("max_steps") == 5 for t in lab.trained)
    assert set(run.info["train"]) == set(S.METHODS) and run.info["train"]["SFT"]["steps"] == 1


def test_rollouts_use_their_own_seed():
    "S12: Q_0's rollouts are not the mined samples again."
    cfg = _cfg()
    assert len({cfg.sampling.seed, cfg.negative_sampling.seed, cfg.rollout_sampling.seed}) == 3


def test_pi_sft_copies_are_left_out_of_the_fits():
    "S13: a method with no pairs at some size is π_sft's copy there: not fitted, drawn hollow."
    cfg = _cfg(data_sizes=[2, 4, 8], n_test=2, pass_k=0, n_boot=10, betas=[0.1])
    P = _problems(10)
    def resp(model, prompt, j):                       # π_sft at n = 2 never errs: no negatives, no DPO pairs there
        return _arith("dpo" if model == "sft-n2" else model, prompt, j)
    lab = scripted_lab(resp)
    runs = S.run_scaling(lab, cfg, P[:8], S.sft_data(P[:8], ScriptedBackend(lambda *a: "")), P[8:])
    assert S.copied_points(runs) == {("DPO", 2), ("per-step DPO", 2)}
    corr = S.method_correct(runs)
    assert sorted(corr["DPO"]) == [4, 8] and sorted(corr["SFT"]) == [2, 4, 8]
    tab = S.scaling_table(corr, n_boot=10)
    fig = S.plot_error_vs_data(S.error_table(runs), tab, 1.0, 2, copied=S.copied_points(runs))
    hollow = [l for l in fig.axes[0].lines if l.get_markerfacecolor() == "none" and len(l.get_xdata())]
    assert sorted(int(l.get_xdata()[0]) for l in hollow) == [2, 2]
    plt.close(fig)


def test_rehearsal_profile_has_the_full_topology():
    "The rehearsal: the full profile's roles through vLLM stand-ins, eager, a small learner max_model_len, 1 step."
    reh = yaml.safe_load((ROOT / "configs" / "synthetic" / "rehearsal.yaml").read_text())
    full = yaml.safe_load((ROOT / "configs" / "synthetic" / "full.yaml").read_text())
    cfg = S.SyntheticConfig.from_params(reh)
    assert cfg.generator.startswith("vllm:") and cfg.engine == "vllm" and full["engine"] == "vllm"
    assert set(cfg.engines) == set(full["engines"]) == {"generator", "learner", "student"}
    assert all(cfg.engines[r]["enforce_eager"] for r in ("generator", "learner"))
    assert cfg.engines["learner"]["max_model_len"] <= 512 and cfg.trl_kwargs["max_steps"] == 1


# --- issue 15: the smoke profile on reasonbook's reasoners ---------------------------------------------------------

def test_reasoner_prompts_targets_and_samples_share_the_reasoners_own_format():
    "The reasoner sees the bare question with thinking opened; SFT targets are exactly what it writes when right."
    from reasonbook.backends import load_backend
    from reasonbook.reasoners import chain_dataset
    be = load_backend("reasoner-s")
    probs = S.learner_format(chain_dataset(12, level=3, seed=7), be)       # level 3: the reasoner is mostly right
    rows = S.sft_data(probs, be)
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n<|im_start|>think\n") and "Think step" not in rows[0]["prompt"]
    assert all(r["completion"].endswith(f"<|im_start|>answer\n\\boxed{{{p.answer}}}") for r, p in zip(rows, probs))
    traces = S.sample_traces(be, probs, 1, Sampling(temperature=0.0, max_tokens=96))
    right = [(t[0], p) for t, p in zip(traces, probs) if t[0].correct]
    assert len(right) >= 6, [t[0].text for t in traces]
    assert all(t.text == p.solution for t, p in right if "Wait" not in t.text)    # a right sample IS the SFT target
    assert all("<|im_end|>" not in t[0].text for t in traces)
    rft = S.rft_data(traces, 1)
    assert all(r["completion"] in {p.solution for p in probs} or "Wait" in r["completion"] for r in rft)
    # an instruction model keeps the instruction prompt and the data's own solution text
    plain, p5 = ScriptedBackend(lambda *a: ""), chain_dataset(1, 5)[0]
    assert S.prompt_style(plain) == "instruct" and S.learner_solution(plain, p5) == p5.solution
    assert "Think step by step" in S.solve_prompt(plain, p5.question)
