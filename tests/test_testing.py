"""The harness itself must catch wrong implementations: each broken variant below fails `check`."""
import torch

import course
from course import exercises, moe, outputs
from course.testing import check, error_ratio


def dispatch_token_major(x, expert_index, num_experts, capacity=None):
    """A common slip: visits assignments token by token (t, then j), not choice-major as GShard."""
    T, k = expert_index.shape
    out = moe.dispatch(x.repeat_interleave(k, 0), expert_index.reshape(-1, 1), num_experts, capacity)
    return moe.Dispatched(out.x, out.slot.view(T, k), out.counts)


def dispatch_unwritten_row(x, expert_index, num_experts, capacity=None):
    """Forgets to write the last grouped row; poisoning turns it into NaN."""
    out = moe.dispatch(x, expert_index, num_experts, capacity)
    grouped = outputs.empty(tuple(out.x.shape), dtype=x.dtype, device=x.device)
    grouped[:-1] = out.x[:-1]
    return moe.Dispatched(grouped, out.slot, out.counts)


def combine_without_gates(y, slot, gates):
    """Sums the expert outputs but forgets to weight them by the gates."""
    return moe.combine(y, slot, torch.ones_like(gates))


def combine_detached(y, slot, gates):
    """Right values, but no gradient flows to the gates."""
    return moe.combine(y, slot, gates.detach())


def test_reference_variants_pass():
    assert check(moe.dispatch_token_loop, "moe.dispatch")
    assert check(moe.combine_token_loop, "moe.combine")


def test_wrong_priority_is_caught_where_capacity_drops_tokens():
    report = check(dispatch_token_major, "moe.dispatch")
    assert not report
    failed = {r.case for r in report if not r.ok}
    assert "capacity drops" in failed
    assert {"T=1", "one expert", "empty expert"}.isdisjoint(failed)  # k = 1: both orders agree


def test_unwritten_output_is_caught_by_poisoning():
    report = check(dispatch_unwritten_row, "moe.dispatch")
    assert not report
    assert any("NaN" in p for r in report for p in r.problems)


def test_missing_gate_weights_are_caught():
    assert not check(combine_without_gates, "moe.combine")


def test_missing_gradient_is_caught():
    report = check(combine_detached, "moe.combine")
    assert not report
    assert any("grad of gates" in p for r in report for p in r.problems)


def test_a_raising_function_is_reported_once_with_its_line():
    def broken(x, expert_index, num_experts, capacity=None):
        raise RuntimeError("not written yet")

    report = check(broken, "moe.dispatch")
    text = repr(report)
    assert not report and text.count("not written yet") == 1, text
    assert f"of {len(report)} cases" in text and "test_testing.py:" in text


def test_check_runs_the_cases_it_is_asked_for():
    report = check(moe.dispatch_token_loop, "moe.dispatch", cases=["T=1", "no tokens"])
    assert [r.case for r in report] == ["T=1", "no tokens"] and report
    with __import__("pytest").raises(ValueError, match="`cases` must name test cases"):
        check(moe.dispatch_token_loop, "moe.dispatch", cases=["T=2"])


def test_every_exercise_solution_passes_its_check_and_is_shown_on_request():
    for exercise in exercises.all_exercises():
        module, _, name = exercise.solution.partition(":")
        solution = getattr(__import__("importlib").import_module(module), name)
        assert check(solution, exercise.op), exercise.op
        assert f"def {name}(" in course.solution(exercise.op).text
    with __import__("pytest").raises(KeyError, match="no exercise is graded by"):
        course.solution("moe.no_such_op")


def test_error_ratio_is_relative():
    expected = torch.tensor([3.0, 4.0])
    assert error_ratio(expected * 1.01, expected) == __import__("pytest").approx(0.01, rel=1e-6)
    assert error_ratio(torch.zeros(2), torch.zeros(2)) == 0.0


def test_show_names_source_files_as_they_are_on_disk():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shown = course.show("course.kernels.moe:moe_routing.cu")
    assert shown.origin == "kernels/moe/moe_routing.cu" and (root / shown.origin).exists()
    assert "__global__" in shown.text
