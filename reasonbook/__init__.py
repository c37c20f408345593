"""Jupyter-first reproductions of four papers on LLM reasoning: s1 budget forcing, compute-optimal test-time scaling, synthetic negatives, weak-cheap vs strong-expensive sampling

Modules:

- `reasonbook.backends`: One generation interface for every notebook: Hugging Face transformers (CPU or CUDA), vLLM and any OpenAI-compatible server (`reasonbook.serving`), and the embedded default model.
- `reasonbook.data`: One `Problem` schema; loaders for the benchmarks of the four papers (local JSONL/parquet or Hugging Face Hub); the generated arithmetic dataset that the embedded model runs on.
- `reasonbook.grading`: Final-answer extraction, answer normalisation, equivalence under a hard timeout, voting, and the sampling metrics (pass@k, cov@k, maj@k) used by every paper notebook.
- `reasonbook.prm`: One interface for step-level verifiers: `PRM.score(batch) -> one score per step`, bounded batching, adapters for the four scoring conventions used in the test-time-scaling literature, and two PRMs that run on a CPU.
- `reasonbook.s1`: Muennighoff et al., 2025 ([arXiv 2501.19393](https://arxiv.org/abs/2501.19393)): fine-tune a model on 1,000 hand-picked reasoning traces (s1K) and control how long it thinks at test time by **budget forcing** — cut the thinking at a token cap, or suppress the end-of-thinking delimiter and append "Wait" to make it think longer. More thinking tokens give higher accuracy (sequential scaling), and budget forcing controls the length better than prompting for it.
- `reasonbook.serving`: The same `Backend` interface on vLLM (`VLLMBackend`, the offline engine) and on any OpenAI-compatible completions server (`OpenAIBackend`), plus the helpers that start and stop such servers.
- `reasonbook.synthetic`: Setlur, Garg, Geng, Garg, Smith, Kumar (2024), arXiv 2406.14532 — synthetic positives (SFT, RFT), synthetic negatives (standard DPO) and **per-step DPO** with Monte-Carlo advantages, plus the data-scaling laws.
- `reasonbook.train`: Thin, tested wrappers around TRL's `SFTTrainer` and `DPOTrainer` used by the paper notebooks (s1 SFT, synthetic SFT/RFT/DPO/per-step DPO, weak-vs-strong fine-tuning).
- `reasonbook.tts`: Liu et al., 2025, *Can 1B LLM Surpass 405B LLM? Rethinking Compute-Optimal Test-Time Scaling* (arXiv 2502.06703), with the Hugging Face "search and learn" study as a second reference."""

__version__ = "0.1.0"
