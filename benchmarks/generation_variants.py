"""Variants of the transformers backend's decode loop, timed side by side on the embedded SmolLM2-135M (issue 16).

    .venv/bin/python benchmarks/generation_variants.py [--repeats 3] [--batches 1,16,64] [--tokens 32] [--threads N]
                                                       [--variants baseline,eager,...] [--out benchmarks/generation_variants.json]

Every variant generates the same prompts as `benchmarks/run.py`'s `bench_generation` (greedy, `ignore_eos`, a fixed
number of new tokens) and is checked against `HFBackend` as it is: same greedy tokens, or the count of rows that
differ. Repeats alternate the variants (A B C ... A B C ...) and the table gives the median tok/s of each.

Variants (each a subclass or a model setting; `HFBackend` itself is not changed):
- `baseline`  `HFBackend` as it is (SDPA attention, `DynamicCache`, per-step `.tolist()` and per-row stop checks).
- `eager`     the same backend on a model loaded with `attn_implementation="eager"` (the baseline is SDPA).
- `lean`      the decode loop without per-step Python work: next tokens stay on the device in a preallocated
              `[B, max_tokens]` tensor, stop tokens and lengths are checked on tensors, one `.tolist()` at the end;
              no `.float()` copy of the logits (argmax needs none). Finished rows leave the batch (as in the
              baseline); rows still in the batch at the end feed the prefix cache (rows that left earlier do not).
              Greedy only, no stop strings, no min_tokens (else it falls back to `HFBackend`'s loop).
- `static`    `lean` plus a preallocated `StaticCache` (prompt + max_tokens), written in place each step instead of
              `DynamicCache`'s per-step `torch.cat`; rows that finish stay in the batch (no compaction).
- `compiled`  `static` with the decode step under `torch.compile(dynamic=False)`; one compile per batch shape, its
              time reported separately (not in tok/s).
- `bf16`      `HFBackend` on bf16 weights (this CPU has AVX512-BF16; many CI CPUs do not, where bf16 is slower).
              Its tokens differ from fp32's: the rows that differ are counted.
- `generate`  raw `model.generate` (greedy, left-padded), as `bench_generation` measures it.

The compute bound is `benchmarks/run.py`'s: peak matmul FLOP/s on 2048² fp32 / (2 · params). Beside it, the peak
of the matmul shapes one decode step actually runs (`[B, 576] @ [576, N]` for every linear of SmolLM2-135M and the
vocab head), which is what a decode step at batch B could reach.
"""
from __future__ import annotations
import argparse, json, os, statistics, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from run import peak_matmul_flops  # noqa: E402

from reasonbook.backends import HFBackend, Sampling, load_backend  # noqa: E402

VARIANTS = ("baseline", "eager", "lean", "static", "compiled", "bf16", "generate")


