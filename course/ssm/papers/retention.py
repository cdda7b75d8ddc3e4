"""Retention in its three forms: parallel, recurrent and chunkwise, checked equal, and their cost.

Hatamizadeh, Ranzinger, Lan, Alvarez, Fidler and Kautz 2023, "ViR: Vision Retention Networks"
(arXiv:2311.18709), section 3, takes retention from RetNet (Sun et al. 2023, "Retentive Network: A
Successor to Transformer for Large Language Models", arXiv:2307.08621, section 2.1, eqs. 5-7) as the
token mixer of a vision backbone: patches in raster order, the class token appended *last* (the
retention is causal, so only the last position has seen every patch). For Q, K [T, d_k] and V [T, d_v]:

    parallel (eq. 5):    Retention(X) = (Q K^T * D) V,          D_nm = gamma^(n-m) if n >= m else 0;
    recurrent (eq. 6):   S_n = gamma S_{n-1} + K_n^T V_n,        Retention(X_n) = Q_n S_n;
    chunkwise (eq. 7):   inside a chunk of B steps the parallel form, across chunks the carried state
                         R_i = K_[i]^T (V_[i] * zeta) + gamma^B R_{i-1} (zeta_j = gamma^(B-1-j)), read by
                         (Q_[i] R_{i-1}) * xi (xi_j = gamma^(j+1)); the last chunk may be shorter.

The parallel form costs O(T^2 d) and T^2 memory, the recurrent one O(T d_k d_v) in T sequential steps
with a state of d_k d_v numbers: ViR's point (high-resolution images are long sequences). In the DSF
(arXiv:2405.15731) retention is linear attention with A_t = gamma I. RetNet's xPos rotation of Q and K
and the multi-scale heads (one gamma per head, gamma = 1 - 2^(-5-h)) are included; the group norm and
swish gate that follow retention are per-position and do not change the forms' equality.

The claim (a demonstration: the forms agree by algebra, the counts follow from sizes) runs retention
on glyph images (`course.data.glyph_images`) cut into 2x2 patches (16 patches + a class token), in
float64: the three forms' largest gap (chunk sizes that divide T and that do not), the multiply-adds
of each form at T = 1024, and the measured time of parallel against recurrent there.
"""
import math
import time

import torch

from course.checks import check_int, check_tensor
from course.claims import DEMONSTRATION, Claim
from course.data import glyph_images


def check_qkv(where: str, Q, K, V):
    """Q, K [..., T, d_k] and V [..., T, d_v] float tensors with matching leading shapes."""
    for name, t in (("Q", Q), ("K", K), ("V", V)):
        check_tensor(where, name, t, kind="float")
        if t.dim() < 2:
            raise ValueError(f"{where}: `{name}` must be [..., T, features]; got shape {tuple(t.shape)}.")
    if K.shape != Q.shape:
        raise ValueError(f"{where}: `K` must have Q's shape {tuple(Q.shape)}; got {tuple(K.shape)}.")
    if V.shape[:-1] != Q.shape[:-1]:
        raise ValueError(f"{where}: `V` must be [..., T, d_v] with Q's leading shape {tuple(Q.shape[:-1])}; "
                         f"got {tuple(V.shape)}.")


def check_gamma(where: str, gamma, heads: int | None = None) -> torch.Tensor:
    """gamma: one decay per head (a float or a [H] tensor), each in (0, 1]."""
    g = torch.as_tensor(gamma, dtype=torch.float64).reshape(-1)
    if not bool(((g > 0) & (g <= 1)).all()):
        raise ValueError(f"{where}: `gamma` must lie in (0, 1]; got {g.tolist()}.")
    return g


def _gamma(gamma, Q):
    """gamma as Q's dtype: [H] (one per head, Q [..., H, T, d_k]) or a scalar []."""
    g = check_gamma("ssm.retention", gamma).to(Q.dtype)
    return g if g.numel() > 1 else g.reshape(())


def decay_mask(T: int, gamma: torch.Tensor) -> torch.Tensor:
    """D [.., T, T]: D_nm = gamma^(n-m) for n >= m, 0 above the diagonal (RetNet eq. 5)."""
    n = torch.arange(T, dtype=gamma.dtype)
    gap = n[:, None] - n[None, :]
    powers = gamma[..., None, None] ** gap.clamp(min=0)
    return torch.where(gap >= 0, powers, torch.zeros((), dtype=gamma.dtype))


