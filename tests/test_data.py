"Tests of reasonbook.data: the Problem schema, benchmark loaders and their errors, the arithmetic dataset."
import json
import re
from pathlib import Path

import pytest

from reasonbook import data
from reasonbook.data import (ARITHMETIC_LEVELS, LETTERS, BENCHMARKS, DataError, Problem, arithmetic_dataset,
                             format_question, load_benchmark, split_steps)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "math500.jsonl").is_file(),
                                  reason=f"benchmark copies not found at {SHARED_DATA} (CI clones shared/ beside the repo)")


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    "No test may reach the Hub unless it installs its own fake; REASONBOOK_DATA_DIR must not leak in."
    import datasets

    def refuse(*a, **k):
        raise AssertionError(f"unexpected Hub access: load_dataset{a}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.delenv("REASONBOOK_DATA_DIR", raising=False)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- real benchmark copies
@needs_shared
@pytest.mark.parametrize("name,split,n,first_answer", [("math500", None, 500, r"\left( 3, \frac{\pi}{2} \right)"),
                                                       ("aime24", None, 30, "204"), ("amc23", None, 40, "27"),
                                                       ("gsm8k", "test", 1319, "18"), ("gsm8k", "train", 7473, "72")])
def test_real_benchmarks_by_name_and_path(name, split, n, first_answer):
    probs = load_benchmark(name, split=split, data_dir=SHARED_DATA)
    assert len(probs) == n
    assert probs[0].answer == first_answer
    assert all(p.question and p.answer and isinstance(p.answer, str) for p in probs)
    assert len({p.id for p in probs}) == n
    fname = f"{name}_{split}.jsonl" if split else f"{name}.jsonl"
    assert load_benchmark(SHARED_DATA / fname, limit=3) == probs[:3]


@needs_shared
def test_real_field_mapping():
    m = load_benchmark("math500", data_dir=SHARED_DATA)
    assert {p.level for p in m} == {1, 2, 3, 4, 5}
    assert m[0].subject == "Precalculus" and m[0].id == "test/precalculus/807.json" and m[0].solution
    amc = load_benchmark(SHARED_DATA / "amc23.jsonl")
    assert all(not re.fullmatch(r"-?\d+\.0", p.answer) for p in amc)  # 27.0 -> 27
    assert amc[0].meta["url"].startswith("https://")
    g = load_benchmark("gsm8k", split="test", data_dir=SHARED_DATA, limit=50)
    assert len(g) == 50
    assert all("####" not in p.solution and p.answer.lstrip("-").isdigit() for p in g)
    assert g[0].solution.endswith("$<<9*2=18>>18 every day at the farmer\u2019s market.")
    assert g[0].id == "gsm8k_test-0"
    assert load_benchmark("gsm8k", split="train", data_dir=SHARED_DATA, limit=1)[0].id == "gsm8k_train-0"


# ---------------------------------------------------------------- errors name file and line
def test_bad_json_names_file_and_line(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "a", "answer": "1"}, {"problem": "b", "answer": "2"},
                                          '{"problem": "c", "answer": '])
    with pytest.raises(DataError, match=re.escape(f"{f}:3: invalid JSON")):
        load_benchmark(f)
    assert len(load_benchmark(f, limit=2)) == 2  # the bad line is never read


def test_missing_field_names_file_line_and_field(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "a", "answer": "1"}, {"problem": "b", "note": "no answer"}])
    with pytest.raises(DataError, match=re.escape(f"{f}:2: missing field 'answer'")):
        load_benchmark(f)
    f2 = write_jsonl(tmp_path / "gsm8k_x.jsonl", [{"question": "q", "answer": "1 + 1 = 2\n#### 2"},
                                                  {"question": "q2", "answer": "no final answer"}])
    with pytest.raises(DataError, match=re.escape(f"{f2}:2: GSM8K answer has no '#### N'")):
        load_benchmark(f2)
    f3 = write_jsonl(tmp_path / "list.jsonl", [[1, 2]])
    with pytest.raises(DataError, match=re.escape(f"{f3}:1: expected a JSON object")):
        load_benchmark(f3)


