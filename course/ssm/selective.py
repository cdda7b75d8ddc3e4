"""Mamba's selective state-space scan.

Gu and Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (arXiv:2312.00752),
section 3 and Algorithm 2: each channel d of the input u [B, T, D] drives a state of size N through a
continuous system (A, B, C) discretised with an input-dependent step Delta_t (zero-order hold for A,
Euler for B, as the paper's implementation):

    h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t,      y_t = C_t . h_t + D u_t,

with A [D, N] real and negative (each state decays), B, C [B, T, N] and Delta [B, T, D] computed from the
input (the *selection*: what to keep and what to forget depends on u_t). Per (channel, state) pair it
is the diagonal recurrence of `course.ssm.scan` with the gate a_t = exp(Delta_t A) in (0, 1]: the
reference forms the [B, T, D, N] gates and inputs and scans them; the kernels keep the N states of a
channel on chip and never write them out.
"""
import torch

from course.checks import check_shape, check_tensor
from course.precision import accumulating
from course.ssm.scan import doubling_scan


def check_selective_scan_args(where: str, u, delta, A, B, C, D):
    """The op's argument checks, shared by every backend."""
    check_tensor(where, "u", u, ndim=3, kind="float")
    Bt, T, Dm = u.shape
    check_tensor(where, "delta", delta, ndim=3, kind="float")
    check_shape(where, "delta", delta, (Bt, T, Dm), "[B, T, D] (u's shape)")
    check_tensor(where, "A", A, ndim=2, kind="float")
    if A.shape[0] != Dm:
        raise ValueError(f"{where}: `A` must be [D, N] with D = {Dm} (u's channels); got shape "
                         f"{tuple(A.shape)}.")
    N = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        check_tensor(where, name, t, ndim=3, kind="float")
        check_shape(where, name, t, (Bt, T, N), "[B, T, N]")
    if D is not None:
        check_tensor(where, "D", D, ndim=1, kind="float")
        check_shape(where, "D", D, (Dm,), "[D]")
    for name, t in (("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D)):
        if t is not None and t.dtype != u.dtype:
            raise TypeError(f"{where}: `{name}` must have u's dtype {u.dtype}; got {t.dtype}.")
    if delta.numel() and not float(delta.detach().min()) > 0:
        raise ValueError(f"{where}: the steps `delta` must be > 0 (Mamba takes softplus of a projection); "
                         f"got a minimum of {float(delta.detach().min()):.4g}.")
    if A.numel() and not float(A.detach().max()) < 0:
        raise ValueError(f"{where}: `A` must be negative everywhere (every state decays); got a maximum "
                         f"of {float(A.detach().max()):.4g}.")


def discretize(u, delta, A, B):
    """(gates exp(Delta A), inputs Delta B u), both [B, T, D, N]."""
    gates = torch.exp(delta[..., None] * A)  # [B, T, D, N]
    inputs = (delta * u)[..., None] * B[:, :, None, :]  # [B, T, D, N]
    return gates, inputs


def selective_scan(u, delta, A, B, C, D=None):
    """y [B, T, D] of the selective scan (the [B, T, D, N] states materialised, then a doubling scan)."""
    check_selective_scan_args("ssm.selective_scan", u, delta, A, B, C, D)
    dtype = u.dtype
    u, delta, A, B, C, D = (accumulating(t) for t in (u, delta, A, B, C, D))
    gates, inputs = discretize(u, delta, A, B)
    Bt, T, Dm, N = gates.shape
    h = doubling_scan(gates.reshape(Bt, T, Dm * N), inputs.reshape(Bt, T, Dm * N))[1].reshape(Bt, T, Dm, N)
    y = (h * C[:, :, None, :]).sum(-1)
    return (y if D is None else y + D * u).to(dtype)


def selective_scan_step_loop(u, delta, A, B, C, D=None):
    """The same y, one step at a time with the state h [B, D, N]."""
    check_selective_scan_args("ssm.selective_scan", u, delta, A, B, C, D)
    dtype = u.dtype
    u, delta, A, B, C, D = (accumulating(t) for t in (u, delta, A, B, C, D))
    Bt, T, Dm = u.shape
    h, out = u.new_zeros(Bt, Dm, A.shape[1]), []
    for t in range(T):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] * B[:, t, None, :]
        out.append((h * C[:, t, None, :]).sum(-1))
    if not out:  # T = 0: an empty y that still depends on every input, as the reference's does
        gates, inputs = discretize(u, delta, A, B)
        out = [(gates * inputs * C[:, :, None, :]).sum(-1)]
    y = torch.cat(out, dim=1) if T == 0 else torch.stack(out, dim=1)
    return (y if D is None else y + D * u).to(dtype)