def retention_parallel(Q, K, V, gamma):
    """(Q K^T * D) V (RetNet eq. 5). Q, K [..., T, d_k], V [..., T, d_v] -> [..., T, d_v]."""
    check_qkv("ssm.retention_parallel", Q, K, V)
    return (Q @ K.transpose(-1, -2) * decay_mask(Q.shape[-2], _gamma(gamma, Q))) @ V


def retention_recurrent(Q, K, V, gamma):
    """S_n = gamma S_{n-1} + K_n^T V_n, o_n = Q_n S_n (RetNet eq. 6), T sequential steps."""
    check_qkv("ssm.retention_recurrent", Q, K, V)
    g = _gamma(gamma, Q)[..., None, None]  # broadcasts over the state [..., H, d_k, d_v]
    S = Q.new_zeros(*Q.shape[:-2], Q.shape[-1], V.shape[-1])
    out = []
    for n in range(Q.shape[-2]):
        S = g * S + K[..., n, :, None] * V[..., n, None, :]
        out.append((Q[..., n, None, :] @ S)[..., 0, :])
    return torch.stack(out, -2) if out else V.new_zeros(V.shape)


def retention_chunkwise(Q, K, V, gamma, chunk: int):
    """Parallel inside chunks of `chunk` steps, recurrent across them (RetNet eq. 7); any chunk >= 1,
    the last chunk shorter when it does not divide T."""
    check_qkv("ssm.retention_chunkwise", Q, K, V)
    check_int("ssm.retention_chunkwise", "chunk", chunk, low=1)
    g_vec = _gamma(gamma, Q)
    R = Q.new_zeros(*Q.shape[:-2], Q.shape[-1], V.shape[-1])
    out = []
    for start in range(0, Q.shape[-2], chunk):
        q, k, v = (t[..., start:start + chunk, :] for t in (Q, K, V))
        B = q.shape[-2]
        j = torch.arange(B, dtype=Q.dtype)
        xi = (g_vec[..., None] ** (j + 1))[..., None]        # [.., B, 1]: decay from the chunk's start
        zeta = (g_vec[..., None] ** (B - 1 - j))[..., None]  # [.., B, 1]: decay to the chunk's end
        inner = (q @ k.transpose(-1, -2) * decay_mask(B, g_vec)) @ v
        out.append(inner + (q @ R) * xi)
        R = k.transpose(-1, -2) @ (v * zeta) + g_vec[..., None, None] ** B * R
    return torch.cat(out, -2) if out else V.new_zeros(V.shape)


