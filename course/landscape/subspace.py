"""Training in a random subspace: theta = theta_0 + P z, with a dense or a Fastfood projection P.

Li, Farkhoor, Liu and Yosinski 2018, "Measuring the Intrinsic Dimension of Objective Landscapes"
(arXiv:1804.08838), section 2. The D parameters of a model are not trained directly: only z [d] is,
from z = 0, and the model's parameters are theta = theta_0 + P z for a fixed random P [D, d]. The
smallest d at which this reaches 90% of the full model's performance is the intrinsic dimension.

- `dense_projection`: P [D, d] with i.i.d. Gaussian entries, each column normalised to unit length
  (O(D d) memory and time a product);
- `FastfoodProjection`: the structured P of section 2 (after Le, Sarlos and Smola's Fastfood),
  P z = first D entries of (1 / (sigma sqrt(D))) H G Pi H B [z, 0], with B a random sign diagonal,
  H the Walsh-Hadamard transform, Pi a random permutation, G a Gaussian diagonal and sigma = ||G||_F,
  on L = 2^ceil(log2 D) entries: O(L) memory and O(L log L) time a product. Each column of the
  untruncated L x L matrix has norm sqrt(L / D) exactly, so the D kept rows have unit norm on average,
  as the dense P's columns do;
- `fwht`: the fast Walsh-Hadamard transform H x along the last dimension, in O(L log L) torch ops
  (differentiable); `hadamard_matrix` is the dense H it equals (Sylvester's construction).
"""
import math

import torch

from course.checks import check_finite, check_int, check_tensor


def next_power_of_two(n: int) -> int:
    """The smallest power of two >= n (n >= 1)."""
    check_int("landscape.next_power_of_two", "n", n, low=1)
    return 1 << (n - 1).bit_length()


def walsh_hadamard_stages(x: torch.Tensor) -> torch.Tensor:
    """H x [..., L] by log2 L butterfly stages: stage h maps each pair (a, b) of entries h apart, in
    blocks of 2h, to (a + b, a - b). O(L log L) additions; plain torch ops, no autograd graph kept."""
    L, lead, h = x.shape[-1], x.shape[:-1], 1
    while h < L:
        pairs = x.reshape(*lead, L // (2 * h), 2, h)  # blocks of 2h: (first half, second half)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        x = torch.stack((a + b, a - b), dim=-2).reshape(*lead, L)
        h *= 2
    return x


class WalshHadamard(torch.autograd.Function):
    """y = H x; H is symmetric, so the gradient is H applied to the upstream gradient: the backward
    pass is the same O(L log L) transform (no per-stage graph to keep)."""

    @staticmethod
    def forward(ctx, x):
        return walsh_hadamard_stages(x)

    @staticmethod
    def backward(ctx, grad):
        return walsh_hadamard_stages(grad)


def fwht(x: torch.Tensor) -> torch.Tensor:
    """The fast Walsh-Hadamard transform H x [..., L] of x [..., L] (L a power of two; H has entries
    +-1 and H H^T = L I), in O(L log L) operations, differentiable."""
    check_tensor("landscape.fwht", "x", x, kind="float")
    L = x.shape[-1] if x.dim() else 0
    if L < 1 or L & (L - 1):
        raise ValueError(f"landscape.fwht: the last dimension of `x` must be a power of two; got shape "
                         f"{tuple(x.shape)}.")
    return WalshHadamard.apply(x)


def hadamard_matrix(L: int, dtype=torch.float32) -> torch.Tensor:
    """The L x L Hadamard matrix of Sylvester's construction, H_2L = [[H, H], [H, -H]] (the dense
    matrix that `fwht` multiplies by)."""
    check_int("landscape.hadamard_matrix", "L", L, low=1)
    if L & (L - 1):
        raise ValueError(f"landscape.hadamard_matrix: `L` must be a power of two; got {L}.")
    H = torch.ones(1, 1, dtype=dtype)
    while H.shape[0] < L:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


def check_dims(where: str, D: int, d: int):
    check_int(where, "D", D, low=1)
    check_int(where, "d", d, low=1, high=D)


def dense_projection(D: int, d: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """P [D, d]: i.i.d. standard normal entries, each column scaled to unit norm (section 2)."""
    check_dims("landscape.dense_projection", D, d)
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(D, d, generator=g, dtype=torch.float64)
    return (P / P.norm(dim=0, keepdim=True)).to(dtype)


class FastfoodProjection:
    """The Fastfood projection z [..., d] -> P z [..., D] of section 2 (see the module docstring);
    `matrix()` builds the dense P [D, d] it applies, for checks."""

    def __init__(self, D: int, d: int, seed: int = 0, dtype=torch.float32):
        check_dims("landscape.FastfoodProjection", D, d)
        self.D, self.d, self.L = D, d, next_power_of_two(D)
        g = torch.Generator().manual_seed(seed)
        self.B = (torch.randint(0, 2, (self.L,), generator=g) * 2 - 1).to(dtype)  # signs [L]
        self.Pi = torch.randperm(self.L, generator=g)  # [L]
        G = torch.randn(self.L, generator=g, dtype=torch.float64)  # [L]
        self.G = G.to(dtype)
        self.scale = float(1 / (G.norm() * math.sqrt(D)))  # 1 / (sigma sqrt(D)), sigma = ||G||_F

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor("landscape.FastfoodProjection", "z", z, kind="float")
        if z.dim() == 0 or z.shape[-1] != self.d:
            raise ValueError(f"landscape.FastfoodProjection: `z` must end in d = {self.d}; got shape "
                             f"{tuple(z.shape)}.")
        padded = torch.nn.functional.pad(z, (0, self.L - self.d))  # [..., L]
        v = fwht(padded * self.B.to(z.dtype))  # H B z
        v = fwht(v[..., self.Pi] * self.G.to(z.dtype))  # H G Pi H B z
        return self.scale * v[..., :self.D]

    def matrix(self) -> torch.Tensor:
        """The dense P [D, d] (P e_j for every j)."""
        return self(torch.eye(self.d, dtype=self.G.dtype)).T


def subspace_theta(theta0: torch.Tensor, projection, z: torch.Tensor) -> torch.Tensor:
    """theta = theta_0 + P z [D] (eq. 1 of section 2), for `projection` a dense P [D, d] or a callable
    z -> P z (a `FastfoodProjection`)."""
    check_tensor("landscape.subspace_theta", "theta0", theta0, ndim=1, kind="float")
    check_tensor("landscape.subspace_theta", "z", z, ndim=1, kind="float")
    check_finite("landscape.subspace_theta", "z", z)
    if isinstance(projection, torch.Tensor):
        check_tensor("landscape.subspace_theta", "projection", projection, ndim=2, kind="float")
        if projection.shape != (len(theta0), len(z)):
            raise ValueError(f"landscape.subspace_theta: `projection` must be [D, d] = "
                             f"{(len(theta0), len(z))}; got shape {tuple(projection.shape)}.")
        return theta0 + projection @ z
    offset = projection(z)
    if offset.shape != theta0.shape:
        raise ValueError(f"landscape.subspace_theta: the projection must map z [{len(z)}] to "
                         f"[D] = [{len(theta0)}]; it gave shape {tuple(offset.shape)}.")
    return theta0 + offset
