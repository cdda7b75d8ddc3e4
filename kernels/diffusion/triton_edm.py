"""EDM's preconditioning after the network as one fused Triton kernel, forward and backward: the
contract of `course.diffusion.edm.edm_output`.

Karras et al. 2022, eq. 7 and Table 1, per row i at level sigma_i:
    D = c_skip x + c_out F,   c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),
                              c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
`edm_output_fwd_kernel` reads x and the network's output F once and writes D once, the coefficients
computed from the row's sigma on the way; `edm_output_bwd_kernel` writes grad x = c_skip g and
grad F = c_out g. One program per BLOCK elements of the flattened rows, as the Heun step's kernel.
sigma_data comes in as float64 numbers (sigma_data and its square, as the reference's Python floats),
so that float64 rows get it unrounded; the coefficients are then rounded to ACC.
"""
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import elementwise_block
from course.kernels.rounding import arithmetic, to_storage


@triton.jit
def skip_and_out(sigma_ptr, row, mask_nd, sigma_data, sigma_data_sq, ACC: tl.constexpr):
    """c_skip and c_out (Table 1) of the rows `row`, in ACC."""
    s = tl.load(sigma_ptr + row, mask=mask_nd, other=1.0).to(ACC)
    total = s * s + sigma_data_sq
    c_skip = (sigma_data_sq / total).to(ACC)
    c_out = (s * sigma_data / tl.sqrt(total)).to(ACC)
    return c_skip, c_out


@triton.jit
def edm_output_fwd_kernel(x_ptr, raw_ptr, sigma_ptr, out_ptr, total, D, sigma_data: tl.float64,
                          sigma_data_sq: tl.float64, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """out = c_skip x + c_out raw for BLOCK elements."""
    pid_nd = tl.program_id(0)
    offs_nd = pid_nd.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # elements of the [N, D] rows
    mask_nd = offs_nd < total
    c_skip, c_out = skip_and_out(sigma_ptr, offs_nd // D, mask_nd, sigma_data, sigma_data_sq, ACC)
    x = tl.load(x_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    raw = tl.load(raw_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    tl.store(out_ptr + offs_nd, to_storage(c_skip * x + c_out * raw, out_ptr.dtype.element_ty), mask=mask_nd)


@triton.jit
def edm_output_bwd_kernel(grad_ptr, sigma_ptr, grad_x_ptr, grad_raw_ptr, total, D, sigma_data: tl.float64,
                          sigma_data_sq: tl.float64, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """grad_x = c_skip g and grad_raw = c_out g for BLOCK elements."""
    pid_nd = tl.program_id(0)
    offs_nd = pid_nd.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # elements of the [N, D] rows
    mask_nd = offs_nd < total
    c_skip, c_out = skip_and_out(sigma_ptr, offs_nd // D, mask_nd, sigma_data, sigma_data_sq, ACC)
    g = tl.load(grad_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    tl.store(grad_x_ptr + offs_nd, to_storage(c_skip * g, grad_x_ptr.dtype.element_ty), mask=mask_nd)
    tl.store(grad_raw_ptr + offs_nd, to_storage(c_out * g, grad_raw_ptr.dtype.element_ty), mask=mask_nd)


def edm_forward(x, raw, sigma, sigma_data: float):
    """x, raw [N, D] (contiguous), sigma [N] in ACC -> D [N, D] in x's dtype."""
    out = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return out
    BLOCK = elementwise_block(x.device)
    edm_output_fwd_kernel[(triton.cdiv(x.numel(), BLOCK),)](
        x, raw, sigma, out, x.numel(), x.shape[1], sigma_data, sigma_data ** 2, **arithmetic(x.dtype),
        BLOCK=BLOCK)
    return out


def edm_backward(grad, sigma, sigma_data: float):
    """grad [N, D] = dL/dD (contiguous) -> the gradients of x and raw."""
    grad_x, grad_raw = (outputs.empty(tuple(grad.shape), dtype=grad.dtype, device=grad.device)
                        for _ in range(2))
    if grad.numel() == 0:
        return grad_x, grad_raw
    BLOCK = elementwise_block(grad.device)
    edm_output_bwd_kernel[(triton.cdiv(grad.numel(), BLOCK),)](
        grad, sigma, grad_x, grad_raw, grad.numel(), grad.shape[1], sigma_data, sigma_data ** 2,
        **arithmetic(grad.dtype), BLOCK=BLOCK)
    return grad_x, grad_raw
