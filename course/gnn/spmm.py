"""Sparse-dense products: aggregation with edge weights, A @ X with A in CSR form.

    out[i] = sum_{p in ptr[i]:ptr[i+1]} weight[p] * x[col[p]]           rowptr [N + 1], col [E],
                                                                         x [S, D], weight [E] -> [N, D]

This is GCN's propagation (Kipf and Welling 2017, eq. 2, with A = D^-1/2 (A + I) D^-1/2) and SGC's
(Wu et al. 2019, eq. 8, applied K times). The reference is a segment sum over the CSR: deterministic,
no atomics. Its gradient for x is the same product over the transposed graph (the CSC), and for the
weights the dot product of each edge's two rows: dL/dw_p = <g[i], x[col[p]]>.

The other backends compute the same thing the ways users do: a scatter (`index_add_`, PyTorch's
usual idiom and what PyG does without torch_scatter), `torch.sparse.mm` on a sparse CSR tensor, and
PyG's own `GCNConv.propagate` (in the `bench` extra).
"""
import warnings

import torch

from course.checks import check_finite, check_index_range, check_same_device, check_tensor
from course.gnn.segment import segment_sum
from course.precision import accumulating
from course.registry import check_backend

def check_csr(where: str, rowptr, col, num_sources: int | None = None):
    """rowptr [N + 1] non-decreasing from 0 to E, col [E] integer in [0, num_sources)."""
    check_tensor(where, "rowptr", rowptr, ndim=1, kind="int")
    check_tensor(where, "col", col, ndim=1, kind="int")
    if rowptr.numel() == 0:
        raise ValueError(f"{where}: `rowptr` must have N + 1 >= 1 entries; got an empty tensor.")
    first, last = int(rowptr[0]), int(rowptr[-1])
    if first != 0 or last != col.numel() or (rowptr.diff() < 0).any():
        raise ValueError(f"{where}: `rowptr` must be non-decreasing offsets from 0 to len(col) = "
                         f"{col.numel()}; got offsets from {first} to {last}"
                         + (" that decrease somewhere" if (rowptr.diff() < 0).any() else "") + ".")
    if num_sources is not None:
        check_index_range(where, "col", col, num_sources, "x.shape[0]")


def check_spmm_args(where: str, rowptr, col, x, weight):
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_csr(where, rowptr, col, x.shape[0])
    if weight is not None:
        check_tensor(where, "weight", weight, ndim=1, kind="float")
        if weight.shape[0] != col.shape[0]:
            raise ValueError(f"{where}: `weight` must have one entry per edge, [E] with E = "
                             f"{col.shape[0]}; got shape {tuple(weight.shape)}.")
        if weight.dtype != x.dtype:
            raise TypeError(f"{where}: `weight` must have the dtype of `x` ({x.dtype}); got {weight.dtype}.")
        check_finite(where, "weight", weight)
    check_same_device(where, rowptr=rowptr, col=col, x=x, **({} if weight is None else {"weight": weight}))


def messages(col, x, weight=None) -> torch.Tensor:
    """The (weighted) source row of every edge, in CSR order, in the accumulation dtype. -> [E, D]"""
    rows = accumulating(x)[col.long()]
    return rows if weight is None else rows * accumulating(weight)[:, None]


def spmm(rowptr, col, x, weight=None):
    """A @ x over the CSR: a segment sum of the (weighted) source rows. -> [N, D]"""
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    return segment_sum(messages(col, x, weight), rowptr).to(x.dtype)


def destinations(rowptr) -> torch.Tensor:
    """The destination of every CSR position [E]."""
    n = rowptr.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=rowptr.device), rowptr.diff().long())


def spmm_index_add(rowptr, col, x, weight=None):
    """The scatter form: out.index_add_(0, destination, weight * x[col]) (atomics on a GPU)."""
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    rows = messages(col, x, weight)
    out = rows.new_zeros(rowptr.numel() - 1, x.shape[1])
    return out.index_add(0, destinations(rowptr), rows).to(x.dtype)


def spmm_torch_sparse(rowptr, col, x, weight=None):
    """torch.sparse.mm with A as a sparse CSR tensor [N, S] (float32 and float64 on the CPU).

    torch's CSR invariants ask for distinct columns, sorted within each row (as `Graph.csr` gives
    them); unsorted, the forward is right and the weights' gradient silently wrong.
    """
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    check_backend("gnn.spmm", "torch_sparse", "x", x)
    values = weight if weight is not None else x.new_ones(col.shape[0])
    with warnings.catch_warnings():  # "sparse CSR support is in beta" is said once per process anyway
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_csr_tensor(rowptr.long(), col.long(), values,
                                    size=(rowptr.numel() - 1, x.shape[0]), check_invariants=False)
        return torch.sparse.mm(a, x)


def _pyg_gcn():
    from torch_geometric.nn import GCNConv

    # propagation only: no normalisation (the weights are given), no self-loops, no linear map
    return GCNConv(1, 1, normalize=False, add_self_loops=False, bias=False)


_PYG = {}


def spmm_pyg(rowptr, col, x, weight=None):
    """PyG's GCNConv propagation (message x_j * w, sum aggregation) on the same edges."""
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    check_backend("gnn.spmm", "pyg", "x", x)
    conv = _PYG.get("gcn") or _PYG.setdefault("gcn", _pyg_gcn())
    edge_index = torch.stack([col.long(), destinations(rowptr)])
    n = rowptr.numel() - 1
    return conv.propagate(edge_index, x=x, edge_weight=weight, size=(x.shape[0], n))


def spmm_node_loop(rowptr, col, x, weight=None):
    """One destination at a time: out[i] = sum of its edges' weighted source rows (a Python loop)."""
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    out = accumulating(x).new_zeros(rowptr.numel() - 1, x.shape[1])
    xs, ws = accumulating(x), accumulating(weight)
    for i in range(rowptr.numel() - 1):
        s, e = int(rowptr[i]), int(rowptr[i + 1])
        rows = xs[col[s:e].long()]  # [deg, D]
        out[i] = (rows if ws is None else ws[s:e, None] * rows).sum(0)
    return out.to(x.dtype)
