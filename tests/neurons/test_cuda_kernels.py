"""The neuron-model CUDA kernels (kernels/neurons/*.cu) beyond the harness, on the CPU emulator: several
tiles of rows, inputs and outputs at once, KAN inputs exactly on the knots and past both ends of the
extended grid, PHM blocks wider than a staged chunk (the transposed-strides launch of grad_x included),
the rational's highest degrees, its deterministic coefficient gradients over several blocks, and the
refusal past the degrees the registers hold."""
import pytest
import torch

from course.neurons.kan import kan_linear
from course.neurons.phm import phm_linear
from course.neurons.rational import rational


@pytest.fixture
def kernels(emulate_cuda):
    emulate_cuda("course.kernels.neurons.cuda_neurons")
    from course.kernels.neurons import cuda_neurons

    return cuda_neurons


def rms_relative(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30)).item()


def outputs_and_grads(fn, tensors, *extra, seed=1):
    """fn's output and its inputs' gradients under a fixed random upstream gradient (float64 for the
    reference: the inputs are upcast first)."""
    leaves = [t.detach().requires_grad_() for t in tensors]
    y = fn(*leaves, *extra)
    up = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = torch.autograd.grad(y, leaves, up.to(y.dtype), allow_unused=True)
    return [y.detach()] + [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]


def assert_matches_float64(kernel, reference, tensors, *extra, tol=1e-5):
    got = outputs_and_grads(kernel, tensors, *extra)
    want = outputs_and_grads(reference, [t.double() for t in tensors], *extra)
    for name, g, w in zip(("y", *(f"grad {i}" for i in range(len(tensors)))), got, want):
        assert g.dtype == tensors[0].dtype and g.shape == w.shape, name
        assert rms_relative(g, w) < tol, (name, rms_relative(g, w))


def test_kan_on_the_knots_past_the_grid_and_over_several_chunks(kernels):
    """B = 33 rows and I = 33 inputs (two staged chunks of each), G = 3, R = 2: a row exactly on every
    knot, rows past both ends of the extended grid (every weight 0) and on its first knot."""
    g = torch.Generator().manual_seed(0)
    B, I, O, G, R = 33, 33, 6, 3, 2.0
    h = 2 * R / G
    x = 1.5 * R * torch.randn(B, I, generator=g)
    x[0] = (torch.arange(I) % (G + 7) - 3) * h - R  # the knots, extended ones included
    x[1], x[2], x[3] = 10 * R, -10 * R, -(R + 3 * h)
    base, coef = torch.randn(I, O, generator=g), torch.randn(I, G + 3, O, generator=g)
    assert_matches_float64(kernels.kan_linear, kan_linear, [x, base, coef], R)


def test_kan_over_several_output_tiles_with_one_interval(kernels):
    """O = 65 outputs (three tiles of 32 lanes), G = 1 (the window clamped at both ends)."""
    g = torch.Generator().manual_seed(1)
    x, base, coef = torch.randn(5, 2, generator=g), torch.randn(2, 65, generator=g), torch.randn(2, 4, 65,
                                                                                                generator=g)
    assert_matches_float64(kernels.kan_linear, kan_linear, [x, base, coef], 0.5)


def test_phm_blocks_wider_than_a_chunk(kernels):
    """n = 3, I_n = 33 and O_n = 34 (past the 32 of a staged chunk and of a lane tile), B = 37 (two row
    tiles): the forward, and grad_x through the same kernel with A_i and F_i transposed."""
    g = torch.Generator().manual_seed(2)
    x, A, F = torch.randn(37, 99, generator=g), torch.randn(3, 3, 3, generator=g), torch.randn(3, 33, 34,
                                                                                               generator=g)
    assert_matches_float64(kernels.phm_linear, phm_linear, [x, A, F])


@pytest.mark.parametrize("degrees", [(15, 16), (2, 0), (0, 1)])
def test_rational_degrees_up_to_the_registers_limit(kernels, degrees):
    g = torch.Generator().manual_seed(3)
    m, n = degrees
    x = 1.5 * torch.randn(300, generator=g)
    a, b = 0.3 * torch.randn(m + 1, generator=g), 0.3 * torch.randn(n, generator=g)
    assert_matches_float64(kernels.rational, rational, [x, a, b])


def test_rational_coefficient_gradients_are_deterministic_over_blocks(kernels):
    """E = 5000 elements: 5 blocks of per-block partial sums, summed in a fixed order; twice the same
    bits, and the float64 reference's values."""
    g = torch.Generator().manual_seed(4)
    x, a, b = 2 * torch.randn(50, 100, generator=g), 0.5 * torch.randn(6, generator=g), 0.5 * torch.randn(
        4, generator=g)
    assert kernels.extension().rational_backward_rows(x.numel()) == 5
    first, second = (outputs_and_grads(kernels.rational, [x, a, b]) for _ in range(2))
    for u, v in zip(first, second):
        assert torch.equal(u, v)
    assert_matches_float64(kernels.rational, rational, [x, a, b])


def test_rational_refuses_degrees_past_the_registers(kernels):
    x = torch.randn(10)
    with pytest.raises(ValueError, match=r"degrees \(m, n\) may be at most \(15, 16\).*got \(16, 2\)"):
        kernels.rational(x, torch.randn(17), torch.randn(2))
    with pytest.raises(ValueError, match=r"got \(3, 17\)"):
        kernels.rational(x, torch.randn(4), torch.randn(17))
