"""course.streaming, the streaming softmax and sparsemax that Hopfield retrieval and the ideal denoiser
share: block by block it equals the whole-matrix computation, in the forward and in both gradients."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course import streaming as S


def problem(N, M, D, seed, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    x = spread * torch.randn(N, D, generator=g, dtype=torch.float64)
    y = torch.randn(M, D, generator=g, dtype=torch.float64)
    t = torch.exp(torch.empty(N, dtype=torch.float64).uniform_(-1, 1, generator=g))
    return x, y, t


def dense(weighting, x, y, t, h):
    """The whole [N, M] matrix at once, differentiated by autograd."""
    z = (x @ y.T - h * (y * y).sum(1)) / t[:, None]
    p = z.softmax(1) if weighting == S.SOFTMAX else S.sparsemax(z, dim=1)
    return p @ y


@settings(max_examples=20, deadline=None)
@given(N=st.integers(0, 9), M=st.integers(1, 200), D=st.integers(1, 6), h=st.sampled_from([0.0, 0.5]),
       weighting=st.sampled_from(S.WEIGHTINGS), seed=st.integers(0, 99))
def test_block_by_block_equals_the_whole_matrix_forward_and_both_gradients(N, M, D, h, weighting, seed):
    x, y, t = problem(N, M, D, seed)
    x1, y1 = x.clone().requires_grad_(), y.clone().requires_grad_()
    x2, y2 = x.clone().requires_grad_(), y.clone().requires_grad_()
    out = S.streaming_retrieval(x1, y1, t, h, weighting)
    expected = dense(weighting, x2, y2, t, h)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    if N:
        torch.testing.assert_close(x1.grad, x2.grad)
        torch.testing.assert_close(y1.grad, y2.grad)


def test_sparsemax_is_the_projection_onto_the_simplex():
    z = torch.randn(50, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    p = S.sparsemax(z, dim=1)
    torch.testing.assert_close(p.sum(1), torch.ones(50, dtype=torch.float64))
    assert (p >= 0).all() and (p == 0).any()
    # the projection's optimality: <z - p, q - p> <= 0 for every q of the simplex (the vertices suffice)
    gap = (z - p)  # [50, 30]
    assert ((gap - (gap * p).sum(1, keepdim=True)) <= 1e-12).all()
    # shifting every logit by a constant changes nothing
    torch.testing.assert_close(S.sparsemax(z + 3.7, dim=1), p)


def test_sparsemax_of_a_row_with_a_nan_is_nan_and_the_others_are_unchanged():
    z = torch.randn(4, 6, dtype=torch.float64)
    bad = z.clone()
    bad[2, 1] = float("nan")
    p, q = S.sparsemax(z, 1), S.sparsemax(bad, 1)
    assert torch.isnan(q[2]).all()
    torch.testing.assert_close(q[[0, 1, 3]], p[[0, 1, 3]])


def test_the_statistics_are_the_row_maximum_and_the_shifted_sum():
    x, y, t = problem(5, 300, 4, seed=3, spread=3.0)
    out, (m, l) = S.forward(S.SOFTMAX, x, y, t, 0.0)
    z = S.logits(x, y, t, 0.0)
    torch.testing.assert_close(m, z.max(1).values)
    torch.testing.assert_close(l, torch.exp(z - m[:, None]).sum(1))
    _, (tau,) = S.forward(S.SPARSEMAX, x, y, t, 0.0)
    torch.testing.assert_close((z - tau[:, None]).clamp(min=0).sum(1), torch.ones(5, dtype=torch.float64))


def test_one_hot_softmax_weights_give_an_exactly_zero_query_gradient():
    """delta is summed from the same products as the second sweep: one-hot weights cancel exactly."""
    y = torch.randn(40, 3, dtype=torch.float64)
    x = y[:5].clone()
    t = torch.full((5,), 1e-7, dtype=torch.float64)  # beta = 1e7: exactly one-hot weights
    out, stats = S.forward(S.SOFTMAX, x, y, t, 0.0)
    grad_x, _ = S.backward(S.SOFTMAX, x, y, t, 0.0, stats, torch.randn(5, 3, dtype=torch.float64))
    assert (grad_x == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_summed_in_float32(dtype):
    x, y, t = problem(6, 500, 8, seed=4)
    out, _ = S.forward(S.SOFTMAX, x.to(dtype), y.to(dtype), t.float(), 0.0)
    assert out.dtype == torch.float32
