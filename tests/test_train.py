"""reasonbook.train: a 2-step SFT and a 2-step DPO run on a tiny random-weight Llama lower their loss."""
import importlib.util
import math
import sys
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




# ---- training settings (issue 13: bf16 weights, gradient checkpointing, LoRA, FSDP launchers, one place) ----

def test_default_settings_train_exactly_as_no_settings(tiny, tmp_path):
    "`TrainSettings()` is today's behaviour: the same losses as a call without settings (smoke caches stay valid)."
    a = train.sft(tiny, SFT_DATA, tmp_path / "a", lr=1e-2, batch_size=2, max_steps=2, seed=0)
    b = train.sft(tiny, SFT_DATA, tmp_path / "b", lr=1e-2, batch_size=2, max_steps=2, seed=0,
                  settings=train.TrainSettings())
    assert a.losses == b.losses
    assert (a.effective_batch, a.per_device_batch_size, a.gradient_accumulation_steps, a.processes) == (2, 2, 1, 1)
    assert a.precision == train.resolve_precision() == ("bf16-mixed" if train.bf16_available() else "fp32")


def test_sft_with_gradient_checkpointing_lowers_loss(tiny, tmp_path):
    s = train.TrainSettings(gradient_checkpointing=True, per_device_batch_size=1, gradient_accumulation_steps=2)
    m, tok = train.load_model_and_tokenizer(tiny)
    before = train.completion_nll(m, tok, SFT_DATA)
    res = train.sft(tiny, SFT_DATA, tmp_path / "gc", lr=1e-2, batch_size=8, max_steps=2, seed=0, settings=s)
    assert res.steps == 2 and res.losses[1] < res.losses[0], res.losses
    assert (res.per_device_batch_size, res.gradient_accumulation_steps, res.effective_batch) == (1, 2, 2)
    after = train.completion_nll(train.load_model_and_tokenizer(res.path)[0], tok, SFT_DATA)
    assert after < before - 0.1, (before, after)


def test_sft_and_dpo_with_lora_settings_lower_loss(tiny, tmp_path):
    s = train.TrainSettings(lora={"r": 8}, gradient_checkpointing=True)
    m, tok = train.load_model_and_tokenizer(tiny)
    res = train.sft(tiny, SFT_DATA, tmp_path / "lora", lr=1e-2, batch_size=2, max_steps=2, seed=0, settings=s)
    assert not (res.path / "adapter_config.json").exists() and (res.path / "model.safetensors").exists()
    assert res.losses[1] < res.losses[0]
    assert train.completion_nll(train.load_model_and_tokenizer(res.path)[0], tok, SFT_DATA) \
        < train.completion_nll(m, tok, SFT_DATA)
    d = train.dpo(tiny, PAIRS, tmp_path / "dpo_lora", beta=0.1, lr=1e-2, batch_size=2, max_steps=2, seed=0, settings=s)
    assert train.dpo_loss(train.load_model_and_tokenizer(d.path)[0], m, tok, PAIRS, beta=0.1) < math.log(2) - 0.001


