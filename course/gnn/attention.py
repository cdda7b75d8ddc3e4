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
from course.gnn.spmm import check_csr, destinations
from course.precision import accumulating
from course.registry import check_backend


def check_gat_args(where: str, rowptr, col, h, a_src, a_dst, negative_slope):
    check_tensor(where, "h", h, ndim=3, kind="float")
    check_csr(where, rowptr, col, h.shape[0])
    S, H, _ = h.shape
    N = rowptr.numel() - 1
    for name, t, rows, letter in (("a_src", a_src, S, "S = h.shape[0]"),
                                  ("a_dst", a_dst, N, "N = len(rowptr) - 1")):
        check_tensor(where, name, t, ndim=2, kind="float")
        if tuple(t.shape) != (rows, H):
            raise ValueError(f"{where}: `{name}` must be of shape [{letter.split(' ')[0]}, H] = "
                             f"({rows}, {H}) with {letter}; got shape {tuple(t.shape)}.")
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
    return torch.nn.functional.leaky_relu(broadcast(a_dst, rowptr) + a_src.index_select(0, col.long()),
                                          negative_slope)


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


ONLINE_BLOCK = 16  # edges a node reads per step of the online softmax


def gat_aggregate_online(rowptr, col, h, a_src, a_dst, negative_slope=0.2):
    """The fused kernel's algorithm in PyTorch: every node reads its edges ONLINE_BLOCK at a time, keeping
    a running maximum m, a running sum l and a running weighted sum acc of each head, rescaled by
    exp(m_old - m_new) whenever the maximum grows (Milakov and Gimelshein 2018's online softmax;
    flash attention's loop). The [E, H] attention of all edges never exists at once: only one block
    per node. -> [N, H, C]
    """
    check_gat_args("gnn.gat_aggregate", rowptr, col, h, a_src, a_dst, negative_slope)
    hs, s_src, s_dst = accumulating(h), accumulating(a_src), accumulating(a_dst)
    N, (H, C) = rowptr.numel() - 1, h.shape[1:]
    start, degree = rowptr[:-1].long(), rowptr.diff().long()  # [N]
    m = hs.new_full((N, H), float("-inf"))  # a shift, constant for the gradient (softmax ignores it)
    nothing = hs[:0].sum() + s_src[:0].sum() + s_dst[:0].sum()  # 0, tracked: a graph without edges
    l, acc = hs.new_zeros(N, H) + nothing, hs.new_zeros(N, H, C) + nothing
    offsets = torch.arange(ONLINE_BLOCK, device=h.device)
    for first in range(0, int(degree.max()) if N else 0, ONLINE_BLOCK):
        position = first + offsets  # [B] the block's positions within each node's edges
        valid = position[None, :] < degree[:, None]  # [N, B]
        p = (start[:, None] + position).clamp(max=max(col.numel() - 1, 0))  # [N, B]
        j = col.long()[p]  # [N, B] source of each edge of the block
        e = torch.nn.functional.leaky_relu(s_dst[:, None, :] + s_src[j], negative_slope)  # [N, B, H]
        e = torch.where(valid[..., None], e, float("-inf"))
        m_new = torch.maximum(m, e.detach().max(1).values)  # [N, H]
        seen = torch.isfinite(m_new)  # nodes with an edge so far
        scale = torch.where(seen, torch.exp(m - torch.where(seen, m_new, 0)), 0)  # exp(m_old - m_new)
        z = torch.where(valid[..., None], torch.exp(e - torch.where(seen, m_new, 0)[:, None, :]), 0)
        l = l * scale + z.sum(1)
        acc = acc * scale[..., None] + torch.where(valid[..., None, None], z[..., None] * hs[j], 0).sum(1)
        m = m_new
    out = torch.where(l[..., None] > 0, acc / l.clamp(min=torch.finfo(l.dtype).tiny)[..., None], 0)
    return out.to(h.dtype)
