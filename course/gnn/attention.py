"""GAT's attention over neighbourhoods, as one aggregation (Velickovic et al. 2018, eq. 1-4).

Per head h, with W h_j already computed (`h` [S, H, C]) and the attention vector a = [a_dst ; a_src]
split into its two halves applied to the nodes (`a_dst` [N, H] = a_dst . W h_i, `a_src` [S, H]):

    e_ij     = LeakyReLU(a_dst[i] + a_src[j])                  eq. (1) with a^T [W h_i || W h_j]
    alpha_ij = softmax_j(e_ij) over the incoming edges of i    eq. (2)-(3)
    out_i    = sum_j alpha_ij h_j                               eq. (4) before the nonlinearity

    rowptr [N + 1], col [E] -> out [N, H, C]

The reference materialises e and alpha for every edge and head ([E, H]); a fused kernel keeps a
running maximum and sum per destination (an online softmax, flash attention's idea applied to a
neighbourhood) and never does. A node without incoming edges gets 0.
"""
import torch

from course.checks import check_finite, check_same_device, check_tensor
from course.gnn.segment import broadcast, segment_softmax, segment_sum
from course.gnn.spmm import accumulating, check_csr, destinations
from course.registry import check_backend


def check_gat_args(where: str, rowptr, col, h, a_src, a_dst, negative_slope):
    check_tensor(where, "h", h, ndim=3, kind="float")
    check_csr(where, rowptr, col, h.shape[0])
    S, H, _ = h.shape
    N = rowptr.numel() - 1
    for name, t, rows, letter in (("a_src", a_src, S, "S = h.shape[0]"), ("a_dst", a_dst, N, "N = len(rowptr) - 1")):
        check_tensor(where, name, t, ndim=2, kind="float")
        if tuple(t.shape) != (rows, H):
            raise ValueError(f"{where}: `{name}` must be of shape [{letter.split(' ')[0]}, H] = ({rows}, {H}) "
                             f"with {letter}; got shape {tuple(t.shape)}.")
        if t.dtype != h.dtype:
            raise TypeError(f"{where}: `{name}` must have the dtype of `h` ({h.dtype}); got {t.dtype}.")
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) \
            or not 0 <= negative_slope < 1:
        raise ValueError(f"{where}: `negative_slope` must be a number in [0, 1); got {negative_slope!r}.")
    check_finite(where, "a_src", a_src)
    check_finite(where, "a_dst", a_dst)
    check_same_device(where, rowptr=rowptr, col=col, h=h, a_src=a_src, a_dst=a_dst)


def edge_scores(rowptr, col, a_src, a_dst, negative_slope=0.2):
    """e_ij = LeakyReLU(a_dst[i] + a_src[j]) for every CSR position. -> [E, H]"""
    return torch.nn.functional.leaky_relu(broadcast(a_dst, rowptr) + a_src[col.long()], negative_slope)


def attention_weights(rowptr, col, a_src, a_dst, negative_slope=0.2):
    """alpha_ij of eq. (3): the softmax of e_ij over each node's incoming edges. -> [E, H]"""
    return segment_softmax(edge_scores(rowptr, col, a_src, a_dst, negative_slope), rowptr)


def gat_aggregate(rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """sum_j alpha_ij h_j for every destination and head. -> [N, H, C]"""
    check_gat_args("gnn.gat_aggregate", rowptr, col, h, a_src, a_dst, negative_slope)
    alpha = attention_weights(rowptr, col, accumulating(a_src), accumulating(a_dst), negative_slope)  # [E, H]
    return segment_sum(alpha[..., None] * accumulating(h)[col.long()], rowptr).to(h.dtype)


def _pyg_gat(heads: int, channels: int):
    from torch_geometric.nn import GATConv

    return GATConv(channels, channels, heads=heads, add_self_loops=False, bias=False)


_PYG = {}


def gat_aggregate_pyg(rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """PyG's GATConv propagation: its edge_updater (LeakyReLU, softmax over each destination's edges)
    and its propagate (alpha_ij * x_j summed), fed the same projections and attention halves."""
    check_gat_args("gnn.gat_aggregate", rowptr, col, h, a_src, a_dst, negative_slope)
    check_backend("gnn.gat_aggregate", "pyg", "h", h)
    S, H, C = h.shape
    conv = _PYG.get((H, C)) or _PYG.setdefault((H, C), _pyg_gat(H, C))
    conv.negative_slope = negative_slope
    edge_index = torch.stack([col.long(), destinations(rowptr)])
    size = (S, rowptr.numel() - 1)
    alpha = conv.edge_updater(edge_index, alpha=(a_src, a_dst), edge_attr=None, size=size)
    return conv.propagate(edge_index, x=(h, h.new_zeros(size[1], H, C)), alpha=alpha, size=size)