# --------------------------------------------------------------------------------------------- the lean decode loop
class LeanHFBackend(HFBackend):
    "HFBackend whose decode loop keeps tokens on the device and checks stops on tensors (no stop strings)."
    static_cache = False
    compile_step = False

    def _step(self, **kw):
        return self.model(**kw).logits[:, -1, :]

    @torch.inference_mode()
    def _run_batch(self, prompts, seeds, sp):
        if sp.stop or sp.temperature != 0 or sp.min_tokens:   # not what this variant is for
            return HFBackend._run_batch(self, prompts, seeds, sp)
        t0, dev = time.time(), self.device
        cache, logits, mask, pos, prompts = self._prefill(prompts)
        B, T = len(prompts), sp.max_tokens
        eos = set() if sp.ignore_eos else set(self.eos_token_ids)
        stop = torch.tensor(sorted(set(sp.stop_token_ids) | eos) or [-1], device=dev)
        out = torch.full((B, T), -1, dtype=torch.long, device=dev)
        n_out = torch.zeros(B, dtype=torch.long, device=dev)     # tokens generated per row (incl. its stop token)
        rows = torch.arange(B, device=dev)                       # rows still in the batch (dynamic cache only)
        last_pos = pos[:, -1].clone()
        if self.static_cache:
            cache, mask = self._to_static(cache, mask, T)
            L0 = mask.shape[1] - T
        alive = torch.ones(B, dtype=torch.bool, device=dev)
        for step in range(T):
            nxt = logits.argmax(-1)
            if self.static_cache:
                out[:, step] = torch.where(alive, nxt, out[:, step]); n_out += alive
                alive = alive & ~torch.isin(nxt, stop)
                if step + 1 == T or not bool(alive.any()): break
                mask[:, L0 + step] = 1
                last_pos = last_pos + 1
                logits = self._decode_step(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                                           past_key_values=cache, use_cache=True)
            else:
                out[rows, step] = nxt; n_out[rows] += 1
                keep = ~torch.isin(nxt, stop)
                if step + 1 == T: break
                if not bool(keep.all()):
                    idx = keep.nonzero().flatten()
                    if len(idx) == 0: break
                    cache.batch_select_indices(idx)
                    mask, last_pos, rows, nxt = mask[idx], last_pos[idx], rows[idx], nxt[idx]
                mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                last_pos = last_pos + 1
                logits = self._step(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                                    past_key_values=cache, use_cache=True)
        gens = [o[:n] for o, n in zip(out.tolist(), n_out.tolist())]
        stop_ids = set(stop.tolist()) - {-1}
        results = []
        for g in gens:
            if g and g[-1] in stop_ids: done = ("stop", g[-1] if g[-1] in sp.stop_token_ids else None, True)
            else: done = ("length", None, False)
            results.append(self._finish(g, done, sp))
        if self.prefix_cache.max_tokens:      # rows still in the batch at the end feed the prefix cache, as in HFBackend
            for bi, r in enumerate(rows.tolist() if not self.static_cache else range(B)):
                self._remember(prompts[r] + gens[r][:-1], cache, bi, mask[bi])
        self.stats['generated_tokens'] += sum(map(len, gens)); self.stats['seconds'] += time.time() - t0
        return results

    def _to_static(self, cache, mask, T):
        "Copy the prefilled DynamicCache into a StaticCache of prompt + T positions; the mask gets T zero columns."
        from transformers import StaticCache
        L = mask.shape[1] + T
        sc = StaticCache(config=self.model.config, max_cache_len=L)
        for l, layer in enumerate(cache.layers): sc.update(layer.keys, layer.values, l)
        return sc, torch.cat([mask, mask.new_zeros(mask.shape[0], T)], dim=1)

    def _decode_step(self, **kw):
        if not self.compile_step: return self._step(**kw)
        key = (kw["input_ids"].shape[0], kw["attention_mask"].shape[1])
        if key not in self.compiled:
            t = time.perf_counter()
            fn = torch.compile(self._step, dynamic=False)
            res = fn(**kw)            # first call compiles
            self.compile_seconds[key] = time.perf_counter() - t
            self.compiled[key] = fn
            return res
        return self.compiled[key](**kw)


class StaticHFBackend(LeanHFBackend):
    static_cache = True


class CompiledHFBackend(StaticHFBackend):
    compile_step = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.compiled, self.compile_seconds = {}, {}


# --------------------------------------------------------------------------------------------- the compute bounds
def step_shapes(config) -> list[tuple[int, int, int]]:
    "(in, out, count) of every linear one decode step runs: q, k, v, o, gate, up, down per layer, and the vocab head."
    h, i, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    hd = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    return [(h, q, L), (h, kv, 2 * L), (q, h, L), (h, i, 2 * L), (i, h, L), (h, config.vocab_size, 1)]


def step_matmul_flops(config, B: int, dtype=torch.float32, reps: int = 3) -> float:
    "Peak FLOP/s of one decode step's matmuls at batch B (F.linear, weights [out, in] as nn.Linear holds them)."
    F = torch.nn.functional
    mats = [(torch.randn(B, k, dtype=dtype), torch.randn(n, k, dtype=dtype), c) for k, n, c in step_shapes(config)]
    flops = sum(2 * B * k * n * c for k, n, c in step_shapes(config))
    with torch.inference_mode():
        for x, w, _ in mats: F.linear(x, w)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            for x, w, c in mats:
                for _ in range(c): F.linear(x, w)
            best = min(best, time.perf_counter() - t)
    return flops / best


