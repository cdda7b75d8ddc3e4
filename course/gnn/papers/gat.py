"""Graph Attention Networks (GAT): Velickovic, Cucurull, Casanova, Romero, Lio and Bengio 2018
(ICLR 2018, arXiv:1710.10903), section 2.1.

Each layer weighs a node's neighbours (itself included) with learned attention,

    e_ij     = LeakyReLU(a^T [W h_i || W h_j])                                        eq. (1), (3)
    alpha_ij = softmax_j(e_ij) over j in N(i)                                         eq. (2)
    h_i'     = ||_{k=1..K} ELU( sum_j alpha^k_ij W^k h_j )   (heads concatenated)     eq. (5)
    h_i'     = mean_k sum_j alpha^k_ij W^k h_j               (the output layer)       eq. (6)

(`course.gnn.layers.GATConv`, on the op `gnn.gat_aggregate`). The paper's point is that the weights
are not fixed by the structure, as GCN's are, but depend on the neighbours' features. So attention
should help exactly when neighbours differ in how relevant they are, and not otherwise.

The test, at matched size: the same two-layer GAT, once with its attention vectors learned and once
with them frozen at zero, which makes every alpha_ij = 1 / |N(i)|: uniform-weight (mean)
aggregation with the same projections, heads and parameters otherwise. Two generated graphs:

- `distractor_graph`: a homophilous CSBM whose nodes also receive edges from *distractor* nodes that
  carry no class information (pure noise features) but a feature that identifies them. Relevance
  varies, and the attention can learn to ignore the distractors; uniform weights average their noise.
- `plain_graph`: the same CSBM without distractors: every neighbour is as relevant as any other.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.gnn.datasets import csbm, split_nodes
from course.gnn.graph import Graph, undirected
from course.gnn.layers import GATConv
from course.metrics import accuracy
from course.train import fit, seeded

HIDDEN, HEADS, STEPS, LR = 8, 2, 150, 0.02


def plain_graph(seed: int, num_nodes: int = 240) -> Graph:
    """A 2-class CSBM with weak features (signal 0.6) and homophily 0.9; one extra feature, 0."""
    g = csbm(num_nodes, 2, homophily=0.9, degree=4.0, features=8, signal=0.6, seed=seed)
    return g.with_(x=torch.cat([g.x, torch.zeros(num_nodes, 1)], dim=1))


def distractor_graph(seed: int, num_nodes: int = 240, distractors: int = 240, per_node: int = 6) -> Graph:
    """`plain_graph` plus `distractors` nodes that look like real nodes of a random class (the same
    signal and noise) but carry the flag feature 1, each real node receiving edges from `per_node`
    random distractors (both ways): misleading neighbours that the flag identifies. Distractors get
    label -1 (never trained on or scored)."""
    check_int("gat.distractor_graph", "per_node", per_node, low=0)
    g = plain_graph(seed, num_nodes)
    gen = torch.Generator().manual_seed(70_000 + seed)
    means = torch.stack([g.x[g.y == c, :-1].mean(0) for c in (0, 1)])  # the classes' feature means
    lookalike = means[torch.randint(2, (distractors,), generator=gen)]
    noise = torch.randn(distractors, g.x.shape[1] - 1, generator=gen) / (g.x.shape[1] - 1) ** 0.5
    x = torch.cat([g.x, torch.cat([lookalike + noise, torch.ones(distractors, 1)], dim=1)])
    real = torch.arange(num_nodes).repeat_interleave(per_node)
    fake = num_nodes + torch.randint(distractors, (num_nodes * per_node,), generator=gen)
    pairs = torch.stack([fake, real]).t()
    pairs = torch.unique(pairs, dim=0)  # one edge per (distractor, node) pair
    edges = torch.cat([g.edge_index, undirected(pairs, num_nodes + distractors)], dim=1)
    y = torch.cat([g.y, torch.full((distractors,), -1)])
    return Graph(edges, num_nodes + distractors, x=x, y=y)


class TwoLayerGAT(nn.Module):
    """GAT of eq. (5)-(6): HEADS heads of HIDDEN, ELU, then one averaged output head. `uniform`
    freezes every attention vector at zero: alpha_ij = 1 / |N(i)|, the matched baseline."""

    def __init__(self, in_features: int, num_classes: int, uniform: bool = False):
        super().__init__()
        self.conv1 = GATConv(in_features, HIDDEN, heads=HEADS)
        self.conv2 = GATConv(HIDDEN * HEADS, num_classes, heads=1, concat=False)
        if uniform:
            for conv in (self.conv1, self.conv2):
                for att in (conv.att_src, conv.att_dst):
                    att.data.zero_()
                    att.requires_grad_(False)

    def forward(self, graph: Graph, x, keep_attention: bool = False):
        h = F.elu(self.conv1(graph, x, keep_attention=keep_attention))
        return self.conv2(graph, h, keep_attention=keep_attention)


def train(graph: Graph, train_mask, uniform: bool, seed: int = 0) -> TwoLayerGAT:
    """Full-batch Adam on the cross-entropy of the training nodes."""
    with seeded(seed):
        model = TwoLayerGAT(graph.x.shape[1], 2, uniform=uniform)
    labels = graph.y[train_mask]
    fit([p for p in model.parameters() if p.requires_grad],
        lambda: F.cross_entropy(model(graph, graph.x)[train_mask], labels),
        STEPS, LR, seed=seed, weight_decay=5e-4, desc="uniform" if uniform else "GAT")
    return model


GRAPHS = {"varied": distractor_graph, "equal": plain_graph}


def real_split(graph: Graph, seed: int):
    """10 training labels per class among the real nodes (label >= 0), the other real nodes for
    testing; distractors are in neither. -> train_mask, test_mask [N]"""
    real = graph.y >= 0
    train_mask, test_mask = split_nodes(graph.y[real], 10, seed=seed)
    pad = torch.zeros(graph.num_nodes - int(real.sum()), dtype=torch.bool)
    return torch.cat([train_mask, pad]), torch.cat([test_mask, pad])


@functools.lru_cache(maxsize=16)
def trained(kind: str, seed: int, uniform: bool) -> tuple:
    """The model trained on GRAPHS[kind](seed), with the graph and its test mask (cached: the claim
    and the notebook's drawing share one training)."""
    graph = GRAPHS[kind](seed)
    train_mask, test_mask = real_split(graph, seed)
    return train(graph, train_mask, uniform, seed), graph, test_mask


def accuracies(kind: str, seed: int) -> dict:
    """Test accuracy of GAT and of the uniform baseline on the real nodes of GRAPHS[kind](seed)."""
    out = {}
    for name, uniform in (("gat", False), ("uniform", True)):
        model, graph, test_mask = trained(kind, seed, uniform)
        with torch.no_grad():
            out[name] = accuracy(model(graph, graph.x)[test_mask], graph.y[test_mask])
    return out


def trained_on_distractors(seed: int = 0) -> tuple:
    """A GAT trained on the distractor graph (for drawing its attention), and the graph."""
    model, graph, _ = trained("varied", seed, False)
    return model, graph


def distractor_attention(seed: int = 0) -> dict:
    """The trained GAT's first-layer attention (head-averaged) that real nodes give to distractors,
    to real neighbours and to themselves, per receiving node on average."""
    model, graph = trained_on_distractors(seed)
    with torch.no_grad():
        model(graph, graph.x, keep_attention=True)
    from course.gnn.graph import add_self_loops

    adj = add_self_loops(graph).csr
    alpha = model.conv1.last_attention.mean(1)  # [E'] in CSR order
    real_receiver = graph.y[adj.target] >= 0
    fake_sender = graph.y[adj.index] < 0
    itself = adj.index == adj.target
    n_real = int((graph.y >= 0).sum())
    share = lambda mask: float(alpha[real_receiver & mask].sum() / n_real)  # noqa: E731
    return {"to_distractors": share(fake_sender), "to_real": share(~fake_sender & ~itself),
            "to_itself": share(itself)}


def gat_experiment(seed: int) -> dict:
    varied, equal = accuracies("varied", seed), accuracies("equal", seed)
    m = {"varied_gat": varied["gat"], "varied_uniform": varied["uniform"],
         "equal_gat": equal["gat"], "equal_uniform": equal["uniform"]}
    m["varied_gain"] = m["varied_gat"] - m["varied_uniform"]
    m["equal_gain"] = m["equal_gat"] - m["equal_uniform"]
    return m


CLAIM = Claim(
    paper="Velickovic et al. 2018",
    citation="Graph Attention Networks (ICLR 2018, arXiv:1710.10903), eq. (1)-(6) and section 2.2 "
             "(weights that differ between neighbours of one node, unlike GCN's)",
    statement="attention beats uniform-weight aggregation (the same network with its attention frozen "
              "at zero) when the relevance of neighbours varies, and gives no such gain when every "
              "neighbour is equally relevant",
    kind=REPRODUCTION,
    experiment=gat_experiment,
    thresholds=("varied_gain >= 0.1", "equal_gain <= 0.05"),
    summary=lambda m: (
        f"test accuracy, GAT vs uniform weights: with distractor neighbours {m['varied_gat']:.2f} vs "
        f"{m['varied_uniform']:.2f} (+{m['varied_gain']:.2f}); without them {m['equal_gat']:.2f} vs "
        f"{m['equal_uniform']:.2f} ({m['equal_gain']:+.2f})"),
    held_on=(),
    note="Not reproduced at this scale: attention gains 0.07, 0.10 (just under the bound: 0.09999996) "
         "and -0.01 on seeds 0, 1, 2 where relevance varies, and none where it does not (the second "
         "half holds). The trained attention gives distractors 31% of a node's weight on seed 0, "
         "against the 55% of uniform weights: it learns to discount them, not to ignore them, with 10 "
         "labels per class and 150 steps. A first design, with distractors of loud noise features "
         "instead of look-alikes, was worse: attention followed the loud features (89% of the weight on "
         "distractors, gains -0.09, -0.05, -0.02); the record keeps the look-alike design, which the "
         "flag feature alone identifies.",
)
