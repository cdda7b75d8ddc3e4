"""The layers the graph families build on: GCN, SGC's propagation and GAT, on the message-passing
base and the `gnn.spmm` / `gnn.gat_aggregate` ops.

- GCN (Kipf and Welling 2017, eq. 2): H' = D^-1/2 (A + I) D^-1/2 H W, the symmetric normalisation
  with self-loops; `gcn_norm` gives the CSR and its weights once per graph.
- SGC (Wu et al. 2019, eq. 8): S^K X, the same S applied K times with no weights in between.
- GAT (Velickovic et al. 2018, eq. 1-6): multi-head attention over each node's neighbourhood (and
  itself), heads concatenated (hidden layers) or averaged (the output layer).

Existing self-loops are replaced by exactly one per node (so a loop is never counted twice);
duplicate edges count as a weight of 2 in GCN (they are entries of a sparse sum) and are refused by
GAT, whose softmax would weigh a duplicated neighbour twice without saying so.

A training loop calls a layer hundreds of times on one graph, so the layers call the two ops' records
(`course.gnn.ops`) without a registry lookup per call, and GAT builds its neighbourhoods once per graph
(`attention_neighbourhoods`).
"""
import weakref
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from course.checks import check_int
from course.gnn import ops
from course.gnn.graph import Adjacency, Graph, add_self_loops, check_simple


@dataclass(frozen=True)
class Propagation:
    """A normalised adjacency in CSR form: rowptr [N + 1], col [E], weight [E]."""

    rowptr: torch.Tensor
    col: torch.Tensor
    weight: torch.Tensor

    def __call__(self, x, backend: str = "auto"):
        """S @ x through the `gnn.spmm` op. x [N, D] -> [N, D]"""
        return ops.spmm(self.rowptr, self.col, x, self.weight.to(x.dtype), backend=backend)


def gcn_norm(graph: Graph, self_loops: bool = True) -> Propagation:
    """S = D^-1/2 (A + I) D^-1/2 with D the degrees of A + I (Kipf and Welling 2017, section 2)."""
    g = add_self_loops(graph) if self_loops else graph
    adj = g.csr
    degree = adj.degree.to(torch.float32)  # in-degree (symmetric graphs: the degree)
    inv_sqrt = torch.where(degree > 0, degree.clamp(min=1).rsqrt(), torch.zeros(()))
    weight = inv_sqrt[adj.target] * inv_sqrt[adj.index]
    return Propagation(adj.ptr, adj.index, weight)


def sgc_features(graph: Graph, x, k: int, backend: str = "auto"):
    """SGC's fixed low-pass filter: S^K X (Wu et al. 2019, eq. 8). x [N, F] -> [N, F]"""
    check_int("gnn.sgc_features", "k", k, low=0)
    s = gcn_norm(graph)
    for _ in range(k):
        x = s(x, backend)
    return x


class GCNConv(nn.Module):
    """One GCN layer: S (x W) + b with S = gcn_norm(graph). x [N, F] -> [N, F']"""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, graph: Graph, x, propagation: Propagation | None = None):
        s = propagation or gcn_norm(graph)
        out = s(self.linear(x))  # the fused form of propagate with message = weight * x_j
        return out if self.bias is None else out + self.bias


_NEIGHBOURHOODS = weakref.WeakKeyDictionary()  # Graph -> Adjacency, while the graph lives


def attention_neighbourhoods(graph: Graph) -> Adjacency:
    """N(i) of GAT's eq. (2), each node's neighbours and the node itself: the CSR of `graph` with one
    self-loop per node, after refusing duplicate edges (`check_simple`). Built once per graph object and
    kept while it lives: a Graph's edges never change (its cached `csr` assumes the same)."""
    adj = _NEIGHBOURHOODS.get(graph)
    if adj is None:
        check_simple("gnn.GATConv", graph)
        adj = _NEIGHBOURHOODS[graph] = add_self_loops(graph).csr
    return adj


class GATConv(nn.Module):
    """One GAT layer with `heads` heads of `out_features` each (Velickovic et al. 2018).

    x [N, F] -> [N, heads * out_features] (concat) or [N, out_features] (mean, the output layer).
    `last_attention` keeps alpha [E, heads] of the last call (CSR order of the graph with self-loops),
    for drawing.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0):
        super().__init__()
        check_int("gnn.GATConv", "heads", heads, low=1)
        self.heads, self.out_features, self.concat = heads, out_features, concat
        self.negative_slope, self.dropout = negative_slope, dropout
        self.linear = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.randn(heads, out_features) / out_features ** 0.5)
        self.att_dst = nn.Parameter(torch.randn(heads, out_features) / out_features ** 0.5)
        self.bias = nn.Parameter(torch.zeros(heads * out_features if concat else out_features))
        self.last_attention = None

    def forward(self, graph: Graph, x, keep_attention: bool = False, backend: str = "auto"):
        """`backend` of the `gnn.gat_aggregate` op ("auto" picks as the registry says)."""
        adj = attention_neighbourhoods(graph)  # eq. (2): the neighbourhood includes the node itself
        h = rearrange(self.linear(x), "N (H C) -> N H C", H=self.heads)
        a_src = (h * self.att_src).sum(-1)  # [N, H]
        a_dst = (h * self.att_dst).sum(-1)
        h = nn.functional.dropout(h, self.dropout, self.training)
        out = ops.gat_aggregate(adj.ptr, adj.index, h, a_src, a_dst, self.negative_slope, backend=backend)
        if keep_attention:
            from course.gnn.attention import attention_weights

            self.last_attention = attention_weights(adj.ptr, adj.index, a_src, a_dst,
                                                    self.negative_slope).detach()
        out = rearrange(out, "N H C -> N (H C)") if self.concat else out.mean(1)
        return out + self.bias
