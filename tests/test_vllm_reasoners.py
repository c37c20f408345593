"""The vLLM tier on reasonbook's own reasoners: a shipped reasoner loads unchanged in vLLM (`vllm:` spec, the same
folder transformers loads), and greedy decoding gives the same tokens as `HFBackend`, token for token.

Run by `make test-vllm` (scripts/test_vllm.sh, in .venv-vllm); deselected elsewhere (pyproject's `-m 'not vllm'`).
The engine runs in float32 like `HFBackend` on CPU, so greedy tokens can be compared exactly."""
import pytest

from reasonbook.backends import HFBackend, Sampling, load_backend
from reasonbook.reasoners import chain_dataset, reasoner_path

pytestmark = pytest.mark.vllm

NAME = "reasoner-m"
ENGINE_KWARGS = dict(enforce_eager=True, max_model_len=512, dtype="float32")


@pytest.fixture(scope="module")
def vb():
    b = load_backend(f"vllm:{reasoner_path(NAME)}", **ENGINE_KWARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def hf():
    return HFBackend(reasoner_path(NAME), progress=False)


def _first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_engine_loads_the_shipped_folder(vb, hf):
    assert vb.num_parameters == hf.num_parameters > 100_000
    assert vb.eos_token_ids == hf.eos_token_ids == [hf.token_id("<|im_end|>")]
    assert vb.chat("47+8-3") == hf.chat("47+8-3")
    assert vb.encode("47+8=55\n\nWait, 47+8=55") == hf.encode("47+8=55\n\nWait, 47+8=55")


def test_greedy_matches_transformers_token_for_token(vb, hf):
    probs = [p for lv in (1, 3, 5) for p in chain_dataset(4, lv, seed=99)]
    ps = [hf.chat(p.question) for p in probs]
    s = Sampling(max_tokens=96)
    v, h = vb.generate(ps, s), hf.generate(ps, s)
    for a, b in zip(v, h):
        a, b = a[0], b[0]
        assert a.token_ids == b.token_ids, f"vLLM and transformers differ at token {_first_diff(a.token_ids, b.token_ids)}"
        assert (a.text, a.finish_reason) == (b.text, b.finish_reason)
    assert sum(c[0].finish_reason == "stop" for c in v) >= len(v) // 2       # stops at <|im_end|>
