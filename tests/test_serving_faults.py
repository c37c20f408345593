"OpenAIBackend over several servers: requests spread, transient failures retried elsewhere, a failed request loses only itself."
import pytest
from reasonbook.backends import PartialGenerationError, Sampling
from reasonbook.serving import OpenAIBackend, serve_backend
from reasonbook.store import CachedBackend, RunStore
from reasonbook.testing import ScriptedBackend


class _Dying(ScriptedBackend):
    "Answers `alive` requests, then every request drops the connection (a server killed mid-run)."
    def __init__(self, alive: int, **kw):
        super().__init__(lambda p, j: f"answer to {p}", **kw)
        self.alive, self.served = alive, 0

    def generate_samples(self, requests, sampling, desc=None):
        self.served += 1
        if self.served > self.alive: raise ConnectionResetError("the server process is gone")
        return super().generate_samples(requests, sampling, desc)


def test_requests_spread_over_servers_and_survive_one_dying():
    a, b = ScriptedBackend(lambda p, j: f"answer to {p}", model_id="m"), _Dying(alive=2, model_id="m")
    with serve_backend(a, "m") as sa, serve_backend(b, "m") as sb:
        ob = OpenAIBackend([sa.base_url, sb.base_url], "m", tokenizer=a.tokenizer, backoff=0.01, concurrency=4)
        prompts = [f"q{i}" for i in range(12)]
        out = ob.generate(prompts, Sampling(temperature=1.0, seed=0, max_tokens=8))
    assert [o[0].text for o in out] == [f"answer to q{i}" for i in range(12)]
    assert b.served > 2 and len(a.calls) >= 6          # both servers got work; B died after 2 and A took the rest
    assert ob.stats["retries"] >= 1 and ob.stats["failed"] == 0


def test_a_failed_request_loses_only_itself(tmp_path):
    bad = {"q1"}
    def answer(p, j):
        if p in bad: raise RuntimeError("this request kills the worker")
        return f"answer to {p}"
    srv_backend = ScriptedBackend(answer, model_id="m")
    with serve_backend(srv_backend, "m") as s:
        ob = OpenAIBackend(s.base_url, "m", tokenizer=srv_backend.tokenizer, retries=1, backoff=0.01)
        cb = CachedBackend(ob, RunStore(tmp_path / "store"))
        sp = Sampling(temperature=1.0, seed=0, max_tokens=8)
        with pytest.raises(PartialGenerationError, match="1 of 3 requests"):
            cb.generate(["q0", "q1", "q2"], sp)
        assert len(RunStore(tmp_path / "store")) == 2      # the two that finished are stored
        bad.clear()
        cb2 = CachedBackend(ob, RunStore(tmp_path / "store"))
        out = cb2.generate(["q0", "q1", "q2"], sp)
    assert (cb2.hits, cb2.misses) == (2, 1)                # the rerun regenerates only the failed request
    assert [o[0].text for o in out] == ["answer to q0", "answer to q1", "answer to q2"]


def test_refused_request_is_not_retried():
    srv_backend = ScriptedBackend(["x"], model_id="m")
    with serve_backend(srv_backend, "m") as s:
        ob = OpenAIBackend(s.base_url, "m", tokenizer=srv_backend.tokenizer, backoff=0.01)
        ob.model = "not-served"                             # every request is answered HTTP 404
        with pytest.raises(PartialGenerationError, match="HTTP 404"):
            ob.generate(["q"], Sampling(temperature=1.0, seed=0))
    assert ob.stats["retries"] == 0


def test_every_server_must_serve_the_model():
    a = ScriptedBackend(["x"], model_id="m")
    with serve_backend(a, "m") as sa, serve_backend(a, "other") as sb:
        with pytest.raises(ValueError, match=f"{sb.base_url} does not serve 'm'"):
            OpenAIBackend([sa.base_url, sb.base_url], "m", tokenizer=a.tokenizer)