# --------------------------------------------------------------------------------------------- the runs
def prompts_for(be, B):
    return [be.chat(f"Write a short story about the number {i}.") for i in range(B)]


def make(name, base):
    "A generate(prompts, tokens) -> list of token-id lists for variant `name`, sharing `base`'s model where it can."
    path, tok = base.model.name_or_path, base.tokenizer
    kw = dict(tokenizer=tok, model_id=base.model_id, progress=False, batch_size=256)
    if name == "baseline": be = HFBackend(base.model, **kw)
    elif name == "lean": be = LeanHFBackend(base.model, **kw)
    elif name == "static": be = StaticHFBackend(base.model, **kw)
    elif name == "compiled": be = CompiledHFBackend(base.model, **kw)
    elif name == "eager":
        from transformers import AutoModelForCausalLM
        be = HFBackend(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager"), **kw)
    elif name == "bf16":
        from transformers import AutoModelForCausalLM
        be = HFBackend(AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16), **kw)
    elif name == "generate":
        model = base.model

        def gen(prompts, tokens):
            enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                     pad_token_id=base.pad_id)
            gen.prefilled = int(enc["input_ids"].numel())
            return [r[enc["input_ids"].shape[1]:].tolist() for r in out]
        gen.backend = None
        return gen
    else: raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")

    def gen(prompts, tokens):
        p0 = be.stats["prefill_tokens"]
        out = [c[0].token_ids for c in be.generate(prompts, Sampling(max_tokens=tokens, ignore_eos=True))]
        gen.prefilled = be.stats["prefill_tokens"] - p0
        return out
    gen.backend = be
    return gen


def load() -> float:
    return os.getloadavg()[0]


