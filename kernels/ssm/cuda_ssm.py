"""ssm.scan and ssm.selective_scan with CUDA kernels: the contracts of `course.ssm.scan.scan` and
`course.ssm.selective.selective_scan`, forward and backward.

The kernels (`ssm_scan.cu`) walk the sequence with one thread per channel, the state in float32
registers: the diagonal scan h_t = a_t h_{t-1} + x_t (Martin and Cundy 2018, arXiv:1709.04057) and its
reverse scan g_t = dh_t + a_{t+1} g_{t+1} (dx = g, da_t = g_t h_{t-1}); Mamba's selective scan (Gu and
Dao 2023, arXiv:2312.00752, section 3, Algorithm 2) with the N <= MAX_STATE states of a channel on chip,
and its backward by a reverse walk over chunks of states recomputed from checkpoints. `ssm_binding.cpp`
exposes them to PyTorch; the autograd Functions are here. The extension is compiled by
`torch.utils.cpp_extension` on first use, which needs a CUDA build of PyTorch, nvcc and a GPU.
float32 and bfloat16 tensors, float32 arithmetic and state.
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.checks import check_same_device
from course.kernels.build import cuda_extension
from course.kernels.launch import check_backend, on_device
from course.ssm.scan import check_scan_args
from course.ssm.selective import check_selective_scan_args

HERE = Path(__file__).parent
SOURCES = ("ssm_binding.cpp", "ssm_scan.cu")

MAX_STATE = 16  # kMaxState in ssm_kernels.h: the states of a channel held in registers
CHUNK = 16  # kChunk: steps between two checkpoints of the selective scan's states
CHANNELS = 64  # kChannels: channels per block of the selective-scan kernels
MAX_BATCH = 65535  # the selective kernels put the batch on the launch grid's y


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_ssm_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def _empty(like: torch.Tensor, shape=None, dtype=None) -> torch.Tensor:
    shape = tuple(like.shape) if shape is None else shape
    return outputs.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)


def _none(device) -> torch.Tensor:
    """An absent optional tensor, as the binding reads it (empty)."""
    return torch.empty(0, dtype=torch.float32, device=device)


def scan_forward(a, x, keep_state: bool):
    """a, x [B, T, D] contiguous -> (h [B, T, D] in x's dtype, the float32 states for the backward
    or None). In float32 the states are h itself."""
    h = _empty(x)
    states = _empty(x, dtype=torch.float32) if keep_state and x.dtype != torch.float32 else _none(x.device)
    extension().scan_forward(a, x, h, states, _stream())
    if not keep_state:
        return h, None
    return h, (h if x.dtype == torch.float32 else states)


def scan_backward(a, states, dh):
    """The reverse scan: (da, dx) [B, T, D] in a's dtype."""
    da, dx = _empty(a), _empty(a)
    extension().scan_backward(a, states, dh, da, dx, _stream())
    return da, dx