def xpos(x, theta: float = 10000.0):
    """RetNet's rotation of queries and keys (Theta, eq. 3; as rotary embeddings): position n rotates the
    pair (x_j, x_{j + E/2}) by n / theta^(2j/E). x [..., T, E] (E even) -> the same shape."""
    T, E = x.shape[-2], x.shape[-1]
    freq = theta ** (-torch.arange(E // 2, dtype=x.dtype) * 2 / E)
    angle = torch.arange(T, dtype=x.dtype)[:, None] * freq
    x1, x2 = x[..., :E // 2], x[..., E // 2:]
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x1 * angle.sin() + x2 * angle.cos()], -1)


def multiscale_gammas(heads: int) -> torch.Tensor:
    """RetNet's per-head decays gamma_h = 1 - 2^(-5-h), h = 0 .. heads-1 (section 2.2)."""
    check_int("ssm.multiscale_gammas", "heads", heads, low=1)
    return 1 - 2.0 ** (-5 - torch.arange(heads, dtype=torch.float64))


def patch_sequence(images, patch: int = 2):
    """ViR's input: images [n, S, S] cut into patch x patch patches in raster order, flattened, then a
    class token (zeros, to be learned) appended *last*: [n, (S/patch)^2 + 1, patch^2]."""
    check_tensor("ssm.patch_sequence", "images", images, ndim=3, kind="float")
    n, S, _ = images.shape
    if S % patch:
        raise ValueError(f"ssm.patch_sequence: the image size {S} must be divisible by `patch` {patch}.")
    p = images.reshape(n, S // patch, patch, S // patch, patch).permute(0, 1, 3, 2, 4)
    p = p.reshape(n, -1, patch ** 2)
    return torch.cat([p, p.new_zeros(n, 1, patch ** 2)], 1)


def retention_flops(T: int, d_k: int, d_v: int, form: str, chunk: int = 64) -> int:
    """Multiply-adds of one head's retention: parallel T^2 (d_k + d_v) (the scores and their use),
    recurrent T 2 d_k d_v (update and read of the state), chunkwise per chunk the parallel form of its
    length plus the carried state's read and update (2 B d_k d_v)."""
    if form == "parallel":
        return T * T * (d_k + d_v)
    if form == "recurrent":
        return 2 * T * d_k * d_v
    full, last = divmod(T, chunk)
    sizes = [chunk] * full + ([last] if last else [])
    return sum(B * B * (d_k + d_v) + 2 * B * d_k * d_v for B in sizes)


HEADS, D_K, D_V = 2, 8, 8
CHUNKS = (1, 3, 5, 17, 64)
COST_T = 512


def _seconds(fn, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def retention_experiment(seed: int) -> dict:
    """The three forms on glyph patch sequences, and the cost of parallel against recurrent."""
    check_int("retention_experiment", "seed", seed, low=0)
    images, _, _ = glyph_images(8, seed=seed)
    x = patch_sequence(images.double())  # [8, 17, 4]
    g = torch.Generator().manual_seed(seed)
    W = [torch.randn(HEADS, x.shape[-1], d, generator=g, dtype=torch.float64) / 2
         for d in (D_K, D_K, D_V)]
    Q, K, V = (x[:, None] @ w for w in W)  # [n, H, T, d]
    Q, K = xpos(Q), xpos(K)
    gammas = multiscale_gammas(HEADS)
    parallel = retention_parallel(Q, K, V, gammas)
    gaps = [float((retention_recurrent(Q, K, V, gammas) - parallel).abs().max())]
    gaps += [float((retention_chunkwise(Q, K, V, gammas, c) - parallel).abs().max()) for c in CHUNKS]
    scale = float(parallel.abs().max())
    long = torch.randn(1, COST_T, D_K, generator=g), torch.randn(1, COST_T, D_K, generator=g)
    Ql, Kl, Vl = long[0], long[1], torch.randn(1, COST_T, D_V, generator=g)
    t_par = _seconds(lambda: retention_parallel(Ql, Kl, Vl, 0.99))
    t_rec = _seconds(lambda: retention_recurrent(Ql, Kl, Vl, 0.99), repeats=1)
    return {"forms_gap": max(gaps) / scale, "sequence_length": float(x.shape[1]),
            "parallel_flops": float(retention_flops(COST_T, D_K, D_V, "parallel")),
            "recurrent_flops": float(retention_flops(COST_T, D_K, D_V, "recurrent")),
            "chunkwise_flops": float(retention_flops(COST_T, D_K, D_V, "chunkwise")),
            "flop_ratio": retention_flops(COST_T, D_K, D_V, "parallel")
            / retention_flops(COST_T, D_K, D_V, "recurrent"),
            "parallel_seconds": t_par, "recurrent_seconds": t_rec}


CLAIM = Claim(
    paper="Hatamizadeh et al. 2023 (ViR), after Sun et al. 2023 (RetNet)",
    citation="ViR: Vision Retention Networks (arXiv:2311.18709), section 3; RetNet (arXiv:2307.08621), "
             "section 2.1, eqs. (5)-(7)",
    statement="retention has dual parallel and recurrent forms (and a chunkwise hybrid) that compute the "
              "same output: train in parallel at O(T^2), run recurrently at O(T) with a fixed state",
    kind=DEMONSTRATION,
    experiment=retention_experiment,
    thresholds=("forms_gap <= 1e-12", "flop_ratio >= 50"),
    summary=lambda m: (f"parallel, recurrent and chunkwise retention agree to {m['forms_gap']:.1e} "
                       f"(relative) on glyph patch sequences; at T = {COST_T} parallel costs "
                       f"{m['flop_ratio']:.0f}x the recurrent form's multiply-adds (measured here: "
                       f"{m['parallel_seconds'] * 1e3:.1f} ms parallel, "
                       f"{m['recurrent_seconds'] * 1e3:.1f} ms in {COST_T} recurrent steps)"),
    note="By construction. The measured times are informative only: each of the T recurrent steps pays "
         "Python's and torch's per-call overhead, so on a CPU at this T the parallel form is about as fast "
         "despite its T^2 multiply-adds; the count is what the claim checks. No ViR is trained here.",
)
