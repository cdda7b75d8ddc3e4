"""Flash attention's streaming softmax over stored rows: the one algorithm of the course's retrieval kernels.

Two ops compute, for queries x_i [N, D] and stored rows y_j [M, D],

    out_i = sum_j p_ij y_j,    logit_ij = (x_i . y_j - h |y_j|^2) / t_i

- modern Hopfield retrieval (Ramsauer et al. 2020, "Hopfield Networks is All You Need", eq. 3):
  h = 0, t_i = 1 / beta, p_i = softmax(logit_i); STanHop's sparse retrieval puts sparsemax in its place;
- the ideal denoiser of a training set (Karras et al. 2022, eq. 2): h = 1/2, t_i = sigma_i^2, since
  -|x - y|^2 / 2 sigma^2 = (x . y - |y|^2 / 2) / sigma^2 up to a term of x alone.

The functions here are that algorithm in PyTorch, block by block over the rows, never forming the
[N, M] weights; they are the contract that `kernels/triton_streaming.py` and `kernels/streaming_softmax.cu`
implement block for block, and the `online` backends of `hopfield.retrieve`, `hopfield.sparse_retrieve`
and `diffusion.ideal_denoiser`.

Weights, with their per-query statistics ("stats"):
- softmax: p_ij = exp(logit_ij - m_i) / l_i with the running maximum m_i and the running sum l_i of
  exp(logit - m), rescaled by exp(m_old - m_new) when a block raises the maximum (Milakov & Gimelshein
  2018; Dao et al. 2022, Algorithm 1). m and l are kept apart: flash attention's one number
  lse = m + log l would cost the float32 weights a relative error of eps |m|.
- sparsemax (Martins & Astudillo 2016, eq. 2 and Algorithm 1): p_ij = max(logit_ij - tau_i, 0), with the
  threshold tau_i from one row of logits sorted in decreasing order z_(1) >= z_(2) >= ...:
  k_i = max{k : 1 + k z_(k) > sum_{r <= k} z_(r)},  tau_i = (sum_{r <= k_i} z_(r) - 1) / k_i.
  The sort needs the whole row at once, so the kernels hold it on chip (`MAX_SPARSE_ROWS`).

Backward, with g_i = dL/d out_i and gp_ij = <g_i, y_j> = dL/dp_ij:
    dL/dlogit_ij = w_ij = p_ij (gp_ij - delta_i),   delta_i = sum_j p_ij gp_ij           (softmax)
                 = s_ij (gp_ij - delta_i),          delta_i = sum_j s_ij gp_ij / sum_j s_ij (sparsemax)
with s_ij = [p_ij > 0] the support (sparsemax's Jacobian, Martins & Astudillo 2016, eq. 12). Then
    dL/dx_i = sum_j w_ij y_j / t_i,
    dL/dy_j = sum_i p_ij g_i + sum_i w_ij (x_i - 2 h y_j) / t_i       (values, then keys).
delta is summed in a first sweep from the same products gp as the second: where the softmax weights are
one-hot the difference is then exactly 0, as the true gradient is.
"""
import torch

BLOCK_M = 64  # stored rows per block of the streaming loops
SOFTMAX, SPARSEMAX = "softmax", "sparsemax"
WEIGHTINGS = (SOFTMAX, SPARSEMAX)
MAX_SPARSE_ROWS = 4096  # the kernels' limit on M for sparsemax: one row of logits is sorted on chip


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """The arithmetic of the streaming loops: float64 for float64, float32 for the other floats."""
    return torch.promote_types(dtype, torch.float32)


def logits(x, y, temperature, norm_weight: float):
    """(x_i . y_j - h |y_j|^2) / t_i in the accumulator type. x [N, D], y [M, D], temperature [N] -> [N, M]"""
    acc = accumulator(x.dtype)
    xa, ya = x.to(acc), y.to(acc)
    dots = xa @ ya.T
    if norm_weight:
        dots = dots - norm_weight * (ya * ya).sum(1)[None, :]
    return dots / temperature.to(acc)[:, None]


def sparsemax_threshold_of(z):
    """tau [N] of rows z [N, M] by sorting (Martins & Astudillo 2016, Algorithm 1); a row with a NaN
    gives NaN. Also the support size k [N]."""
    ranked = z.sort(dim=1, descending=True).values
    cumulative = ranked.cumsum(1)
    k = torch.arange(1, z.shape[1] + 1, dtype=z.dtype)
    support = (1 + k * ranked > cumulative).to(z.dtype)  # a prefix of the ranks
    size = support.sum(1).clamp(min=1)  # [N]
    top = cumulative.gather(1, (size.long() - 1)[:, None])[:, 0]
    tau = (top - 1) / size
    return torch.where(torch.isnan(z).any(1), torch.full_like(tau, float("nan")), tau), size


