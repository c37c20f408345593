"""Benchmark: beam search and DVTS batched across problems vs one problem at a time, with a profile of where the time went.

`bench(be_factory, prm_factory, problems, n, m, repeats)` runs each search method both ways on a fresh backend
(empty prefix cache) from `be_factory()` and a PRM from `prm_factory()`, the arms alternating, `repeats` times, and
returns one row per method: median wall seconds of each arm, the speed-up, whether both arms produced the same
candidates (the backend seeds every sample from (seed, prompt, index), so they must), and a profile of each arm's
last repeat: seconds in the policy's `generate_samples` (of which prefill and model forwards), in PRM scoring, and the
rest (the search's own Python), with generate calls, rows, prefilled vs prompt tokens and PRM forward passes.
`bench_prm_scoring` times the PRM on the PRM inputs of one batched search (every round's candidates), one sequence at
a time vs one `score` call.

    .venv/bin/python benchmarks/beam_search.py [--policy embedded|reasoner-s] [--prm oracle-arith|reasoner-prm]
        [--problems 16] [--n 16] [--m 4] [--repeats 3] [--json out.json]

Defaults: the embedded SmolLM2 policy with the arithmetic oracle PRM on arithmetic levels 1-2 (the timing is the
policy's); `--policy reasoner-s --prm reasoner-prm` runs the tts notebook's smoke setting (chain problems, levels 2-4,
prompt style "think"). Not a test: timings depend on the machine and its load; the ratios are the numbers to read.
"""
import argparse
import json
import os
import statistics
import time
from contextlib import contextmanager

from reasonbook.backends import Sampling


class _Clock:
    "Seconds and counts of wrapped calls, by name."
    def __init__(self): self.s, self.n, self.wrapped = {}, {}, []

    def restore(self):
        "Remove the wrappers (instance attributes), newest first."
        for obj, attr in reversed(self.wrapped):
            if attr in vars(obj): delattr(obj, attr)
        self.wrapped = []

    def wrap(self, obj, attr, name, count=None):
        f = getattr(obj, attr)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try: return f(*a, **kw)
            finally:
                self.s[name] = self.s.get(name, 0.0) + time.perf_counter() - t0
                self.n[name] = self.n.get(name, 0) + (count(*a, **kw) if count else 1)
        if attr not in vars(obj): self.wrapped.append((obj, attr))
        setattr(obj, attr, timed)


def _instrument(be, prm):
    "Wrap the backend's and the PRM's entry points (instance attributes only) with a clock."
    clock = _Clock()
    clock.prm0 = (getattr(prm, "forward_passes", 0), getattr(prm, "tokens_run", 0))
    clock.wrap(be, "generate_samples", "generate")
    clock.wrap(be, "generate_samples", "rows", count=lambda req, *a, **kw: len(req))
    if hasattr(be, "_prefill"): clock.wrap(be, "_prefill", "prefill")
    if getattr(be, "model", None) is not None: clock.wrap(be.model, "forward", "model_forward")
    clock.wrap(prm, "score", "prm")
    clock.wrap(prm, "score", "prm_sequences", count=lambda batch, *a, **kw: len(batch))
    return clock


def _profile(clock, be, prm, wall) -> dict:
    s, n = clock.s, clock.n
    gen, pr = s.get("generate", 0.0), s.get("prm", 0.0)
    st = getattr(be, "stats", {}) or {}
    return dict(wall_s=round(wall, 2), generate_s=round(gen, 2), prefill_s=round(s.get("prefill", 0.0), 2),
                model_forward_s=round(s.get("model_forward", 0.0), 2),
                decode_python_s=round(gen - s.get("model_forward", 0.0), 2),
                prm_s=round(pr, 2), search_python_s=round(wall - gen - pr, 2),
                generate_calls=n.get("generate", 0), rows=n.get("rows", 0), forwards=n.get("model_forward", 0),
                prompt_tokens=st.get("prompt_tokens"), prefill_tokens=st.get("prefill_tokens"),
                generated_tokens=st.get("generated_tokens"),
                prm_calls=n.get("prm", 0), prm_sequences=n.get("prm_sequences", 0),
                prm_forward_passes=getattr(prm, "forward_passes", 0) - clock.prm0[0],
                prm_tokens_run=getattr(prm, "tokens_run", 0) - clock.prm0[1])


