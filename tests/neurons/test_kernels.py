"""The neuron-model Triton kernels beyond the harness (tests/test_ops.py runs every case in every dtype,
outputs and gradients, against the float64 reference): the KAN kernels never form the [B, I, G + 3]
basis and the PHM kernels never form W, the rational's coefficient gradients are deterministic, its
degree limit is refused by name, and the GPU's block layouts (several blocks of inputs, outputs and
columns) give the reference's values on the CPU."""
import pytest
import torch
from torch.overrides import TorchFunctionMode

from course.neurons.kan import kan_linear
from course.neurons.phm import phm_linear
from course.neurons.rational import rational

triton_neurons = pytest.importorskip("course.kernels.neurons.triton_neurons")
from course.kernels.neurons import triton_kan, triton_phm, triton_rational  # noqa: E402


class LargestTensor(TorchFunctionMode):
    """Records the largest tensor, in numbers, that a torch function or tensor method returns (the
    interpreter's copies of the arguments included)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def forward_backward(fn, **kwargs):
    """fn's output and the gradients of its tensor arguments under a fixed upstream gradient."""
    leaves = {k: v.detach().requires_grad_() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    y = fn(**{**kwargs, **leaves})
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape))
    return y.detach(), [leaves[k].grad for k in leaves]


def kan_problem(B, I, O, G, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return dict(x=(1.5 * torch.randn(B, I, generator=g)).to(dtype),
                base=(torch.randn(I, O, generator=g) / I ** 0.5).to(dtype),
                coef=(torch.randn(I, G + 3, O, generator=g) / I ** 0.5).to(dtype), grid_range=1.0)


def phm_problem(B, n, I, O, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(B, I, generator=g).to(dtype), A=torch.randn(n, n, n, generator=g).to(dtype),
                F=(torch.randn(n, I // n, O // n, generator=g) / I ** 0.5).to(dtype))


def test_the_kan_kernels_never_form_the_basis_tensor():
    """B = 64 rows, I = 16 inputs, G = 5: the reference's basis is [64, 16, 8] = 8192 numbers; the
    kernels' largest tensor, forward and backward, is coef [16, 8, 4] = 512 (x and its gradient: 1024)."""
    kw = kan_problem(64, 16, 4, 5)
    with LargestTensor() as kernels:
        y, grads = forward_backward(triton_neurons.kan_linear, **kw)
    with LargestTensor() as reference:
        y_ref, grads_ref = forward_backward(kan_linear, **kw)
    assert reference.largest >= 64 * 16 * 8
    assert kernels.largest <= 64 * 16
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_phm_kernels_never_form_the_weight():
    """n = 4, I = O = 64: W is [64, 64] = 4096 numbers; the kernels' largest tensor is F [4, 16, 16] =
    1024, forward and backward (B = 8 rows: x is 512)."""
    kw = phm_problem(8, 4, 64, 64)
    with LargestTensor() as kernels:
        y, grads = forward_backward(triton_neurons.phm_linear, **kw)
    with LargestTensor() as reference:
        y_ref, grads_ref = forward_backward(phm_linear, **kw)
    assert reference.largest >= 64 * 64
    assert kernels.largest <= 4 * 16 * 16
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_rational_coefficient_gradients_are_deterministic_and_summed_over_blocks():
    """70000 elements: two programs on the CPU (2^16 a program), their partial sums added on the host.
    Two runs give the same bits, and the sums are the float64 reference's to float32's rounding."""
    g = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(70000, generator=g)
    a, b = 0.5 * torch.randn(6, generator=g), 0.5 * torch.randn(4, generator=g)
    grad = torch.randn(70000, generator=g)
    assert triton_rational.elementwise_block(x.device) < x.numel()
    first = triton_rational.rational_backward(x, a, b, grad)
    second = triton_rational.rational_backward(x, a, b, grad)
    for one, two in zip(first, second):
        assert torch.equal(one, two)
    leaves = [t.double().requires_grad_() for t in (x, a, b)]
    expected = torch.autograd.grad(rational(*leaves), leaves, grad.double())
    for got, want in zip(first, expected):
        torch.testing.assert_close(got.double(), want, rtol=2e-5, atol=1e-4)


def test_a_rational_of_too_high_a_degree_is_refused_with_the_limit():
    x = torch.randn(5)
    with pytest.raises(ValueError, match="`numerator` may hold at most 8"):
        triton_neurons.rational(x, torch.ones(9), torch.ones(2))
    with pytest.raises(ValueError, match="`denominator` may hold at most 8"):
        triton_neurons.rational(x, torch.ones(3), torch.ones(9))
    assert triton_neurons.rational(x, torch.ones(8), torch.ones(8)).shape == (5,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_gpu_block_layouts_on_the_cpu(monkeypatch, dtype):
    """The GPU's tiles on the CPU: B = 70 rows (two blocks of 64, three of 32 in float64; the weight
    gradients walk them, PHM's A-gradient adds their partial sums). KAN with 2 inputs a step over I = 5
    (three steps, the last short) and O = 70 (two blocks of outputs, the x-gradient walks both); PHM with
    32 columns a step over K = 40 (two steps) and Q = 70 (two blocks)."""
    gpu = torch.device("cuda")
    for module, name in ((triton_kan, "kan_blocks"), (triton_phm, "phm_blocks")):
        blocks = getattr(module, name)
        monkeypatch.setattr(module, name, lambda device, *sizes, blocks=blocks: blocks(gpu, *sizes))
    assert triton_kan.kan_blocks("cpu", dtype, 40, 5, 70, 8)["BLOCK_I"] == 2
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for fn, reference, kw in ((triton_neurons.kan_linear, kan_linear, kan_problem(70, 5, 70, 5, 1, dtype)),
                              (triton_neurons.phm_linear, phm_linear, phm_problem(70, 2, 80, 140, 2, dtype))):
        y, grads = forward_backward(fn, **kw)
        y_ref, grads_ref = forward_backward(reference, **kw)
        torch.testing.assert_close(y, y_ref, **tol)
        for got, want in zip(grads, grads_ref):
            torch.testing.assert_close(got, want, **tol)
