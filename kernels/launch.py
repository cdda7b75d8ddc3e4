"""What every family's kernel backends check before a launch: that the backend runs the dtype it was
given (as the registry declares) and the device it was given, and the GPU to launch on."""
import contextlib

import torch

from course.registry import check_backend  # noqa: F401  (re-exported for the kernel hosts)


def on_device(op: str, prims, t: torch.Tensor):
    """Refuse tensors that are not on the backend's device, at the boundary rather than inside a
    kernel; return the context that launches on the GPU holding `t` (the current one may differ)."""
    device = getattr(prims, "DEVICE", None)
    if device is not None and t.device.type != device:
        raise ValueError(f"{op} ({prims.BACKEND} backend): tensors must be on a {device.upper()} "
                         f"device; got {t.device}. Move them (.cuda()), or use backend='reference'.")
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()