def selective_forward(u, delta, A, B, C, D, keep_state: bool):
    """-> (y [B, T, D] in u's dtype, the checkpoints [B, chunks, N, D] float32 or None)."""
    Bt, T, Dm = u.shape
    N = A.shape[1]
    y = _empty(u)
    chunks = -(-T // CHUNK)
    checkpoints = (outputs.empty((Bt, chunks, N, Dm), dtype=torch.float32, device=u.device) if keep_state
                   else None)
    extension().selective_forward(u, delta, A, B, C, _none(u.device) if D is None else D, y,
                                  _none(u.device) if checkpoints is None else checkpoints, _stream())
    return y, checkpoints


def selective_backward(u, delta, A, B, C, D, checkpoints, dy):
    """-> du, ddelta [B, T, D], dA [D, N], dB, dC [B, T, N], dD [D] or None, in u's dtype; the sums over
    channels, batch and time in float32, in a fixed order."""
    Bt, T, Dm = u.shape
    N = A.shape[1]
    blocks = -(-Dm // CHANNELS)
    du, ddelta = _empty(u), _empty(u)
    f32 = dict(dtype=torch.float32, device=u.device)
    dA_part = outputs.empty((Bt, Dm, N), **f32)
    dB_part, dC_part = (outputs.empty((Bt, T, blocks, N), **f32) for _ in range(2))
    dD_part = None if D is None else outputs.empty((Bt, Dm), **f32)
    if T == 0 or Bt == 0:  # nothing to walk: every sum is empty
        for t in (dA_part, dD_part):
            if t is not None:
                t.zero_()
    else:
        extension().selective_backward(u, delta, A, B, C, _none(u.device) if D is None else D, checkpoints,
                                       dy, du, ddelta, dA_part, dB_part, dC_part,
                                       _none(u.device) if D is None else dD_part, _stream())
    dtype = u.dtype
    dD = None if D is None else dD_part.sum(0).to(dtype)
    return (du, ddelta, dA_part.sum(0).to(dtype), dB_part.sum(2).to(dtype), dC_part.sum(2).to(dtype), dD)


PRIMITIVES = SimpleNamespace(scan_forward=scan_forward, scan_backward=scan_backward,
                             selective_forward=selective_forward, selective_backward=selective_backward,
                             BACKEND="cuda", DEVICE="cuda")


class ScanFunction(torch.autograd.Function):
    """a, x [B, T, D] -> h [B, T, D]; saves a and the float32 states."""

    @staticmethod
    def forward(ctx, a, x, prims):
        a, x = a.contiguous(), x.contiguous()
        keep = any(ctx.needs_input_grad[:2])
        h, states = prims.scan_forward(a, x, keep)
        if keep:
            ctx.save_for_backward(a, states)
        ctx.prims = prims
        return h

    @staticmethod
    def backward(ctx, dh):
        a, states = ctx.saved_tensors
        da, dx = ctx.prims.scan_backward(a, states, dh.contiguous())
        return (da if ctx.needs_input_grad[0] else None, dx if ctx.needs_input_grad[1] else None, None)


class SelectiveScanFunction(torch.autograd.Function):
    """u, delta [B, T, D], A [D, N], B, C [B, T, N], D [D] or None -> y [B, T, D]; saves the inputs and
    the states at every CHUNK steps, never the [B, T, D, N] states."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, prims):
        u, delta, A, B, C = (t.contiguous() for t in (u, delta, A, B, C))
        D = None if D is None else D.contiguous()
        keep = any(ctx.needs_input_grad[:6])
        y, checkpoints = prims.selective_forward(u, delta, A, B, C, D, keep)
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, checkpoints)
        ctx.prims = prims
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, checkpoints = ctx.saved_tensors
        grads = ctx.prims.selective_backward(u, delta, A, B, C, D, checkpoints, dy.contiguous())
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None)


def scan(a, x):
    """h [B, T, D] of h_t = a_t h_{t-1} + x_t (h_0 = 0), one CUDA thread per channel walking T, the
    state in float32; the gradients by the reverse scan."""
    where = "ssm.scan"
    check_scan_args(where, a, x)
    check_same_device(where, a=a, x=x)
    check_backend(where, PRIMITIVES.BACKEND, "x", x)
    with on_device(where, PRIMITIVES, x):
        return ScanFunction.apply(a, x, PRIMITIVES)


def check_selective_kernel_limits(where: str, u, A):
    """The state size the registers hold and the batch the launch grid holds, named."""
    if A.shape[1] > MAX_STATE:
        raise ValueError(f"{where} (cuda backend): the state size N (A's columns) may be at most {MAX_STATE} "
                         f"(the states of a channel are held in registers); got {A.shape[1]}. Use "
                         "backend='reference'.")
    if u.shape[0] > MAX_BATCH:
        raise ValueError(f"{where} (cuda backend): the batch may be at most {MAX_BATCH}; got {u.shape[0]}.")


def selective_scan(u, delta, A, B, C, D=None):
    """y [B, T, D] of Mamba's selective scan (Gu and Dao 2023, Algorithm 2), one CUDA thread per channel
    with its N states in registers; the gradients by a reverse walk over recomputed states."""
    where = "ssm.selective_scan"
    check_selective_scan_args(where, u, delta, A, B, C, D)
    check_same_device(where, u=u, delta=delta, A=A, B=B, C=C, **({} if D is None else {"D": D}))
    check_backend(where, PRIMITIVES.BACKEND, "u", u)
    check_selective_kernel_limits(where, u, A)
    with on_device(where, PRIMITIVES, u):
        return SelectiveScanFunction.apply(u, delta, A, B, C, D, PRIMITIVES)
