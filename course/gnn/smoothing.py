"""Oversmoothing: the Dirichlet energy of node features, and how it falls round after round.

Cai and Wang 2020, "A Note on Over-Smoothing for Graph Neural Networks" (arXiv:2006.13318), section 3:

    E(X) = tr(X^T L~ X) = 1/2 sum_{i,j} A~_ij || x_i / sqrt(1 + d_i) - x_j / sqrt(1 + d_j) ||^2

with L~ = I - D~^-1/2 (A + I) D~^-1/2, the normalised Laplacian of the graph with self-loops (GCN's
propagation S = I - L~), on an undirected graph (both directions of every edge). E is 0 exactly
when, within each connected component, every x_i is proportional to sqrt(1 + d_i) (the component that
GCN's propagation keeps, eigenvalue 1 of S), and each application of S shrinks the rest: E(S X) <=
max (1 - lambda)^2 E(X), the max over the non-zero eigenvalues lambda of L~ (all in (0, 2)). Deep GCNs
drive node features towards that component: oversmoothing.

`propagate_states` runs three models for some rounds with seeded weights and no training, keeping
every round and the weight of every message (what the message-passing widget draws, and what the
oversmoothing family measures further):
  GCN  H' = LeakyReLU(S H Q) (Kipf and Welling 2017, eq. 2), Q a seeded rotation near the identity;
       E(X Q) = E(X) for an orthogonal Q and E(LeakyReLU(X)) <= E(X), so E falls every round on a
       connected graph, by Cai and Wang's bound;
  SGC  H' = S H (Wu et al. 2019, eq. 8: the propagation alone);
  GAT  H' = LeakyReLU(GATConv(H)) with seeded attention (Velickovic et al. 2018, eq. 1-4), its
       projection the same kind of rotation: attention is no fixed low-pass filter, and no such
       bound holds for it.
`energy_curves` is E of each model's states per round, relative to the input's.
"""
import math
from dataclasses import dataclass

import torch

from course.checks import check_finite, check_int, check_tensor
from course.gnn.graph import Graph, add_self_loops
from course.gnn.layers import GATConv, gcn_norm
from course.train import seeded

WHERE = "gnn.smoothing"
MODELS = ("GCN", "SGC", "GAT")
NEGATIVE_SLOPE = 0.5  # of the LeakyReLU between rounds (Cai and Wang's bound holds for any in [0, 1])
ROTATION = 0.3  # how far the seeded weights turn away from the identity
ATTENTION_SCALE = 3.0  # seeded attention vectors scaled up, so that neighbours' weights differ


def dirichlet_energy(graph: Graph, x) -> float:
    """E(X) = tr(X^T X) - tr(X^T S X) with S = D~^-1/2 (A + I) D~^-1/2 (`gcn_norm`'s), in float64, so
    that a signal E calls 0 comes out 0 to float64 rounding. x [N, F] -> float"""
    if not isinstance(graph, Graph):
        raise TypeError(f"gnn.dirichlet_energy: `graph` must be a Graph; got {type(graph).__name__}.")
    check_tensor("gnn.dirichlet_energy", "x", x, ndim=2, kind="float")
    check_finite("gnn.dirichlet_energy", "x", x)
    if x.shape[0] != graph.num_nodes:
        raise ValueError(f"gnn.dirichlet_energy: `x` must have one row per node, N = {graph.num_nodes}; "
                         f"got shape {tuple(x.shape)}.")
    g = add_self_loops(graph)
    x = x.double()
    inv_sqrt = g.in_degree().double().rsqrt()  # [N]; every degree >= 1 with the self-loops
    weight = inv_sqrt[g.destination] * inv_sqrt[g.source]  # [E'] S[i, j] for the edge j -> i
    sx = torch.zeros_like(x).index_add_(0, g.destination, weight[:, None] * x[g.source])  # [N, F]
    return float((x * x).sum() - (x * sx).sum())


def seeded_rotation(features: int) -> torch.Tensor:
    """An orthogonal matrix near the identity, exp(ROTATION (R - R^T) / sqrt(2 F)), from the global
    RNG (call it under `seeded`). Orthogonal, so that it leaves the Dirichlet energy unchanged. [F, F]"""
    r = torch.randn(features, features)
    return torch.linalg.matrix_exp(ROTATION * (r - r.T) / math.sqrt(2 * features))


