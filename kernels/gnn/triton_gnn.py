"""gnn.spmm and gnn.gat_aggregate with Triton kernels: the contracts of `course.gnn.spmm` and
`course.gnn.attention`.

The product and its per-edge dot are in `triton_spmm`, GAT's online-softmax pass and its per-edge
backward in `triton_attention`; `host` builds both ops' backward passes from them.
"""
from types import SimpleNamespace

from course.kernels.gnn import triton_attention, triton_spmm
from course.kernels.gnn.host import gat_aggregate_with, spmm_with

PRIMITIVES = SimpleNamespace(
    spmm=triton_spmm.spmm,
    edge_dot=triton_spmm.edge_dot,
    gat_forward=triton_attention.gat_forward,
    gat_backward=triton_attention.gat_backward,
    BACKEND="triton",
)


def spmm(rowptr, col, x, weight=None):
    """A @ x over the CSR (GCN's propagation, Kipf and Welling 2017 eq. 2) as a Triton segment sum.

    rowptr [N + 1], col [E], x [S, D], weight [E] or None -> [N, D].
    """
    return spmm_with(PRIMITIVES, rowptr, col, x, weight)


def gat_aggregate(rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """GAT's attention and aggregation (Velickovic et al. 2018, eq. 1-4) as one Triton online softmax.

    rowptr [N + 1], col [E], h [S, H, C], a_src [S, H], a_dst [N, H] -> [N, H, C].
    """
    return gat_aggregate_with(PRIMITIVES, rowptr, col, h, a_src, a_dst, negative_slope)
