"""Budget forcing against one plain generation of the same tokens, on the transformers backend (issue 16).

Arms, alternated `repeats` times (medians reported), each on a fresh `HFBackend` sharing one model:
- `bf`: `budget_force` as it runs by default on `HFBackend`: one decode loop (`generate_chained`), a row that ends its
  thinking goes on at once with the extension or with the forced tail and its answer;
- `rounds`: the same budget forcing with one batched `generate` call per thinking round plus one for the answers
  (`in_loop=False`, the path every other backend takes); its records must equal `bf`'s (`same_outputs`);
- `plain`: ONE plain generation of the same tokens: the same prompts, each row generating exactly as many tokens as
  budget forcing generated for it (`ignore_eos`, one decode loop, no prefix cache); `overhead` = bf / plain;
- `plain_mean`: one plain generation where every row generates the mean per-row count (benchmarks/run.py's
  reference); a row that thinks to the cap and then answers is longer than the mean, so this ratio includes the
  longer critical path, not only budget forcing's own cost.
"""
from __future__ import annotations
import statistics, sys, time


def _per_row_tokens(be):
    "Wrap `be.generate_chained` so that each prompt's generated tokens (over its whole chain) are counted."
    counts, inner = {}, be.generate_chained
    def chained(prompts, samplings, then, desc=None):
        def count(i, c):
            counts[i] = counts.get(i, 0) + len(c.token_ids)
            return then(i, c)
        return inner(prompts, samplings, count, desc=desc)
    be.generate_chained = chained
    return counts


def bench(be, repeats=3, n_problems=8, cap=96, ks=(0, 4), answer_max_tokens=16, progress=False) -> dict:
    "Rows {k, tokens, seconds_bf, seconds_plain, overhead, same_outputs, ...} (medians over `repeats`, arms alternated)."
    from reasonbook.backends import HFBackend, Sampling
    from reasonbook.data import arithmetic_dataset
    from reasonbook.s1 import budget_force
    prompts = [be.chat(p.question) for p in arithmetic_dataset(n_problems, level=2, seed=1)]
    ids = [be.encode(p) for p in prompts]
    fresh = lambda **kw: HFBackend(be.model, tokenizer=be.tokenizer, model_id=be.model_id, progress=False, **kw)
    kw = dict(max_thinking_tokens=cap, delimiters="plain", answer_max_tokens=answer_max_tokens)
    forwards = [0]
    hook = be.model.register_forward_pre_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    try:
        return _bench(be, fresh, prompts, ids, kw, forwards, repeats, ks, progress,
                      dict(repeats=repeats, n_problems=n_problems, cap=cap, answer_max_tokens=answer_max_tokens))
    finally:
        hook.remove()


def _bench(be, fresh, prompts, ids, kw, forwards, repeats, ks, progress, info):
    from reasonbook.backends import Sampling
    from reasonbook.s1 import budget_force

    def timed(arm, fn):
        f0, t = forwards[0], time.perf_counter()
        out = fn()
        secs[arm].append(time.perf_counter() - t); steps[arm] = forwards[0] - f0
        return out
    be.generate([prompts[0]], Sampling(max_tokens=2))      # warm-up, outside every arm
    rows = []
    for k in ks:
        secs, steps = {a: [] for a in ("bf", "rounds", "plain", "plain_mean")}, {}
        same = True
        for rep in range(repeats):
            b, r = fresh(), fresh()
            counts = _per_row_tokens(b)

            def arm_bf():
                nonlocal recs, tokens, per_row
                recs = timed("bf", lambda: budget_force(b, prompts, num_ignore=k, **kw))
                tokens, per_row = b.stats["generated_tokens"], [counts[i] for i in range(len(prompts))]
                if sum(per_row) != tokens: raise AssertionError(f"bench: per-row counts {sum(per_row)} != generated {tokens}")

            def arm_rounds():
                nonlocal recs_r
                recs_r = timed("rounds", lambda: budget_force(r, prompts, num_ignore=k, in_loop=False, **kw))

            def arm_plain():
                p = fresh(prefix_cache_tokens=0)
                timed("plain", lambda: p.generate_chained(ids, [Sampling(max_tokens=n, ignore_eos=True) for n in per_row],
                                                           lambda i, c: None))
                if p.stats["generated_tokens"] != tokens: raise AssertionError("bench: the plain arm generated other token counts")

            def arm_mean():
                m = fresh(prefix_cache_tokens=0)
                timed("plain_mean", lambda: m.generate(ids, Sampling(max_tokens=max(1, round(tokens / len(ids))), ignore_eos=True)))
            recs = recs_r = tokens = per_row = None
            # bf first (the plain arms need its token counts), then the others in an order rotated each repeat
            others = [arm_rounds, arm_plain, arm_mean]
            for fn in [arm_bf] + others[rep % 3:] + others[:rep % 3]:
                fn()
            same = same and recs == recs_r
            tokens_rounds = r.stats["generated_tokens"]
            if progress: print(f"k={k}: " + ", ".join(f"{a} {v[-1]:.2f} s" for a, v in secs.items()), file=sys.stderr, flush=True)
        med = {a: statistics.median(v) for a, v in secs.items()}
        rows.append(dict(k=k, tokens=tokens, tokens_rounds=tokens_rounds, per_row_tokens=per_row, extensions=sum(r.num_extensions for r in recs),
                         capped=sum(r.capped for r in recs), seconds_bf=med["bf"], seconds_rounds=med["rounds"],
                         seconds_plain=med["plain"], seconds_plain_mean=med["plain_mean"],
                         overhead=med["bf"] / med["plain"], overhead_rounds=med["rounds"] / med["plain"],
                         overhead_vs_mean=med["bf"] / med["plain_mean"],
                         overhead_rounds_vs_mean=med["rounds"] / med["plain_mean"],
                         same_outputs=same, seconds=secs, model_forwards=steps))
    return dict(rows=rows, **info)


if __name__ == "__main__":
    import json
    from reasonbook.backends import load_backend
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    res = bench(load_backend("embedded", progress=False), repeats=repeats, progress=True)
    for r in res["rows"]:
        print(f"k={r['k']}: {r['tokens']} tokens, {r['extensions']} extensions, {r['capped']} capped | "
              f"bf {r['seconds_bf']:.2f} s, rounds {r['seconds_rounds']:.2f} s, plain {r['seconds_plain']:.2f} s, "
              f"plain at the mean length {r['seconds_plain_mean']:.2f} s | overhead {r['overhead']:.3f}x "
              f"(rounds {r['overhead_rounds']:.3f}x; vs the mean length {r['overhead_vs_mean']:.3f}x, rounds "
              f"{r['overhead_rounds_vs_mean']:.3f}x) | model forwards {r['model_forwards']} | same outputs {r['same_outputs']}")
    print(json.dumps(res, default=str))
