"""Graph message passing (family `gnn-message-passing`): the graph base of the course's graph families.

The library, which later graph families import: `graph` (the container, CSR / CSC views, batching),
`segment` (sum, mean, max and softmax over CSR segments), `aggregators` (learnable ones too),
`smoothing` (the Dirichlet energy, and the rounds of seeded GCN, SGC and GAT it falls over),
`message_passing` (the message / aggregate / update base), `spmm` and `attention` (the two
aggregations with kernels), `layers` (GCN, SGC, GAT) and `datasets` (karate club, CSBM, power-law and
algorithmic graphs); the registry's ops in `ops`; the notebook's exercises in `exercises`; one module
per paper, with its toy and its claim, in `papers/`.
"""
FAMILY = "gnn-message-passing"
WIDGET = "course.widgets.message_passing:gallery"

from course.gnn.graph import (Adjacency, Graph, add_self_loops, batch, check_edge_index, check_simple,
                              coalesce, remove_self_loops, undirected)
from course.gnn.layers import GATConv, GCNConv, Propagation, gcn_norm, sgc_features
from course.gnn.message_passing import MessagePassing
from course.gnn.segment import segment, segment_max, segment_mean, segment_softmax, segment_sum
from course.gnn.smoothing import dirichlet_energy
from course.gnn import aggregators, attention, datasets, smoothing, spmm  # the modules, by name

__all__ = [
    "Adjacency", "GATConv", "GCNConv", "Graph", "MessagePassing", "Propagation", "add_self_loops",
    "aggregators", "attention", "batch", "check_edge_index", "check_simple", "coalesce", "datasets",
    "dirichlet_energy", "gcn_norm", "remove_self_loops", "segment", "segment_max", "segment_mean",
    "segment_softmax", "segment_sum", "sgc_features", "smoothing", "spmm", "undirected",
]
