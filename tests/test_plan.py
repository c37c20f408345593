"reasonbook plan: the memory plan refuses a stage that cannot fit, with the stage, the model and the setting to change."
import json
import pytest
from reasonbook.cli import main

QWEN72B = dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
               intermediate_size=29568, vocab_size=152064, max_position_embeddings=32768)
GEMMA9B = dict(hidden_size=3584, num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8, head_dim=256,
               intermediate_size=14336, vocab_size=256000, tie_word_embeddings=True, max_position_embeddings=8192)
GEMMA27B = dict(hidden_size=4608, num_hidden_layers=46, num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                intermediate_size=36864, vocab_size=256000, tie_word_embeddings=True, max_position_embeddings=8192)


def _model(tmp_path, name, cfg):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


@pytest.fixture
def wcse_models(tmp_path):
    return ["-p", f"model=vllm:{_model(tmp_path, 'gemma-2-9b', GEMMA9B)}",
            "-p", f"se_model=vllm:{_model(tmp_path, 'gemma-2-27b', GEMMA27B)}",
            "-p", f"judge_model=vllm:{_model(tmp_path, 'Qwen2.5-72B-Instruct', QWEN72B)}",
            "-p", f"kd_student=vllm:{_model(tmp_path, 'gemma-7b', GEMMA9B)}"]


def test_plan_refuses_the_72b_judge_at_tp1_on_one_80gb_gpu(wcse_models, capsys):
    # full.yaml sets judge TP 4 and SE TP 2; force TP 1 (what the old profile did) to see the refusal
    rc = main(["plan", "--profile", "full", "--only", "wcse", "--gpus", "1", "--gpu-memory", "80",
               "-e", "judge.tensor_parallel_size=1", "-e", "se.tensor_parallel_size=1", "-e", "student.tensor_parallel_size=1",
               *wcse_models])
    err = capsys.readouterr().err
    assert rc == 2
    assert "stage 'judge', role 'judge'" in err and "Qwen2.5-72B-Instruct" in err and "cannot fit" in err
    assert "tensor_parallel_size=1" in err


def test_plan_passes_with_the_judge_on_four_gpus(wcse_models, capsys):
    rc = main(["plan", "--profile", "full", "--only", "wcse", "--gpus", "4", "--gpu-memory", "80",
               "-e", "judge.tensor_parallel_size=4", "-e", "judge.max_model_len=8192", *wcse_models])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "stage=judge, role=judge" in out and "tp=4" in out and "stage=SE sampling" in out


def test_plan_names_the_fix_when_a_larger_tp_fits(wcse_models, capsys):
    rc = main(["plan", "--profile", "full", "--only", "wcse", "--gpus", "8", "--gpu-memory", "80",
               "-e", "judge.tensor_parallel_size=1", "-e", "judge.max_model_len=8192", *wcse_models])
    assert rc == 2 and "set judge.tensor_parallel_size=2" in capsys.readouterr().err


def test_co_resident_fractions_over_one_are_refused(tmp_path, capsys):
    pol = _model(tmp_path, "policy", GEMMA9B)
    rc = main(["plan", "--profile", "full", "--only", "tts", "--gpus", "1", "-p", f"model=vllm:{pol}",
               "-p", f"search_prms=['{pol}']", "-e", "policy.gpu_memory_utilization=0.9"])
    assert rc == 2 and "add up to 1.80 > 1" in capsys.readouterr().err
