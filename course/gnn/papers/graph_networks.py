"""Relational inductive biases, deep learning, and graph networks: Battaglia et al. 2018
(arXiv:1806.01261), section 3.2 (the GN block, Algorithm 1) and section 4.3 / Figure 7 (encode-
process-decode on shortest paths).

A graph network block updates edges, then nodes, then the graph's global attribute u:

    e'_k = phi_e(e_k, v_rk, v_sk, u)            every edge k, from its receiver r_k and sender s_k
    ebar'_i = rho_e->v({e'_k : r_k = i})        aggregate the new edges at each receiver (sum)
    v'_i = phi_v(ebar'_i, v_i, u)               every node
    ebar' = rho_e->u(E'), vbar' = rho_v->u(V')  aggregate over each graph of a batch (sum)
    u' = phi_u(ebar', vbar', u)                 the graph

with MLPs as the phi's and segment sums as the rho's (`course.gnn.segment`). The model of section
4.3: an encoder (independent MLPs on edges, nodes, globals), a core GN block applied M times to the
encoding concatenated with the latest state (weights shared across steps), and a decoder reading
every node and edge as on / off the shortest path.

The claim is combinatorial generalisation: trained on graphs of 8-16 nodes, the same block runs on
graphs of 32-48 nodes and still labels their shortest paths, because it computes local relations
that do not depend on the graph's size. Baseline: the same encoder and decoder with no message
passing (an MLP per node, which sees only whether it is the start or the end). Measured by the
balanced accuracy of the node labels (the mean of the on-path and off-path recalls: most nodes of a
large graph are off the path, so plain accuracy would flatter a model that says "off" everywhere).
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.gnn.datasets import shortest_path_graphs
from course.gnn.graph import Graph
from course.gnn.segment import segment_sum
from course.train import fit, seeded

HIDDEN, STEPS_OF_MESSAGE_PASSING, TRAIN_STEPS, LR = 16, 8, 150, 0.01


def mlp(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, d_out))


def per_graph_sum(values, graph_of, num_graphs: int):
    """rho to the graph: sum of the rows of each graph. values [n, F], graph_of [n] -> [G, F]"""
    return values.new_zeros(num_graphs, values.shape[1]).index_add(0, graph_of, values)


class GNBlock(nn.Module):
    """Algorithm 1 with sum aggregations. (e [E, H], v [N, H], u [G, H]) -> (e', v', u')."""

    def __init__(self, d_edge: int, d_node: int, d_global: int):
        super().__init__()
        self.phi_e = mlp(d_edge + 2 * d_node + d_global, HIDDEN)
        self.phi_v = mlp(HIDDEN + d_node + d_global, HIDDEN)
        self.phi_u = mlp(2 * HIDDEN + d_global, HIDDEN)

    def forward(self, graph: Graph, e, v, u):
        # index_select: the rows of v[index], with a backward (index_add) twice as fast as indexing's
        receiver, sender, node_graph = graph.destination, graph.source, graph.node_graph
        edge_graph = node_graph.index_select(0, receiver)
        e_new = self.phi_e(torch.cat([e, v.index_select(0, receiver), v.index_select(0, sender),
                                      u.index_select(0, edge_graph)], dim=1))
        adj = graph.csr
        e_bar = segment_sum(e_new.index_select(0, adj.perm), adj.ptr)  # [N, H] sum over each receiver's edges
        v_new = self.phi_v(torch.cat([e_bar, v, u.index_select(0, node_graph)], dim=1))
        u_new = self.phi_u(torch.cat([per_graph_sum(e_new, edge_graph, graph.num_graphs),
                                      per_graph_sum(v_new, node_graph, graph.num_graphs), u], dim=1))
        return e_new, v_new, u_new


class EncodeProcessDecode(nn.Module):
    """Section 4.3's model; `message_passing=False` skips the core (the per-node baseline)."""

    def __init__(self, message_passing: bool = True):
        super().__init__()
        self.message_passing = message_passing
        self.enc_e, self.enc_v, self.enc_u = nn.Linear(1, HIDDEN), nn.Linear(2, HIDDEN), nn.Linear(1, HIDDEN)
        self.core = GNBlock(2 * HIDDEN, 2 * HIDDEN, 2 * HIDDEN)
        self.dec_v, self.dec_e = mlp(HIDDEN, 1), mlp(HIDDEN, 1)

    def forward(self, graph: Graph, steps: int = STEPS_OF_MESSAGE_PASSING):
        """-> node logits [N], edge logits [E] of being on the shortest path."""
        e0, v0 = self.enc_e(graph.edge_attr), self.enc_v(graph.x)
        u0 = self.enc_u(torch.ones(graph.num_graphs, 1))
        e, v, u = e0, v0, u0
        if self.message_passing:
            for _ in range(steps):
                e, v, u = self.core(graph, torch.cat([e0, e], 1), torch.cat([v0, v], 1),
                                    torch.cat([u0, u], 1))
        return self.dec_v(v).squeeze(1), self.dec_e(e).squeeze(1)


def balanced_accuracy(logits, labels) -> float:
    """Mean of the recalls of the two classes (0.5 for a constant guess)."""
    guess = logits > 0
    on, off = labels == 1, labels == 0
    return 0.5 * ((guess[on]).float().mean().item() + (~guess[off]).float().mean().item())


@functools.lru_cache(maxsize=4)
def training_graphs(seed: int, num_graphs: int = 64):
    """`num_graphs` graphs of 8-16 nodes and their path labels, generated once for both models."""
    return shortest_path_graphs(num_graphs, 8, 16, seed=seed)


def train(message_passing: bool, seed: int = 0, num_graphs: int = 64):
    graph, edge_on = training_graphs(seed, num_graphs)
    with seeded(seed):
        model = EncodeProcessDecode(message_passing)
    weight = (graph.y == 0).sum() / (graph.y == 1).sum().clamp(min=1)  # balance the two labels
    node_target, edge_target = graph.y.float(), edge_on.float()

    def loss():
        node, edge = model(graph)
        return (F.binary_cross_entropy_with_logits(node, node_target, pos_weight=weight)
                + F.binary_cross_entropy_with_logits(edge, edge_target, pos_weight=2 * weight))
    fit(model.parameters(), loss, TRAIN_STEPS, LR, seed=seed, desc="graph network")
    return model


@functools.lru_cache(maxsize=4)
def trained(seed: int) -> dict:
    check_int("graph_networks", "seed", seed, low=0)
    return {"gn": train(True, seed), "mlp": train(False, seed)}


def graph_networks_experiment(seed: int) -> dict:
    models = trained(seed)
    small, _ = shortest_path_graphs(64, 8, 16, seed=seed + 100)
    large, _ = shortest_path_graphs(16, 32, 48, seed=seed + 200)
    m = {}
    with torch.no_grad():
        for name, model in models.items():
            m[f"{name}_small"] = balanced_accuracy(model(small)[0], small.y)
            m[f"{name}_large"] = balanced_accuracy(model(large)[0], large.y)
        # the same block run for 3x the steps: enough rounds to cross a large graph's path
        deep = models["gn"](large, 3 * STEPS_OF_MESSAGE_PASSING)[0]
        m["gn_large_24_steps"] = balanced_accuracy(deep, large.y)
    m["gn_over_mlp_large"] = m["gn_large"] - m["mlp_large"]
    return m


CLAIM = Claim(
    paper="Battaglia et al. 2018",
    citation="Relational inductive biases, deep learning, and graph networks (arXiv:1806.01261), "
             "Algorithm 1 and section 4.3 (Figure 7: shortest paths on larger graphs)",
    statement="a graph network trained on small graphs generalises to larger ones (combinatorial "
              "generalisation): it still labels their shortest paths",
    kind=REPRODUCTION,
    experiment=graph_networks_experiment,
    thresholds=("gn_large >= 0.75", "gn_over_mlp_large >= 0.15"),
    summary=lambda m: (
        f"balanced accuracy of the on-path node labels, graph network vs per-node MLP: 8-16 nodes "
        f"(training sizes) {m['gn_small']:.2f} vs {m['mlp_small']:.2f}; 32-48 nodes {m['gn_large']:.2f} "
        f"vs {m['mlp_large']:.2f} ({m['gn_large_24_steps']:.2f} for the graph network run for 24 steps)"),
    held_on=(),
    note="Not reproduced at this scale: on the training sizes the graph network labels the paths well "
         "(balanced accuracy 0.94, 0.92, 0.95 on seeds 0, 1, 2, against 0.77-0.81 for the per-node "
         "MLP), but on 32-48 nodes it falls to 0.55 and 0.63 on seeds 0 and 2, below the MLP's 0.73 and "
         "0.71; on seed 1 it keeps 0.79, 0.10 above the MLP, short of the margin asked. 24 processing "
         "steps instead of 8 do not help (0.63, 0.65, 0.57). With 150 full-batch steps on 64 graphs and "
         "sum aggregation, the global and node states grow with the graph's size and leave the range "
         "seen in training; the paper's demo trains far longer on many more graphs. Training for 300 "
         "steps instead (twice this claim's CPU time, about 11 s a seed) gave the same picture: 0.91-0.96 "
         "on the training sizes, 0.51-0.86 on the large graphs, held on no seed.",
)
