"""The grid-loss Triton kernels beyond the harness (tests/test_ops.py runs every case in float32 and
bfloat16 against the float64 reference): no [G, P] weights are ever formed, bfloat16 losses are the
reference's rounded to nearest (tighter than the op's tolerance, which a bfloat16 torch forward
sets), the GPU's block layout and the chunked grid on the CPU, non-finite points, refusals."""
import pytest
import torch
from torch.overrides import TorchFunctionMode

from course.landscape import grid
from course.landscape.models import flatten, mlp, parameter_count
from course.landscape.ops import grid_loss as grid_loss_op
from course.testing import case_inputs, error_ratio

triton_grid = pytest.importorskip("course.kernels.landscape.triton_grid")


def problem(widths, N, G, seed=0, span=1.0):
    g = torch.Generator().manual_seed(seed)
    theta = flatten(mlp(widths, seed=seed))
    P = theta.numel()
    d1, d2 = (torch.randn(P, generator=g) * theta.norm() / P ** 0.5 for _ in range(2))
    return dict(x=torch.randn(N, widths[0], generator=g), labels=torch.randint(widths[-1], (N,), generator=g),
                theta=theta, d1=d1, d2=d2, coords=(2 * torch.rand(G, 2, generator=g) - 1) * span,
                widths=widths)


class LargestTensor(TorchFunctionMode):
    """Records the largest tensor, in bytes, that a torch function or tensor method returns (the
    interpreter's copies of the arguments included). A function mode, not a dispatch mode: entering
    that imports torch._dynamo, seconds here."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_the_kernels_never_form_the_grid_points_weights():
    """P = 4996 parameters at G = 16 points: the reference forms [G, P], the kernels' largest tensor
    is theta (or d1, d2) itself; the activations [G, N, H] are 1024 numbers."""
    kw = problem((8, 64, 64, 4), N=1, G=16)
    G, P = 16, parameter_count(kw["widths"])
    with LargestTensor() as kernels:
        losses = triton_grid.grid_loss(**kw)
    with LargestTensor() as reference:
        expected = grid.grid_loss(**kw)
    assert reference.largest >= G * P * 4
    assert kernels.largest <= P * 4
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-6)


def truncated(t: torch.Tensor) -> torch.Tensor:
    """float32 -> bfloat16 by cutting the low 16 bits (what a cast without rounding does)."""
    return (t.float().view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.bfloat16)


@pytest.mark.parametrize("case", ["deep (5,24,20,16,4) 5x5 grid", "hidden 160 (wider than a block)"])
def test_bfloat16_losses_are_the_reference_rounded_to_nearest(case):
    """The activations stay float32, so the one bfloat16 rounding is the loss's store: the losses are
    the float64 reference's rounded to nearest (ratio <= 1e-3), which a truncating store is not."""
    (case,) = [c for c in grid_loss_op.test_cases if c.name == case]
    kw = case_inputs(grid_loss_op, case, "cpu", 0, torch.bfloat16)
    expected = grid.grid_loss(**{n: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point()
                                 else v for n, v in kw.items()}).to(torch.bfloat16)
    losses = triton_grid.grid_loss(**kw)
    assert losses.dtype == torch.bfloat16
    assert error_ratio(losses.double(), expected.double()) <= 1e-3
    flat = (t.float().contiguous() for t in (kw["theta"], kw["d1"], kw["d2"]))
    in_float32 = triton_grid.grid_loss_forward(kw["x"].float(), kw["labels"], *flat, kw["coords"].float(),
                                               kw["widths"])
    assert error_ratio(truncated(in_float32).double(), expected.double()) > 1e-3


def test_the_gpu_block_layout_on_the_cpu(monkeypatch):
    """The GPU's tiles on the CPU (4 grid points, 32 examples, 64 units, 16 inputs; 64 classes):
    G = 6 spans two blocks of points, N = 40 two blocks of examples, K = 40 three steps of inputs, a
    hidden layer of 70 two blocks of units, C = 70 two steps of classes."""
    gpu = torch.device("cuda")
    for name in ("linear_blocks", "cross_entropy_blocks"):
        blocks = getattr(triton_grid, name)
        monkeypatch.setattr(triton_grid, name, lambda device, *sizes, blocks=blocks: blocks(gpu, *sizes))
    assert triton_grid.linear_blocks("cpu", 6, 40, 40, 70)["BLOCK_K"] == 16
    kw = problem((40, 70, 70), N=40, G=6, seed=1)
    torch.testing.assert_close(triton_grid.grid_loss(**kw), grid.grid_loss(**kw), rtol=1e-5, atol=1e-6)


def test_a_grid_in_chunks_gives_the_same_losses(monkeypatch):
    """Chunks of 3 grid points (the last one short): the same losses as one pass."""
    kw = problem((3, 8, 2), N=5, G=8, seed=2)
    whole = triton_grid.grid_loss(**kw)
    monkeypatch.setattr(triton_grid, "CHUNK_ELEMENTS", 3 * 5 * 8)
    assert triton_grid.chunk_size(8, 5, kw["widths"]) == 3
    torch.testing.assert_close(triton_grid.grid_loss(**kw), whole, rtol=1e-6, atol=0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")  # the interpreter's NumPy
def test_points_whose_logits_overflow_come_back_non_finite_where_the_reference_does():
    """A plot shows such a point as a hole: inf or NaN there, finite losses elsewhere, no error."""
    kw = problem((4, 12, 3), N=6, G=6, seed=3)
    kw["coords"][::2] *= 1e30
    losses, expected = triton_grid.grid_loss(**kw), grid.grid_loss(**kw)
    assert torch.equal(torch.isfinite(losses), torch.isfinite(expected))
    assert torch.isfinite(losses).sum() == 3
    torch.testing.assert_close(losses[1::2], expected[1::2], rtol=1e-5, atol=1e-6)


def test_a_gradient_the_kernels_do_not_compute_is_refused_by_name():
    kw = problem((2, 4, 2), N=3, G=2)
    kw["d1"].requires_grad_(True)
    with pytest.raises(ValueError, match="forward only; `d1` requires grad"):
        triton_grid.grid_loss(**kw)
    with torch.no_grad():
        assert triton_grid.grid_loss(**kw).shape == (2,)


def test_an_input_on_another_device_is_refused_by_name():
    kw = problem((2, 4, 2), N=3, G=2)
    kw["coords"] = torch.empty(2, 2, device="meta")
    with pytest.raises(ValueError, match="`x` on cpu, .*`coords` on meta"):
        triton_grid.grid_loss(**kw)


def test_int32_labels_and_strided_labels_and_coords_give_the_same_losses():
    """The kernels read labels [N] (any integer type) and coords [G, 2] through their strides."""
    kw = problem((3, 8, 4), N=7, G=5, seed=4)
    expected = triton_grid.grid_loss(**kw)
    labels = kw["labels"].to(torch.int32).repeat_interleave(2)[::2]  # stride 2
    coords = kw["coords"].T.contiguous().T  # column-major [G, 2]
    assert labels.stride() == (2,) and coords.stride() == (1, 5)
    got = triton_grid.grid_loss(**{**kw, "labels": labels, "coords": coords})
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
