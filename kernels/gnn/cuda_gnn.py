"""gnn.spmm and gnn.gat_aggregate with CUDA kernels: the contracts of `course.gnn.spmm` and
`course.gnn.attention`.

The kernels (`gnn_spmm.cu`, `gnn_attention.cu`) implement the algorithms of the Triton backend in CUDA
C++, one thread per output element; `gnn_binding.cpp` exposes them to PyTorch and `host` builds the
backward passes from them. The extension is compiled by `torch.utils.cpp_extension` on first use, which
needs a CUDA build of PyTorch, nvcc and a GPU. The kernels compute in float32: float32, float16 and
bfloat16 tensors.
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.kernels.build import cuda_extension
from course.kernels.gnn.host import gat_aggregate_with, spmm_with

HERE = Path(__file__).parent
SOURCES = ("gnn_binding.cpp", "gnn_spmm.cu", "gnn_attention.cu")


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_gnn_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def spmm_csr(rowptr, col, x, weight):
    """rowptr [N + 1], col [E], x [S, D], weight [E, H] or None -> [N, D] in x's dtype."""
    out = outputs.empty((rowptr.numel() - 1, x.shape[1]), dtype=x.dtype, device=x.device)
    heads = 1 if weight is None else weight.shape[1]
    weight = None if weight is None else weight.float().contiguous()  # the kernel reads fp32 weights
    return extension().spmm(rowptr, col, x, weight, out, heads, _stream())


def edge_dot(dst, col, a, b, heads: int):
    """dst [E], col [E], a [N, H C], b [S, H C] -> [E, H] float32, <a[dst[p], h], b[col[p], h]>."""
    out = outputs.empty((col.numel(), heads), dtype=torch.float32, device=a.device)
    return extension().edge_dot(dst, col, a, b, out, _stream())


def gat_forward(rowptr, col, h, a_src, a_dst, negative_slope: float):
    """h [S, H, C], a_src [S, H], a_dst [N, H] -> out [N, H, C] (h's dtype), lse [N, H] float32."""
    N, (H, C) = rowptr.numel() - 1, h.shape[1:]
    out = outputs.empty((N, H, C), dtype=h.dtype, device=h.device)
    lse = outputs.empty((N, H), dtype=torch.float32, device=h.device)
    if C == 0:  # no thread to write lse
        lse.zero_()
    extension().gat_forward(rowptr, col, h, a_src, a_dst, out, lse, negative_slope, _stream())
    return out, lse


def gat_backward(rowptr, col, a_src, a_dst, lse, dot, negative_slope: float):
    """-> alpha [E, H], dz [E, H] and grad_a_dst [N, H], float32."""
    alpha, dz = (outputs.empty(tuple(dot.shape), dtype=torch.float32, device=dot.device) for _ in range(2))
    grad_dst = outputs.empty(tuple(lse.shape), dtype=torch.float32, device=dot.device)
    extension().gat_backward(rowptr, col, a_src, a_dst, lse, dot, alpha, dz, grad_dst, negative_slope,
                             _stream())
    return alpha, dz, grad_dst


PRIMITIVES = SimpleNamespace(spmm=spmm_csr, edge_dot=edge_dot, gat_forward=gat_forward,
                             gat_backward=gat_backward, BACKEND="cuda", DEVICE="cuda")


def spmm(rowptr, col, x, weight=None):
    """A @ x over the CSR (GCN's propagation, Kipf and Welling 2017 eq. 2) as a CUDA segment sum.

    rowptr [N + 1], col [E], x [S, D], weight [E] or None -> [N, D].
    """
    return spmm_with(PRIMITIVES, rowptr, col, x, weight)


def gat_aggregate(rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """GAT's attention and aggregation (Velickovic et al. 2018, eq. 1-4) as one CUDA online softmax.

    rowptr [N + 1], col [E], h [S, H, C], a_src [S, H], a_dst [N, H] -> [N, H, C].
    """
    return gat_aggregate_with(PRIMITIVES, rowptr, col, h, a_src, a_dst, negative_slope)
