#!/usr/bin/env bash
# The CUDA check (`make gpu-check`, issue 13 item 7): what only a GPU host can show, in at most 8 minutes, offline,
# without vLLM. On a host where torch sees no CUDA device it says so and exits 0 (nothing to check).
#   1. cuda-bf16   HFBackend on the tiny random-weight Llama picks CUDA and bf16 by itself, and generates
#   2. backends    tests/test_backends.py with CUDA visible (its HFBackend fixtures run on CUDA in bf16)
#   3. notebook    the tts notebook end to end on its tiny profile (transformers on CUDA) via `reasonbook reproduce`
#   4. train       one SFT step on the tiny Llama with TrainSettings(precision="bf16"): bf16 weights on CUDA
# Each step is timed and capped (the caps shrink so that the whole run stays under GPU_CHECK_BUDGET_S); a summary
# table closes the run; the exit status is non-zero when any step failed or ran out of time.
#
# Knobs: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_BUDGET_S (default 480),
# GPU_CHECK_OUT (logs, the executed notebook, figures; default a new temporary folder), CUDA_VISIBLE_DEVICES
# (default 0: one GPU).
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
test -x "$PY" || PY="$(command -v python3)"
BUDGET="${GPU_CHECK_BUDGET_S:-480}"
T0=$(date +%s)
DEADLINE=$(( T0 + BUDGET ))
OUT="${GPU_CHECK_OUT:-$(mktemp -d -t reasonbook-gpu-check.XXXXXX)}"
mkdir -p "$OUT"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

if ! cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>"$OUT/torch.log"); then
    echo "gpu-check: cannot import torch with $PY:"; tail -5 "$OUT/torch.log"; exit 2
fi
if [ "$cuda" != 1 ]; then
    echo "gpu-check: no CUDA device: skipped (torch.cuda.is_available() is False for $PY)"
    exit 0
fi
"$PY" -c "import torch; print('gpu-check:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| bf16', torch.cuda.is_bf16_supported())"
echo "gpu-check: logs in $OUT, budget ${BUDGET} s"

NAMES=(); STATUS=(); SECS=()
# step NAME CAP_S COMMAND...: run COMMAND under `timeout`, at most CAP_S seconds and never past the deadline.
step() {
    local name=$1 cap=$2; shift 2
    local left=$(( DEADLINE - $(date +%s) ))
    (( left < cap )) && cap=$left
    NAMES+=("$name")
    if (( cap < 10 )); then
        STATUS+=("no time"); SECS+=(0); echo "== $name: skipped, ${left} s of the budget left"; return
    fi
    echo "== $name (at most ${cap} s)"
    local t=$(date +%s) rc
    timeout --kill-after=15 "$cap" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    SECS+=($(( $(date +%s) - t )))
    if (( rc == 0 )); then STATUS+=("ok"); tail -2 "$OUT/$name.log"
    elif (( rc == 124 || rc == 137 )); then STATUS+=("timeout"); echo "-- $name ran past ${cap} s; last lines:"; tail -20 "$OUT/$name.log"
    else STATUS+=("failed ($rc)"); echo "-- $name failed (exit $rc); last lines:"; tail -30 "$OUT/$name.log"
    fi
}

step cuda-bf16 60 "$PY" - <<'EOF'
import torch
from reasonbook.backends import HFBackend, Sampling, tiny_llama_path
b = HFBackend(tiny_llama_path(), progress=False)
dtype = next(b.model.parameters()).dtype
assert b.device.startswith("cuda") and next(b.model.parameters()).is_cuda, f"HFBackend chose {b.device}, not CUDA"
assert dtype == torch.bfloat16, f"HFBackend on CUDA loaded {dtype}, not bfloat16"
out = b.generate([b.chat("Count to five.")] * 4, Sampling(n=2, temperature=1.0, max_tokens=16, seed=0))
assert [len(o) for o in out] == [2] * 4 and all(c.num_tokens > 0 for o in out for c in o)
print(f"HFBackend on {b.device} in {dtype}: {sum(c.num_tokens for o in out for c in o)} tokens generated")
EOF

step backends 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_backends.py

step notebook 210 "$PY" -m reasonbook.cli reproduce --profile tiny \
    --only tts --out "$OUT/runs" --figures "$OUT/figures" --no-progress

step train 90 "$PY" - "$OUT/sft" <<'EOF'
import math, sys, torch
from reasonbook.backends import tiny_llama_path
from reasonbook.train import TrainSettings, sft
data = [{"prompt": f"What is {i} + {i}?", "completion": f" {2 * i}"} for i in range(8)]
res = sft(tiny_llama_path(), data, sys.argv[1], lr=1e-3, batch_size=4, max_steps=1, seed=0,
          settings=TrainSettings(precision="bf16"))
assert res.precision == "bf16", f"trained in {res.precision}, not bf16"
assert res.steps == 1 and res.losses and all(math.isfinite(l) for l in res.losses), (res.steps, res.losses)
print(f"1 SFT step in {res.precision} on {torch.cuda.get_device_name(0)}: loss {res.losses[-1]:.4f}, {res.seconds:.1f} s")
EOF

echo
echo "== gpu-check summary (total $(( $(date +%s) - T0 )) s of ${BUDGET} s; logs in $OUT)"
fail=0
for i in "${!NAMES[@]}"; do
    printf "  %-10s %-12s %5s s\n" "${NAMES[$i]}" "${STATUS[$i]}" "${SECS[$i]}"
    [ "${STATUS[$i]}" = ok ] || fail=1
done
exit $fail
