"""The shared CUDA streaming kernels (kernels/streaming_softmax.cu) beyond the harness, on the CPU emulator:
the norm weight h = 1/2 with the stored rows' gradient (the harness runs h = 0 with it and h = 1/2 without
it), several tiles of queries, rows and columns, the sparsemax threshold's sort at the longest row it
holds (M = MAX_SPARSE_ROWS, not a power of two below it, tied logits), and the refusal past it."""
import pytest
import torch

from course import streaming
from course.kernels import cuda_streaming


@pytest.fixture
def kernels(emulate_cuda):
    emulate_cuda("course.kernels.cuda_streaming")
    return cuda_streaming


def problem(N, M, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(N, D, generator=g), torch.randn(M, D, generator=g)
    t = 0.5 + 2 * torch.rand(N, generator=g)
    return x, y, t, torch.randn(N, D, generator=g)


def rms_relative(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30)).item()


@pytest.mark.parametrize("weighting", streaming.WEIGHTINGS)
def test_norm_weight_and_the_stored_rows_gradient_match_the_reference(kernels, weighting):
    """N = 40, M = 70, D = 40: two tiles of queries and of columns, three of stored rows; h = 1/2."""
    x, y, t, grad = problem(40, 70, 40)
    out, stats = kernels.streaming_forward(x, y, t, 0.5, weighting)
    grad_x, grad_y = kernels.streaming_backward(x, y, t, 0.5, weighting, stats, grad, True)
    x64, y64, t64, g64 = (v.double() for v in (x, y, t, grad))
    ref_out, ref_stats = streaming.forward(weighting, x64, y64, t64, 0.5)
    ref_x, ref_y = streaming.backward(weighting, x64, y64, t64, 0.5, ref_stats, g64, True)
    for got, want in ((out, ref_out), (grad_x, ref_x), (grad_y, ref_y), *zip(stats, ref_stats)):
        assert got.dtype == torch.float32
        assert rms_relative(got, want) < 1e-5


@pytest.mark.parametrize("M", [streaming.MAX_SPARSE_ROWS, 2049])
def test_the_threshold_sorts_the_longest_row_it_holds(kernels, M):
    """A row of M logits with ties (the rows repeat) gives the threshold of the sorting reference."""
    x, y, t, _ = problem(2, M, 3, seed=1)
    y[1::2] = y[0::2][: M // 2]  # every logit twice
    tau = torch.empty(2)
    kernels.extension().sparsemax_threshold(x, y, t, 0.0, tau, 0)
    want, _ = streaming.sparsemax_threshold_of(streaming.logits(x.double(), y.double(), t.double(), 0.0))
    torch.testing.assert_close(tau.double(), want, rtol=1e-5, atol=1e-5)


def test_sparsemax_refuses_more_rows_than_the_sort_holds(kernels):
    x, y, t, _ = problem(1, streaming.MAX_SPARSE_ROWS + 1, 2)
    with pytest.raises(ValueError, match="M may be at most 4096; got M = 4097"):
        kernels.streaming_forward(x, y, t, 0.0, "sparsemax")
