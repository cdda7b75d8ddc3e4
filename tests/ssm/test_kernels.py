"""What the op harness (tests/test_ops.py) does not cover in the Triton kernels of ssm.scan and
ssm.selective_scan: a sequence one step past a whole number of chunks, the associative scan itself
(the interpreter runs a sequential walk of each chunk in its place), and the state-size limit."""
import pytest
import torch

pytest.importorskip("triton")

from course import registry  # noqa: E402
from course.ssm.scan import scan as scan_reference  # noqa: E402
from course.ssm.selective import selective_scan as selective_reference  # noqa: E402

if registry.triton_mode() != "interpreter":
    pytest.skip("the interpreter's block sizes (compiled Triton runs in the harness on the GPU)",
                allow_module_level=True)

from course.kernels.ssm import triton_scan, triton_selective  # noqa: E402


def scan_inputs(T, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.5 + 0.5 * torch.rand(2, T, D, generator=g), torch.randn(2, T, D, generator=g)


def grads(fn, inputs, upstream):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    (out * upstream).sum().backward()
    return out.detach(), [t.grad for t in inputs]


def assert_close(got, want, tol=1e-5):
    for g, w in zip(got, want):
        assert ((g - w).norm() / w.norm()).item() < tol


def test_scan_crosses_a_chunk_boundary_by_one_step():
    T = 2 * triton_scan.scan_blocks(torch.device("cpu"), 1000, 3)["BLOCK_T"] + 1
    a, x = scan_inputs(T)
    up = torch.randn(2, T, 3)
    h, (da, dx) = grads(triton_scan.scan, (a, x), up)
    h_ref, (da_ref, dx_ref) = grads(scan_reference, (a, x), up)
    assert_close([h, da, dx], [h_ref, da_ref, dx_ref])


@pytest.mark.parametrize("T", [8, 17])
def test_scan_with_tl_associative_scan_in_chunks(T):
    """The GPU's path: tl.associative_scan inside chunks of 8 (forward and reversed tiles), 2 blocks of
    channels, one step past a chunk."""
    blocks = dict(BLOCK_T=8, BLOCK_D=2, SEQUENTIAL=False)
    a, x = scan_inputs(T)
    h, states = triton_scan.scan_forward(a, x, True, blocks)
    assert_close([h], [scan_reference(a, x)])
    up = torch.randn(2, T, 3)
    da, dx = triton_scan.scan_backward(a, states, up, blocks)
    _, (da_ref, dx_ref) = grads(scan_reference, (a, x), up)
    assert_close([da, dx], [da_ref, dx_ref])


def selective_inputs(T, Dm=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(2, T, Dm, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(2, T, Dm, generator=g) - 1)
    A = -torch.exp(0.5 * torch.randn(Dm, N, generator=g))
    B, C = torch.randn(2, T, N, generator=g), torch.randn(2, T, N, generator=g)
    return u, delta, A, B, C, torch.randn(Dm, generator=g)


def test_selective_scan_crosses_a_checkpoint_by_one_step():
    T = 2 * triton_selective.selective_blocks(torch.device("cpu"), 3, 5)["BLOCK_T"] + 1
    inputs = selective_inputs(T)
    up = torch.randn(2, T, 3)
    y, g = grads(triton_selective.selective_scan, inputs, up)
    y_ref, g_ref = grads(selective_reference, inputs, up)
    assert_close([y, *g], [y_ref, *g_ref])


def test_selective_scan_gradients_are_deterministic():
    """No atomics: the partial sums over channels and batch are added in a fixed order."""
    inputs = selective_inputs(20)
    up = torch.randn(2, 20, 3)
    first, second = (grads(triton_selective.selective_scan, inputs, up)[1] for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_selective_scan_refuses_a_state_larger_than_its_tile():
    inputs = selective_inputs(4, N=triton_selective.MAX_STATE + 1)
    with pytest.raises(ValueError, match="state size N"):
        triton_selective.selective_scan(*inputs)
