"""The streaming softmax and sparsemax over stored rows in Triton, forward and backward: the one kernel
design of hopfield.retrieve, hopfield.sparse_retrieve and diffusion.ideal_denoiser (the contract of
`course.streaming`, block for block).

For queries x [N, D] with temperatures t [N] and stored rows y [M, D], with a norm weight h,
    logit_ij = (x_i . y_j - h |y_j|^2) / t_i,     out_i = sum_j p_ij y_j
- modern Hopfield retrieval (Ramsauer et al. 2020, arXiv:2008.02217, eq. 3): h = 0, t_i = 1 / beta;
- the ideal denoiser of a training set (Karras et al. 2022, arXiv:2206.00364, eq. 2): h = 1/2,
  t_i = sigma_i^2 (-|x - y|^2 / 2 sigma^2 up to a term of x alone);
- softmax weights p_ij = exp(logit_ij - m_i) / l_i, or sparsemax's p_ij = max(logit_ij - tau_i, 0)
  (Martins & Astudillo 2016, arXiv:1602.02068, eq. 2).

`streaming_fwd_kernel`: one program per block of BLOCK_N queries and block of BLOCK_D output columns
walks the M rows BLOCK_M at a time (flash attention's forward, Dao et al. 2022, arXiv:2205.14135,
Algorithm 1). Each step computes a [BLOCK_N, BLOCK_M] tile of logits (tl.dot over D in steps of
BLOCK_D). Softmax keeps a running maximum m, a running sum l of exp(logit - m) and a running weighted
sum of the rows, both rescaled by exp(m_old - m_new) when a block raises the maximum; it saves m and l
apart, [N] each (flash attention's single lse = m + log l would cost the float32 weights a relative
error of eps |m|). Sparsemax reads the threshold tau and sums max(logit - tau, 0) y_j. The [N, M]
weights never exist.

`sparsemax_threshold_kernel` (Martins & Astudillo 2016, Algorithm 1): a program holds the whole row of
M logits of each of its BLOCK_N queries on chip (M <= MAX_SPARSE_ROWS; the row is built BLOCK_M
columns at a time), sorts it in decreasing order (tl.sort on a GPU; under the interpreter the same
bitonic network by tl.minimum and tl.maximum, `bitonic_sort_descending`), sums its prefixes (tl.cumsum)
and finds
    k_i = #{k : 1 + k z_(k) > sum_{r <= k} z_(r)},   tau_i = (sum_{r <= k_i} z_(r) - 1) / k_i,
NaN for a row with a NaN.

Backward (Dao et al. 2022, Algorithm 2), with g = dL/d out, gp_ij = <g_i, y_j> and the weights p
rebuilt from the statistics, w_ij = dL/dlogit_ij / t_i:
    w_ij = p_ij (gp_ij - delta_i) / t_i,  delta_i = sum_j p_ij gp_ij                     (softmax)
    w_ij = s_ij (gp_ij - delta_i) / t_i,  delta_i = sum_j s_ij gp_ij / sum_j s_ij          (sparsemax)
with s_ij = [p_ij > 0] the support (Martins & Astudillo 2016, eq. 12; False for NaN, so a NaN row's
x-gradient is 0, as the reference's is).
`streaming_bwd_queries_kernel` sums delta in a first sweep over the rows from the same products gp as
the second (one-hot weights then give exactly 0, as the true gradient is), then
grad x_i = sum_j w_ij y_j; it stores delta [N] for the next kernel.
`streaming_bwd_patterns_kernel`: one program per block of BLOCK_M stored rows and of BLOCK_D columns
walks the queries BLOCK_N at a time: grad y_j = sum_i p_ij g_i + sum_i w_ij (x_i - 2 h y_j)
(values, then keys).

Products are IEEE (no TF32) in ACC: float32 for half and single inputs (converted before tl.dot, so
bfloat16 runs under the interpreter too), float64 for float64. Offsets are int64. A program recomputes
the logits over all of D for its block of columns: with D <= BLOCK_D (every D up to 128 on a GPU)
there is one block of columns and nothing is recomputed. Stores round to nearest (`to_storage`).
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import gpu_tiles
from course.kernels.rounding import arithmetic, to_storage
from course.streaming import MAX_SPARSE_ROWS, SPARSEMAX, WEIGHTINGS


@triton.jit
def logits_block(x_ptr, g_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H: tl.constexpr,
                 WITH_G: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_D: tl.constexpr):
    """(x_i . y_j - h |y_j|^2) / t_i [BLOCK_N, BLOCK_M] (-inf past M) and, if WITH_G, <g_i, y_j>."""
    dots = tl.zeros((BLOCK_N, BLOCK_M), dtype=ACC)
    g_dots = tl.zeros((BLOCK_N, BLOCK_M), dtype=ACC)
    norms = tl.zeros((BLOCK_M,), dtype=ACC)  # |y_j|^2
    for start in range(0, D, BLOCK_D):
        offs_d = start + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        y = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :], mask=mask_m[:, None] & mask_d[None, :],
                    other=0.0).to(ACC)  # [BLOCK_M, BLOCK_D]
        mask_x = mask_n[:, None] & mask_d[None, :]
        x = tl.load(x_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_x, other=0.0).to(ACC)
        dots = tl.dot(x, tl.trans(y), dots, input_precision="ieee")
        if H != 0.0:
            norms += tl.sum(y * y, axis=1)
        if WITH_G:
            g = tl.load(g_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_x, other=0.0).to(ACC)
            g_dots = tl.dot(g, tl.trans(y), g_dots, input_precision="ieee")
    if H != 0.0:
        dots = dots - H * norms[None, :]
    logits = dots / t[:, None]
    return tl.where(mask_m[None, :], logits, float("-inf")), g_dots


@triton.jit
def sparse_weights(logits, tau):
    """max(logit - tau, 0) [BLOCK_N, BLOCK_M]; NaN stays NaN (NaN < 0 is False), -inf gives 0."""
    shifted = logits - tau[:, None]
    return tl.where(shifted < 0.0, 0.0, shifted)


@triton.jit
def softmax_weights(logits, m, l):
    """exp(logit - m) / l [BLOCK_N, BLOCK_M] from the saved statistics (a row of NaN logits, whose
    maximum is -inf on a GPU, gives NaN weights rather than -inf - -inf)."""
    m = tl.where(m == float("-inf"), 0.0, m)
    return tl.exp(logits - m[:, None]) / l[:, None]


@triton.jit
def streaming_fwd_kernel(x_ptr, y_ptr, t_ptr, out_ptr, m_ptr, l_ptr, tau_ptr, N, M, D, H: tl.constexpr,
                         SPARSE: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[i, cols] = sum_j p_ij y[j, cols] for a block of queries i and of columns; softmax also
    stores m_i and l_i (sparsemax reads tau_i)."""
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_d = pid_d.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)  # this program's output columns
    mask_d = offs_d < D
    t = tl.load(t_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=ACC)  # running sum of the weights times the rows
    if SPARSE:
        tau = tl.load(tau_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
        for start in range(0, M, BLOCK_M):
            offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
            mask_m = offs_m < M
            logits, _ = logits_block(x_ptr, x_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, False, ACC,
                                     BLOCK_N, BLOCK_M, BLOCK_D)
            values = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :],
                             mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(ACC)  # [BLOCK_M, BLOCK_D]
            acc = tl.dot(sparse_weights(logits, tau), values, acc, input_precision="ieee")
        out = acc
    else:
        m = tl.full((BLOCK_N,), float("-inf"), dtype=ACC)  # running maximum of the logits
        l = tl.zeros((BLOCK_N,), dtype=ACC)  # running sum of exp(logit - m)
        for start in range(0, M, BLOCK_M):
            offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
            mask_m = offs_m < M
            logits, _ = logits_block(x_ptr, x_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, False, ACC,
                                     BLOCK_N, BLOCK_M, BLOCK_D)
            m_new = tl.maximum(m, tl.max(logits, axis=1))  # -inf only in a row of NaN logits
            shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # no -inf - -inf
            rescale = tl.exp(m - shift)  # 0 on the first block (m = -inf)
            p = tl.exp(logits - shift[:, None])  # [BLOCK_N, BLOCK_M], 0 past M
            l = l * rescale + tl.sum(p, axis=1)
            values = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :],
                             mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(ACC)
            acc = tl.dot(p, values, acc * rescale[:, None], input_precision="ieee")
            m = m_new
        out = acc / l[:, None]
        first_block = tl.full((BLOCK_N,), pid_d, tl.int32) == 0  # one program of the columns writes m, l
        tl.store(m_ptr + offs_n, m, mask=mask_n & first_block)
        tl.store(l_ptr + offs_n, l, mask=mask_n & first_block)
    tl.store(out_ptr + offs_n[:, None] * D + offs_d[None, :], to_storage(out, out_ptr.dtype.element_ty),
             mask=mask_n[:, None] & mask_d[None, :])