def seeded_gat_layers(depth: int, features: int, seed: int = 0) -> list:
    """`depth` one-head GAT layers F -> F with seeded weights: rotations near the identity as
    projections, attention vectors scaled by ATTENTION_SCALE so that neighbours' weights differ.
    The first r layers do not depend on `depth`, so a shallow model is the start of a deep one."""
    check_int(f"{WHERE}.seeded_gat_layers", "depth", depth, low=0)
    layers = []
    with seeded(seed), torch.no_grad():
        for _ in range(depth):
            layer = GATConv(features, features, heads=1)
            layer.linear.weight.copy_(seeded_rotation(features))
            layer.att_src.mul_(ATTENTION_SCALE)
            layer.att_dst.mul_(ATTENTION_SCALE)
            layers.append(layer)
    return layers


def check_layers(where: str, layers, depth: int, features: int):
    """A caller's GAT layers: at least `depth` GATConv layers, each mapping F features to F."""
    if not isinstance(layers, (list, tuple)) or len(layers) < depth:
        raise ValueError(f"{where}: `layers` must be a list of at least {depth} GATConv layers (one per "
                         f"round); got {type(layers).__name__} of length "
                         f"{len(layers) if hasattr(layers, '__len__') else '?'}.")
    for r, layer in enumerate(layers[:depth]):
        width = layer.heads * layer.out_features if isinstance(layer, GATConv) and layer.concat \
            else getattr(layer, "out_features", None)
        if not isinstance(layer, GATConv) or layer.linear.in_features != features or width != features:
            raise ValueError(f"{where}: `layers[{r}]` must be a GATConv from {features} features to "
                             f"{features} (F of graph.x); got {type(layer).__name__}"
                             + (f" from {layer.linear.in_features} to {width}" if isinstance(layer, GATConv)
                                else "") + ".")


@dataclass
class Rounds:
    """The states after each round of a model and, per round, the weight of each message."""

    states: list  # depth + 1 tensors [N, F]: the input, then the state after each round
    weights: list  # depth tensors [E'], in the edge order of `looped`
    looped: Graph  # the graph with one self-loop per node: what every model aggregates over

    @property
    def depth(self) -> int:
        return len(self.weights)


def propagate_states(graph: Graph, model: str, depth: int, seed: int = 0, layers=None) -> Rounds:
    """Run `model` (GCN, SGC or GAT) for `depth` rounds from graph.x, keeping every round.

    GCN and SGC weigh the message j -> i by S[i, j]; GAT by its attention alpha_ij (averaged over
    heads), which sums to 1 over each node's incoming edges. Weights are seeded; `layers`, when given,
    are the caller's GAT layers (GATConv, F -> F) in place of the seeded ones.
    """
    where = f"{WHERE}.propagate_states"
    if not isinstance(graph, Graph) or graph.x is None:
        raise TypeError(f"{where}: `graph` must be a Graph with node features x [N, F]; got "
                        + (f"{type(graph).__name__}." if not isinstance(graph, Graph) else "graph.x = None."))
    check_tensor(where, "graph.x", graph.x, ndim=2, kind="float")
    if model not in MODELS:
        raise ValueError(f"{where}: `model` must be one of {MODELS}; got {model!r}.")
    check_int(where, "depth", depth, low=0)
    features = graph.x.shape[1]
    if layers is not None:
        check_layers(where, layers, depth, features)
    looped = add_self_loops(graph)
    s = gcn_norm(graph)  # its CSR is the CSR of `looped`
    s_weight = torch.empty(looped.num_edges)
    s_weight[looped.csr.perm] = s.weight
    states, weights = [graph.x.float()], []
    with torch.no_grad(), seeded(seed):
        if model == "GAT" and layers is None:
            layers = seeded_gat_layers(depth, features, seed)
        rotations = [seeded_rotation(features) for _ in range(depth)]
        for r in range(depth):
            h = states[-1]
            if model == "SGC":
                h, w = s(h, backend="reference"), s_weight
            elif model == "GCN":
                h, w = s(h @ rotations[r], backend="reference"), s_weight
                h = torch.nn.functional.leaky_relu(h, NEGATIVE_SLOPE)
            else:
                h = layers[r](graph, h, keep_attention=True, backend="reference")
                h = torch.nn.functional.leaky_relu(h, NEGATIVE_SLOPE)
                w = torch.empty(looped.num_edges)
                w[looped.csr.perm] = layers[r].last_attention.float().mean(1)
            states.append(h)
            weights.append(w)
    return Rounds(states, weights, looped)


def energy_curves(graph: Graph, depth: int, seed: int = 0, layers=None) -> dict:
    """Dirichlet energy of each model's states at rounds 0..depth over the input's: {model: [depth + 1]}."""
    base = max(dirichlet_energy(graph, graph.x), 1e-30)
    return {m: [dirichlet_energy(graph, h) / base
                for h in propagate_states(graph, m, depth, seed, layers).states] for m in MODELS}
