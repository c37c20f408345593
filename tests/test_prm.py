"""PRM adapters: shapes, the exact positions each convention scores, the reading rule, bounded batching."""
import tempfile

import pytest
import torch

from reasonbook.prm import (TINY_KINDS, LLMJudgePRM, QwenMathPRM, SkyworkPRM, load_prm, plan_batches, tiny_prm,
                            tiny_tokenizer)

torch.set_num_threads(2)
Q = "Tom has 3 apples and gets 4 more, then doubles them. How many?"
STEPS = ["3 + 4 = 7", "7 * 2 = 14\nso he has 14", "The answer is \\boxed{14}."]


@pytest.fixture(scope="module")
def prms():
    return {k: tiny_prm(k) for k in TINY_KINDS}


def _toks(prm, ids):
    return prm.tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_shapes(prms, kind):
    out = prms[kind].score([(Q, STEPS), (Q, STEPS[:2]), (Q, [])])
    assert [len(o) for o in out] == [3, 2, 0]
    assert all(0.0 < x < 1.0 for o in out for x in o)


def test_math_shepherd_positions(prms):
    p = prms["math-shepherd"]
    e = p.encode(Q, STEPS)
    assert len(e.positions) == 3
    tag_ids = p.tokenizer.encode(" ки", add_special_tokens=False)
    for k, pos in enumerate(e.positions):
        # the scored token is the (last token of the) tag, and the text up to it ends with step k + tag
        assert e.input_ids[pos] == tag_ids[-1]
        before = p.tokenizer.decode(e.input_ids[: pos + 1])
        assert before.endswith(STEPS[k].replace("\n", " ").strip() + " ки"), before
    assert e.input_ids[0] == p.tokenizer.bos_token_id
    # the tag inside a step's own text is not scored
    e2 = p.encode(Q, ["weird ки text", "3 + 4 = 7"])
    assert len(e2.positions) == 2


def test_math_shepherd_reading_rule(prms):
    """score = softmax over the '+'/'-' logits at the tag position, class '+' (from the full LM logits)."""
    p = prms["math-shepherd"]
    e = p.encode(Q, STEPS)
    logits = p.model(torch.tensor([e.input_ids])).logits[0]
    plus, minus = p.tokenizer.convert_tokens_to_ids(["+", "-"])
    want = [torch.softmax(logits[i, [plus, minus]], -1)[0].item() for i in e.positions]
    assert p.score([(Q, STEPS)])[0] == pytest.approx(want, abs=1e-5)


def test_rlhflow_positions(prms):
    p = prms["rlhflow"]
    e = p.encode(Q, STEPS)
    toks = _toks(p, e.input_ids)
    assert len(e.positions) == 3
    for k, pos in enumerate(e.positions):
        # the token after the scored position is the assistant's '+' of turn k ...
        assert toks[pos + 1] == "+"
        # ... preceded by the assistant header of the Llama-3 template
        head = p.tokenizer.decode(e.input_ids[: pos + 1])
        assert head.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"), head[-60:]
        # and turn k's user text is step k (the first turn is question + ' ' + step 1)
        user = head.rsplit("<|start_header_id|>user<|end_header_id|>\n\n", 1)[1]
        assert user.startswith((Q + " " + STEPS[0]) if k == 0 else STEPS[k])
    # a '+' inside a step is never mistaken for an answer: 3 answers only
    assert sum("+" in t for t in toks) > 3


def test_rlhflow_reading_rule(prms):
    p = prms["rlhflow"]
    e = p.encode(Q, STEPS)
    logits = p.model(torch.tensor([e.input_ids])).logits[0]
    plus, minus = p.tokenizer.convert_tokens_to_ids(["+", "-"])
    want = [torch.softmax(logits[i, [plus, minus]], -1)[0].item() for i in e.positions]
    assert p.score([(Q, STEPS)])[0] == pytest.approx(want, abs=1e-5)


def test_skywork_positions(prms):
    p = prms["skywork"]
    e = p.encode(Q, STEPS)
    nl = p.tokenizer.encode("\n", add_special_tokens=False)[-1]
    assert len(e.positions) == 3
    assert e.input_ids[0] == p.tokenizer.bos_token_id
    for k, pos in enumerate(e.positions):
        assert e.input_ids[pos] == nl
        assert p.tokenizer.decode(e.input_ids[:pos]).endswith(STEPS[k].replace("\n", " "))
    # value head + sigmoid at those positions
    h = p.model.model(input_ids=torch.tensor([e.input_ids])).last_hidden_state[0]
    want = torch.sigmoid(p.model.head(h[e.positions])).tolist()
    assert p.score([(Q, STEPS)])[0] == pytest.approx(want, abs=1e-5)