def test_non_utf8_file(tmp_path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes(b'{"problem": "ok", "answer": "1"}\n{"problem": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(DataError, match=re.escape(f"{f}:2: not valid UTF-8")):
        load_benchmark(f)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_benchmark(tmp_path / "absent.jsonl")  # a path: never sent to the Hub (the fixture would raise)
    with pytest.raises(DataError, match="known benchmark"):
        load_benchmark("not a benchmark")
    with pytest.raises(DataError, match="unknown split"):
        load_benchmark("gsm8k", split="validation")


# ---------------------------------------------------------------- other formats and layouts
def test_parquet_and_json_list(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [{"problem": "1+1?", "answer": 2.0, "level": "Level 1"}, {"problem": "2+2?", "answer": 4.0, "level": "Level 2"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    probs = load_benchmark(tmp_path / "t.parquet")
    assert [(p.answer, p.level) for p in probs] == [("2", 1), ("4", 2)]
    (tmp_path / "t.json").write_text(json.dumps(rows))
    assert load_benchmark(tmp_path / "t.json") == [Problem(**{**p.to_dict(), "source": "t"}) for p in probs]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: cannot read as parquet"):
        load_benchmark(tmp_path / "bad.parquet")


def gpqa_rows(n=8):
    return [{"Question": f"Question {i}?", "Correct Answer": f"right {i}", "Incorrect Answer 1": f"w1 {i}",
             "Incorrect Answer 2": f"w2 {i}", "Incorrect Answer 3": f"w3 {i}", "Record ID": f"rec{i}",
             "Explanation": "because", "Subdomain": "Physics"} for i in range(n)]


def test_gpqa_shuffle_is_seeded_and_answer_letter_points_at_correct(tmp_path):
    f = write_jsonl(tmp_path / "gpqa_diamond.jsonl", gpqa_rows())
    a, b, c = load_benchmark(f, seed=0), load_benchmark(f, seed=0), load_benchmark(f, seed=1)
    assert a == b
    assert [p.choices for p in a] != [p.choices for p in c]
    for p in a + c:
        assert p.choices[LETTERS.index(p.answer)] == f"right {p.id[3:]}"
        assert p.subject == "Physics" and p.solution == "because"
    assert len({p.answer for p in a}) > 1  # the correct option is not always in the same place
    assert format_question(a[0]).count("\n") == 5
    # the order of a problem does not depend on which other rows were loaded
    assert load_benchmark(f, limit=1, seed=0)[0].choices == a[0].choices


def test_s1k_layout(tmp_path):
    f = write_jsonl(tmp_path / "s1k.jsonl", [
        {"question": "Compute 2+2.", "solution": r"Clearly \boxed{4}.", "attempt": "2+2=4, so 4.",
         "thinking_trajectories": ["I add."], "cot_type": "math", "source_type": "x"},
        {"question": "Prove it.", "solution": "128", "attempt": "a", "thinking_trajectories": ["t"]}])
    p, q = load_benchmark(f)
    assert (p.answer, p.solution, p.meta["attempt"], p.meta["thinking_trajectories"]) == \
        ("4", r"Clearly \boxed{4}.", "2+2=4, so 4.", ["I add."])
    assert q.answer == "128" and p.source == "s1k"


def test_hub_loading_maps_known_ids(monkeypatch):
    import datasets
    calls = []

    def fake(path, name=None, split=None):
        calls.append((path, name, split))
        return [{"problem": f"{path} {name} {split}", "answer": 7.0, "unique_id": f"u{len(calls)}"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_benchmark("MATH-500")[0].answer == "7"
    assert calls[-1] == ("HuggingFaceH4/MATH-500", None, "test")
    load_benchmark("aime25")
    assert calls[-2:] == [("opencompass/AIME2025", "AIME2025-I", "test"), ("opencompass/AIME2025", "AIME2025-II", "test")]
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None: (
        calls.append((path, name, split)) or [{"question": "q", "answer": "x\n#### 5"}]))
    assert load_benchmark("gsm8k", split="train")[0].answer == "5"
    assert calls[-1] == ("openai/gsm8k", "main", "train")
    assert load_benchmark("someone/my-set")[0].solution == "x"  # an unknown Hub id: layout from its fields
    assert calls[-1] == ("someone/my-set", None, "train")


def test_hub_failure_is_a_clear_error(monkeypatch):
    import datasets

    def gated(*a, **k):
        raise ConnectionError("401 gated")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    with pytest.raises(DataError, match="gpqa_diamond.*huggingface-cli login"):
        load_benchmark("gpqa_diamond")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "amc23.jsonl", [{"problem": "p", "extracted_groundtruth": 3.0}])
    monkeypatch.setenv("REASONBOOK_DATA_DIR", str(tmp_path))
    assert load_benchmark("amc23")[0].answer == "3"


def test_known_benchmarks_are_listed():
    assert set(BENCHMARKS) == {"math500", "aime24", "aime25", "amc23", "gsm8k", "gpqa_diamond", "s1k"}


# ---------------------------------------------------------------- the arithmetic dataset
@pytest.mark.parametrize("level", sorted(ARITHMETIC_LEVELS))
def test_arithmetic_solutions_are_correct_and_stepwise(level):
    probs = arithmetic_dataset(200, level=level, seed=0)
    assert len(probs) == 200 and len({p.id for p in probs}) == 200
    for p in probs:
        assert str(eval(p.meta["expression"], {"__builtins__": {}})) == p.answer
        steps = split_steps(p.solution)
        assert len(steps) >= 3 and steps[-1] == f"The answer is \\boxed{{{p.answer}}}."
        assert "\n\n" in p.solution and "\n\n\n" not in p.solution
        for a, op, b, c in re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", p.solution):
            assert eval(f"{a} {op} {b}") == int(c), p.solution
        assert int(p.answer) >= 0 and p.level == level and p.question.endswith("?")


def test_arithmetic_levels_have_the_stated_shape():
    for p in arithmetic_dataset(100, level=1, seed=0):
        a, b = map(int, p.meta["expression"].split(" + "))
        assert 1 <= a <= 9 and 1 <= b <= 9
    for p in arithmetic_dataset(100, level=2, seed=0):
        a, b = map(int, p.meta["expression"].split(" + "))
        assert 10 <= a <= 99 and 10 <= b <= 99
    assert all(re.fullmatch(r"\d+ \+ \d+ - \d", p.meta["expression"]) for p in arithmetic_dataset(50, level=3))
    assert all(re.fullmatch(r"\d \* \d \+ \d", p.meta["expression"]) for p in arithmetic_dataset(50, level=4))
    assert all(p.meta["expression"].count(" ") >= 6 for p in arithmetic_dataset(50, level=5))  # >= 3 operations


def test_arithmetic_is_seeded_and_prefix_stable():
    assert arithmetic_dataset(30, level=2, seed=5) == arithmetic_dataset(30, level=2, seed=5)
    assert arithmetic_dataset(30, level=2, seed=5)[:10] == arithmetic_dataset(10, level=2, seed=5)
    assert arithmetic_dataset(10, level=2, seed=5) != arithmetic_dataset(10, level=2, seed=6)
    assert len({p.question for p in arithmetic_dataset(50, level=2)}) > 40  # varied
    assert arithmetic_dataset(0) == []
    with pytest.raises(ValueError, match="level"):
        arithmetic_dataset(5, level=0)


