"""Half-precision inputs are accumulated in float32, once, everywhere in the course.

A sum of many float16 or bfloat16 numbers stored back in half precision at every step loses digits a
term at a time; the course's references and loops compute in float32 and round the result once, as its
kernels do (CONTRIBUTING, section 3: "half types accumulate in float32")."""
import torch

HALVES = (torch.float16, torch.bfloat16)


def accumulating(t: torch.Tensor | None) -> torch.Tensor | None:
    """Half types as float32; float32, float64 and None as they are."""
    return t.float() if t is not None and t.dtype in HALVES else t
