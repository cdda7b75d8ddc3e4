"""The graph container of the course's graph families: an edge index with its CSR and CSC views,
node, edge and graph features, and batching of several graphs into one.

Conventions (PyG's "source to target" flow, Fey and Lenssen 2019):

    edge_index [2, E]   edge_index[0] = j, the source; edge_index[1] = i, the destination
    A[i, j]             the weight of edge j -> i, so that aggregation is A @ X (rows = destinations)
    CSR of A            edges sorted by destination: rowptr [N + 1], col [E] (the source of each edge)
    CSC of A            edges sorted by source: colptr [N + 1], row [E] (the destination of each edge)

Aggregation runs over the CSR (a node's incoming edges are one contiguous segment, sorted by source),
its backward over the CSC (the transposed graph). Both views are built by a stable sort, so they are
deterministic, and each keeps `perm`, the original edge id of every position, so edge features follow.

Self-loops and duplicate edges are allowed in a Graph; a layer that forbids them says so
(`check_simple`). Isolated nodes have empty segments; an empty graph has N = 0.
"""
import functools
from dataclasses import dataclass

import torch

from course.checks import check_int, check_tensor


@dataclass(frozen=True)
class Adjacency:
    """One compressed view of the edges: `ptr` [N + 1] offsets, `index` [E] the other endpoint of each
    position, `perm` [E] the original edge id of each position, `target` [E] the node whose segment
    the position is in (repeat_interleave of the degrees), `num_nodes` N."""

    ptr: torch.Tensor
    index: torch.Tensor
    perm: torch.Tensor
    target: torch.Tensor
    num_nodes: int

    @property
    def degree(self) -> torch.Tensor:
        """Segment lengths [N] (in-degree for the CSR, out-degree for the CSC)."""
        return self.ptr[1:] - self.ptr[:-1]


def check_edge_index(where: str, edge_index, num_nodes: int):
    """An edge index is an integer tensor [2, E] with entries in [0, num_nodes)."""
    check_int(where, "num_nodes", num_nodes, low=0)
    check_tensor(where, "edge_index", edge_index, ndim=2, kind="int")
    if edge_index.shape[0] != 2:
        raise ValueError(f"{where}: `edge_index` must be of shape [2, E] (sources, destinations); got "
                         f"shape {tuple(edge_index.shape)}.")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{where}: `edge_index` must be int64 or int32; got dtype {edge_index.dtype}.")
    if edge_index.numel():
        low, high = edge_index.min().item(), edge_index.max().item()
        if low < 0 or high >= num_nodes:
            raise ValueError(f"{where}: `edge_index` entries must be node ids in [0, num_nodes) = "
                             f"[0, {num_nodes}); got values from {low} to {high}.")


def compress(key: torch.Tensor, other: torch.Tensor, num_nodes: int) -> Adjacency:
    """Sort the edges by `key`, then by `other` within a segment (stable), into segments.

    key, other [E] -> Adjacency. Sorted within segments, as torch's CSR invariants ask, and the order
    in which a kernel reads neighbouring rows.
    """
    perm = torch.sort(key * max(num_nodes, int(other.max()) + 1 if other.numel() else 1) + other,
                      stable=True).indices  # [E]
    degree = torch.bincount(key, minlength=num_nodes)  # [N]
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=key.device)
    torch.cumsum(degree, 0, out=ptr[1:])
    return Adjacency(ptr, other[perm], perm, key[perm], num_nodes)


def csr_transpose(rowptr: torch.Tensor, col: torch.Tensor, num_sources: int):
    """The CSC of a CSR: (colptr [S + 1], row [E], perm [E]) with perm the CSR position of each entry.

    What the backward of an aggregation needs: gradients flow from destinations back to sources.
    """
    rows = torch.repeat_interleave(torch.arange(len(rowptr) - 1, device=col.device), rowptr.diff())
    t = compress(col.long(), rows, num_sources)
    return t.ptr, t.index, t.perm


