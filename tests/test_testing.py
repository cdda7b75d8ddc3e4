"""The harness itself must catch wrong implementations: each broken variant below fails `check`."""
import pytest
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
        same_op = [e for e in exercises.all_exercises() if e.op == exercise.op]
        assert f"def {name}(" in course.solution(exercise.op, same_op.index(exercise) + 1).text
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


# Wrong functions that an earlier harness passed ("11/11, well done"); each must now fail.
def dispatch_ignoring_capacity_at_k1(x, expert_index, num_experts, capacity=None):
    """Drops the capacity when each token has one expert."""
    return moe.dispatch(x, expert_index, num_experts, None if expert_index.shape[1] == 1 else capacity)


def combine_k1_reading_row_minus_one(y, slot, gates):
    """A k = 1 shortcut that indexes with the slot as is: a dropped token (-1) reads the last row."""
    if slot.shape[1] == 1:
        return y[slot[:, 0]] * gates
    return moe.combine(y, slot, gates)


def dispatch_first_512_tokens(x, expert_index, num_experts, capacity=None):
    """Routes in one chunk of 512 tokens: the tokens after it keep the rows of the first chunk."""
    out = moe.dispatch(x, expert_index, num_experts, capacity)
    if x.shape[0] <= 512:
        return out
    grouped = out.x.clone()
    grouped[512:] = out.x[:grouped.shape[0] - 512]
    return moe.Dispatched(grouped, out.slot, out.counts)


def dispatch_int64_only(x, expert_index, num_experts, capacity=None):
    if expert_index.dtype != torch.long:
        raise TypeError("expert_index must be int64")
    return moe.dispatch(x, expert_index, num_experts, capacity)


def dispatch_viewing_x(x, expert_index, num_experts, capacity=None):
    """Flattens x with .view, which fails on a non-contiguous x."""
    flat = x.view(-1)
    return moe.dispatch(flat.view(x.shape), expert_index, num_experts, capacity)


def dispatch_then_clobber_index(x, expert_index, num_experts, capacity=None):
    """Right result, then writes to its input."""
    out = moe.dispatch(x, expert_index, num_experts, capacity)
    expert_index.zero_()
    return out


def combine_then_scale_y(y, slot, gates):
    out = moe.combine(y, slot, gates)
    y.data.mul_(2)
    return out


def dispatch_returning_none(x, expert_index, num_experts, capacity=None):
    moe.dispatch(x, expert_index, num_experts, capacity)


def combine_in_float64(y, slot, gates):
    return moe.combine(y.double(), slot, gates.double())


def combine_dropping_nan(y, slot, gates):
    return moe.combine(torch.nan_to_num(y), slot, gates)


def combine_detached_output(y, slot, gates):
    return moe.combine(y, slot, gates).detach()


WRONG = [
    (dispatch_ignoring_capacity_at_k1, "moe.dispatch", "k=1 capacity drops", "entries differ"),
    (combine_k1_reading_row_minus_one, "moe.combine", "k=1 capacity drops", "RMS-relative error"),
    (dispatch_first_512_tokens, "moe.dispatch", "T=600 capacity", "RMS-relative error"),
    (dispatch_int64_only, "moe.dispatch", "int32 indices", "must be int64"),
    (dispatch_viewing_x, "moe.dispatch", "strided inputs", "view"),
    (dispatch_then_clobber_index, "moe.dispatch", "T=64 E=4 k=2", "changed its input `expert_index`"),
    (combine_then_scale_y, "moe.combine", "T=64 E=4 k=2", "changed its input `y`"),
    (dispatch_returning_none, "moe.dispatch", "T=64 E=4 k=2", "returned None"),
    (combine_in_float64, "moe.combine", "T=64 E=4 k=2", "returned torch.float64 for torch.float32 inputs"),
    (combine_dropping_nan, "moe.combine", "NaN row", "not NaN where the reference gives NaN"),
    (combine_detached_output, "moe.combine", "T=64 E=4 k=2", "detached from autograd"),
]


@pytest.mark.parametrize("fn,op,case,words", WRONG, ids=[w[0].__name__ for w in WRONG])
def test_each_wrong_function_fails_check_on_the_case_that_catches_it(fn, op, case, words):
    report = check(fn, op)
    assert not report, f"{fn.__name__} passed check"
    [result] = [r for r in report if r.case == case]
    assert not result.ok and any(words in p for p in result.problems), result.problems


def test_check_takes_a_device_and_a_dtype():
    report = check(moe.combine_token_loop, "moe.combine", device="cpu", dtype=torch.float64)
    assert report and all(r.case.endswith("[float64]") for r in report)
    with pytest.raises(ValueError, match="run on cpu"):
        check(moe.dispatch, "moe.dispatch", cases=["T=16384 D=1024 E=64 k=2"])  # sized for a GPU


def test_show_names_what_it_cannot_show():
    with pytest.raises(TypeError, match="`target` must be a function, class, kernel or module.*got int 42"):
        course.show(42)
    with pytest.raises(TypeError, match="got builtin_function_or_method"):
        course.show(torch.relu)
    namespace = {}
    exec("def made_at_run_time(): pass", namespace)  # no file holds its source
    with pytest.raises(TypeError, match="no Python source"):
        course.show(namespace["made_at_run_time"])
