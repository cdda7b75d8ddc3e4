"""ssm.scan in Triton, forward and backward: the contract of `course.ssm.scan.scan`.

The diagonal linear recurrence (Martin and Cundy 2018, "Parallelizing Linear Recurrent Neural Nets Over
Sequence Length", arXiv:1709.04057; Blelloch 1990)

    h_t = a_t h_{t-1} + x_t,        h_0 = 0,        a, x, h [B, T, D],

composes pairs by (a_1, x_1) o (a_2, x_2) = (a_2 a_1, a_2 x_1 + x_2), an associative operator.

`scan_fwd_kernel`: a program owns one sequence b and BLOCK_D channels and walks T in chunks of BLOCK_T
steps. A chunk is one [BLOCK_T, BLOCK_D] tile of a and of x (read through their strides); inside it
`tl.associative_scan` with `linear_combine` gives every step's (decay, local state) = (a_t ... a_s,
the scan started from 0 at the chunk's first step s) in parallel, and the state entering the chunk,
carried in float32 registers, is added: h_t = local_t + decay_t h_{s-1} (the chunked form of
`course.ssm.scan.scan_in_chunks`). Steps past T are loaded as the identity (a = 1, x = 0), so the last
row of every tile is the carry for the next chunk. Only h is written (and, for a backward in bfloat16,
its float32 copy: the states the gradient of a needs, unrounded).

`scan_bwd_kernel`: the backward is the same scan run from the end: with g_t = dL/dh_t in total
(the loss through h_t and every later step),

    g_t = dh_t + a_{t+1} g_{t+1},       dx_t = g_t,       da_t = g_t h_{t-1},

a linear recurrence over reversed time with the gate of the step after. Each tile is loaded in reversed
order (row i is step T - 1 - c - i), so the same forward `tl.associative_scan` runs over it (no
`reverse=True`, no flip); the gates are a shifted by one step, the carry is g of the chunk after.
h_{t-1} is read from the float32 states the forward kept (h itself in float32).

Arithmetic in float32 whatever the input dtype (float32 or bfloat16); stores round to nearest
(`course.kernels.rounding.to_storage`). A NaN in x makes every later h NaN, and the da_t that read them,
as in the reference; g and dx stay finite, since they never read h. Offsets are int64
(`pid.to(tl.int64)`), so B T D may pass 2^31.

Under the interpreter `tl.associative_scan` makes a Python call per element of the tile (some 100 us
each): 0.8 s for T = 1000, D = 8, and seconds for the harness's D = 160. There the kernels walk each
chunk's rows in order instead (`chunk_scan`, SEQUENTIAL: about ten vector operations a step, whatever
BLOCK_D); everything around the chunk's scan (loads, carries, shifted gates, stores) is the code a GPU
runs, and tests/ssm/test_kernels.py runs the associative scan itself in the interpreter on small cases.
"""
from types import SimpleNamespace

import torch
import triton
import triton.language as tl

from course import outputs
from course.checks import check_same_device
from course.kernels.launch import check_backend, gpu_tiles, on_device
from course.kernels.rounding import to_storage
from course.ssm.scan import check_scan_args

BACKEND = "triton"
PRIMITIVES = SimpleNamespace(BACKEND=BACKEND)  # what `on_device` reads: no DEVICE, Triton runs on both
# tl.sum's combine: tl.reduce with it is tl.sum of a float32 tile without the call of a @jit function,
# which the interpreter pays about a millisecond for (it patches triton.language at every such call);
# the interpreter recognises it and sums with numpy
ADD = tl.standard._sum_combine


@triton.jit
def linear_combine(a_1, x_1, a_2, x_2):
    """(a_1, x_1) o (a_2, x_2) = (a_2 a_1, a_2 x_1 + x_2): step 1, then step 2 (an associative operator)."""
    return a_2 * a_1, a_2 * x_1 + x_2


@triton.jit
def chunk_scan(a, x, steps, SEQUENTIAL: tl.constexpr, BLOCK_T: tl.constexpr):
    """(decay, local) [BLOCK_T, BLOCK_D] of a tile: row i composes rows 0..i with `linear_combine`,
    i.e. decay_i = a_i ... a_0 and local_i = the scan of the tile from 0.

    `tl.associative_scan` on a GPU. SEQUENTIAL (the interpreter, whose associative_scan makes a Python
    call per element) walks the first `steps` rows in order instead, a few vector operations a step (the
    rows past them, masked out by the caller, are left 0); the loads, the carry and the stores around it
    are the same code."""
    if SEQUENTIAL:
        rows = tl.arange(0, BLOCK_T)[:, None]
        decay = tl.zeros(a.shape, dtype=tl.float32)
        local = tl.zeros(x.shape, dtype=tl.float32)
        run_a = tl.full((a.shape[1],), 1.0, dtype=tl.float32)
        run_x = tl.zeros((x.shape[1],), dtype=tl.float32)
        for i in range(0, steps):
            pick = rows == i
            a_i = tl.reduce(tl.where(pick, a, 0.0), 0, ADD)  # row i (a NaN elsewhere does not leak in)
            run_a = a_i * run_a
            run_x = a_i * run_x + tl.reduce(tl.where(pick, x, 0.0), 0, ADD)
            decay = tl.where(pick, run_a[None, :], decay)
            local = tl.where(pick, run_x[None, :], local)
        return decay, local
    else:
        return tl.associative_scan((a, x), 0, linear_combine)


