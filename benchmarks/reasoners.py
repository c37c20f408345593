"""Tokens/s of generation on one of reasonbook's reasoners: the transformers backend (`HFBackend`) at batch 1, 64 and
256, and — when `.venv-vllm` exists — vLLM's engine on the same folder, side by side (issue 14, item 7).

    .venv/bin/python benchmarks/reasoners.py [--model reasoner-m] [--tokens 48] [--out benchmarks/reasoners.json]

Models this small are bound by per-step overhead, not FLOPs: tokens/s grows almost linearly with the batch.
The vLLM side runs in a subprocess of `.venv-vllm/bin/python` (a different torch/transformers), fed the same prompts.
`make bench` runs this comparison as benchmarks/run.py's `reasoners` section (medians of 3, the vLLM side sharing
the rounds section's engine, greedy tokens compared); this script stays for a one-off look.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 64, 256)


def prompts(n: int) -> list[str]:
    from reasonbook.reasoners import chain_dataset
    return [p.question for p in chain_dataset(n, 4, seed=2024)]


def tokens_per_s(be, tokens: int, repeats: int = 1, batches=BATCHES, before_each=None) -> dict:
    """Greedy tokens/s of backend `be` (transformers or vLLM) at each batch on the same chain prompts: the median of
    `repeats` runs (`before_each()` before every run, e.g. a prefix-cache reset), and each batch's token ids."""
    import statistics
    from reasonbook.backends import Sampling
    qs = prompts(max(batches))
    sp = Sampling(max_tokens=tokens, ignore_eos=True)
    be.generate([be.chat(qs[0])], Sampling(max_tokens=4))                  # warm-up
    out, ids = {}, {}
    for b in batches:
        ps = [be.chat(q) for q in qs[:b]]
        ts = []
        for _ in range(repeats):
            if before_each is not None: before_each()
            t = time.perf_counter(); res = be.generate(ps, sp); ts.append(time.perf_counter() - t)
        out[b] = sum(r[0].num_tokens for r in res) / statistics.median(ts)
        ids[b] = [r[0].token_ids for r in res]
    return dict(tok_s=out, token_ids=ids)


def hf_tokens_per_s(path: str, tokens: int) -> dict:
    from reasonbook.backends import HFBackend
    return tokens_per_s(HFBackend(path, batch_size=max(BATCHES), progress=False), tokens)["tok_s"]


VLLM_SNIPPET = r'''
import json, sys, time
from vllm import LLM, SamplingParams
path, tokens, qs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
llm = LLM(path, enforce_eager=True, max_model_len=512, dtype="float32")
tok = llm.get_tokenizer()
sp = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
out = {}
for b in (1, 64, 256):
    ps = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in qs[:b]]
    t = time.perf_counter(); res = llm.generate(ps, sp, use_tqdm=False); dt = time.perf_counter() - t
    out[b] = sum(len(r.outputs[0].token_ids) for r in res) / dt
print("RESULT " + json.dumps(out))
'''


def vllm_tokens_per_s(path: str, tokens: int) -> dict | None:
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        return None
    r = subprocess.run([str(py), "-c", VLLM_SNIPPET, path, str(tokens), json.dumps(prompts(max(BATCHES)))],
                       capture_output=True, text=True, timeout=1800)
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    return None if line is None else {int(k): v for k, v in json.loads(line[7:]).items()}


def main(argv=None):
    from reasonbook.reasoners import reasoner_path
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reasoner-m")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reasoners.json"))
    a = ap.parse_args(argv)
    path = str(reasoner_path(a.model))
    res = dict(model=a.model, tokens=a.tokens, hf=hf_tokens_per_s(path, a.tokens), vllm=vllm_tokens_per_s(path, a.tokens))
    print("| batch | HFBackend tok/s | vLLM tok/s |\n|---|---|---|")
    for b in BATCHES:
        v = res["vllm"][b] if res["vllm"] else None
        print(f"| {b} | {res['hf'][b]:.0f} | {'-' if v is None else f'{v:.0f}'} |")
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
