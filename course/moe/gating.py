"""Noisy top-k gating, after Shazeer et al. 2017, "Outrageously Large Neural Networks" (section 2.1).

    H(x)_i        = (x W_g)_i + StandardNormal() * Softplus((x W_noise)_i)        (eq. 4)
    KeepTopK(v)_i = v_i if v_i is among the top k of v, else -inf                 (eq. 5)
    G(x)          = Softmax(KeepTopK(H(x), k))                                   (eq. 3)

The softmax over E entries of which E - k are -inf equals a softmax over the k kept logits, so the
gates are returned in top-k form: which experts, and their weights.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

from course.checks import check_finite, check_int, check_shape, check_tensor


class Gating(NamedTuple):
    """The router's decision for a batch and the quantities the balancing losses need."""

    expert_index: torch.Tensor  # [T, k] chosen experts, best first
    gates: torch.Tensor         # [T, k] softmax over the kept logits, rows sum to 1
    clean_logits: torch.Tensor  # [T, E] x W_g
    logits: torch.Tensor        # [T, E] H(x): clean logits plus noise (equal to clean without noise)
    noise_std: torch.Tensor | None  # [T, E] Softplus(x W_noise), None without noise


def keep_top_k(logits, k: int):
    """Eqs. 3 and 5: the k largest logits of each row and their softmax.

    logits [T, E] -> expert_index [T, k] (best first), gates [T, k].
    """
    where = "moe.keep_top_k"
    check_tensor(where, "logits", logits, ndim=2, kind="float")
    check_int(where, "k", k, low=1, high=logits.shape[1])
    check_finite(where, "logits", logits)
    top_logits, expert_index = logits.topk(k, dim=-1)  # [T, k] each, sorted descending
    return expert_index, top_logits.softmax(dim=-1)


def noisy_top_k_gating(x, w_gate, w_noise, k: int, train: bool = True,
                       generator: torch.Generator | None = None, noise_scale: float = 1.0) -> Gating:
    """Eqs. 3-5 of Shazeer et al. 2017; the noise is drawn only when `train` and `w_noise` is given.

    `noise_scale` multiplies the StandardNormal() draw of eq. 4 (1 is the paper; a knob to explore).
    x [T, D], w_gate [D, E], w_noise [D, E] or None -> Gating.
    """
    where = "moe.noisy_top_k_gating"
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "w_gate", w_gate, ndim=2, kind="float")
    check_shape(where, "w_gate", w_gate, (x.shape[1], w_gate.shape[1]), "[D, E] with D = x.shape[1]")
    if w_noise is not None:
        check_shape(where, "w_noise", w_noise, tuple(w_gate.shape), "[D, E] = w_gate.shape")
    for name, w in (("w_gate", w_gate), ("w_noise", w_noise)):
        if w is not None and w.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have the dtype of `x` ({x.dtype}); got {w.dtype}. "
                            f"Cast one of them, e.g. x.to({name}.dtype).")
    check_finite(where, "x", x)
    clean = x @ w_gate  # [T, E]
    noise_std = None
    logits = clean
    if train and w_noise is not None:
        noise_std = F.softplus(x @ w_noise)  # [T, E]
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
        logits = clean + noise_scale * noise * noise_std
    expert_index, gates = keep_top_k(logits, k)
    return Gating(expert_index, gates, clean, logits, noise_std)


def prototype_gate(centers):
    """Router weights whose top-1 choice is the nearest prototype: a Voronoi router, no training.

    For inputs with a constant 1 appended (`with_bias`), logits_e = 2 x.c_e - |c_e|^2, which is
    |x|^2 - |x - c_e|^2: the largest logit belongs to the closest center.
    centers [E, D] -> w_gate [D + 1, E].
    """
    centers = torch.as_tensor(centers, dtype=torch.float32)
    return torch.cat([2 * centers, -(centers ** 2).sum(1, keepdim=True)], dim=1).t().contiguous()


def with_bias(x):
    """Append a constant 1 feature, so a linear router has a bias. [T, D] -> [T, D + 1]"""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
