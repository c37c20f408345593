"""reasonbook.train: a 2-step SFT and a 2-step DPO run on a tiny random-weight Llama lower their loss."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from reasonbook import train


@pytest.fixture(scope="module")
def tiny() -> Path:
    "The 2-layer random-weight Llama with the SmolLM2 tokenizer (reasonbook.testing.tiny_llama_path)."
    torch.set_num_threads(2)
    from reasonbook.testing import tiny_llama_path
    return tiny_llama_path()


SFT_DATA = [{"prompt": "Q: What is 2 + 3?\nA:", "completion": " 2 + 3 = 5. The answer is 5."},
            {"prompt": "Q: What is 4 + 4?\nA:", "completion": " 4 + 4 = 8. The answer is 8."}]
PAIRS = [{"prompt": "Q: What is 2 + 3?\nA:", "chosen": " 2 + 3 = 5.", "rejected": " 2 + 3 = 6."},
         {"prompt": "Q: What is 4 + 4?\nA:", "chosen": " 4 + 4 = 8.", "rejected": " 4 + 4 = 9 so",
          "rejected_is_prefix": True}]


def test_sft_two_steps_lower_completion_loss(tiny, tmp_path):
    m, tok = train.load_model_and_tokenizer(tiny)
    before = train.completion_nll(m, tok, SFT_DATA)
    res = train.sft(tiny, SFT_DATA, tmp_path / "sft", lr=1e-2, batch_size=2, max_steps=2, seed=0)
    assert res.steps == 2 and len(res.losses) == 2 and res.seconds > 0
    assert (res.path / "config.json").exists() and (res.path / "tokenizer.json").exists()
    m2, _ = train.load_model_and_tokenizer(res.path)
    after = train.completion_nll(m2, tok, SFT_DATA)
    assert after < before - 0.1, (before, after)
    # TRL's own logged loss on the same batch (the whole data set is one batch) agrees in direction
    assert res.losses[1] < res.losses[0]
    # the logged first-step loss is the completion-only NLL of the untrained model (prompt tokens masked out;
    # TRL adds an EOS to each completion, so the numbers are close, not equal)
    assert abs(res.losses[0] - before) < 0.5


def test_dpo_two_steps_lower_dpo_loss(tiny, tmp_path):
    m, tok = train.load_model_and_tokenizer(tiny)
    start = train.dpo_loss(m, m, tok, PAIRS, beta=0.1)
    assert abs(start - math.log(2)) < 1e-6  # policy == reference
    res = train.dpo(tiny, PAIRS, tmp_path / "dpo", beta=0.1, lr=1e-2, batch_size=2, max_steps=2, seed=0)
    assert res.steps == 2 and len(res.losses) == 2
    assert abs(res.losses[0] - math.log(2)) < 1e-3  # reference = the starting policy
    m2, _ = train.load_model_and_tokenizer(res.path)
    after = train.dpo_loss(m2, m, tok, PAIRS, beta=0.1)
    assert after < math.log(2) - 0.01, after


def test_dpo_rejected_prefix_has_no_eos(tiny, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig
    m, tok = train.load_model_and_tokenizer(tiny)
    rows = [{**p, "rejected_is_prefix": bool(p.get("rejected_is_prefix", False))} for p in PAIRS]
    args = DPOConfig(**train._common_args(tmp_path / "x", 1, 1e-3, 2, 1, 0, {}))
    tr = train._dpo_trainer_cls()(model=m, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    ds = tr.train_dataset
    eos = tok.eos_token_id
    assert ds[0]["rejected_ids"][-1] == eos and ds[0]["chosen_ids"][-1] == eos       # a full rejected answer ends
    assert ds[1]["rejected_ids"][-1] != eos and ds[1]["chosen_ids"][-1] == eos       # a rejected prefix does not


def test_bad_rows_raise_clear_errors(tiny, tmp_path):
    with pytest.raises(ValueError, match="row 0 lacks"):
        train.sft(tiny, [{"prompt": "x"}], tmp_path / "a")
    with pytest.raises(ValueError, match="empty"):
        train.dpo(tiny, [], tmp_path / "b")


def test_launch_runs_the_command_line_in_a_subprocess(tiny, tmp_path):
    "The path used with `accelerate launch`: rows to JSONL, `python -m reasonbook.train sft ...`, result read back."
    res = train.launch("sft", tiny, SFT_DATA, tmp_path / "cli", launcher="python", lr=1e-2, batch_size=2,
                       max_steps=2, seed=0)
    assert res.steps == 2 and len(res.losses) == 2 and (res.path / "train_data.jsonl").exists()
    m, tok = train.load_model_and_tokenizer(tiny)
    m2, _ = train.load_model_and_tokenizer(res.path)
    assert train.completion_nll(m2, tok, SFT_DATA) < train.completion_nll(m, tok, SFT_DATA)
    with pytest.raises(ValueError, match="method"):
        train.launch("ppo", tiny, SFT_DATA, tmp_path / "x")


def test_compact_cpu_logprobs_gives_the_same_loss(tiny):
    "TRL's compact (labelled positions only) LM-head path, switched on for the CPU, scores exactly as the full path."
    from trl.trainer.utils import add_fused_lm_head
    import trl.trainer.utils as U
    m, _ = train.load_model_and_tokenizer(tiny)
    add_fused_lm_head(m)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, m.config.vocab_size, (3, 16), generator=g)
    labels = ids.clone(); labels[:, :9] = -100; labels[2, 12:] = -100
    att = torch.ones_like(ids); att[2, 12:] = 0
    with torch.no_grad():
        full = m(input_ids=ids, attention_mask=att, labels=labels, fused_lm_head=True)
        with train.compact_cpu_logprobs():
            assert U._use_triton(torch.device("cpu"))
            comp = m(input_ids=ids, attention_mask=att, labels=labels, fused_lm_head=True)
    assert not U._use_triton(torch.device("cpu"))
    assert torch.allclose(full.loss, comp.loss, atol=1e-6)
    assert torch.allclose(full.log_probs, comp.log_probs, atol=1e-6)
    assert (comp.log_probs[labels[:, 1:] == -100] == 0).all()   # shifted: position t scores label t+1


