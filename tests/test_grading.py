"Tests of reasonbook.grading: extraction, normalisation, equivalence under a hard timeout, voting, metrics."
import os
import signal
import threading
import time
from itertools import combinations
from pathlib import Path

import pytest

from reasonbook import grading
from reasonbook.grading import (Verdict, check, extract_answer, grade, is_equiv, maj_at_k, normalize_answer,
                                pass_at_k)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "math500.jsonl").is_file(),
                                  reason=f"benchmark copies not found at {SHARED_DATA} (CI clones shared/ beside the repo)")


def nested_fraction(min_len: int = 10_000) -> str:
    s = "1"
    while len(s) < min_len:
        s = r"\frac{1}{1+" + s + "}"
    return s


# ---------------------------------------------------------------- the equivalences the issue asks for
@pytest.mark.parametrize("a,b", [(r"\frac12", "0.5"), ("(3,-1)", "(3, -1)"), (r"\$42409", "42409"),
                                 (r"10\frac{1}{12}", r"\frac{121}{12}")])
def test_required_equivalences(a, b):
    assert is_equiv(a, b) and is_equiv(b, a)


@pytest.mark.parametrize("pred,gold", [(r"2\sqrt{2}", r"\sqrt{8}"), (r"\dfrac{3}{4}", "0.75"), ("x^2+2x+1", "(x+1)^2"),
                                       (r"\{1,2\}", r"\{2,1\}"), ("27", "27.0"), ("1,000", "1000"),
                                       (r"90^\circ", "90"), (r"50\%", "50"), (r"\text{(C)}", "C")])
def test_more_equivalences(pred, gold):
    assert is_equiv(pred, gold), check(pred, gold)


@pytest.mark.parametrize("pred,gold", [("3", "4"), (r"\frac{1}{3}", "0.3"), ("(3,1)", "(3,-1)"), (r"2\sqrt{3}", r"\sqrt{8}"),
                                       ("", "1"), (None, "1"), ("-5", "5")])
def test_non_equivalences(pred, gold):
    assert not is_equiv(pred, gold)