@triton.jit
def last_row(tile, BLOCK_T: tl.constexpr):
    """Row BLOCK_T - 1 of a [BLOCK_T, BLOCK_D] tile, as [BLOCK_D] (a NaN elsewhere does not leak in)."""
    rows = tl.arange(0, BLOCK_T)[:, None]
    return tl.reduce(tl.where(rows == BLOCK_T - 1, tile, 0.0), 0, ADD)


@triton.jit
def scan_fwd_kernel(a_ptr, x_ptr, h_ptr, states_ptr, T, D, stride_ab, stride_at, stride_ad,
                    stride_xb, stride_xt, stride_xd, KEEP_STATES: tl.constexpr, SEQUENTIAL: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    """h [B, T, D] (contiguous, h_ptr's dtype) of one sequence and BLOCK_D channels, chunk by chunk;
    with KEEP_STATES also its float32 copy in states [B, T, D]."""
    pid = tl.program_id(0)  # (sequence, block of channels), the channels fastest
    blocks_d = tl.cdiv(D, BLOCK_D)
    pid_b = (pid // blocks_d).to(tl.int64)
    pid_d = (pid % blocks_d).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    carry = tl.zeros((BLOCK_D,), dtype=tl.float32)  # h at the step before the chunk
    for start in range(0, T, BLOCK_T):
        offs_t = tl.cast(start, tl.int64) + tl.arange(0, BLOCK_T)
        mask = (offs_t < T)[:, None] & mask_d[None, :]
        a = tl.load(a_ptr + pid_b * stride_ab + offs_t[:, None] * stride_at + offs_d[None, :] * stride_ad,
                    mask=mask, other=1.0).to(tl.float32)  # past T: the identity step
        x = tl.load(x_ptr + pid_b * stride_xb + offs_t[:, None] * stride_xt + offs_d[None, :] * stride_xd,
                    mask=mask, other=0.0).to(tl.float32)
        decay, local = chunk_scan(a, x, tl.minimum(T - start, BLOCK_T), SEQUENTIAL, BLOCK_T)
        h = local + decay * carry[None, :]
        offs_h = pid_b * T * D + offs_t[:, None] * D + offs_d[None, :]
        tl.store(h_ptr + offs_h, to_storage(h, h_ptr.dtype.element_ty), mask=mask)
        if KEEP_STATES:
            tl.store(states_ptr + offs_h, h, mask=mask)
        carry = last_row(h, BLOCK_T)  # used only after a full chunk


@triton.jit
def scan_bwd_kernel(a_ptr, states_ptr, dh_ptr, da_ptr, dx_ptr, T, D, stride_ab, stride_at, stride_ad,
                    stride_gb, stride_gt, stride_gd, SEQUENTIAL: tl.constexpr, BLOCK_T: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    """da, dx [B, T, D] (contiguous) of one sequence and BLOCK_D channels: the reverse scan
    g_t = dh_t + a_{t+1} g_{t+1} over reversed tiles, dx = g, da_t = g_t h_{t-1}."""
    pid = tl.program_id(0)
    blocks_d = tl.cdiv(D, BLOCK_D)
    pid_b = (pid // blocks_d).to(tl.int64)
    pid_d = (pid % blocks_d).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    carry = tl.zeros((BLOCK_D,), dtype=tl.float32)  # g at the step after the chunk (0 after the last)
    for done in range(0, T, BLOCK_T):  # steps already walked, from the end
        offs_t = (T - 1 - tl.cast(done, tl.int64)) - tl.arange(0, BLOCK_T)  # reversed: row i, step t
        valid = offs_t >= 0
        mask = valid[:, None] & mask_d[None, :]
        mask_next = (valid & (offs_t + 1 < T))[:, None] & mask_d[None, :]
        gate = tl.load(a_ptr + pid_b * stride_ab + (offs_t + 1)[:, None] * stride_at
                       + offs_d[None, :] * stride_ad, mask=mask_next, other=1.0).to(tl.float32)  # a_{t+1}
        dh = tl.load(dh_ptr + pid_b * stride_gb + offs_t[:, None] * stride_gt + offs_d[None, :] * stride_gd,
                     mask=mask, other=0.0).to(tl.float32)
        decay, local = chunk_scan(gate, dh, tl.minimum(T - done, BLOCK_T), SEQUENTIAL, BLOCK_T)
        g = local + decay * carry[None, :]
        offs = pid_b * T * D + offs_t[:, None] * D + offs_d[None, :]
        h_prev = tl.load(states_ptr + offs - D, mask=mask & (offs_t >= 1)[:, None], other=0.0)  # h_{t-1}
        tl.store(dx_ptr + offs, to_storage(g, dx_ptr.dtype.element_ty), mask=mask)
        tl.store(da_ptr + offs, to_storage(g * h_prev, da_ptr.dtype.element_ty), mask=mask)
        carry = last_row(g, BLOCK_T)  # the earliest step of this chunk (used only after a full one)


def scan_blocks(device: torch.device, T: int, D: int) -> dict:
    """BLOCK_T steps a chunk, BLOCK_D channels a program, and how a chunk is scanned.

    On a GPU a program of 4 warps scans a [128, 32] tile with `tl.associative_scan` (32 numbers a
    thread for a and x) and the programs are B D / 32 (256 for the benchmark's B = 8, D = 1024),
    untuned (no GPU in this change). The interpreter walks the chunks sequentially and pays per
    operation, hardly per element: all channels in one program (up to 256) and chunks of 32 steps, so
    that the harness's T = 40, 63 and 1000 cross chunk boundaries.
    """
    if gpu_tiles(device):
        return dict(BLOCK_T=128, BLOCK_D=32, SEQUENTIAL=False, num_warps=4)
    return dict(BLOCK_T=min(32, triton.next_power_of_2(max(T, 1))),
                BLOCK_D=min(256, triton.next_power_of_2(max(D, 1))), SEQUENTIAL=True)


def scan_forward(a, x, keep_states: bool, blocks: dict | None = None):
    """a, x [B, T, D] (any strides) -> (h [B, T, D] in x's dtype, the float32 states for the backward or
    None: h itself in float32). `blocks`: the launch's constants, `scan_blocks` by default."""
    Bt, T, D = x.shape
    h = outputs.empty((Bt, T, D), dtype=x.dtype, device=x.device)
    copy = keep_states and x.dtype != torch.float32
    states = outputs.empty((Bt, T, D), dtype=torch.float32, device=x.device) if copy else h
    if h.numel():
        blocks = blocks or scan_blocks(x.device, T, D)
        grid = (Bt * triton.cdiv(D, blocks["BLOCK_D"]),)
        scan_fwd_kernel[grid](a, x, h, states, T, D, *a.stride(), *x.stride(), KEEP_STATES=copy, **blocks)
    return h, (states if keep_states else None)


def scan_backward(a, states, dh, blocks: dict | None = None):
    """a [B, T, D] (any strides), states [B, T, D] float32, dh [B, T, D] (any strides) ->
    (da, dx) [B, T, D] in a's dtype."""
    Bt, T, D = a.shape
    da, dx = (outputs.empty((Bt, T, D), dtype=a.dtype, device=a.device) for _ in range(2))
    if da.numel():
        blocks = blocks or scan_blocks(a.device, T, D)
        grid = (Bt * triton.cdiv(D, blocks["BLOCK_D"]),)
        scan_bwd_kernel[grid](a, states, dh, da, dx, T, D, *a.stride(), *dh.stride(), **blocks)
    return da, dx


class ScanFunction(torch.autograd.Function):
    """a, x [B, T, D] -> h [B, T, D]; saves a and the float32 states h (h itself in float32)."""

    @staticmethod
    def forward(ctx, a, x):
        keep = any(ctx.needs_input_grad[:2])
        h, states = scan_forward(a, x, keep)
        if keep:
            ctx.save_for_backward(a, states)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, states = ctx.saved_tensors
        da, dx = scan_backward(a, states, dh)
        return (da if ctx.needs_input_grad[0] else None, dx if ctx.needs_input_grad[1] else None)


def scan(a, x):
    """h [B, T, D] of h_t = a_t h_{t-1} + x_t (h_0 = 0; Martin and Cundy 2018), chunks of a
    Triton associative scan with the state carried in float32; the gradients by the reverse scan.
    a (gates in (0, 1]), x [B, T, D] float32 or bfloat16 -> h [B, T, D] in x's dtype."""
    where = "ssm.scan"
    check_scan_args(where, a, x)
    check_same_device(where, a=a, x=x)
    check_backend(where, BACKEND, "x", x)
    with on_device(where, PRIMITIVES, x):
        return ScanFunction.apply(a, x)
