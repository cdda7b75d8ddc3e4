"""Host-side pieces shared by the Triton and the CUDA backends of gnn.spmm and gnn.gat_aggregate: the
argument checks, the autograd Functions, and the transposed graph of the backward passes.

A backend supplies primitives with these contracts, and constants:
    spmm(rowptr, col, x [S, D], weight [E, H] | None) -> [N, D]         (D = H C; x's dtype)
        out[i, d] = sum_{p in row i} weight[p, d // C] * x[col[p], d]
    edge_dot(dst [E], col [E], a [N, D], b [S, D], heads) -> [E, H]    (ACC: float32, float64 for float64)
        out[p, h] = <a[dst[p], h C:(h+1) C], b[col[p], h C:(h+1) C]>
    gat_forward(rowptr, col, h [S, H, C], a_src [S, H], a_dst [N, H], negative_slope)
        -> out [N, H, C] (h's dtype), lse [N, H] (ACC)                 one online-softmax pass
    gat_backward(rowptr, col, a_src, a_dst, lse, dot [E, H], negative_slope)
        -> alpha [E, H], dz [E, H], grad_a_dst [N, H] (ACC)
    BACKEND: its name in the registry; DEVICE: "cuda" for kernels that read device memory

The backward passes are products over the transposed graph (CSC), so the spmm kernel does most of
them (Kipf and Welling 2017's propagation is symmetric in this sense: dL/dx = A^T dL/dout):
    gnn.spmm:           grad_x = spmm(CSC, grad_out, weight[perm]),  grad_weight = edge_dot(grad_out, x)
    gnn.gat_aggregate:  dot = edge_dot(g, h);  alpha, dz, grad_a_dst = gat_backward(...);
                        grad_h = spmm(CSC, g, alpha[perm]),  grad_a_src = spmm(CSC, dz)  (columns perm)
The dtypes a backend runs are declared once, in the registry (course/gnn/ops.py), and checked here.
"""
import torch

from course.gnn.attention import check_gat_args
from course.gnn.graph import csr_transpose
from course.gnn.spmm import check_spmm_args, destinations
from course.kernels.launch import check_backend, on_device  # noqa: F401  (re-exported)


def csr_indices(rowptr, col):
    """rowptr and col contiguous, both int32 or both int64 (the index types the kernels take)."""
    if rowptr.dtype != col.dtype or rowptr.dtype not in (torch.int32, torch.int64):
        rowptr, col = rowptr.long(), col.long()
    return rowptr.contiguous(), col.contiguous()


class SpmmFunction(torch.autograd.Function):
    """x [S, D], weight [E] | None -> A x [N, D]; backward: A^T grad_out and <grad_out[i], x[j]> per edge."""

    @staticmethod
    def forward(ctx, x, weight, rowptr, col, prims):
        x = x.contiguous()
        weight = None if weight is None else weight.contiguous()
        ctx.save_for_backward(x, weight, rowptr, col)
        ctx.prims = prims
        return prims.spmm(rowptr, col, x, None if weight is None else weight[:, None])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, rowptr, col = ctx.saved_tensors
        prims, grad_out = ctx.prims, grad_out.contiguous()
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            colptr, row, perm = csr_transpose(rowptr, col, x.shape[0])  # [S + 1], [E], [E]
            grad_x = prims.spmm(colptr, row, grad_out, None if weight is None else weight[perm][:, None])
        if ctx.needs_input_grad[1]:
            dst = destinations(rowptr).to(col.dtype)  # [E] the destination of every edge
            grad_weight = prims.edge_dot(dst, col, grad_out, x, 1)[:, 0].to(x.dtype)
        return grad_x, grad_weight, None, None, None


class GatAggregateFunction(torch.autograd.Function):
    """h [S, H, C], a_src [S, H], a_dst [N, H] -> sum_j alpha_ij h_j [N, H, C]; saves lse [N, H]."""

    @staticmethod
    def forward(ctx, h, a_src, a_dst, rowptr, col, negative_slope, prims):
        h, a_src, a_dst = h.contiguous(), a_src.contiguous(), a_dst.contiguous()
        out, lse = prims.gat_forward(rowptr, col, h, a_src, a_dst, negative_slope)
        ctx.save_for_backward(h, a_src, a_dst, lse, rowptr, col)
        ctx.negative_slope, ctx.prims = negative_slope, prims
        ctx.mark_non_differentiable(lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h, a_src, a_dst, lse, rowptr, col = ctx.saved_tensors
        prims, g = ctx.prims, grad_out.contiguous()
        (S, H, C), N = h.shape, rowptr.numel() - 1
        dst = destinations(rowptr).to(col.dtype)
        dot = prims.edge_dot(dst, col, g.view(N, H * C), h.view(S, H * C), H)  # [E, H] <g_i, h_j>
        alpha, dz, grad_a_dst = prims.gat_backward(rowptr, col, a_src, a_dst, lse, dot, ctx.negative_slope)
        colptr, row, perm = csr_transpose(rowptr, col, S)
        grad_h = prims.spmm(colptr, row, g.view(N, H * C), alpha[perm]).view(S, H, C)  # sum_i alpha_ij g_i
        grad_a_src = prims.spmm(colptr, perm, dz, None).to(h.dtype)  # [S, H] sum_i dz_ij
        return grad_h, grad_a_src, grad_a_dst.to(h.dtype), None, None, None, None


def spmm_with(prims, rowptr, col, x, weight=None):
    """Check the arguments and run gnn.spmm with a backend's primitives."""
    check_spmm_args("gnn.spmm", rowptr, col, x, weight)
    check_backend("gnn.spmm", prims.BACKEND, "x", x)
    with on_device("gnn.spmm", prims, x):
        rowptr, col = csr_indices(rowptr, col)
        return SpmmFunction.apply(x, weight, rowptr, col, prims)


def gat_aggregate_with(prims, rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """Check the arguments and run gnn.gat_aggregate with a backend's primitives."""
    check_gat_args("gnn.gat_aggregate", rowptr, col, h, a_src, a_dst, negative_slope)
    check_backend("gnn.gat_aggregate", prims.BACKEND, "h", h)
    with on_device("gnn.gat_aggregate", prims, h):
        rowptr, col = csr_indices(rowptr, col)
        return GatAggregateFunction.apply(h, a_src, a_dst, rowptr, col, float(negative_slope), prims)