def bench(repeats: int = 3, batches=(1, 16, 64), tokens: int = 32, variants=VARIANTS, log=print) -> dict:
    "Median tok/s of each variant at each batch, alternating variants within every repeat; tokens checked vs baseline."
    base = load_backend("embedded", progress=False)
    cfg = base.model.config
    gens = {v: make(v, base) for v in variants}
    peak = {"fp32": [], "bf16": []}
    res = {v: {B: [] for B in batches} for v in variants}
    same, first = {v: {} for v in variants}, {}
    step_peak = {B: [] for B in batches}
    prefilled = {v: {B: [] for B in batches} for v in variants}
    warm = prompts_for(base, 1)
    for v in variants:                                  # warm-up outside the timing (for `compiled`: the compiles)
        t = time.perf_counter()
        for B in (batches if v == "compiled" else batches[:1]):
            gens[v](prompts_for(base, B) if v == "compiled" else warm, tokens if v == "compiled" else 2)
        log(f"[warm] {v}: {time.perf_counter() - t:.1f} s (load {load():.1f})")
    for r in range(repeats):
        peak["fp32"].append(peak_matmul_flops("cpu"))
        a = torch.randn(2048, 2048, dtype=torch.bfloat16); b = torch.randn(2048, 2048, dtype=torch.bfloat16); a @ b
        t = time.perf_counter(); [a @ b for _ in range(5)]; peak["bf16"].append(2 * 2048 ** 3 * 5 / (time.perf_counter() - t))
        for B in batches:
            step_peak[B].append(step_matmul_flops(cfg, B))
            ps = prompts_for(base, B)
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for v in order:
                t = time.perf_counter(); toks = gens[v](ps, tokens); dt = time.perf_counter() - t
                assert sum(map(len, toks)) == B * tokens, f"{v} at batch {B}: {sum(map(len, toks))} tokens, expected {B * tokens}"
                res[v][B].append(B * tokens / dt)
                if r == 0: first.setdefault(B, {})[v] = toks
                prefilled[v][B].append(gens[v].prefilled)
                log(f"[rep {r}] {v} B={B}: {B * tokens / dt:.1f} tok/s (load {load():.1f}) same as baseline: "
                    f"{sum(a == b for a, b in zip(toks, first[B].get('baseline', toks)))}/{B}")
    ref = "baseline" if "baseline" in variants else variants[0]
    for v in variants:
        for B in batches: same[v][B] = sum(a == b for a, b in zip(first[B][v], first[B][ref]))
    med = statistics.median
    n_params = base.num_parameters
    bound = med(peak["fp32"]) / (2 * n_params)
    head = cfg.vocab_size * cfg.hidden_size          # prefill skips the vocab head but for the last position
    def flop_rate(tps, B, pre):                       # FLOP/s counting the prefill too: prefill tokens cost 2(P - head)
        secs = B * tokens / tps
        return (2 * n_params * B * tokens + 2 * (n_params - head) * max(pre - B, 0) + 2 * n_params * min(pre, B)) / secs
    rows = []
    for v in variants:
        for B in batches:
            tps = med(res[v][B])
            rows.append(dict(variant=v, batch=B, tok_s=tps, runs=res[v][B], fraction_of_bound=tps / bound,
                             fraction_of_step_bound=tps / (med(step_peak[B]) / (2 * n_params)),
                             same_rows=same[v][B], rows=B, prefilled_tokens=med(prefilled[v][B]),
                             fraction_of_peak_all_flops=flop_rate(tps, B, med(prefilled[v][B])) / med(peak["fp32"])))
    compile_s = {f"{k[0]}x{k[1]}": s for k, s in getattr(gens.get("compiled", None) and gens["compiled"].backend, "compile_seconds", {}).items()}
    return dict(rows=rows, peak_fp32_flops=med(peak["fp32"]), peak_bf16_flops=med(peak["bf16"]), bound_tok_s=bound,
                step_peak_flops={B: med(v) for B, v in step_peak.items()}, params=n_params, tokens=tokens,
                repeats=repeats, threads=torch.get_num_threads(), compile_seconds=compile_s,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def table(res: dict) -> str:
    bs = sorted({r["batch"] for r in res["rows"]})
    L = [f"Peak matmul (2048², fp32) {res['peak_fp32_flops'] / 1e9:.0f} GFLOP/s → bound {res['bound_tok_s']:.0f} tok/s; "
         f"bf16 2048² {res['peak_bf16_flops'] / 1e9:.0f} GFLOP/s; decode-step matmul shapes: "
         + ", ".join(f"B={B} {res['step_peak_flops'][B] / 1e9:.0f} GFLOP/s" for B in bs)
         + f". {res['tokens']} new tokens, median of {res['repeats']}, {res['threads']} threads, {res['date']}.", "",
         "| variant | " + " | ".join(f"tok/s B={B}" for B in bs) + " | fraction of bound (B=" + str(bs[-1])
         + ") | of step-shape bound | all FLOPs (prefill too) / peak | prefilled tokens per call | same tokens (rows) |", "|---" * (len(bs) + 6) + "|"]
    for v in dict.fromkeys(r["variant"] for r in res["rows"]):
        rs = {r["batch"]: r for r in res["rows"] if r["variant"] == v}
        last = rs[bs[-1]]
        L.append(f"| {v} | " + " | ".join(f"{rs[B]['tok_s']:.1f}" for B in bs)
                 + f" | {100 * last['fraction_of_bound']:.0f}% | {100 * last['fraction_of_step_bound']:.0f}% | "
                 + f"{100 * last['fraction_of_peak_all_flops']:.0f}% | {last['prefilled_tokens']:.0f} | "
                 + ", ".join(f"{rs[B]['same_rows']}/{rs[B]['rows']}" for B in bs) + " |")
    if res["compile_seconds"]: L.append("\ncompile seconds (batch x cache length): " + json.dumps(res["compile_seconds"]))
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "generation_variants.json"))
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    res = bench(a.repeats, tuple(int(b) for b in a.batches.split(",")), a.tokens, tuple(a.variants.split(",")),
                log=lambda s: print(s, flush=True))
    print(table(res))
    Path(a.out).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
