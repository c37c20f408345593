"""Jupyter-first reproductions of four papers on LLM reasoning: s1 budget forcing, compute-optimal test-time scaling, synthetic negatives, weak-cheap vs strong-expensive sampling

Modules:

- `reasonbook.backends`: One generation interface for every notebook: Hugging Face transformers (CPU or CUDA), vLLM and any OpenAI-compatible server (`reasonbook.serving`), and the embedded default model.
- `reasonbook.data`: One `Problem` schema; loaders for the benchmarks of the four papers (local JSONL/parquet or Hugging Face Hub); the generated arithmetic dataset that the embedded model runs on.
- `reasonbook.grading`: Final-answer extraction, answer normalisation, equivalence under a hard timeout, voting, and the sampling metrics (pass@k, cov@k, maj@k) used by every paper notebook.
- `reasonbook.prm`: One interface for step-level verifiers: `PRM.score(batch) -> one score per step`, bounded batching, adapters for the four scoring conventions used in the test-time-scaling literature, and two PRMs that run on a CPU.
- `reasonbook.train`: Thin, tested wrappers around TRL's `SFTTrainer` and `DPOTrainer` used by the paper notebooks (s1 SFT, synthetic SFT/RFT/DPO/per-step DPO, weak-vs-strong fine-tuning)."""

__version__ = "0.1.0"