def _texts(results):
    return [[c.text for c in r.candidates] for r in results]


def bench(be_factory, prm_factory, problems, n=16, m=4, repeats=3, methods=("beam search", "DVTS"), warmup=True,
          **search_kw) -> dict:
    """Each of `methods` batched across `problems` vs one problem at a time (same fresh backend settings, same PRM),
    arms alternating, `repeats` times after an untimed warm-up on one problem: rows {method, batched_s, sequential_s,
    speedup (median wall), speedup_cpu (median process CPU seconds: steadier on a loaded machine), same_outputs,
    profile}."""
    from reasonbook.tts import beam_search, dvts
    fns = {"beam search": beam_search, "DVTS": dvts}
    rows = []
    for name in methods:
        fn = fns[name]
        times, cpu, texts, prof = {"batched": [], "sequential": []}, {"batched": [], "sequential": []}, {}, {}
        if warmup:                                   # not timed: first-call costs (allocator, kernels, imports)
            fn(be_factory(), prm_factory(), problems[:1], n, m, **search_kw)
        for _ in range(repeats):
            for arm in ("batched", "sequential"):
                be, prm = be_factory(), prm_factory()
                clock = _instrument(be, prm)
                t0, c0 = time.perf_counter(), time.process_time()
                if arm == "batched":
                    res = fn(be, prm, problems, n, m, **search_kw)
                else:
                    res = [fn(be, prm, [p], n, m, **search_kw)[0] for p in problems]
                wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
                clock.restore()
                times[arm].append(wall)
                cpu[arm].append(cpu_s)
                texts.setdefault(arm, []).append(_texts(res))
                prof[arm] = dict(_profile(clock, be, prm, wall), cpu_s=round(cpu_s, 2))
        a, b = texts["batched"], texts["sequential"]
        same = all(x == a[0] for x in a + b)
        same_problems = sum(x == y for x, y in zip(a[0], b[0]))
        med = {k: statistics.median(v) for k, v in times.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        rows.append(dict(method=f"{name} N={n} M={m}, {len(problems)} problems", batched_s=round(med["batched"], 2),
                         sequential_s=round(med["sequential"], 2), speedup=round(med["sequential"] / med["batched"], 2),
                         speedup_cpu=round(mcpu["sequential"] / max(mcpu["batched"], 1e-9), 2),
                         same_outputs=same, same_problems=f"{same_problems}/{len(problems)}",
                         all_seconds={k: [round(x, 2) for x in v] for k, v in times.items()},
                         all_cpu_seconds={k: [round(x, 2) for x in v] for k, v in cpu.items()}, profile=prof))
    return dict(rows=rows, repeats=repeats, n=n, m=m, problems=len(problems), load=list(os.getloadavg()))


def bench_prm_scoring(be_factory, prm_factory, problems, n=16, m=4, repeats=3, **search_kw) -> dict:
    """PRM scoring on the search workload: the (question, steps) inputs of every round of one batched beam search,
    scored one sequence at a time vs one `score` call per round (the PRM's bounded batches and, where it shares
    prefixes, also without), arms alternating; scores must match one at a time within 1e-5."""
    from reasonbook.tts import beam_search
    prm = prm_factory()
    inputs = []
    score = prm.score
    prm.score = lambda batch: (inputs.append(list(batch)), score(batch))[1]
    beam_search(be_factory(), prm, problems, n, m, **search_kw)
    del prm.score                                   # the class method again
    flat = [x for batch in inputs for x in batch]
    own = prm.share_prefix
    arms = {"one at a time": own, "batched": own}
    if own:
        arms["batched, no shared prefix"] = False      # length-sorted batches only: fewer, longer passes
    times, cpu, outs, passes = {a: [] for a in arms}, {a: [] for a in arms}, {}, {}
    for _ in range(repeats):
        for arm, share in arms.items():
            prm.share_prefix, p0 = share, prm.forward_passes
            t0, c0 = time.perf_counter(), time.process_time()
            o = [prm.score([x])[0] for x in flat] if arm == "one at a time" else [s for b in inputs for s in prm.score(b)]
            times[arm].append(time.perf_counter() - t0)
            cpu[arm].append(time.process_time() - c0)
            outs.setdefault(arm, o)
            passes[arm] = prm.forward_passes - p0
    prm.share_prefix = own
    diff = max((abs(x - y) for a in arms for u, v in zip(outs[a], outs["one at a time"]) for x, y in zip(u, v)),
               default=0.0)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    return dict(sequences=len(flat), calls=len(inputs), forward_passes=passes,
                one_at_a_time_s=round(med["one at a time"], 2), batched_s=round(med["batched"], 2),
                speedup=round(med["one at a time"] / med["batched"], 2),
                speedup_cpu={a: round(mcpu["one at a time"] / max(mcpu[a], 1e-9), 2) for a in arms if a != "one at a time"},
                max_abs_diff=diff, same_outputs=diff <= 1e-5,
                all_seconds={k: [round(x, 2) for x in v] for k, v in times.items()},
                all_cpu_seconds={k: [round(x, 2) for x in v] for k, v in cpu.items()})


def setting(policy="embedded", prm_spec="oracle-arith", n_problems=16, seed=0, batch_size=None,
            prefix_cache_tokens=None):
    "The (be_factory, prm_factory, problems, search kwargs) of a bench setting: the embedded policy on worded arithmetic, or a reasoner on chain problems as the tts notebook runs it."
    from reasonbook.backends import HFBackend, load_backend
    from reasonbook.prm import load_prm
    base = load_backend(policy, progress=False)
    if batch_size is None and policy.startswith("reasoner"):
        batch_size = 512               # the tts notebook's engines["policy"]; both arms get it
    extra = {k: v for k, v in dict(batch_size=batch_size, prefix_cache_tokens=prefix_cache_tokens).items()
             if v is not None}

    def be_factory():
        return HFBackend(base.model, tokenizer=base.tokenizer, model_id=base.model_id, progress=False, **extra)
    loaded = {}

    def prm_factory():                 # one model load (scores are stateless); the tts notebook's PRM batch bounds
        if prm_spec not in loaded: loaded[prm_spec] = load_prm(prm_spec, max_sequences=256, max_tokens=32768)
        return loaded[prm_spec]
    if policy.startswith("reasoner"):
        from reasonbook.reasoners import chain_dataset
        levels = (2, 3, 4)
        per = -(-n_problems // len(levels))
        problems = [p for lv in levels for p in chain_dataset(per, level=lv, seed=seed)][:n_problems]
        kw = dict(max_iterations=10, max_step_tokens=24, prompt_style="think",
                  sampling=Sampling(temperature=0.8, max_tokens=128, seed=seed))
    else:
        from reasonbook.data import arithmetic_dataset
        problems = [p for lv in (1, 2) for p in arithmetic_dataset(n_problems // 2, level=lv, seed=seed)]
        kw = dict(max_iterations=3, max_step_tokens=12, sampling=Sampling(temperature=0.8, max_tokens=36, seed=seed))
    return be_factory, prm_factory, problems, kw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="embedded")
    ap.add_argument("--prm", default="oracle-arith")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="beam search,DVTS")
    ap.add_argument("--batch-size", type=int, default=None, help="the backend's batch_size, both arms (default: 512 for a reasoner, as the tts notebook; else the backend's 64)")
    ap.add_argument("--prm-scoring", action="store_true", help="also time PRM scoring on the search's inputs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: min(2, CPUs)")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args()
    from reasonbook.runs import set_cpu_threads
    threads = set_cpu_threads(args.threads or None)
    print(f"torch threads {threads}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    be_factory, prm_factory, problems, kw = setting(args.policy, args.prm, args.problems, batch_size=args.batch_size)
    out = bench(be_factory, prm_factory, problems, args.n, args.m, args.repeats,
                methods=tuple(args.methods.split(",")), **kw)
    for r in out["rows"]:
        print(f"{r['method']}: batched {r['batched_s']} s, one at a time {r['sequential_s']} s, "
              f"{r['speedup']}x (CPU {r['speedup_cpu']}x), same outputs {r['same_outputs']} ({r['same_problems']}); "
              f"wall {r['all_seconds']}, CPU {r['all_cpu_seconds']}")
        for arm, p in r["profile"].items():
            print(f"  {arm:>10}: {json.dumps(p)}")
    if args.prm_scoring:
        out["prm_scoring"] = bench_prm_scoring(be_factory, prm_factory, problems, args.n, args.m, args.repeats, **kw)
        print("PRM scoring on the search's inputs:", json.dumps(out["prm_scoring"]))
    out.update(policy=args.policy, prm=args.prm, threads=threads)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
