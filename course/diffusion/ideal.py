"""The ideal denoiser of a training set, written as attention.

For a training set y_1..y_M the minimiser of EDM's denoising loss (Karras et al. 2022, eq. 2) is the
posterior mean of the points under Gaussian noise of level sigma:

    D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i.

Expanding the square, -|x - y_i|^2 / 2 sigma^2 = -|x|^2 / 2 sigma^2 + x . y_i / sigma^2 - |y_i|^2 / 2 sigma^2,
and the first term is the same for every i, so it cancels in the softmax: D is softmax attention with
the query x / sigma^2, the keys and values y_i, and a bias -|y_i|^2 / 2 sigma^2 on each key. As one
scaled dot product it is the query [x / sigma^2, -1 / 2 sigma^2] against the key [y_i, |y_i|^2]:
`ideal_denoiser_sdpa` hands that to torch's `scaled_dot_product_attention`. A streaming softmax over
blocks of keys (`ideal_denoiser_online`) never holds the [N, M] weights: the kernels' algorithm,
flash attention's. Modern Hopfield retrieval is the same computation without the bias, so the two ops
share it: `course.streaming` with the norm weight h = 1/2 and the temperature t_i = sigma_i^2 here, h = 0
and t_i = 1 / beta there, and the kernels of `kernels/triton_streaming.py` and `kernels/streaming_softmax.cu`.

Noise levels are per query (sigma [N]), so that one call serves a batch at mixed noise.
"""
import torch

from course.checks import check_tensor
from course.diffusion.mixtures import check_sigma
from course.registry import check_backend
from course.streaming import SOFTMAX, accumulator, streaming_retrieval

def check_ideal_denoiser_args(where: str, x, y, sigma) -> torch.Tensor:
    """The op's argument checks, shared by every backend; returns sigma as a tensor [N]."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "y", y, ndim=2, kind="float")
    if y.shape[0] == 0:
        raise ValueError(f"{where}: `y` must hold at least one training point (a softmax over no "
                         "points is undefined); got shape (0, D).")
    if y.shape[1] != x.shape[1]:
        raise ValueError(f"{where}: `x` [N, D] and `y` [M, D] must share D; got x {tuple(x.shape)} "
                         f"and y {tuple(y.shape)}.")
    if y.dtype != x.dtype:
        raise TypeError(f"{where}: `y` must have x's dtype {x.dtype}; got {y.dtype}.")
    sigma = check_sigma(where, sigma, x.shape[0], x.dtype)
    if sigma.dtype != x.dtype:
        raise TypeError(f"{where}: `sigma` must have x's dtype {x.dtype}; got {sigma.dtype}.")
    return sigma


def key_logits(x, y, sigma):
    """x . y_i / sigma^2 - |y_i|^2 / 2 sigma^2 (the softmax's argument up to a per-query constant),
    accumulated in float32 for half inputs. x [N, D], y [M, D], sigma [N] -> [N, M]"""
    acc = torch.promote_types(x.dtype, torch.float32)
    xa, ya, s2 = x.to(acc), y.to(acc), sigma.to(acc)[:, None] ** 2
    return (xa @ ya.T - 0.5 * (ya * ya).sum(1)[None, :]) / s2


def ideal_denoiser(x, y, sigma):
    """D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i (Karras et al. 2022, eq. 2, for
    an empirical distribution). x [N, D], y [M, D], sigma [N] or a number -> [N, D]"""
    sigma = check_ideal_denoiser_args("diffusion.ideal_denoiser", x, y, sigma)
    weights = key_logits(x, y, sigma).softmax(dim=1)  # [N, M]
    return (weights @ y.to(weights.dtype)).to(x.dtype)


def ideal_denoiser_sdpa(x, y, sigma):
    """The same, as torch's scaled_dot_product_attention: query [x / sigma^2, -1 / 2 sigma^2], key
    [y, |y|^2], value y, scale 1 (the bias folded into one more dimension). -> [N, D]"""
    sigma = check_ideal_denoiser_args("diffusion.ideal_denoiser_sdpa", x, y, sigma)
    check_backend("diffusion.ideal_denoiser", "sdpa", "x", x)
    s2 = sigma[:, None] ** 2
    query = torch.cat([x / s2, -0.5 / s2], dim=1)  # [N, D + 1]
    key = torch.cat([y, (y * y).sum(1, keepdim=True)], dim=1)  # [M, D + 1]
    out = torch.nn.functional.scaled_dot_product_attention(query[None], key[None], y[None], scale=1.0)
    return out[0]


def check_gradients_only_for_x(where: str, y, sigma):
    """The streaming backward differentiates x only (what guidance needs): refuse, rather than leave
    silently without a gradient, a y or sigma that asks for one."""
    for name, t in (("y", y), ("sigma", sigma)):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            raise ValueError(f"{where}: this backend differentiates `x` only; `{name}` requires grad "
                             "(use backend='reference', or detach it).")


def ideal_denoiser_online(x, y, sigma):
    """The same by the streaming softmax of `course.streaming` over blocks of training points, with
    logit_ij = (x_i . y_j - |y_j|^2 / 2) / sigma_i^2: a running maximum m, a running sum l of
    exp(logit - m) and a running weighted sum of the y_j, rescaled by exp(m_old - m_new) whenever a block
    raises the maximum; the backward rebuilds the weights from m and l. The [N, M] weights never exist.
    -> [N, D]"""
    where = "diffusion.ideal_denoiser_online"
    sigma = check_ideal_denoiser_args(where, x, y, sigma)
    check_gradients_only_for_x(where, y, sigma)
    return streaming_retrieval(x, y, sigma.to(accumulator(x.dtype)) ** 2, 0.5, SOFTMAX)
