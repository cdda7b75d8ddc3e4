"""ssm.selective_scan in Triton, forward and backward: the contract of
`course.ssm.selective.selective_scan`.

Gu and Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (arXiv:2312.00752),
section 3 and Algorithm 2: per channel d the N states follow

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t,       y_t = C_t . h_t + D u_t,

u, Delta, y [B, T, D], A [D, N], B, C [B, T, N], D [D] (optional).

`selective_scan_fwd_kernel`, after the paper's hardware-aware scan (section 3.3.2): a program owns one
sequence b and BLOCK_D channels, holds their states as one [BLOCK_D, BLOCK_N] float32 tile in registers
(N padded to a power of two; the padded states stay exactly 0) and walks t in order. Each step reads
u_t, Delta_t [BLOCK_D] and B_t, C_t [N], forms the gates exp(Delta_t A) and the inputs Delta_t B_t u_t
on chip and writes only y_t: the [B, T, D, N] states are never written. For a backward it also writes
the states entering every chunk of BLOCK_T steps, the checkpoints [B, chunks, D, N] float32 (1 / BLOCK_T
of the states), as Mamba's CUDA kernel keeps its chunk states.

`selective_scan_bwd_kernel`: the same programs walk the chunks from the last. For each chunk they
recompute its states from the chunk's checkpoint (BLOCK_T forward steps) into a scratch buffer of one
chunk, [B, BLOCK_T, D, N] in all, then walk the chunk in reverse reading h_{t-1} back: the states are
recomputed, never stored in full, and no state is reconstructed backwards (h_{t-1} = (h_t - ...) /
exp(Delta_t A) would divide by gates that underflow). With g_t = dL/dh_t in total,

    g_t = dy_t C_t + exp(Delta_{t+1} A) g_{t+1}                        [BLOCK_D, N], carried
    du_t = dy_t D + Delta_t sum_n g_tn B_tn
    dDelta_t = sum_n g_tn (A_n exp(Delta_t A_n) h_{t-1,n} + u_t B_tn)
    dA_n += g_tn Delta_t exp(Delta_t A_n) h_{t-1,n},      dD += dy_t u_t     (summed over t in registers)
    dB_tn = sum_d g_tdn Delta_td u_td,      dC_tn = sum_d dy_td h_tdn        (summed over the program's d)

dA and dD sum over the batch and dB, dC over the blocks of channels: each program writes its partial
sums in float32 ([B, D, N], [B, D], [blocks, B, T, N]) and the host adds them with torch in a fixed
order. No atomics: the gradients are deterministic, run to run. On the CPU one block holds all the
channels (up to 256), so dB and dC have a single partial.

Arithmetic in float32 whatever the input dtype (float32 or bfloat16); stores round to nearest
(`course.kernels.rounding.to_storage`); the host's sums are float32, cast once. A NaN in u makes the
states NaN from its step on, and with them y, dC, dDelta, dA and dD, exactly where the reference's are;
du and dB at other steps stay finite, since g never reads h. Offsets are int64.

The walk over t is sequential on a GPU too (the paper's kernel also scans each thread's steps in
order); the interpreter runs the same code, about 40 vector operations a step in the backward, with
the step written out (no @jit helper) and `tl.reduce(x, axis, ADD)` for tl.sum, since the interpreter
pays about a millisecond for each call of a @jit function. Block sizes on a GPU are untuned (no GPU in
this change); the scratch is written and read back by one program, with a barrier between.
"""
from types import SimpleNamespace

import torch
import triton
import triton.language as tl

from course import outputs
from course.checks import check_same_device
from course.kernels.launch import check_backend, gpu_tiles, on_device
from course.kernels.rounding import to_storage
from course.ssm.selective import check_selective_scan_args

BACKEND = "triton"
PRIMITIVES = SimpleNamespace(BACKEND=BACKEND)  # what `on_device` reads: no DEVICE, Triton runs on both
MAX_STATE = 64  # N: the states of BLOCK_D channels are one register tile
# tl.sum's combine: tl.reduce with it is tl.sum of a float32 tile without the call of a @jit function,
# which the interpreter pays about a millisecond for (it patches triton.language at every such call);
# the interpreter recognises it and sums with numpy
ADD = tl.standard._sum_combine


