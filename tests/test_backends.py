"Unit tests of the generation interface on a tiny random-weight Llama, and an integration test on SmolLM2."
import pytest, torch
from reasonbook.testing import ScriptedBackend
from reasonbook.backends import (HFBackend, Sampling, Completion, load_backend, ModelNotFoundError,
                                 sample_seed, embedded_model_path)


def test_greedy_is_deterministic_and_bounded(tiny):
    p = tiny.chat("Count to five.")
    a = tiny.generate([p], Sampling(max_tokens=9))[0][0]
    b = tiny.generate([p], Sampling(max_tokens=9))[0][0]
    assert a.token_ids == b.token_ids and a.num_tokens <= 9
    assert a.finish_reason == ("length" if a.num_tokens == 9 else "stop")


def test_samples_do_not_depend_on_batch(tiny):
    ps = [tiny.chat(f"What is {i} + {i}?") for i in range(5)]
    s = Sampling(n=2, temperature=1.0, max_tokens=8, seed=11)
    together = tiny.generate(ps, s)
    alone = [tiny.generate([p], s)[0] for p in ps]
    assert [[c.token_ids for c in o] for o in together] == [[c.token_ids for c in o] for o in alone]
    other_seed = tiny.generate(ps[:1], Sampling(n=2, temperature=1.0, max_tokens=8, seed=12))[0]
    assert [c.token_ids for c in other_seed] != [c.token_ids for c in together[0]]


def test_token_id_prompts_equal_text_prompts(tiny):
    p = tiny.chat("Hi")
    s = Sampling(max_tokens=6)
    assert tiny.generate([p], s)[0][0].token_ids == tiny.generate([tiny.encode(p)], s)[0][0].token_ids


def test_stop_token_ids_min_tokens_and_reason(tiny):
    p = tiny.chat("Say something.")
    free = tiny.generate([p], Sampling(max_tokens=30, temperature=1.0, seed=3, ignore_eos=True))[0][0]
    stop_tok = free.token_ids[4]   # a token the model will emit at position 4 under this seed
    c = tiny.generate([p], Sampling(max_tokens=30, temperature=1.0, seed=3, ignore_eos=True,
                                    stop_token_ids=(stop_tok,)))[0][0]
    first = free.token_ids.index(stop_tok)
    assert c.finish_reason == "stop" and c.stop_reason == stop_tok and c.num_tokens == first + 1
    m = tiny.generate([p], Sampling(max_tokens=30, temperature=1.0, seed=3, ignore_eos=True, min_tokens=first + 2,
                                    stop_token_ids=(stop_tok,)))[0][0]
    assert stop_tok not in m.token_ids[:first + 2]


def test_stop_strings(tiny):
    p = tiny.chat("Write.")
    s = dict(max_tokens=20, temperature=1.0, seed=1, ignore_eos=True)
    free = tiny.generate([p], Sampling(**s))[0][0]
    word = free.text[len(free.text) // 2: len(free.text) // 2 + 3]   # a stop string the model will produce
    assert len(word) == 3, free.text
    c = tiny.generate([p], Sampling(**s, stop=(word,)))[0][0]
    assert c.finish_reason == "stop" and c.stop_reason == word and word not in c.text
    assert free.text.startswith(c.text) and len(c.text) == free.text.index(word)
    k = tiny.generate([p], Sampling(**s, stop=(word,), include_stop_str_in_output=True))[0][0]
    assert k.text == free.text[:free.text.index(word) + 3]


def test_prefix_cache_reuse_gives_same_tokens(tiny_path):
    a = HFBackend(tiny_path, progress=False)
    b = HFBackend(tiny_path, progress=False, prefix_cache_tokens=0)
    ps = [a.chat(f"Problem {i}") for i in range(3)]
    first = a.generate(ps, Sampling(max_tokens=10))
    cont = [a.encode(p) + o[0].token_ids + a.encode("Wait") for p, o in zip(ps, first)]
    before = a.stats["prefill_tokens"]
    ra = a.generate(cont, Sampling(max_tokens=10))
    assert a.stats["prefill_tokens"] - before < sum(map(len, cont)) / 3
    rb = b.generate(cont, Sampling(max_tokens=10))
    assert [o[0].token_ids for o in ra] == [o[0].token_ids for o in rb]


def test_bad_inputs_have_clear_errors(tiny):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_backend("/no/such/model/dir")
    with pytest.raises(TypeError, match="list of prompts"):
        tiny.generate("a prompt", Sampling())
    with pytest.raises(ValueError, match="empty prompt"):
        tiny.generate([""], Sampling())
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=2)


