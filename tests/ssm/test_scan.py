"""The diagonal scan's three forms, its gradient, chunk-size independence, and its bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm import scan as S


def problem(B, T, D, seed, low=0.3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = low + (1 - low) * torch.rand(B, T, D, generator=g, dtype=dtype)
    return a, torch.randn(B, T, D, generator=g, dtype=dtype)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(0, 70), D=st.integers(1, 4), chunk=st.integers(1, 20), seed=st.integers(0, 99))
def test_the_three_forms_agree_for_any_length_and_chunk_size(T, D, chunk, seed):
    a, x = problem(2, T, D, seed)
    loop = S.scan_step_loop(a, x)
    torch.testing.assert_close(S.scan(a, x), loop)
    torch.testing.assert_close(S.scan_in_chunks(a, x, chunk), loop)  # independent of the chunk size
    torch.testing.assert_close(S.scan_chunked(a, x), loop)


def test_the_gradient_matches_autograd_through_the_step_loop_in_float64():
    a, x = problem(2, 33, 3, seed=0)
    for form in (S.scan, S.scan_chunked):
        a1, x1 = a.clone().requires_grad_(), x.clone().requires_grad_()
        a2, x2 = a.clone().requires_grad_(), x.clone().requires_grad_()
        upstream = torch.randn(a.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        (form(a1, x1) * upstream).sum().backward()
        (S.scan_step_loop(a2, x2) * upstream).sum().backward()
        torch.testing.assert_close(a1.grad, a2.grad)
        torch.testing.assert_close(x1.grad, x2.grad)
    assert torch.autograd.gradcheck(S.scan, tuple(t.requires_grad_() for t in problem(1, 9, 2, seed=2)))


def test_gates_of_one_are_a_cumulative_sum_and_t1_is_the_input():
    _, x = problem(2, 12, 3, seed=3)
    torch.testing.assert_close(S.scan(torch.ones_like(x), x), x.cumsum(1))
    a, x = problem(2, 1, 3, seed=4)
    torch.testing.assert_close(S.scan(a, x), x)


def test_bad_input_names_the_argument():
    a, x = problem(2, 5, 3, seed=0)
    with pytest.raises(ValueError, match=r"gates `a` must lie in \(0, 1\]"):
        S.scan(a * 2, x)
    with pytest.raises(ValueError, match=r"gates `a` must lie in \(0, 1\]"):
        S.scan(torch.zeros_like(a), x)
    with pytest.raises(ValueError, match=r"gates `a` must lie in \(0, 1\]"):
        S.scan(torch.full_like(a, float("nan")), x)
    with pytest.raises(ValueError, match="`a` must be of shape"):
        S.scan(a[:, :4], x)
    with pytest.raises(ValueError, match="`x` must be a 3-D tensor"):
        S.scan(a[0], x[0])
    with pytest.raises(ValueError, match="`chunk` must be an int"):
        S.scan_in_chunks(a, x, 0)
