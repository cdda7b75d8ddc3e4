"""The diagonal linear recurrence, in its three forms.

Every model of this family (Griffin's RG-LRU, HGRN, retention, a selective SSM, linear attention) runs
one recurrence per channel,

    h_t = a_t * h_{t-1} + x_t,        h_0 = 0,        a, x, h [B, T, D],

with a_t in (0, 1] a decay gate (Martin and Cundy 2018, "Parallelizing Linear Recurrent Neural Nets
Over Sequence Length"; Blelloch 1990). Three forms compute the same h:

- `scan_step_loop`: step by step, T sequential steps (what a recurrent network does);
- `scan` (the reference): the parallel associative scan. The pairs (a, x) compose by
  (a_1, x_1) o (a_2, x_2) = (a_2 a_1, a_2 x_1 + x_2), an associative operator, so log2(T) rounds of
  doubling (Hillis and Steele 1986) give every prefix: after round r each position holds the
  composition of the 2^r steps that end there;
- `scan_chunked`: parallel inside chunks of C steps, recurrent across chunks: each chunk's local scan
  plus the carry h of the previous chunk times the chunk's cumulative decay (the kernels' form).

Gates must lie in (0, 1]: a gate of 0 forgets everything (allowed by the algebra, but no model here
makes one) and a gate above 1 grows without bound, so both are refused by name.
"""
import torch

from course.checks import check_int, check_shape, check_tensor
from course.precision import accumulating

CHUNK = 64  # steps per chunk of `scan_chunked`


def check_scan_args(where: str, a, x):
    """The op's argument checks, shared by every backend."""
    check_tensor(where, "x", x, ndim=3, kind="float")
    check_tensor(where, "a", a, ndim=3, kind="float")
    check_shape(where, "a", a, tuple(x.shape), "[B, T, D] (x's shape)")
    if a.dtype != x.dtype:
        raise TypeError(f"{where}: `a` must have x's dtype {x.dtype}; got {a.dtype}.")
    if a.numel():
        low, high = float(a.detach().min()), float(a.detach().max())
        if not (low > 0 and high <= 1):  # NaN fails both
            raise ValueError(f"{where}: the gates `a` must lie in (0, 1] (a decay per step); got values "
                             f"from {low:.4g} to {high:.4g}.")


def scan_step_loop(a, x):
    """h [B, T, D], one step at a time (half types accumulate in float32, as everywhere)."""
    check_scan_args("ssm.scan", a, x)
    a_, x_ = accumulating(a), accumulating(x)
    h, out = x_.new_zeros(x.shape[0], x.shape[2]), []
    for t in range(x.shape[1]):
        h = a_[:, t] * h + x_[:, t]
        out.append(h)
    return (torch.stack(out, dim=1) if out else x_.new_zeros(x.shape)).to(x.dtype)


def doubling_scan(a, x):
    """(prefix products of a, prefix scan of x) [B, T, D], by log2(T) rounds of doubling."""
    A, h = a, x
    offset = 1
    while offset < x.shape[1]:
        # position t composes with the prefix ending at t - offset (positions < offset are complete)
        h = torch.cat([h[:, :offset], A[:, offset:] * h[:, :-offset] + h[:, offset:]], dim=1)
        A = torch.cat([A[:, :offset], A[:, offset:] * A[:, :-offset]], dim=1)
        offset *= 2
    return A, h


def scan(a, x):
    """h [B, T, D] of h_t = a_t h_{t-1} + x_t (h_0 = 0): the parallel associative scan."""
    check_scan_args("ssm.scan", a, x)
    return doubling_scan(accumulating(a), accumulating(x))[1].to(x.dtype)


def scan_chunked(a, x):
    """h [B, T, D] by chunks of CHUNK steps (`scan_in_chunks`)."""
    return scan_in_chunks(a, x, CHUNK)


def scan_in_chunks(a, x, chunk: int):
    """h [B, T, D] by chunks of `chunk` steps: a doubling scan inside each chunk, the carry across
    chunks (any chunk size >= 1, a power of two or not; the last chunk may be shorter)."""
    check_scan_args("ssm.scan", a, x)
    check_int("ssm.scan_in_chunks", "chunk", chunk, low=1)
    a_, x_ = accumulating(a), accumulating(x)
    out, carry = [], x_.new_zeros(x.shape[0], x.shape[2])
    for start in range(0, x.shape[1], chunk):
        decay, local = doubling_scan(a_[:, start:start + chunk], x_[:, start:start + chunk])
        h = local + decay * carry[:, None]
        out.append(h)
        carry = h[:, -1]
    return (torch.cat(out, dim=1) if out else x_.new_zeros(x.shape)).to(x.dtype)


def scan_torch_associative(a, x):
    """h [B, T, D] by torch's own associative scan (torch._higher_order_ops.associative_scan, the
    peer), with the same combine operator."""
    from torch._higher_order_ops.associative_scan import associative_scan

    check_scan_args("ssm.scan", a, x)
    if x.shape[1] == 0:
        return torch.empty_like(x)

    def combine(left, right):
        (a_l, x_l), (a_r, x_r) = left, right
        return a_r * a_l, a_r * x_l + x_r

    return associative_scan(combine, (accumulating(a), accumulating(x)), dim=1,
                            combine_mode="generic")[1].to(x.dtype)