def test_scripted_backend():
    sb = ScriptedBackend(["a b c d", "x\n\ny"])
    out = sb.generate(["p"], Sampling(n=2, max_tokens=3, stop=("\n\n",)))
    assert out[0][0].finish_reason == "length" and out[0][1].text == "x" and out[0][1].stop_reason == "\n\n"


@pytest.mark.slow
def test_embedded_smollm2_generates():
    be = load_backend("embedded")
    assert be.model_id == "SmolLM2-135M-Instruct" and 100e6 < be.num_parameters < 200e6
    out = be.generate([be.chat("What is 2 + 3? Answer with a number.")], Sampling(max_tokens=16))[0][0]
    assert out.num_tokens > 0 and out.text.strip()
    assert be.token_id("<|im_start|>") != be.token_id("<|im_end|>")


# --- chained generation (budget forcing in one decode loop) ---------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_chain_equals_calls_one_after_another(tiny_path, temperature):
    "Continuations (appended tokens, a rewind, another stop set, length and min_tokens) equal separate generate calls."
    a = HFBackend(tiny_path, progress=False)
    b = HFBackend(tiny_path, progress=False, prefix_cache_tokens=0)
    stop = a.encode("\n")[0]
    sps = [Sampling(temperature=temperature, max_tokens=n, seed=2, stop_token_ids=st, min_tokens=m)
           for n, st, m in ((7, (stop,), 0), (5, (), 1), (9, (stop,), 0))]

    def step_fn(ids, c, step):
        if step == 0: return ids + c.token_ids + a.encode(" Wait")        # continue after the completion
        if step == 1: return ids + c.token_ids[:-3] + a.encode(" So")     # rewind three tokens
    starts = [a.encode(a.chat(f"What is {i} * 3?" + " Think." * i)) for i in range(4)]
    steps, cur, seen = [0] * 4, [list(s) for s in starts], [[] for _ in range(4)]

    def then(i, c):
        seen[i].append(c.token_ids)
        nxt = step_fn(cur[i], c, steps[i]); steps[i] += 1
        if nxt is None: return None
        cur[i] = nxt
        return nxt, sps[steps[i]]
    before = a.stats["generated_tokens"]
    a.generate_chained(starts, [sps[0]] * 4, then)
    ref = []
    for s in starts:     # the same chain, one call per request, each with its own sampling
        ids, outs = list(s), []
        for step in range(3):
            c = b.generate([ids], sps[step])[0][0]; outs.append(c.token_ids)
            ids = step_fn(ids, c, step)
            if ids is None: break
        ref.append(outs)
    assert seen == ref
    assert a.stats["generated_tokens"] - before == sum(len(t) for o in ref for t in o)


def test_chain_rejects_a_second_temperature(tiny):
    ids = [tiny.encode("Hello")]
    with pytest.raises(ValueError, match="temperature"):
        tiny.generate_chained(ids, [Sampling(max_tokens=2)], lambda i, c: (ids[0] + [1], Sampling(temperature=1.0)))
    with pytest.raises(ValueError, match="empty prompt"):
        tiny.generate_chained([[]], [Sampling(max_tokens=2)], lambda i, c: None)