def sparsemax(z, dim: int = -1):
    """sparsemax(z) = argmin_{p in simplex} |p - z|^2 (Martins & Astudillo 2016, eq. 2) along `dim`."""
    moved = z.movedim(dim, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    tau, _ = sparsemax_threshold_of(flat)
    p = (flat - tau[:, None]).clamp(min=0)
    return p.reshape(moved.shape).movedim(-1, dim)


def blocks(y, block: int = BLOCK_M):
    """(start, y[start:start + block]) over the stored rows."""
    for start in range(0, y.shape[0], block):
        yield start, y[start:start + block]


def softmax_stats(x, y, temperature, norm_weight: float):
    """m [N] and l [N] of the softmax, one pass over the blocks (the forward's statistics alone)."""
    acc = accumulator(x.dtype)
    m = torch.full((x.shape[0],), float("-inf"), dtype=acc)
    l = torch.zeros(x.shape[0], dtype=acc)
    for _, yb in blocks(y):
        z = logits(x, yb, temperature, norm_weight)
        m_new = torch.maximum(m, z.max(1).values)
        shift = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
        l = l * torch.exp(m - shift) + torch.exp(z - shift[:, None]).sum(1)
        m = m_new
    return m, l


def sparsemax_threshold(x, y, temperature, norm_weight: float):
    """tau [N] of each query's row of logits (the whole row at once, as the kernels hold it on chip)."""
    return sparsemax_threshold_of(logits(x, y, temperature, norm_weight))[0]


def weights(weighting: str, z, stats):
    """p [N, block] from a block of logits z and the statistics: (m, l) for softmax, (tau,) for sparsemax."""
    if weighting == SOFTMAX:
        m, l = stats
        m = torch.where(m == float("-inf"), torch.zeros_like(m), m)  # a row of NaN logits: NaN weights
        return torch.exp(z - m[:, None]) / l[:, None]
    (tau,) = stats
    return (z - tau[:, None]).clamp(min=0)  # NaN logits stay NaN


def forward(weighting: str, x, y, temperature, norm_weight: float):
    """out [N, D] in the accumulator type and the statistics the backward needs, block by block."""
    acc = accumulator(x.dtype)
    if weighting == SOFTMAX:
        m = torch.full((x.shape[0],), float("-inf"), dtype=acc)  # running maximum of the logits
        l = torch.zeros(x.shape[0], dtype=acc)  # running sum of exp(logit - m)
        out = torch.zeros(x.shape, dtype=acc)  # running sum of exp(logit - m) y_j
        for _, yb in blocks(y):
            z = logits(x, yb, temperature, norm_weight)  # [N, block]
            m_new = torch.maximum(m, z.max(1).values)
            shift = torch.where(m_new == float("-inf"), torch.zeros_like(m_new), m_new)
            rescale = torch.exp(m - shift)  # 0 on the first block (m = -inf)
            p = torch.exp(z - shift[:, None])
            l = l * rescale + p.sum(1)
            out = out * rescale[:, None] + p @ yb.to(acc)
            m = m_new
        return out / l[:, None], (m, l)
    stats = (sparsemax_threshold(x, y, temperature, norm_weight),)
    out = torch.zeros(x.shape, dtype=acc)
    for _, yb in blocks(y):
        out += weights(weighting, logits(x, yb, temperature, norm_weight), stats) @ yb.to(acc)
    return out, stats


def backward(weighting: str, x, y, temperature, norm_weight: float, stats, grad, need_y: bool = True):
    """dL/dx [N, D] and dL/dy [M, D] (None unless need_y) in the accumulator type, two sweeps over the
    blocks: delta first, then the gradients (see the module's docstring)."""
    acc = accumulator(x.dtype)
    g, xa, t = grad.to(acc), x.to(acc), temperature.to(acc)

    def sweep():
        for start, yb in blocks(y):
            z = logits(x, yb, temperature, norm_weight)
            p = weights(weighting, z, stats)  # [N, block]
            yield start, yb.to(acc), p, g @ yb.to(acc).T  # rows, weights, gp = <g_i, y_j>

    delta = torch.zeros(x.shape[0], dtype=acc)
    support = torch.zeros(x.shape[0], dtype=acc)
    for _, _, p, gp in sweep():
        if weighting == SOFTMAX:
            delta += (p * gp).sum(1)
        else:
            s = (p > 0).to(acc)  # the support (a NaN weight is outside it: its row's gradient is 0)
            delta += (s * gp).sum(1)
            support += s.sum(1)
    if weighting == SPARSEMAX:
        delta = delta / support.clamp(min=1)
    grad_x = torch.zeros(x.shape, dtype=acc)
    grad_y = torch.zeros(y.shape, dtype=acc) if need_y else None
    for start, yb, p, gp in sweep():
        gate = p if weighting == SOFTMAX else (p > 0).to(acc)
        w = gate * (gp - delta[:, None]) / t[:, None]  # dL/dlogit / t_i [N, block]
        grad_x += w @ yb
        if need_y:
            grad_y[start:start + yb.shape[0]] = p.T @ g + w.T @ xa - 2 * norm_weight * w.sum(0)[:, None] * yb
    return grad_x, grad_y


class StreamingRetrieval(torch.autograd.Function):
    """out = sum_j p_ij y_j by the streaming loops: the [N, M] weights exist in neither pass.
    apply(x, y, temperature, norm_weight, weighting) -> [N, D] in x's dtype; gradients for x and y."""

    @staticmethod
    def forward(ctx, x, y, temperature, norm_weight, weighting):
        out, stats = forward(weighting, x, y, temperature, norm_weight)
        ctx.save_for_backward(x, y, temperature, *stats)
        ctx.norm_weight, ctx.weighting = norm_weight, weighting
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y, temperature, *stats = ctx.saved_tensors
        grad_x, grad_y = backward(ctx.weighting, x, y, temperature, ctx.norm_weight, stats, grad,
                                  need_y=ctx.needs_input_grad[1])
        return (grad_x.to(x.dtype), None if grad_y is None else grad_y.to(y.dtype), None, None, None)


def streaming_retrieval(x, y, temperature, norm_weight: float = 0.0, weighting: str = SOFTMAX):
    """sum_j p_ij y_j with logit_ij = (x_i . y_j - h |y_j|^2) / t_i, softmax or sparsemax weights, by the
    streaming loops (arguments checked by the calling op). x [N, D], y [M, D], temperature [N] -> [N, D]"""
    return StreamingRetrieval.apply(x, y, temperature, float(norm_weight), weighting)
