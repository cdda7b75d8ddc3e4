"""The diffusion kernels' own behaviour beyond the harness: what they refuse, by name, and the paths the
CPU's block sizes do not take. (Every backend runs every harness case in each dtype it declares in
tests/test_ops.py, the CUDA one on the CPU emulator in tests/test_cuda_emulated.py.)"""
import pytest
import torch

from course.streaming import streaming_retrieval

triton_diffusion = pytest.importorskip("course.kernels.diffusion.triton_diffusion")
from course.kernels import triton_streaming  # noqa: E402
from course.kernels.diffusion import cuda_diffusion  # noqa: E402


def levels(n: int, g: torch.Generator):
    sigma = 0.5 + torch.rand(n, generator=g)
    sigma_next = sigma * torch.rand(n, generator=g)
    return sigma, sigma_next, sigma_next * 1.2


@pytest.mark.parametrize("name", ["y", "sigma"])
def test_ideal_denoiser_refuses_a_gradient_it_does_not_compute(name):
    g = torch.Generator().manual_seed(0)
    args = dict(x=torch.randn(4, 3, generator=g), y=torch.randn(5, 3, generator=g), sigma=torch.ones(4))
    args[name].requires_grad_(True)
    with pytest.raises(ValueError, match=f"`{name}` requires grad"):
        triton_diffusion.ideal_denoiser(**args)


def test_the_steps_refuse_a_level_that_requires_grad():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g)
    sigma, sigma_next, sigma_next_hat = levels(4, g)
    with pytest.raises(ValueError, match="`sigma_next` requires grad"):
        triton_diffusion.heun_step(x, x, x, x, sigma, sigma_next.requires_grad_(True), sigma_next_hat)
    with pytest.raises(ValueError, match="`sigma` requires grad"):
        triton_diffusion.edm_output(x, x, sigma.requires_grad_(True))


def test_edm_output_refuses_bad_sigma_data_and_mixed_dtypes():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="`sigma_data` must be a positive finite number; got -1"):
        triton_diffusion.edm_output(x, x, torch.ones(4), sigma_data=-1.0)
    with pytest.raises(TypeError, match="`raw` must have x's dtype"):
        triton_diffusion.edm_output(x, x.double(), torch.ones(4))


def test_an_input_on_another_device_is_refused_by_name():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="`y` must be on x's device cpu; got meta"):
        triton_diffusion.ideal_denoiser(x, torch.empty(5, 3, device="meta"), torch.ones(4))
    with pytest.raises(ValueError, match="`raw` must be on x's device"):
        triton_diffusion.edm_output(x, torch.empty(4, 3, device="meta"), torch.ones(4))


def test_cuda_backend_refuses_float64_by_name():
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="cuda.*float64"):
        cuda_diffusion.ideal_denoiser(x, x, torch.ones(4, dtype=torch.float64))


def test_ideal_denoiser_with_several_blocks_of_points_columns_and_queries(monkeypatch):
    """The GPU's layout on the CPU: 16-wide blocks, so D = 20 spans two blocks of columns (each
    program recomputes the logits over all of D), M = 20 two blocks of points, N = 20 two of queries."""
    monkeypatch.setattr(triton_streaming, "streaming_blocks",
                        lambda *_: dict(BLOCK_N=16, BLOCK_M=16, BLOCK_D=16))
    g = torch.Generator().manual_seed(1)
    x = (2 * torch.randn(20, 20, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.randn(20, 20, generator=g, dtype=torch.float64)
    sigma = 2 + torch.rand(20, generator=g, dtype=torch.float64)
    upstream = torch.randn(20, 20, generator=g, dtype=torch.float64)
    out = triton_diffusion.ideal_denoiser(x, y, sigma)
    (grad,) = torch.autograd.grad(out, x, upstream)
    x_ref = x.detach().clone().requires_grad_(True)
    expected = streaming_retrieval(x_ref, y, sigma ** 2, 0.5, "softmax")
    (expected_grad,) = torch.autograd.grad(expected, x_ref, upstream)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_one_hot_weights_give_exactly_zero_gradient():
    """Queries on training points at a tiny sigma: the weights are one-hot, and delta is summed from
    the same products <g, y_j> as the second sweep, so their difference is exactly 0."""
    g = torch.Generator().manual_seed(2)
    y = torch.randn(50, 4, generator=g)
    x = y[torch.arange(0, 50, 5)].clone().requires_grad_(True)
    out = triton_diffusion.ideal_denoiser(x, y, torch.full((10,), 1e-3))
    out.backward(torch.randn(10, 4, generator=g))
    assert torch.equal(out.detach(), x.detach())
    assert torch.equal(x.grad, torch.zeros_like(x))