def test_qwen_math_prm_positions(prms):
    p = prms["qwen-math-prm"]
    e = p.encode(Q, STEPS)
    sep = p.tokenizer.convert_tokens_to_ids("<extra_0>")
    assert len(e.positions) == 3 and all(e.input_ids[i] == sep for i in e.positions)
    text = p.tokenizer.decode(e.input_ids)
    assert "<|im_start|>system\nPlease reason step by step" in text
    assistant = text.split("<|im_start|>assistant\n", 1)[1]
    assert assistant.startswith(STEPS[0] + "<extra_0>" + STEPS[1] + "<extra_0>")
    h = p.model.model(input_ids=torch.tensor([e.input_ids])).last_hidden_state[0]
    want = torch.softmax(p.model.head(h[e.positions]), -1)[:, 1].tolist()
    assert p.score([(Q, STEPS)])[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_bounded_batching_same_scores(kind):
    a, b = tiny_prm(kind, max_sequences=1), tiny_prm(kind, max_sequences=3, max_tokens=100_000)
    b.share_prefix = False                  # length-sorted batches only (shared prefixes: the next test)
    batch = [(Q, STEPS), (Q, STEPS[:1]), ("2 + 2?", ["2 + 2 = 4", "so 4"]), (Q, STEPS[:2])]
    sa, sb = a.score(batch), b.score(batch)
    for x, y in zip(sa, sb):
        assert x == pytest.approx(y, abs=1e-4)
    assert a.forward_passes == 4 and b.forward_passes == 2
    # tokens_scored counts real tokens (not padding): the same however the batches are packed
    assert a.tokens_scored == b.tokens_scored == sum(len(a.encode(q, s).input_ids) for q, s in batch if s)


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_shared_prefix_same_scores_fewer_tokens(kind):
    "Candidates sharing a question (and steps) run the shared prefix once per batch: same scores, fewer tokens run."
    shared, plain = tiny_prm(kind, max_sequences=16), tiny_prm(kind, max_sequences=16)
    plain.share_prefix = False
    long_q = Q + " Explain every step, and check the arithmetic of each step before going on."
    batch = ([(long_q, STEPS[:k] + [f"{j} + {k} = {j + k}"]) for k in range(3) for j in range(3)]
             + [("2 + 2?", ["2 + 2 = 4", "so 4"]), (long_q, [])])
    sa, sb = shared.score(batch), plain.score(batch)
    assert [len(x) for x in sa] == [len(s) for _, s in batch]
    for x, y in zip(sa, sb):
        assert x == pytest.approx(y, abs=1e-5)
    n_real = sum(len(plain.encode(q, s).input_ids) for q, s in batch if s)
    assert plain.tokens_scored == plain.tokens_run == shared.tokens_scored == n_real   # FLOP accounting: unchanged
    P = _lcp_all([shared.encode(long_q, s).input_ids for _, s in batch[:9]])
    assert shared.tokens_run <= n_real - 6 * P   # the question runs once per group (three: by the steps they share)
    assert shared.score([(long_q, STEPS)]) == plain.score([(long_q, STEPS)])   # one sequence: nothing to share


def _lcp_all(seqs):
    n = 0
    while all(len(s) > n and s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def test_plan_prefix_batches_bounds():
    from reasonbook.prm import plan_prefix_batches
    base = list(range(100, 140))
    seqs = [base + [j] * (5 + j) for j in range(6)] + [[1] * 50, [2] * 300, base[:20] + [9] * 10]
    groups = plan_prefix_batches(seqs, max_sequences=4, max_tokens=250)
    assert sorted(i for g, _ in groups for i in g) == list(range(len(seqs)))
    for g, p in groups:
        assert len(g) <= 4
        assert all(seqs[i][:p] == seqs[g[0]][:p] and len(seqs[i]) > p for i in g)
        assert len(g) == 1 or p + len(g) * (max(len(seqs[i]) for i in g) - p) <= 250
    assert any(p >= 40 for _, p in groups)                 # the six sharing 40 tokens are grouped by it
    assert all(p == 0 for g, p in groups if len(g) == 1)


def test_plan_batches_bounds():
    lengths = [10, 300, 40, 41, 42, 5, 7, 200]
    groups = plan_batches(lengths, max_sequences=3, max_tokens=250)
    assert sorted(sum(groups, [])) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 3
        assert len(g) == 1 or max(lengths[i] for i in g) * len(g) <= 250


@pytest.mark.parametrize("kind,cls", [("skywork", SkyworkPRM), ("qwen-math-prm", QwenMathPRM)])
def test_head_checkpoint_round_trip(kind, cls):
    p = tiny_prm(kind)
    with tempfile.TemporaryDirectory() as d:
        p.model.save_pretrained(d)
        p2 = cls.from_pretrained(d, tokenizer=p.tokenizer)
    assert p.score([(Q, STEPS)])[0] == pytest.approx(p2.score([(Q, STEPS)])[0], abs=1e-5)


def test_llm_judge_positions():
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = tiny_tokenizer("chatml")
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2))
    j = LLMJudgePRM(m, tok, name="tiny-judge")
    e = j.encode(Q, STEPS)
    assert [tok.decode(e.input_ids[p + 1]) for p in e.positions] == ["yes"] * 3
    logits = m(torch.tensor([e.input_ids])).logits[0]
    cand = j.good_ids + j.bad_ids
    want = [torch.softmax(logits[i, cand], -1)[: len(j.good_ids)].sum().item() for i in e.positions]
    assert j.score([(Q, STEPS)])[0] == pytest.approx(want, abs=1e-5)


