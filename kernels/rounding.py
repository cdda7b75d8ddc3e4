"""Rounding a float32 result to its storage dtype, shared by the Triton kernels of every family, and
their arithmetic type (`arithmetic`).

A GPU rounds float32 -> bfloat16 to the nearest even value (PTX cvt.rn). The Triton interpreter
truncates instead (its casts cut the low 16 bits), which leaves a bias of half an ulp that the harness
sees in bfloat16. `to_storage` rounds bfloat16 by its bits, as c10's round_to_nearest_even does, so
compiled and interpreted kernels store the same value; other dtypes use the plain cast.
"""
import torch
import triton
import triton.language as tl


def arithmetic(dtype: torch.dtype) -> dict:
    """ACC, the kernels' arithmetic type for tensors of `dtype`: float64 for float64, float32 for the
    other floats (half types accumulate in float32)."""
    return dict(ACC=tl.float64 if dtype == torch.float64 else tl.float32)


@triton.jit
def to_storage(x, dtype: tl.constexpr):
    """x (float32) as `dtype`, rounded to nearest, ties to even; NaN stays NaN."""
    if dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits += 0x7FFF + ((bits >> 16) & 1)  # carries into the kept bits when the dropped half is > 1/2
        rounded = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        return tl.where(x != x, x.to(tl.bfloat16), rounded)
    else:
        return x.to(dtype)
