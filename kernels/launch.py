"""What every family's kernel backends check before a launch: that the backend runs the dtype it was
given (as the registry declares) and the device it was given, the GPU to launch on, and whose tiles
a launch takes."""
import contextlib
import os

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


GPU_TILES = "COURSE_GPU_TILES"  # set to 1: the interpreter runs the tiles and code paths a GPU compiles


def gpu_tiles(device) -> bool:
    """Whether a launch takes a GPU's tiles (and its code paths: tl.sort, tl.associative_scan): on a
    CUDA device, and on the CPU where COURSE_GPU_TILES=1, so that the interpreter checks exactly what
    a GPU compiles (tests/test_gpu_tiles.py). Elsewhere the interpreter's own, larger tiles."""
    return torch.device(device).type == "cuda" or os.environ.get(GPU_TILES) == "1"


def elementwise_block(device) -> int:
    """Elements per program of an elementwise kernel: 1024 with a GPU's tiles; on the CPU the
    interpreter pays per program, so 2^16."""
    return 1024 if gpu_tiles(device) else 2 ** 16
