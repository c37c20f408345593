"""The vLLM-CPU side of `make bench`, in one process per model (each engine start costs ~30 s with enforce_eager):

- `rounds`: one engine call per round vs the same requests sent in pieces of 64 (what a loop over problems or a
  batch-size-64 client does), side by side (issue 16). Greedy, so both arms must give the same tokens; the prefix
  cache is reset before every timed arm so neither arm reuses the other's prompts.
- `throughput`: tokens/s at batch 1, 64 and 256 on the same prompts as benchmarks/reasoners.py (greedy, ignore_eos);
  the token ids come back so the caller can compare them with the transformers backend's.
- `budget_forcing`: budget forcing at k = 0, 1, 2, 4 through `reasonbook.s1.budget_force` (the round-based path:
  one `generate` per round, prefix caching on) vs one plain generation of the same tokens (benchmarks/run.py's
  generic `bench_budget_forcing`; benchmarks/budget_forcing.py is transformers-only).

    .venv/bin/python benchmarks/vllm_rounds.py [--model reasoner-m] [--what rounds,throughput] [--repeats 3] [--quick]

Runs in `.venv-vllm` (re-executes itself there when vLLM is not importable here) through reasonbook's `VLLMBackend`,
the engine every `vllm:` spec opens. Arms alternate, `--repeats` times each; ratios are of the medians. Prints one
line `RESULT {json}` (one entry per item of `--what`; an item that fails gives {"error": ...}).
"""
from __future__ import annotations
import argparse, json, os, signal, statistics, subprocess, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VLLM_ENV = dict(VLLM_CPU_OMP_THREADS_BIND="0-1", VLLM_CPU_NUM_OF_RESERVED_CPU="0", VLLM_CPU_KVCACHE_SPACE="1",
                OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
BATCHES = (1, 64, 256)


def open_engine(model: str):
    from reasonbook.backends import load_backend, resolve_model_path
    from reasonbook.reasoners import reasoner_path
    path = reasoner_path(model) if model.startswith("reasoner-") else resolve_model_path(model)
    return load_backend(f"vllm:{path}", enforce_eager=True, max_model_len=512, dtype="float32",
                        model_id=model)


def rounds(be, n_requests: int, piece: int, repeats: int, tokens: int) -> dict:
    from reasonbook.backends import Sampling
    from reasonbook.reasoners import chain_dataset
    prompts = [be.chat(p.question) for lv in (2, 4) for p in chain_dataset(n_requests // 2, lv, seed=2024)]
    sp = Sampling(max_tokens=tokens)
    be.generate(prompts[:8], Sampling(max_tokens=4))                      # warm-up
    times, outs, calls = {"one call": [], f"pieces of {piece}": []}, {}, {}
    stable = True
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
            ids = [c[0].token_ids for c in res]
            stable &= outs.setdefault(arm, ids) == ids
            calls[arm] = n
    one, pieces = (statistics.median(v) for v in times.values())
    toks = sum(map(len, outs["one call"]))
    sched = getattr(be.llm.llm_engine.vllm_config, "scheduler_config", None)
    return dict(model=be.model_id, requests=len(prompts), piece=piece, repeats=repeats, max_tokens=tokens,
                generated_tokens=toks, engine_calls=calls, seconds=times, one_call_s=one, pieces_s=pieces,
                speedup=pieces / one, one_call_tok_s=toks / one, pieces_tok_s=toks / pieces,
                same_outputs=outs["one call"] == outs[f"pieces of {piece}"] and stable,
                max_num_seqs=getattr(sched, "max_num_seqs", None), load=list(os.getloadavg()))


def throughput(be, tokens: int, repeats: int, batches=BATCHES) -> dict:
    "Tokens/s at each batch (median of `repeats`, prefix cache reset before each run) and each batch's token ids."
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reasoners import tokens_per_s
    return dict(tokens_per_s(be, tokens, repeats, batches, before_each=be.llm.reset_prefix_cache), tokens=tokens,
                repeats=repeats)


def budget_forcing(be, repeats: int, quick: bool) -> dict:
    """benchmarks/run.py's generic `bench_budget_forcing` on this engine (benchmarks/budget_forcing.py builds
    transformers backends: it cannot run here). Its plain arm generates the mean per-row count of tokens: compare
    with the transformers section's `overhead vs mean` column."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run
    res = run.bench_budget_forcing(be, repeats=repeats, **run.SIZES["budget_forcing"][quick])
    return dict(res, source="benchmarks/run.py (bench_budget_forcing) in benchmarks/vllm_rounds.py",
                note="plain arm: one generation of the mean per-row token count (ignore_eos); prefix cache reset before each arm")


def measure(a) -> dict:
    be = open_engine(a.model)
    out = {}
    try:
        for what in a.what.split(","):
            t = time.time()
            try:
                if what == "rounds":
                    out[what] = rounds(be, a.requests, a.piece, a.repeats, a.tokens)
                elif what == "throughput":
                    out[what] = throughput(be, a.tokens, a.repeats, (1, 8) if a.quick else BATCHES)
                elif what == "budget_forcing":
                    out[what] = budget_forcing(be, a.repeats, a.quick)
                else:
                    raise ValueError(f"vllm_rounds.py --what: unknown item {what!r} (rounds, throughput, budget_forcing)")
            except Exception as e:
                traceback.print_exc()
                out[what] = {"error": f"{type(e).__name__}: {e}"}
            out[what]["seconds_total"] = time.time() - t
    finally:
        be.close()
    return out


def run_in_vllm_env(argv: list[str], timeout: int = 900) -> dict | None:
    "Run this script under `.venv-vllm/bin/python`; its RESULT, or None when that environment is missing."
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        return None
    # its own process group, so that a timeout also ends vLLM's engine-core and worker processes
    p = subprocess.Popen([str(py), __file__, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **VLLM_ENV}, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.communicate()
        raise RuntimeError(f"benchmarks/vllm_rounds.py {' '.join(argv)} under .venv-vllm: no result within {timeout} s "
                           f"(its processes were killed)") from None
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"benchmarks/vllm_rounds.py under .venv-vllm gave no RESULT (rc {p.returncode}): "
                           f"{err[-2000:]}")
    return json.loads(line[7:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reasoner-m"); ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--piece", type=int, default=64); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=48); ap.add_argument("--what", default="rounds")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the caller also passes --repeats 1)")
    a = ap.parse_args(argv)
    try:
        import vllm  # noqa: F401
    except ImportError:
        res = run_in_vllm_env(sys.argv[1:] if argv is None else argv)
        print("RESULT " + json.dumps(res)); return
    print("RESULT " + json.dumps(measure(a)))


if __name__ == "__main__":
    main()
