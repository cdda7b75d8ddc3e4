"""Hypothesis strategies for graphs, shared by the graph families' tests."""
import torch
from hypothesis import strategies as st

from course.gnn.graph import Graph


@st.composite
def graphs(draw, max_nodes=12, max_edges=40):
    n = draw(st.integers(0, max_nodes))
    e = draw(st.integers(0, max_edges)) if n else 0
    ids = st.integers(0, max(n - 1, 0))
    edges = draw(st.lists(st.tuples(ids, ids), min_size=e, max_size=e))
    edge_index = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    seed = draw(st.integers(0, 2 ** 16))
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return Graph(edge_index, n, x=x)
