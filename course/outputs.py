"""Output allocation shared by every backend.

Kernels allocate their outputs here. Tests switch on poisoning so that floating outputs start as NaN
and integer outputs as the most negative integer: an element a kernel forgets to write fails loudly.
"""
from contextlib import contextmanager

import torch

_poison = False


def empty(shape, *, dtype: torch.dtype, device) -> torch.Tensor:
    """Like `torch.empty`, but filled with NaN / iinfo.min while `poisoned()` is active."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison:
        out.fill_(float("nan") if dtype.is_floating_point else torch.iinfo(dtype).min)
    return out


@contextmanager
def poisoned():
    """Poison every output allocated by `empty` inside this block."""
    global _poison
    previous, _poison = _poison, True
    try:
        yield
    finally:
        _poison = previous
