"""Argument checks shared by every op and backend.

Each check raises an error that names the argument, what was expected and what was given, so that
bad input fails at the boundary of an op, never deep inside a kernel.
"""
import torch


def _fail(where: str, name: str, expected: str, given: str, error=ValueError):
    raise error(f"{where}: `{name}` must be {expected}; got {given}.")


def check_tensor(where: str, name: str, t, *, ndim: int | None = None, kind: str | None = None):
    """Check that `t` is a tensor of rank `ndim` whose dtype is of `kind` ('float' or 'int')."""
    if not isinstance(t, torch.Tensor):
        _fail(where, name, "a torch.Tensor", type(t).__name__, TypeError)
    if ndim is not None and t.dim() != ndim:
        _fail(where, name, f"a {ndim}-D tensor", f"a {t.dim()}-D tensor of shape {tuple(t.shape)}")
    if kind == "float" and not t.is_floating_point():
        _fail(where, name, "a floating-point tensor", f"dtype {t.dtype}", TypeError)
    if kind == "int" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        _fail(where, name, "an integer tensor (int64 or int32)", f"dtype {t.dtype}", TypeError)


def check_shape(where: str, name: str, t: torch.Tensor, expected: tuple, letters: str):
    """Check `t.shape == expected`; `letters` spells the expected shape, e.g. '[T, k]'."""
    if tuple(t.shape) != tuple(expected):
        _fail(where, name, f"of shape {letters} = {tuple(expected)}", f"shape {tuple(t.shape)}")


def check_finite(where: str, name: str, t: torch.Tensor):
    """Check that a floating-point tensor holds no NaN or infinity."""
    if t.numel() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        _fail(where, name, "finite everywhere", f"{bad} NaN or infinite value(s)")


def check_int(where: str, name: str, value, *, low: int | None = None, high: int | None = None,
              allow_none: bool = False):
    """Check that `value` is a Python int with low <= value <= high (None allowed if `allow_none`)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        expected = "an int" + (" or None" if allow_none else "")
        _fail(where, name, expected, f"{value!r} ({type(value).__name__})", TypeError)
    if low is not None and value < low or high is not None and value > high:
        bounds = f"in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        _fail(where, name, f"an int {bounds}", repr(value))


def check_index_range(where: str, name: str, t: torch.Tensor, high: int, high_name: str):
    """Check that every entry of an integer tensor lies in [0, high)."""
    if t.numel() == 0:
        return
    low_seen, high_seen = t.min().item(), t.max().item()
    if low_seen < 0 or high_seen >= high:
        _fail(where, name, f"in [0, {high_name}) = [0, {high})",
              f"values from {low_seen} to {high_seen}")


def check_same_device(where: str, **tensors: torch.Tensor):
    """Check that all tensors live on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"`{n}` on {d}" for n, d in devices.items())
        raise ValueError(f"{where}: all tensors must be on one device; got {listed}.")