@triton.jit
def bitonic_sort_descending(x, BLOCK_N: tl.constexpr, LOG_ROW: tl.constexpr):
    """x [BLOCK_N, 2^LOG_ROW] sorted along its rows in decreasing order by tl.sort's bitonic network,
    each compare-and-swap a split of the pairs, tl.minimum and tl.maximum, and a join: builtins, which
    the interpreter runs in numpy (tl.sort swaps by a xor-reduction that it runs element by element in
    Python). Stage s merges runs of 2^s, descending where bit s of the position is 1 (all of them at
    the last stage); its steps compare the pairs 2^i apart, i = s - 1, ..., 0."""
    ROW: tl.constexpr = 2 ** LOG_ROW
    for stage in tl.static_range(1, LOG_ROW + 1):
        for step in tl.static_range(stage):
            i: tl.constexpr = stage - 1 - step
            A: tl.constexpr = BLOCK_N * ROW // 2 ** (i + 1)  # groups of 2^(i + 1), each 2^i pairs
            left, right = tl.split(tl.permute(tl.reshape(x, (A, 2, 2 ** i)), (0, 2, 1)))  # [A, 2^i] each
            smaller = tl.minimum(left, right)
            larger = tl.maximum(left, right)
            if stage < LOG_ROW:
                descending = ((tl.arange(0, A) >> (stage - i - 1)) & 1)[:, None] != 0  # bit `stage`
                left = tl.where(descending, larger, smaller)
                right = tl.where(descending, smaller, larger)
            else:
                left = larger
                right = smaller
            x = tl.reshape(tl.permute(tl.join(left, right), (0, 2, 1)), (BLOCK_N, ROW))
    return x