def test_pure_bf16_loads_bf16_weights(tiny, tmp_path):
    res = train.sft(tiny, SFT_DATA, tmp_path / "bf16", lr=1e-2, batch_size=2, max_steps=2, seed=0,
                    settings={"precision": "bf16"})
    assert res.precision == "bf16" and len(res.losses) == 2 and all(math.isfinite(x) for x in res.losses)
    from safetensors import safe_open
    with safe_open(str(res.path / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


@pytest.mark.parametrize("kw, field", [
    ({"precision": "fp16"}, "precision"), ({"gradient_checkpointing": 1}, "gradient_checkpointing"),
    ({"lora": "r=8"}, "lora"), ({"lora": {"r": 0}}, "lora"), ({"per_device_batch_size": 0}, "per_device_batch_size"),
    ({"gradient_accumulation_steps": 1.5}, "gradient_accumulation_steps"), ({"max_length": -1}, "max_length"),
    ({"processes": 2}, "processes"), ({"launcher": "accelerate:deepspeed"}, "launcher"),
    ({"launcher": "accelerate:fsdp", "precision": "bf16"}, "precision")])
def test_settings_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=f"TrainSettings.{field}"):
        train.TrainSettings(**kw)


def test_unknown_settings_field_is_named():
    with pytest.raises(ValueError, match="precison"):
        train.as_settings({"precison": "bf16"})
    with pytest.raises(TypeError):
        train.as_settings("bf16")


def test_fsdp_launcher_resolves_to_accelerate_with_the_repo_config():
    cmd = train.launcher_command(train.TrainSettings(launcher="accelerate:fsdp", processes=8,
                                                     gradient_checkpointing=True))
    cfg = Path(cmd[cmd.index("--config_file") + 1])
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cfg == Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "fsdp.yaml" and cfg.exists()
    assert cmd[cmd.index("--num_processes") + 1] == "8"
    assert cmd[cmd.index("--fsdp_activation_checkpointing") + 1] == "true"   # FSDP's own, not the trainer's
    import yaml
    c = yaml.safe_load(cfg.read_text())
    assert c["distributed_type"] == "FSDP" and c["mixed_precision"] == "bf16"
    assert c["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert c["fsdp_config"]["fsdp_reshard_after_forward"] is True          # FULL_SHARD under FSDP2
    assert c["fsdp_config"]["fsdp_activation_checkpointing"] is False      # decided by TrainSettings
    ddp = train.launcher_command({"launcher": "accelerate:ddp"})
    assert ddp[ddp.index("--config_file") + 1].endswith("configs/accelerate/ddp.yaml")
    assert "--fsdp_activation_checkpointing" not in train.launcher_command(
        {"launcher": "accelerate:ddp", "gradient_checkpointing": True})


def test_explicit_launchers_keep_working():
    assert train.launcher_command({"launcher": "python"}) == [sys.executable]
    assert train.launcher_command({"launcher": "accelerate launch --config_file x.yaml"}) == \
        ["accelerate", "launch", "--config_file", "x.yaml"]
    assert train.launcher_command(None) == []


def test_train_memory_gemma2_27b():
    "fp32 AdamW: 16 B/param, ~435 GB on one GPU: no. bf16 FSDP over 8 GPUs: ~54 GB each: yes. LoRA bf16 on one: yes."
    GB, P = 1e9, 27.2e9
    fp32 = train.train_memory(P, {"precision": "fp32"}, gpus=1)
    assert fp32["bytes_per_param"] == 16 and fp32["total"] > 400 * GB
    fsdp = train.train_memory(P, {"launcher": "accelerate:fsdp"}, gpus=8)
    assert fsdp["sharded_over"] == 8 and 50 * GB < fsdp["total"] < 80 * GB
    assert train.train_memory(P, {"precision": "bf16"})["bytes_per_param"] == 8
    assert train.train_memory(P, {"launcher": "accelerate:ddp"}, gpus=8)["total"] > 80 * GB   # replicated
    lora = train.train_memory(P, {"lora": {"r": 16}}, trainable=0.005 * P)
    assert lora["total"] < 60 * GB and lora["optimizer"] == int(8 * 0.005 * P)
    with pytest.raises(ValueError, match="gpus"):
        train.train_memory(P, None, gpus=0)


def test_training_environment_changes_with_weight_settings():
    base = train.training_environment()
    if not torch.cuda.is_available():
        assert "settings" not in base          # defaults on a CPU: the cache keys of today's models do not move
        assert train.training_environment({"gradient_checkpointing": True}) == base
    envs = [train.training_environment(s) for s in
            ({"lora": {"r": 8}}, {"lora": {"r": 16}}, {"per_device_batch_size": 1}, {"precision": "fp32"},
             {"launcher": "accelerate:fsdp"}, {"max_length": 4096}, {"gradient_accumulation_steps": 4})]
    keys = [repr(sorted(e.items())) for e in [base] + envs]
    assert len(set(keys)) == len(keys)


def test_launch_passes_settings_and_records_the_batch(tiny, tmp_path):
    res = train.launch("sft", tiny, SFT_DATA, tmp_path / "cli", launcher="python", lr=1e-2, batch_size=2,
                       max_steps=2, seed=0, settings={"gradient_accumulation_steps": 2, "per_device_batch_size": 1})
    assert (res.per_device_batch_size, res.gradient_accumulation_steps, res.processes, res.effective_batch) == \
        (1, 2, 1, 2)
    import json
    d = json.loads((res.path / "train_result.json").read_text())
    assert d["effective_batch"] == 2 and d["steps"] == 2 and d["precision"] == train.resolve_precision()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="needs accelerate")
def test_accelerate_launch_single_process_one_step(tiny, tmp_path):
    "`accelerate launch --config_file configs/accelerate/single_gpu.yaml -m reasonbook.train sft` (CPU here): ~30 s."
    res = train.launch("sft", tiny, SFT_DATA, tmp_path / "acc", lr=1e-2, batch_size=2, max_steps=1, seed=0,
                       settings={"launcher": "accelerate:single_gpu"})
    inproc = train.sft(tiny, SFT_DATA, tmp_path / "inproc", lr=1e-2, batch_size=2, max_steps=1, seed=0)
    assert res.steps == 1 and res.processes == 1 and (res.path / "model.safetensors").exists()
    assert abs(res.losses[0] - inproc.losses[0]) < 1e-4