@triton.jit
def selective_scan_fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, y_ptr, ckpt_ptr, T, Dm, N,
                              stride_ub, stride_ut, stride_ud, stride_db, stride_dt, stride_dd,
                              stride_Ad, stride_An, stride_Bb, stride_Bt, stride_Bn,
                              stride_Cb, stride_Ct, stride_Cn, stride_D,
                              HAS_D: tl.constexpr, KEEP_CHECKPOINTS: tl.constexpr, BLOCK_T: tl.constexpr,
                              BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """y [B, T, D] (contiguous) of one sequence and BLOCK_D channels, the states on chip; with
    KEEP_CHECKPOINTS the state entering each chunk of BLOCK_T steps, ckpt [B, chunks, D, N] float32.

    The step is written out in the loop (no helper call: the interpreter pays a lot for each), and the
    pointers advance a step at a time."""
    pid = tl.program_id(0)  # (sequence, block of channels), the channels fastest
    blocks_d = tl.cdiv(Dm, BLOCK_D)
    pid_b = (pid // blocks_d).to(tl.int64)
    pid_d = (pid % blocks_d).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < Dm
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * stride_Ad + offs_n[None, :] * stride_An, mask=mask_dn,
                other=0.0).to(tl.float32)
    if HAS_D:
        skip = tl.load(D_ptr + offs_d * stride_D, mask=mask_d, other=0.0).to(tl.float32)
    u_ptrs = u_ptr + pid_b * stride_ub + offs_d * stride_ud  # [BLOCK_D], at step 0
    dt_ptrs = delta_ptr + pid_b * stride_db + offs_d * stride_dd
    B_ptrs = B_ptr + pid_b * stride_Bb + offs_n * stride_Bn  # [BLOCK_N]
    C_ptrs = C_ptr + pid_b * stride_Cb + offs_n * stride_Cn
    y_ptrs = y_ptr + pid_b * T * Dm + offs_d
    chunks = tl.cdiv(T, BLOCK_T)
    ckpt_ptrs = ckpt_ptr + (pid_b * chunks * Dm + offs_d[:, None]) * N + offs_n[None, :]  # chunk 0
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for chunk in range(0, chunks):
        if KEEP_CHECKPOINTS:
            tl.store(ckpt_ptrs, h, mask=mask_dn)
            ckpt_ptrs += Dm * N
        for t in range(chunk * BLOCK_T, tl.minimum(chunk * BLOCK_T + BLOCK_T, T)):
            u = tl.load(u_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            B = tl.load(B_ptrs, mask=mask_n, other=0.0).to(tl.float32)
            C = tl.load(C_ptrs, mask=mask_n, other=0.0).to(tl.float32)
            # h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t; padded states get no input (nor u's NaN)
            h = tl.exp(dt[:, None] * A) * h + tl.where(mask_n[None, :], (dt * u)[:, None] * B[None, :], 0.0)
            y = tl.reduce(h * C[None, :], 1, ADD)
            if HAS_D:
                y += skip * u
            if y_ptr.dtype.element_ty == tl.bfloat16:
                y = to_storage(y, tl.bfloat16)
            tl.store(y_ptrs, y, mask=mask_d)
            u_ptrs += stride_ut
            dt_ptrs += stride_dt
            B_ptrs += stride_Bt
            C_ptrs += stride_Ct
            y_ptrs += Dm


@triton.jit
def selective_scan_bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, ckpt_ptr, scratch_ptr, dy_ptr,
                              du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, T, Dm, N, Bt,
                              stride_ub, stride_ut, stride_ud, stride_db, stride_dt, stride_dd,
                              stride_Ad, stride_An, stride_Bb, stride_Bt, stride_Bn,
                              stride_Cb, stride_Ct, stride_Cn, stride_D, stride_gb, stride_gt, stride_gd,
                              HAS_D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
                              BLOCK_N: tl.constexpr):
    """du, dDelta [B, T, D] (contiguous) of one sequence and BLOCK_D channels, and its partial sums
    dA [B, D, N], dD [B, D], dB, dC [blocks, B, T, N] (float32): a reverse walk, chunk by chunk, over
    states recomputed from the checkpoints."""
    pid = tl.program_id(0)
    blocks_d = tl.cdiv(Dm, BLOCK_D)
    pid_b = (pid // blocks_d).to(tl.int64)
    pid_d = (pid % blocks_d).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < Dm
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * stride_Ad + offs_n[None, :] * stride_An, mask=mask_dn,
                other=0.0).to(tl.float32)
    if HAS_D:
        skip = tl.load(D_ptr + offs_d * stride_D, mask=mask_d, other=0.0).to(tl.float32)
    u_row = u_ptr + pid_b * stride_ub + offs_d * stride_ud  # [BLOCK_D], at step 0
    dt_row = delta_ptr + pid_b * stride_db + offs_d * stride_dd
    B_row = B_ptr + pid_b * stride_Bb + offs_n * stride_Bn  # [BLOCK_N]
    C_row = C_ptr + pid_b * stride_Cb + offs_n * stride_Cn
    dy_row = dy_ptr + pid_b * stride_gb + offs_d * stride_gd
    out_row = pid_b * T * Dm + offs_d  # du, dDelta [B, T, D]
    part_row = (pid_d * Bt + pid_b) * T * N + offs_n  # dB, dC [blocks, B, T, N]
    chunks = tl.cdiv(T, BLOCK_T)
    ckpt_rows = ckpt_ptr + (pid_b * chunks * Dm + offs_d[:, None]) * N + offs_n[None, :]
    scratch_rows = scratch_ptr + (pid_b * BLOCK_T * Dm + offs_d[:, None]) * N + offs_n[None, :]
    g_next = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # exp(Delta_{t+1} A) g_{t+1}: 0 after T
    dA = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for done in range(0, chunks):
        chunk = chunks - 1 - done
        start = tl.cast(chunk, tl.int64) * BLOCK_T
        steps = tl.minimum(T - start, BLOCK_T)
        # recompute the chunk: scratch row i holds h_{start+i-1}, the state entering step start + i
        h = tl.load(ckpt_rows + tl.cast(chunk, tl.int64) * Dm * N, mask=mask_dn, other=0.0)
        u_ptrs = u_row + start * stride_ut
        dt_ptrs = dt_row + start * stride_dt
        B_ptrs = B_row + start * stride_Bt
        h_ptrs = scratch_rows
        for i in range(0, steps):
            tl.store(h_ptrs, h, mask=mask_dn)
            u = tl.load(u_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            B = tl.load(B_ptrs, mask=mask_n, other=0.0).to(tl.float32)
            h = tl.exp(dt[:, None] * A) * h + tl.where(mask_n[None, :], (dt * u)[:, None] * B[None, :], 0.0)
            h_ptrs += Dm * N
            u_ptrs += stride_ut
            dt_ptrs += stride_dt
            B_ptrs += stride_Bt
        tl.debug_barrier()  # the chunk's states are written before any thread reads them back
        last = start + steps - 1  # walk the chunk backwards from its last step
        u_ptrs = u_row + last * stride_ut
        dt_ptrs = dt_row + last * stride_dt
        B_ptrs = B_row + last * stride_Bt
        C_ptrs, dy_ptrs = C_row + last * stride_Ct, dy_row + last * stride_gt
        h_ptrs = scratch_rows + (steps - 1) * Dm * N
        out_ptrs, part_ptrs = out_row + last * Dm, part_row + last * N
        for i in range(0, steps):
            u = tl.load(u_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            B = tl.load(B_ptrs, mask=mask_n, other=0.0).to(tl.float32)
            C = tl.load(C_ptrs, mask=mask_n, other=0.0).to(tl.float32)
            dy = tl.load(dy_ptrs, mask=mask_d, other=0.0).to(tl.float32)
            h_prev = tl.load(h_ptrs, mask=mask_dn, other=0.0)  # h_{t-1}
            dtu = (dt * u)[:, None]
            gate = tl.exp(dt[:, None] * A)
            h = gate * h_prev + tl.where(mask_n[None, :], dtu * B[None, :], 0.0)
            g = dy[:, None] * C[None, :] + g_next  # dL/dh_t
            g_gate = g * gate  # dL/dh_{t-1} through this step
            g_B = g * B[None, :]
            g_h = g_gate * h_prev  # dL/d(Delta_t A), as exp' = exp
            du = dt * tl.reduce(g_B, 1, ADD)
            if HAS_D:
                du += dy * skip
                dD += dy * u
            ddelta = tl.reduce(g_h * A + g_B * u[:, None], 1, ADD)
            dA += g_h * dt[:, None]
            if du_ptr.dtype.element_ty == tl.bfloat16:
                du = to_storage(du, tl.bfloat16)
                ddelta = to_storage(ddelta, tl.bfloat16)
            tl.store(du_ptr + out_ptrs, du, mask=mask_d)
            tl.store(ddelta_ptr + out_ptrs, ddelta, mask=mask_d)
            tl.store(dB_ptr + part_ptrs, tl.reduce(g * dtu, 0, ADD), mask=mask_n)
            tl.store(dC_ptr + part_ptrs, tl.reduce(dy[:, None] * h, 0, ADD), mask=mask_n)
            g_next = g_gate
            u_ptrs -= stride_ut
            dt_ptrs -= stride_dt
            B_ptrs -= stride_Bt
            C_ptrs -= stride_Ct
            dy_ptrs -= stride_gt
            h_ptrs -= Dm * N
            out_ptrs -= Dm
            part_ptrs -= N
        tl.debug_barrier()  # every read of the scratch is done before the next chunk overwrites it
    tl.store(dA_ptr + (pid_b * Dm + offs_d[:, None]) * N + offs_n[None, :], dA, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + pid_b * Dm + offs_d, dD, mask=mask_d)


def selective_blocks(device: torch.device, Dm: int, N: int) -> dict:
    """BLOCK_T steps between checkpoints, BLOCK_D channels a program, BLOCK_N states (N padded).

    On a GPU a program of 2 warps holds a [32, 16] state tile (8 numbers a thread) and the programs are
    B D / 32 (256 for the benchmark's B = 8, D = 1024), a checkpoint every 64 steps; untuned (no GPU in
    this change). The interpreter pays per operation, hardly per element: all channels in one program
    (up to 256) and a checkpoint every 16 steps, so that the harness's T = 32, 63 and 600 cross chunks.
    """
    BLOCK_N = triton.next_power_of_2(max(N, 1))
    if gpu_tiles(device):
        return dict(BLOCK_T=64, BLOCK_D=max(8, min(32, 512 // BLOCK_N)), BLOCK_N=BLOCK_N, num_warps=2)
    return dict(BLOCK_T=16, BLOCK_D=min(256, triton.next_power_of_2(max(Dm, 1))), BLOCK_N=BLOCK_N)


def strides(u, delta, A, B, C, D) -> tuple:
    """The strides the kernels read the inputs through (D's 0 when there is none)."""
    return (*u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(),
            0 if D is None else D.stride(0))


def selective_forward(u, delta, A, B, C, D, keep_checkpoints: bool):
    """-> (y [B, T, D] in u's dtype, the checkpoints [B, chunks, D, N] float32 or None)."""
    Bt, T, Dm = u.shape
    N = A.shape[1]
    blocks = selective_blocks(u.device, Dm, N)
    y = outputs.empty((Bt, T, Dm), dtype=u.dtype, device=u.device)
    chunks = triton.cdiv(T, blocks["BLOCK_T"])
    ckpt = (outputs.empty((Bt, chunks, Dm, N), dtype=torch.float32, device=u.device) if keep_checkpoints
            else y)  # a placeholder pointer: not written
    if y.numel():
        grid = (Bt * triton.cdiv(Dm, blocks["BLOCK_D"]),)
        selective_scan_fwd_kernel[grid](u, delta, A, B, C, u if D is None else D, y, ckpt, T, Dm, N,
                                        *strides(u, delta, A, B, C, D), HAS_D=D is not None,
                                        KEEP_CHECKPOINTS=keep_checkpoints, **blocks)
    return y, (ckpt if keep_checkpoints else None)


def selective_backward(u, delta, A, B, C, D, ckpt, dy):
    """-> du, dDelta [B, T, D], dA [D, N], dB, dC [B, T, N], dD [D] or None, in u's dtype; the sums over
    batch and channel blocks in float32, in a fixed order."""
    Bt, T, Dm = u.shape
    N = A.shape[1]
    blocks = selective_blocks(u.device, Dm, N)
    blocks_d = triton.cdiv(Dm, blocks["BLOCK_D"])
    du, ddelta = (outputs.empty((Bt, T, Dm), dtype=u.dtype, device=u.device) for _ in range(2))
    f32 = dict(dtype=torch.float32, device=u.device)
    dA = outputs.empty((Bt, Dm, N), **f32)
    dD = outputs.empty((Bt, Dm), **f32)
    dB, dC = (outputs.empty((blocks_d, Bt, T, N), **f32) for _ in range(2))
    if du.numel():
        scratch = torch.empty((Bt, blocks["BLOCK_T"], Dm, N), **f32)  # one chunk's states
        selective_scan_bwd_kernel[(Bt * blocks_d,)](
            u, delta, A, B, C, u if D is None else D, ckpt, scratch, dy, du, ddelta, dA, dB, dC, dD,
            T, Dm, N, Bt, *strides(u, delta, A, B, C, D), *dy.stride(), HAS_D=D is not None, **blocks)
    else:  # nothing to walk: every sum is empty
        for t in (dA, dD, dB, dC):
            t.zero_()
    dtype = u.dtype
    return (du, ddelta, dA.sum(0).to(dtype), dB.sum(0).to(dtype), dC.sum(0).to(dtype),
            None if D is None else dD.sum(0).to(dtype))


class SelectiveScanFunction(torch.autograd.Function):
    """u, delta [B, T, D], A [D, N], B, C [B, T, N], D [D] or None -> y [B, T, D]; saves the inputs and
    the checkpoints (the states every BLOCK_T steps), never the [B, T, D, N] states."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D):
        keep = any(ctx.needs_input_grad[:6])
        y, ckpt = selective_forward(u, delta, A, B, C, D, keep)
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, ckpt)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, ckpt = ctx.saved_tensors
        grads = selective_backward(u, delta, A, B, C, D, ckpt, dy)
        return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


def check_selective_kernel_limits(where: str, A):
    """The state size a program's register tile holds, named."""
    if A.shape[1] > MAX_STATE:
        raise ValueError(f"{where} ({BACKEND} backend): the state size N (A's columns) may be at most "
                         f"{MAX_STATE} (the states of a block of channels are one register tile); got "
                         f"{A.shape[1]}. Use backend='reference'.")


def selective_scan(u, delta, A, B, C, D=None):
    """y [B, T, D] of Mamba's selective scan (Gu and Dao 2023, section 3, Algorithm 2) in Triton: each
    program walks t with the N states of its channels in float32 registers and writes only y; the
    gradients by a reverse walk over states recomputed from checkpoints.
    u, delta [B, T, D], A [D, N], B, C [B, T, N], D [D] or None (float32 or bfloat16) -> y [B, T, D]"""
    where = "ssm.selective_scan"
    check_selective_scan_args(where, u, delta, A, B, C, D)
    check_same_device(where, u=u, delta=delta, A=A, B=B, C=C, **({} if D is None else {"D": D}))
    check_backend(where, BACKEND, "u", u)
    check_selective_kernel_limits(where, A)
    with on_device(where, PRIMITIVES, u):
        return SelectiveScanFunction.apply(u, delta, A, B, C, D)