def test_score_input_errors(prms):
    p = prms["skywork"]
    with pytest.raises(TypeError, match="steps must be a list"):
        p.score([(Q, "one string")])
    with pytest.raises(ValueError, match="cannot tell which PRM convention"):
        load_prm("someone/some-model")


# --- issue 13 (paper scale): PRMs loaded from folders, one at a time, over several GPUs; Math-Shepherd's labels

@pytest.mark.parametrize("kind", TINY_KINDS)
def test_tiny_prm_folder_spec_loads_through_the_family_loader(kind, tmp_path, monkeypatch):
    """`tiny-prm:<kind>` writes the tiny model in its family's checkpoint layout and loads it with the same
    from_pretrained as a real PRM folder: same adapter class, same scores as the in-memory model."""
    monkeypatch.setenv("REASONBOOK_CACHE", str(tmp_path))
    from reasonbook.prm import tiny_prm_folder
    folder = tiny_prm_folder(kind)
    assert folder.parent == tmp_path / "tiny-prm" and (folder / "config.json").exists()
    assert list(folder.glob("*.safetensors"))
    p, p2 = tiny_prm(kind), load_prm(f"tiny-prm:{kind}", device="cpu")
    assert type(p2) is type(p) and p2.name == f"tiny-prm:{kind}"
    assert p2.score([(Q, STEPS)])[0] == pytest.approx(p.score([(Q, STEPS)])[0], abs=1e-5)
    assert tiny_prm_folder(kind) == folder                       # written once


@pytest.mark.parametrize("kind", ["qwen-math-prm", "rlhflow"])
def test_device_map_loading_gives_the_same_scores(kind, tmp_path, monkeypatch):
    """T-15: a PRM too large for one GPU loads with device_map (accelerate); on CPU, device_map='cpu' must read the
    same positions and give the same scores as a plain load."""
    pytest.importorskip("accelerate")
    monkeypatch.setenv("REASONBOOK_CACHE", str(tmp_path))
    a = load_prm(f"tiny-prm:{kind}", device="cpu").score([(Q, STEPS)])
    b = load_prm(f"tiny-prm:{kind}", device_map="cpu").score([(Q, STEPS)])
    assert a[0] == pytest.approx(b[0], abs=1e-6)


def test_prm_close_frees_the_model():
    p = tiny_prm("rlhflow")
    p.close()
    assert p.model is None


class _SPTokenizer:
    "A SentencePiece-like vocabulary ('▁+' = 648, '▁-' = 387, as Mistral's) whose encode() returns `ids`."
    def __init__(self, ids): self.ids = ids
    def encode(self, s, add_special_tokens=False): return self.ids[s]
    def get_vocab(self): return {"+": 5, "-": 6, "\u2581+": 648, "\u2581-": 387}
    def convert_ids_to_tokens(self, i): return {v: k for k, v in self.get_vocab().items()}[i]


def test_math_shepherd_label_ids_refuse_the_wrong_plus():
    """T-14: the reference reads the '▁+'/'▁-' pieces (648, 387 on Mistral's tokenizer). A tokenizer whose
    encode('+') is the bare '+' although '▁+' exists, or is two tokens, is refused instead of scoring silently."""
    from reasonbook.prm import _shepherd_label_ids
    assert _shepherd_label_ids(_SPTokenizer({"+": [648], "-": [387]})) == [648, 387]
    with pytest.raises(ValueError, match="word-initial piece '▁\\+' \\(id 648\\)"):
        _shepherd_label_ids(_SPTokenizer({"+": [5], "-": [387]}))
    with pytest.raises(ValueError, match="is 2 tokens"):
        _shepherd_label_ids(_SPTokenizer({"+": [648, 5], "-": [387]}))
    # the adapter uses this lookup: a real folder's tokenizer goes through it at load time
    p = tiny_prm("math-shepherd")
    assert p.good_ids == [p.tokenizer.convert_tokens_to_ids("+")] and p.bad_ids == [p.tokenizer.convert_tokens_to_ids("-")]