@dataclass(frozen=True, eq=False)
class Graph:
    """A graph, or a batch of graphs: edges, features and labels.

    edge_index [2, E] (source, destination); x [N, F] node features; edge_attr [E, F_e]; y labels
    (per node [N] or per graph [G]); u [G, F_u] graph (global) features; batch [N] the graph of each
    node (None for one graph); num_graphs G.
    """

    edge_index: torch.Tensor
    num_nodes: int
    x: torch.Tensor | None = None
    edge_attr: torch.Tensor | None = None
    y: torch.Tensor | None = None
    u: torch.Tensor | None = None
    batch: torch.Tensor | None = None
    num_graphs: int = 1

    def __post_init__(self):
        where = "Graph"
        check_edge_index(where, self.edge_index, self.num_nodes)
        if self.x is not None:
            check_tensor(where, "x", self.x)
            if self.x.shape[0] != self.num_nodes:
                raise ValueError(f"{where}: `x` must have one row per node, [N, F] with N = "
                                 f"{self.num_nodes}; got shape {tuple(self.x.shape)}.")
        if self.edge_attr is not None:
            check_tensor(where, "edge_attr", self.edge_attr)
            if self.edge_attr.shape[0] != self.num_edges:
                raise ValueError(f"{where}: `edge_attr` must have one row per edge, [E, F_e] with E = "
                                 f"{self.num_edges}; got shape {tuple(self.edge_attr.shape)}.")
        check_int(where, "num_graphs", self.num_graphs, low=0)
        if self.batch is not None:
            check_tensor(where, "batch", self.batch, ndim=1, kind="int")
            if self.batch.shape[0] != self.num_nodes:
                raise ValueError(f"{where}: `batch` must give the graph of every node, [N] with N = "
                                 f"{self.num_nodes}; got shape {tuple(self.batch.shape)}.")
        if self.u is not None and self.u.shape[0] != self.num_graphs:
            raise ValueError(f"{where}: `u` must have one row per graph, [G, F_u] with G = "
                             f"{self.num_graphs}; got shape {tuple(self.u.shape)}.")

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def source(self) -> torch.Tensor:
        return self.edge_index[0].long()

    @property
    def destination(self) -> torch.Tensor:
        return self.edge_index[1].long()

    @functools.cached_property
    def csr(self) -> Adjacency:
        """Edges grouped by destination: row i holds the sources j of the edges j -> i."""
        return compress(self.destination, self.source, self.num_nodes)

    @functools.cached_property
    def csc(self) -> Adjacency:
        """Edges grouped by source: column j holds the destinations i of the edges j -> i."""
        return compress(self.source, self.destination, self.num_nodes)

    @property
    def node_graph(self) -> torch.Tensor:
        """The graph of every node [N] (zeros for a single graph)."""
        if self.batch is not None:
            return self.batch.long()
        return torch.zeros(self.num_nodes, dtype=torch.long, device=self.edge_index.device)

    def in_degree(self) -> torch.Tensor:
        return self.csr.degree

    def self_loops(self) -> torch.Tensor:
        """Boolean mask [E] of the edges i -> i."""
        return self.source == self.destination

    def duplicate_edges(self) -> torch.Tensor:
        """Boolean mask [E] of the edges that repeat an earlier edge (same source and destination)."""
        key = self.destination * max(self.num_nodes, 1) + self.source
        order = torch.sort(key, stable=True).indices
        repeats = torch.zeros_like(key, dtype=torch.bool)
        repeats[order[1:]] = key[order[1:]] == key[order[:-1]]
        return repeats

    def with_(self, **changes) -> "Graph":
        """A copy with some fields replaced (the CSR and CSC are rebuilt when the edges change)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return Graph(**{**fields, **changes})

    def to_dense(self, edge_weight=None) -> torch.Tensor:
        """The dense adjacency A [N, N], A[i, j] = sum of the weights of the edges j -> i."""
        w = torch.ones(self.num_edges) if edge_weight is None else edge_weight
        a = torch.zeros(self.num_nodes, self.num_nodes, dtype=w.dtype, device=w.device)
        return a.index_put_((self.destination, self.source), w, accumulate=True)


def check_simple(where: str, graph: Graph, *, self_loops_allowed: bool = True):
    """Refuse duplicate edges (and self-loops unless allowed), naming how many and one example."""
    for mask, what in ((graph.duplicate_edges(), "duplicate edges"),
                       (None if self_loops_allowed else graph.self_loops(), "self-loops")):
        if mask is not None and mask.any():
            e = int(mask.nonzero()[0])
            raise ValueError(f"{where}: the graph must have no {what}; got {int(mask.sum())}, e.g. edge "
                             f"{e}: {int(graph.source[e])} -> {int(graph.destination[e])}. Remove them "
                             "first (`coalesce`, `remove_self_loops`).")


def remove_self_loops(graph: Graph) -> Graph:
    keep = ~graph.self_loops()
    return graph.with_(edge_index=graph.edge_index[:, keep],
                       edge_attr=None if graph.edge_attr is None else graph.edge_attr[keep])


def add_self_loops(graph: Graph) -> Graph:
    """The graph with its self-loops replaced by exactly one loop per node (appended last)."""
    g = remove_self_loops(graph)
    loops = torch.arange(g.num_nodes, device=g.edge_index.device).to(g.edge_index.dtype)
    attr = g.edge_attr
    if attr is not None:
        attr = torch.cat([attr, attr.new_zeros(g.num_nodes, *attr.shape[1:])])
    return g.with_(edge_index=torch.cat([g.edge_index, torch.stack([loops, loops])], dim=1), edge_attr=attr)


def coalesce(graph: Graph) -> Graph:
    """The graph with each repeated edge kept once (its first occurrence; edge features of the repeats
    are dropped)."""
    keep = ~graph.duplicate_edges()
    return graph.with_(edge_index=graph.edge_index[:, keep],
                       edge_attr=None if graph.edge_attr is None else graph.edge_attr[keep])


def undirected(edges, num_nodes: int) -> torch.Tensor:
    """Both directions of every pair in `edges` [P, 2] (or [2, P]) -> edge_index [2, 2P]."""
    e = torch.as_tensor(edges, dtype=torch.long)
    if e.dim() == 2 and e.shape[0] != 2 and e.shape[-1] == 2:
        e = e.t()
    e = e.reshape(2, -1)
    check_edge_index("undirected", e, num_nodes)
    return torch.cat([e, e.flip(0)], dim=1)


def batch(graphs) -> Graph:
    """Several graphs as one: nodes and edges concatenated, edge ids shifted by the node offsets.

    The result's `batch` [N] names the graph of every node and `num_graphs` is len(graphs); node
    features, edge features, labels and globals are concatenated when every graph has them.
    """
    graphs = list(graphs)
    if not graphs or not all(isinstance(g, Graph) for g in graphs):
        raise ValueError(f"batch: `graphs` must be a non-empty list of Graph; got "
                         f"{[type(g).__name__ for g in graphs]}.")
    sizes = torch.tensor([g.num_nodes for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    edge_index = torch.cat([g.edge_index.long() + int(o) for g, o in zip(graphs, offsets)], dim=1)
    counts = torch.tensor([g.num_graphs for g in graphs])
    node_graph = torch.cat([g.node_graph + int(c) for g, c in zip(graphs, torch.cumsum(counts, 0) - counts)])

    def cat(name):
        parts = [getattr(g, name) for g in graphs]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError(f"batch: either every graph has `{name}` or none does; "
                             f"{sum(p is None for p in parts)} of {len(parts)} lack it.")
        return torch.cat(parts)

    return Graph(edge_index, int(sizes.sum()), x=cat("x"), edge_attr=cat("edge_attr"), y=cat("y"),
                 u=cat("u"), batch=node_graph, num_graphs=int(counts.sum()))


def node_offsets(graph: Graph) -> torch.Tensor:
    """ptr [G + 1]: the nodes of graph g are ptr[g]:ptr[g + 1] (nodes of a batch are contiguous)."""
    counts = torch.bincount(graph.node_graph, minlength=graph.num_graphs)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