# The bench's harder mix writes each MATH-500 answer g as "g + 0". Of the first 100, six were judged different; all six
# are answers to which adding the number 0 gives no answer at all (a point, a vector, a name), so "different" is right
# there and the bench's label was wrong; the vector exposed a real normalisation bug (a row break "\\\\ " read as a space).
@pytest.mark.parametrize("gold", [r"\left( 3, \frac{\pi}{2} \right)", r"\text{Evelyn}", "(6,31,-1)", "(-2,1)", r"\text{east}",
                                  r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}"])
def test_a_point_vector_or_name_plus_zero_is_not_the_answer(gold):
    assert not is_equiv(gold + " + 0", gold)
    assert is_equiv(gold.replace(" ", ""), gold) and is_equiv(gold, gold.replace(" ", "  "))


@pytest.mark.parametrize("a,b", [(r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}", r"\begin{pmatrix}-1/3\\2/3\\5/3\end{pmatrix}"),
                                 (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
                                 (r"10,\!080 + 0", "10080"), (r"11,\! 111,\! 100", "11111100"), ("58,500 + 0", "58500"),
                                 (r"\frac{3}{2} + 0", "1.5")])
def test_row_breaks_and_thousands_separators_inside_expressions(a, b):
    assert is_equiv(a, b) and is_equiv(b, a), check(a, b)


@pytest.mark.parametrize("a,b", [(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\3\end{pmatrix}"),
                                 ("(1,000, 2)", "(1000, 2)"), ("1,2,3", "123")])  # in brackets a comma may separate a tuple
def test_separators_that_must_stay(a, b):
    assert not is_equiv(a, b), check(a, b)


def test_mixed_number_prenormalisation():
    assert normalize_answer(r"10\frac{1}{12}") == r"\frac{121}{12}"
    assert normalize_answer(r"-3\frac{1}{2}") == r"-\frac{7}{2}"
    assert normalize_answer(r"3\frac{\sqrt{2}}{2}") == r"3\frac{\sqrt{2}}{2}"  # not a mixed number: a product
    assert normalize_answer(r"x^2\frac{1}{2}") == r"x^2\frac{1}{2}"


# ---------------------------------------------------------------- hard deadline
# The deadline is a correctness property (an answer by then, whatever the input), so it is asserted in seconds, with
# a slack for a loaded 2-core CI machine; speed itself is measured as ratios by `make bench`.
DEADLINE, SLACK = 2.0, 0.3
ADVERSARIAL = {"continued fraction, 10k chars": nested_fraction(),
               "nested fraction, 16k chars": "\\frac{" * 1600 + "1" + "}{2}" * 1600,
               "deep parentheses": "(" * 5000 + "1" + ")" * 5000, "power tower": r"9^{9^{9^{9}}}",
               "huge power": "9^{9^{9^{9^{9}}}}", "factorial tower": "((10000!)!)!",
               "20k characters of unclosed boxes": "\\boxed{" * 2800 + "1"}
STALL = r"x^{9^{9^{9}}}"  # passes the pre-checks (a letter), then sympy computes 9^(9^9) in C: only a kill stops it


def timed_check(pred, gold, timeout=DEADLINE):
    t0 = time.monotonic()
    v = check(pred, gold, timeout=timeout)
    return v, time.monotonic() - t0


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_pathological_inputs_are_refused_at_once(name):
    grading.start_worker()
    v, elapsed = timed_check(ADVERSARIAL[name], "1")
    assert not v.correct and v.reason.startswith("too_complex: "), v
    assert elapsed < DEADLINE + SLACK, f"{name}: {elapsed:.2f} s"
    v, elapsed = timed_check(ADVERSARIAL[name], ADVERSARIAL[name] + " ")  # the same string is still judged equal
    assert v == Verdict(True, "exact")


def test_hang_inside_sympy_c_code_answers_by_the_deadline_and_a_warm_worker_takes_over():
    grading.start_worker()  # the timings below exclude the one-time start-up of the template
    for timeout in (1.0, DEADLINE):  # two stuck checks in a row: each new worker is forked warm, no restart
        stuck = grading._WORKER.proc
        v, elapsed = timed_check(STALL, "1", timeout=timeout)
        assert v == Verdict(False, "timeout")
        assert elapsed < timeout + SLACK, f"took {elapsed:.2f} s with a deadline of {timeout} s"
        v, elapsed = timed_check(r"\sqrt{4}", "2")
        assert v == Verdict(True, "math_verify") and elapsed < DEADLINE + SLACK, (v, elapsed)
        assert grading._WORKER.proc is not stuck
        t0 = time.monotonic()
        while stuck.alive() and time.monotonic() - t0 < 5:  # killed (SIGKILL) and reaped by the template
            time.sleep(0.01)
        assert not stuck.alive()


def test_the_deadline_counts_extraction_and_holds_off_the_main_thread():
    out = {}

    def run(key, pred):
        t0 = time.monotonic()
        out[key] = (check(pred, "1", timeout=1.0), time.monotonic() - t0)

    grading.start_worker()
    threads = [threading.Thread(target=run, args=("stall", STALL)),
               threading.Thread(target=run, args=("waits for the lock", r"\sqrt{2}"))]
    for th in threads:
        th.start()
        time.sleep(0.05)
    for th in threads:
        th.join(10)
    assert not any(th.is_alive() for th in threads)
    assert out["stall"][0] == Verdict(False, "timeout")
    assert all(t < 1.0 + SLACK for _, t in out.values()), out
    assert out["waits for the lock"][0].reason in ("math_verify", "timeout")
    # grade(): extraction is inside the deadline too
    t0 = time.monotonic()
    assert not grade("so the answer is $\\boxed{" + STALL + "}$", "1", timeout=1.0)
    assert time.monotonic() - t0 < 1.0 + SLACK


def test_dead_worker_is_replaced():
    grading.start_worker()
    starts = grading._WORKER.starts
    zygotes = grading._WORKER.zygote_starts
    os.kill(grading._WORKER.proc.pid, signal.SIGKILL)  # dies behind our back (as if out of memory)
    assert check(r"\sqrt{9}", "3") == Verdict(True, "math_verify")
    assert grading._WORKER.starts == starts + 1  # a new worker was forked from the warm template
    assert grading._WORKER.zygote_starts == zygotes


def test_a_dead_template_still_answers_by_the_deadline():
    grading.start_worker()
    grading._WORKER.proc.kill()
    grading._WORKER.zygote.popen.kill()
    grading._WORKER.zygote.popen.wait(timeout=5)
    v, elapsed = timed_check(r"\sqrt{9}", "3")  # the new template warms up for seconds: this check may not wait
    assert elapsed < DEADLINE + SLACK and v in (Verdict(True, "math_verify"), Verdict(False, "timeout")), (v, elapsed)
    grading.start_worker()
    assert check(r"\sqrt{9}", "3") == Verdict(True, "math_verify")


def test_fast_paths_do_not_use_the_worker():
    grading.shutdown_worker()
    assert check("12", "12.0") == Verdict(True, "exact")
    assert check("0.5", r"\frac{1}{2}") == Verdict(True, "numeric")
    assert check("7", "8") == Verdict(False, "different")
    assert check("9^{9^{9^{9}}}", "1").reason.startswith("too_complex")
    assert grading._WORKER.proc is None and grading._WORKER.zygote is None


# ---------------------------------------------------------------- extraction
@pytest.mark.parametrize("text,kind,want", [
    (r"so $\boxed{\frac{a^{2}}{b}}$ and that's it", "math", r"\frac{a^{2}}{b}"),
    (r"\boxed{1} then \fbox{2}", "math", "2"),
    (r"\boxed{1} then \boxed{ \{1, 2\} }", "math", r"\{1, 2\}"),
    ("Work...\n#### 1,234", "gsm8k", "1234"),
    ("Answer: 17", "math", "17"),
    ("Final Answer: The final answer is $\\frac{3}{5}$. I hope it is correct.", "math", r"\frac{3}{5}"),
    ("The answer is $18 per day.", "math", "18"),
    ("I think 3 + 4 = 7 and then 7 * 2 = 14", "math", "14"),
    ("It is 3.50 dollars.", "math", "3.50"),
    ("nothing here", "math", None),
    ("The correct answer is (D).", "mc", "D"),
    ("Answer: B", "mc", "B"),
    (r"... therefore \boxed{C}", "mc", "C"),
    ("A farmer has apples; the answer is not clear", "mc", None),
])
def test_extract_answer(text, kind, want):
    assert extract_answer(text, kind=kind) == want


def test_grade_on_generated_solutions():
    from reasonbook.data import arithmetic_dataset
    for level in (1, 2, 3, 4, 5):
        for p in arithmetic_dataset(20, level=level, seed=3):
            assert grade(p.solution, p.answer)
            assert not grade(p.solution, str(int(p.answer) + 1))
            # without the box, the last-number fallback still finds it
            assert extract_answer(p.solution.replace(r"\boxed{" + p.answer + "}", p.answer)) == p.answer


@needs_shared
def test_extraction_on_real_math500_rows():
    from reasonbook.data import load_benchmark
    probs = load_benchmark(SHARED_DATA / "math500.jsonl")
    assert len(probs) == 500
    graded = [check(extract_answer(p.solution), p.answer) for p in probs]
    correct = sum(v.correct for v in graded)
    assert correct == len(probs), [(p.id, extract_answer(p.solution), p.answer) for p, v in zip(probs, graded)
                                   if not v.correct][:5]
    # and a different problem's answer is not accepted
    wrong = sum(is_equiv(extract_answer(probs[i].solution), probs[(i + 1) % 500].answer) for i in range(100))
    assert wrong <= 3


@needs_shared
def test_extraction_on_real_gsm8k_rows():
    import json
    lines = (SHARED_DATA / "gsm8k_test.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    for line in lines:
        row = json.loads(line)
        gold = row["answer"].split("####")[-1].strip().replace(",", "")
        assert extract_answer(row["answer"]) == gold
        assert grade(row["answer"], gold)


# ---------------------------------------------------------------- voting
# ---------------------------------------------------------------- metrics
def brute_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_pass_at_k_matches_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_maj_at_k():
    answers = [["5", "6", "6", "5", "5"], ["1", "1", "2", "2", "2"], ["x", "y", "z", "w", "v"]]
    golds = ["5", "2", "v"]
    assert maj_at_k(answers, golds, k=1) == pytest.approx(1 / 3)  # 5 yes, 1 no, x no
    assert maj_at_k(answers, golds, k=3) == pytest.approx(0.0)  # 6, 1, x
    assert maj_at_k(answers, golds, k=5) == pytest.approx(2 / 3)  # 5, 2, x (tie -> first seen)
    scores = [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]
    assert maj_at_k(answers, golds, k=5, scores=scores) == pytest.approx(1.0)
    # averaged over random subsets: a problem with one correct of two answers gives about 1/2 at k=1
    assert maj_at_k([["1", "2"]], ["1"], k=1, trials=400, seed=0) == pytest.approx(0.5, abs=0.08)
    with pytest.raises(ValueError, match="fewer than k"):
        maj_at_k(answers, golds, k=6)


@pytest.mark.parametrize("tok", ["1 ", "1,", "1/", "\\boxed{", "{", "\\frac{1}{", "answer: ", "1 ab ", "\\text{a", "(A",
                                 "1\\frac{1}{2}", "$", "-"])
def test_extraction_and_normalisation_stay_fast_on_long_adversarial_text(tok):
    # the in-process steps (regexes, brace matching) must be near-linear: only math-verify runs in the worker
    s = tok * (20_000 // len(tok)) + "x"
    t0 = time.monotonic()
    normalize_answer(s)
    extract_answer(s)
    extract_answer(s, kind="mc")
    # 3 s leaves room for a loaded CI machine; a quadratic pass over 20,000 characters takes far longer
    assert time.monotonic() - t0 < 3.0
