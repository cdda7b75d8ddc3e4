"""How smooth node features are over a graph: the Dirichlet energy, the measure of oversmoothing.

Cai and Wang 2020, "A Note on Over-Smoothing for Graph Neural Networks" (arXiv:2006.13318), section 3:

    E(X) = tr(X^T L~ X) = 1/2 sum_{i,j} A~_ij || x_i / sqrt(1 + d_i) - x_j / sqrt(1 + d_j) ||^2

with L~ = I - D~^-1/2 (A + I) D~^-1/2, the normalised Laplacian of the graph with self-loops (GCN's
propagation S = I - L~). E is 0 exactly when every x_i is proportional to sqrt(1 + d_i) (the one
component that GCN's propagation keeps, eigenvalue 1 of S), and each application of S shrinks it:
deep GCNs drive node features towards that component, oversmoothing.
"""
import torch

from course.checks import check_tensor
from course.gnn.graph import Graph
from course.gnn.layers import gcn_norm


def dirichlet_energy(graph: Graph, x) -> float:
    """E(X) = tr(X^T X) - tr(X^T S X) with S = gcn_norm(graph). x [N, F] -> float"""
    check_tensor("gnn.dirichlet_energy", "x", x, ndim=2, kind="float")
    if x.shape[0] != graph.num_nodes:
        raise ValueError(f"gnn.dirichlet_energy: `x` must have one row per node, N = {graph.num_nodes}; "
                         f"got shape {tuple(x.shape)}.")
    x = x.double()
    return float((x * x).sum() - (x * gcn_norm(graph)(x, backend="reference")).sum())
