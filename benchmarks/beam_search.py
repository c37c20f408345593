"""Benchmark: beam search batched across problems vs one problem at a time (the public reference's way).

Beam search at N=16 (beam width M=4) on 16 generated arithmetic problems (levels 1-2) with the embedded policy
(SmolLM2-135M-Instruct, transformers on CPU) and the arithmetic oracle PRM (cheap and deterministic, so the timing
is the policy's). Both modes use a fresh backend (no run store, empty prefix cache) and the same seed; since the
backend seeds every sample from (seed, prompt, sample index), both must produce the same beams. Prints the wall
times, the speed-up and whether the outputs match.

    .venv/bin/python benchmarks/beam_search.py [--problems 16] [--n 16] [--m 4] [--iterations 3] [--step-tokens 12]

Not a test: timings depend on the machine and its load; the speed-up is the number to read.
"""
import argparse
import json
import os
import time

from reasonbook.backends import Sampling, load_backend
from reasonbook.data import load_benchmark
from reasonbook.prm import OraclePRM
from reasonbook.runs import set_cpu_threads
from reasonbook.tts import beam_search


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--step-tokens", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: min(2, CPUs)")
    ap.add_argument("--no-prefix-cache", action="store_true", help="disable the backend's prefix KV reuse")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args()
    threads = set_cpu_threads(args.threads or None)
    print(f"torch threads {threads}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)

    problems = [p for lv in (1, 2) for p in load_benchmark(f"arithmetic-{lv}", limit=args.problems // 2, seed=args.seed)]
    kw = dict(n=args.n, m=args.m, max_iterations=args.iterations, max_step_tokens=args.step_tokens,
              sampling=Sampling(temperature=0.8, max_tokens=args.max_tokens, seed=args.seed))

    def fresh():
        extra = {"prefix_cache_tokens": 0} if args.no_prefix_cache else {}
        return load_backend(args.model, progress=False, **extra)

    out = {}
    for mode in ("batched", "one_at_a_time"):
        be = fresh()
        t0, c0 = time.time(), time.process_time()
        if mode == "batched":
            res = beam_search(be, OraclePRM(), problems, **kw)
        else:
            res = [beam_search(be, OraclePRM(), [p], **kw)[0] for p in problems]
        wall, cpu = time.time() - t0, time.process_time() - c0
        out[mode] = dict(wall_s=round(wall, 1), cpu_s=round(cpu, 1), gen_tokens=sum(r.gen_tokens for r in res),
                         texts=[[c.text for c in r.candidates] for r in res],
                         tok_per_s=round(sum(r.gen_tokens for r in res) / wall, 1))
        print(f"{mode:>14}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {out[mode]['gen_tokens']} tokens, "
              f"{out[mode]['tok_per_s']} tok/s", flush=True)
    a, b = out["batched"]["texts"], out["one_at_a_time"]["texts"]
    same_problems = sum(x == y for x, y in zip(a, b))
    same_cands = sum(u == v for x, y in zip(a, b) for u, v in zip(x, y))
    total = sum(max(len(x), len(y)) for x, y in zip(a, b))
    speedup = out["one_at_a_time"]["wall_s"] / max(out["batched"]["wall_s"], 1e-9)
    print(f"speed-up (wall, one-at-a-time / batched): {speedup:.2f}x")
    print(f"same outputs: {same_problems}/{len(problems)} problems identical, {same_cands}/{total} candidates")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        summary = {k: {kk: vv for kk, vv in v.items() if kk != "texts"} for k, v in out.items()}
        summary.update(speedup=speedup, identical_problems=same_problems, identical_candidates=same_cands,
                       candidates=total, args=vars(args))
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