@triton.jit
def sparsemax_threshold_kernel(x_ptr, y_ptr, t_ptr, tau_ptr, N, M, D, H: tl.constexpr, ACC: tl.constexpr,
                               BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                               BLOCK_ROW: tl.constexpr, NATIVE_SORT: tl.constexpr, LOG_ROW: tl.constexpr):
    """tau_i of a block of queries, each holding its whole row of logits (BLOCK_ROW >= M, a multiple
    of BLOCK_M; -inf past M) on chip: sort, prefix sums, support size, threshold."""
    pid_n = tl.program_id(0)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    t = tl.load(t_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    CHUNKS: tl.constexpr = BLOCK_ROW // BLOCK_M
    offs_chunk = tl.arange(0, CHUNKS)
    row = tl.full((BLOCK_N, CHUNKS, BLOCK_M), float("-inf"), dtype=ACC)  # chunk c holds rows c BLOCK_M + ..
    for start in range(0, M, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, _ = logits_block(x_ptr, x_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, False, ACC,
                                 BLOCK_N, BLOCK_M, BLOCK_D)
        row = tl.where(offs_chunk[None, :, None] == start // BLOCK_M, logits[:, None, :], row)
    z = tl.reshape(row, (BLOCK_N, BLOCK_ROW))
    has_nan = tl.sum((z != z).to(tl.int32), axis=1) > 0
    z = tl.where(z != z, float("-inf"), z)  # its tau is NaN whatever the order
    if NATIVE_SORT:
        ranked = tl.sort(z, dim=1, descending=True)  # z_(1) >= z_(2) >= ... (-inf last)
    else:
        ranked = bitonic_sort_descending(z, BLOCK_N, LOG_ROW)
    cumulative = tl.cumsum(ranked, axis=1)
    ranks = (tl.arange(0, BLOCK_ROW) + 1).to(ACC)
    support = 1.0 + ranks[None, :] * ranked > cumulative  # a prefix of the ranks
    size = tl.maximum(tl.sum(support.to(ACC), axis=1), 1.0)  # k_i [BLOCK_N]
    top = tl.sum(tl.where(ranks[None, :] == size[:, None], cumulative, 0.0), axis=1)  # sum_{r <= k} z_(r)
    tau = tl.where(has_nan, float("nan"), (top - 1.0) / size)
    tl.store(tau_ptr + offs_n, tau, mask=mask_n)


@triton.jit
def streaming_bwd_queries_kernel(x_ptr, y_ptr, t_ptr, m_ptr, l_ptr, tau_ptr, g_ptr, grad_x_ptr, delta_ptr,
                                 N, M, D, H: tl.constexpr, SPARSE: tl.constexpr, ACC: tl.constexpr,
                                 BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """grad_x[i, cols] = sum_j w_ij y[j, cols], two sweeps over the rows j (delta, then w); delta_i."""
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_d = pid_d.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    t = tl.load(t_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    m = tl.load(m_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
    l = tl.load(l_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    tau = tl.load(tau_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
    delta = tl.zeros((BLOCK_N,), dtype=ACC)
    count = tl.zeros((BLOCK_N,), dtype=ACC)  # the support's size (sparsemax)
    for start in range(0, M, BLOCK_M):  # sweep 1: delta
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, g_dots = logits_block(x_ptr, g_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, True, ACC,
                                      BLOCK_N, BLOCK_M, BLOCK_D)
        if SPARSE:
            gate = (sparse_weights(logits, tau) > 0.0).to(ACC)
            count += tl.sum(gate, axis=1)
        else:
            gate = softmax_weights(logits, m, l)
        delta += tl.sum(gate * g_dots, axis=1)
    if SPARSE:
        delta = delta / tl.maximum(count, 1.0)
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=ACC)
    for start in range(0, M, BLOCK_M):  # sweep 2: sum_j w_ij y_j
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, g_dots = logits_block(x_ptr, g_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, True, ACC,
                                      BLOCK_N, BLOCK_M, BLOCK_D)
        if SPARSE:
            gate = (sparse_weights(logits, tau) > 0.0).to(ACC)
        else:
            gate = softmax_weights(logits, m, l)
        w = gate * (g_dots - delta[:, None]) / t[:, None]  # dL/dlogit / t_i
        values = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :],
                         mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(ACC)
        acc = tl.dot(w, values, acc, input_precision="ieee")
    tl.store(grad_x_ptr + offs_n[:, None] * D + offs_d[None, :],
             to_storage(acc, grad_x_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_d[None, :])
    first_block = tl.full((BLOCK_N,), pid_d, tl.int32) == 0
    tl.store(delta_ptr + offs_n, delta, mask=mask_n & first_block)


@triton.jit
def streaming_bwd_patterns_kernel(x_ptr, y_ptr, t_ptr, m_ptr, l_ptr, tau_ptr, delta_ptr, g_ptr, grad_y_ptr,
                                  N, M, D, H: tl.constexpr, SPARSE: tl.constexpr, ACC: tl.constexpr,
                                  BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """grad_y[j, cols] = sum_i p_ij g[i, cols] + sum_i w_ij (x[i, cols] - 2 h y[j, cols]) for a block
    of rows j and of columns, one sweep over the queries i."""
    pid_m = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    offs_d = pid_d.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=ACC)  # sum_i p_ij g_i + w_ij x_i
    w_sum = tl.zeros((BLOCK_M,), dtype=ACC)  # sum_i w_ij
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N).to(tl.int64)
        mask_n = offs_n < N
        t = tl.load(t_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
        delta = tl.load(delta_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
        logits, g_dots = logits_block(x_ptr, g_ptr, y_ptr, t, offs_n, mask_n, offs_m, mask_m, D, H, True, ACC,
                                      BLOCK_N, BLOCK_M, BLOCK_D)
        if SPARSE:
            tau = tl.load(tau_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
            p = sparse_weights(logits, tau)
            gate = (p > 0.0).to(ACC)
        else:
            m = tl.load(m_ptr + offs_n, mask=mask_n, other=0.0).to(ACC)
            l = tl.load(l_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
            p = softmax_weights(logits, m, l)
            gate = p
        p = tl.where(mask_n[:, None], p, 0.0)  # no weight for the queries past N
        w = tl.where(mask_n[:, None], gate * (g_dots - delta[:, None]) / t[:, None], 0.0)
        mask_q = mask_n[:, None] & mask_d[None, :]
        g = tl.load(g_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_q, other=0.0).to(ACC)
        x = tl.load(x_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_q, other=0.0).to(ACC)
        acc = tl.dot(tl.trans(p), g, acc, input_precision="ieee")
        acc = tl.dot(tl.trans(w), x, acc, input_precision="ieee")
        if H != 0.0:
            w_sum += tl.sum(w, axis=0)
    mask_y = mask_m[:, None] & mask_d[None, :]
    if H != 0.0:
        y = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :], mask=mask_y, other=0.0).to(ACC)
        acc = acc - 2.0 * H * w_sum[:, None] * y
    tl.store(grad_y_ptr + offs_m[:, None] * D + offs_d[None, :], to_storage(acc, grad_y_ptr.dtype.element_ty),
             mask=mask_y)


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """The kernels' arithmetic, and the dtype of the temperatures and statistics they read: float64 for
    float64 tensors, float32 for every other dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def streaming_blocks(device: torch.device, N: int, M: int, D: int) -> dict:
    """BLOCK_N queries, BLOCK_M stored rows and BLOCK_D columns per tile (tl.dot wants 16+).

    On a GPU a program of 8 warps holds 32 x 32 tiles and up to 128 columns, in every dtype. Compiled
    for sm_90 (Triton 3.9 and its ptxas, no GPU needed) at D = 128, the float32-arithmetic kernels with
    64 x 64 tiles and 4 warps kept 2-19 KB of stack a thread and took 5-22 s to compile a variant; with
    32 x 32 tiles and 8 warps at most 1 KB (4.4-4.7 KB in the denoiser's backward over the queries,
    h = 1/2) and 1-3 s. Their speed is not measured (no GPU in this change). The interpreter pays per
    program and per operation, hardly per element, so on the CPU the tiles are as large as the sizes
    allow (up to 128 queries, 256 rows, 256 columns).
    """
    width = max(16, triton.next_power_of_2(max(D, 1)))
    if gpu_tiles(device):
        return dict(BLOCK_N=32, BLOCK_M=32, BLOCK_D=min(128, width), num_warps=8)
    return dict(BLOCK_N=max(16, min(128, triton.next_power_of_2(max(N, 1)))),
                BLOCK_M=max(16, min(256, triton.next_power_of_2(max(M, 1)))), BLOCK_D=min(256, width))


def threshold_launch(device: torch.device, blocks: dict, M: int) -> dict:
    """The threshold kernel's tiles: a row of BLOCK_ROW >= M logits per query (a power of two, so a
    multiple of BLOCK_M); on a GPU 16 queries a program (tl.dot's least), 8 warps for the row, and
    tl.sort; in the interpreter the same bitonic network by min and max (`bitonic_sort_descending`)."""
    row = max(triton.next_power_of_2(max(M, 1)), blocks["BLOCK_M"])
    native = gpu_tiles(device)
    launch = dict(blocks, BLOCK_N=16, num_warps=8) if native else dict(blocks)
    return dict(launch, BLOCK_ROW=row, NATIVE_SORT=native, LOG_ROW=row.bit_length() - 1)


def check_weighting(weighting: str):
    if weighting not in WEIGHTINGS:
        raise ValueError(f"triton_streaming: `weighting` must be one of {WEIGHTINGS}; got {weighting!r}.")


def streaming_forward(x, y, temperature, norm_weight: float, weighting: str):
    """x [N, D], y [M, D] (contiguous, M <= MAX_SPARSE_ROWS for sparsemax), temperature [N] in
    accumulator(x.dtype) -> out [N, D] (x's dtype), stats: (m [N], l [N]) for softmax, (tau [N],)
    for sparsemax, in accumulator(x.dtype)."""
    check_weighting(weighting)
    (N, D), M = x.shape, y.shape[0]
    sparse = weighting == SPARSEMAX
    if sparse and M > MAX_SPARSE_ROWS:
        raise ValueError(f"triton_streaming: sparsemax sorts a row of at most {MAX_SPARSE_ROWS} logits on "
                         f"chip; got M = {M}.")
    acc = accumulator(x.dtype)
    out = outputs.empty((N, D), dtype=x.dtype, device=x.device)
    if sparse:
        stats = (outputs.empty((N,), dtype=acc, device=x.device),)
    else:
        stats = tuple(outputs.empty((N,), dtype=acc, device=x.device) for _ in range(2))
    if N == 0:
        return out, stats
    blocks = streaming_blocks(x.device, N, M, D)
    constants = dict(H=float(norm_weight), ACC=arithmetic(x.dtype)["ACC"])
    if sparse:
        launch = threshold_launch(x.device, blocks, M)
        sparsemax_threshold_kernel[(triton.cdiv(N, launch["BLOCK_N"]),)](
            x, y, temperature, stats[0], N, M, D, **constants, **launch)
    m, l = (stats[0], stats[0]) if sparse else stats
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), max(1, triton.cdiv(D, blocks["BLOCK_D"])))
    streaming_fwd_kernel[grid](x, y, temperature, out, m, l, stats[0], N, M, D, SPARSE=sparse, **constants,
                               **blocks)
    return out, stats


def streaming_backward(x, y, temperature, norm_weight: float, weighting: str, stats, grad, need_y: bool):
    """grad [N, D] = dL/d out -> dL/dx [N, D] (x's dtype) and dL/dy [M, D] (y's dtype; None unless
    need_y), from the forward's statistics: two kernels, over the queries and over the stored rows."""
    check_weighting(weighting)
    (N, D), M = x.shape, y.shape[0]
    sparse = weighting == SPARSEMAX
    grad_x = outputs.empty((N, D), dtype=x.dtype, device=x.device)
    grad_y = outputs.empty((M, D), dtype=y.dtype, device=y.device) if need_y else None
    if N == 0 or D == 0:
        return grad_x, None if grad_y is None else grad_y.zero_()  # sums over no queries, or empty
    m, l, tau = (stats[0],) * 3 if sparse else (stats[0], stats[1], stats[0])
    delta = outputs.empty((N,), dtype=accumulator(x.dtype), device=x.device)
    blocks = streaming_blocks(x.device, N, M, D)
    constants = dict(H=float(norm_weight), SPARSE=sparse, ACC=arithmetic(x.dtype)["ACC"], **blocks)
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), triton.cdiv(D, blocks["BLOCK_D"]))
    streaming_bwd_queries_kernel[grid](x, y, temperature, m, l, tau, grad, grad_x, delta, N, M, D,
                                       **constants)
    if need_y:
        grid = (triton.cdiv(M, blocks["BLOCK_M"]), triton.cdiv(D, blocks["BLOCK_D"]))
        streaming_bwd_patterns_kernel[grid](x, y, temperature, m, l, tau, delta, grad, grad_y, N, M, D,
                                            **constants)
    return grad_x, grad_y

