"""The message-passing base: Gilmer et al. 2017 (Neural Message Passing for Quantum Chemistry, eq. 1-2),
with PyG's hooks named after the math (Fey and Lenssen 2019):

    m_ij  = message(x_i, x_j, e_ij)               one message per edge j -> i          [E, ...]
    a_i   = aggregate_{j in N(i)} m_ij            a segment reduction over the CSR     [N, ...]
    x_i'  = update(a_i, x_i)                      the new node state                   [N, ...]

`propagate` gathers the endpoints of every edge in CSR order, calls the three hooks, and returns the
new states. A layer overrides the hooks it needs; `aggregation` names the reduction of `aggregate`.
"""
from torch import nn

from course.gnn.graph import Graph
from course.gnn.segment import REDUCTIONS, segment


class MessagePassing(nn.Module):
    """x [N, F] on a Graph -> [N, F']; subclasses override message / aggregate / update."""

    aggregation = "sum"

    def propagate(self, graph: Graph, x, edge_attr=None, **extra):
        """One round: messages along every edge, aggregated at its destination, then updated."""
        if not isinstance(graph, Graph):
            raise TypeError(f"{type(self).__name__}.propagate: `graph` must be a Graph; got "
                            f"{type(graph).__name__}.")
        if x.shape[0] != graph.num_nodes:
            raise ValueError(f"{type(self).__name__}.propagate: `x` must have one row per node, N = "
                             f"{graph.num_nodes}; got shape {tuple(x.shape)}.")
        adj = graph.csr  # positions sorted by destination
        x_i, x_j = x[adj.target], x[adj.index]  # [E, ...] destination and source states
        e_ij = None if edge_attr is None else edge_attr[adj.perm]
        messages = self.message(x_i=x_i, x_j=x_j, edge_attr=e_ij, adj=adj, **extra)
        return self.update(self.aggregate(messages, adj), x=x, **extra)

    def message(self, x_i, x_j, edge_attr, adj, **extra):
        """m_ij: by default the source's state x_j."""
        return x_j

    def aggregate(self, messages, adj):
        """a_i: `aggregation` over each destination's segment (empty segments give 0)."""
        if self.aggregation not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: `aggregation` must be one of {REDUCTIONS}; got "
                             f"{self.aggregation!r}.")
        return segment(messages, adj.ptr, self.aggregation)

    def update(self, aggregated, x, **extra):
        """x_i': by default the aggregate itself."""
        return aggregated
