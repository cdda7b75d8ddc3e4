"""The shared Triton streaming kernels beyond the harness: the GPU's layout of several blocks of queries,
stored rows and columns (tiles forced to 16 on the CPU), both weightings and both norm weights against
`course.streaming` in float64, a NaN row, the empty cases, and no [N, M] tensor in either pass."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from course import streaming

triton_streaming = pytest.importorskip("course.kernels.triton_streaming")

SMALL = dict(BLOCK_N=16, BLOCK_M=16, BLOCK_D=16)


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(triton_streaming, "streaming_blocks", lambda *_: dict(SMALL))


def problem(N, M, D, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = torch.randn(M, D, generator=g, dtype=torch.float64)
    t = (0.5 + 2 * torch.rand(N, generator=g, dtype=torch.float64)) * scale
    grad = torch.randn(N, D, generator=g, dtype=torch.float64)
    return x, y, t, grad


def run_both(x, y, t, h, weighting, grad):
    """(out, stats, grad_x, grad_y) of the kernels and of the reference."""
    out, stats = triton_streaming.streaming_forward(x, y, t, h, weighting)
    grad_x, grad_y = triton_streaming.streaming_backward(x, y, t, h, weighting, stats, grad, True)
    ref_out, ref_stats = streaming.forward(weighting, x, y, t, h)
    ref_x, ref_y = streaming.backward(weighting, x, y, t, h, ref_stats, grad, True)
    return (out, stats, grad_x, grad_y), (ref_out, ref_stats, ref_x, ref_y)


@pytest.mark.parametrize("weighting,h", [("softmax", 0.0), ("sparsemax", 0.5)])
def test_several_blocks_of_queries_rows_and_columns_match_the_reference(small_tiles, weighting, h):
    """N = 20, M = 33, D = 20: two blocks of queries and of columns (each program recomputes the
    logits over all of D), three of rows; sparsemax's row of 64 is built from four blocks of 16.
    (The norm weight's other value, softmax's h = 1/2, is the ideal denoiser's, tested with it.)"""
    x, y, t, grad = problem(20, 33, 20, scale=4.0)
    (out, stats, grad_x, grad_y), (ref_out, ref_stats, ref_x, ref_y) = run_both(x, y, t, h, weighting, grad)
    if weighting == "sparsemax":  # supports of several sizes, so the threshold is exercised
        sizes = streaming.sparsemax_threshold_of(streaming.logits(x, y, t, h))[1]
        assert sizes.min() < sizes.max() and sizes.max() >= 4
    for got, want in zip(stats, ref_stats):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_x, ref_x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_y, ref_y, rtol=1e-10, atol=1e-12)


def test_sparsemax_threshold_of_tied_rows_and_a_nan_row(small_tiles):
    """Duplicated stored rows tie in the sort; a NaN query gives tau NaN, NaN outputs, a zero x-gradient
    and NaN y-gradients (the NaN weights reach every stored row), as the reference does."""
    x, y, t, grad = problem(20, 10, 4, seed=1)
    y = torch.cat([y, y[:7]])  # M = 17 with ties
    x[5] = float("nan")
    (out, (tau,), grad_x, grad_y), (ref_out, (ref_tau,), ref_x, ref_y) = run_both(x, y, t, 0.0, "sparsemax",
                                                                                    grad)
    assert torch.isnan(tau[5]) and torch.isnan(out[5]).all()
    assert torch.equal(grad_x[5], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(tau, ref_tau, rtol=1e-12, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(grad_x, ref_x, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert torch.isnan(grad_y).all() and torch.isnan(ref_y).all()


def test_one_hot_sparsemax_weights_give_exactly_zero_x_gradient():
    """Queries on stored rows at a small temperature: a support of one row, whose gradient is 0."""
    x, y, _, grad = problem(8, 30, 5, seed=2)
    x = y[torch.arange(0, 24, 3)].clone()
    t = torch.full((8,), 1e-3, dtype=torch.float64)
    out, stats = triton_streaming.streaming_forward(x, y, t, 0.5, "sparsemax")
    grad_x, _ = triton_streaming.streaming_backward(x, y, t, 0.5, "sparsemax", stats, grad, False)
    assert torch.equal(out, x)
    assert torch.equal(grad_x, torch.zeros_like(x))


@pytest.mark.parametrize("weighting", ["softmax", "sparsemax"])
@pytest.mark.parametrize("N,D", [(0, 6), (5, 0)])
def test_no_queries_or_no_columns_as_the_reference(weighting, N, D):
    x, y, t, grad = problem(N, 7, D, seed=3)
    out, stats = triton_streaming.streaming_forward(x, y, t, 0.0, weighting)
    grad_x, grad_y = triton_streaming.streaming_backward(x, y, t, 0.0, weighting, stats, grad, True)
    ref_out, ref_stats = streaming.forward(weighting, x, y, t, 0.0)
    ref_x, ref_y = streaming.backward(weighting, x, y, t, 0.0, ref_stats, grad, True)
    assert out.shape == ref_out.shape and grad_x.shape == ref_x.shape
    torch.testing.assert_close(grad_y, ref_y)  # zeros for no queries
    for got, want in zip(stats, ref_stats):  # uniform weights over the 7 rows when D = 0
        torch.testing.assert_close(got, want)


class Allocations(TorchDispatchMode):
    """The bytes of every tensor an aten operation returns (the interpreter copies the arguments as
    bytes)."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for r in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(r, torch.Tensor):
                self.sizes.append(r.numel() * r.element_size())
        return result


@pytest.mark.parametrize("weighting", ["softmax", "sparsemax"])
def test_no_tensor_of_n_by_m_is_allocated(weighting):
    """N = 50 queries, M = 60 rows, D = 3: every [N, D], [M, D] and [N] tensor has at most 180
    elements, the [N, M] weights 3000; neither pass allocates a tenth of that."""
    x, y, t, grad = problem(50, 60, 3, seed=4)
    with Allocations() as allocations:
        _, stats = triton_streaming.streaming_forward(x, y, t, 0.5, weighting)
        triton_streaming.streaming_backward(x, y, t, 0.5, weighting, stats, grad, True)
    assert allocations.sizes and max(allocations.sizes) < 50 * 60 * 8 / 10


def test_bad_weighting_and_too_many_rows_are_refused():
    x, y, t, _ = problem(2, 3, 2)
    with pytest.raises(ValueError, match="`weighting` must be one of"):
        triton_streaming.streaming_forward(x, y, t, 0.0, "entmax")
    with pytest.raises(ValueError, match="at most 4096"):
        triton_streaming.streaming_forward(x, torch.zeros(4097, 2, dtype=torch.float64), t, 0.0, "sparsemax")
