"""GCORN: a GCN whose weights are orthonormalised, for robustness to node-feature attacks.

Abbahaddou, Ennadir, Lutzeyer, Vazirgiannis and Bostrom 2024, "Bounding the Expected Robustness of
Graph Neural Networks Subject to Node Feature Attacks" (ICLR 2024, arXiv:2404.17947), sections 3-5.

Expected robustness (sec. 3): for a model f, a graph with features X and perturbations delta of
size ||delta|| <= eps drawn from a distribution D, the expected change of the output

    E_{delta ~ D} [ ||f(X + delta) - f(X)|| ]                                                [R]

which the paper bounds, for an L-layer GCN with 1-Lipschitz activations, by a product over the
layers of ||W^(l)|| times a factor of the graph's normalised walks (sec. 4): the weights'
norms are the part a model can control. GCORN (sec. 5) keeps every weight matrix orthonormal,
so ||W x|| <= ||x|| whatever the training does, by Bjorck and Bowie's iterative orthonormalisation
(1971), the first-order Taylor step towards W (W^T W)^-1/2, applied to the scaled raw weight
W_0 = V / ||V||_2 (its singular values in (0, 1], where the iteration converges):

    W_{k+1} = W_k (I + 1/2 Q_k),   Q_k = I - W_k^T W_k,   i.e.  W_{k+1} = 3/2 W_k - 1/2 W_k W_k^T W_k   [B]

The iterations run in every forward pass and training differentiates through them. For a weight
W [F_in, F_out] with F_in >= F_out the limit has orthonormal columns, W^T W = I.

The paper estimates [R] by sampling attacks (sec. 5); the toy does the same, Monte-Carlo over
random node-feature perturbations of norm eps per node, and reports the output change and the
accuracy under attack for the plain GCN and for GCORN, same architecture, same training, on a CSBM.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.gnn.datasets import csbm, split_nodes
from course.gnn.graph import Graph
from course.gnn.layers import GCNConv, Propagation, gcn_norm
from course.metrics import accuracy
from course.train import fit, seeded

ITERATIONS = 20  # Bjorck steps per forward pass
HIDDEN, STEPS, LR, WEIGHT_DECAY = 16, 200, 0.01, 5e-4
EPSILON, SAMPLES = 1.0, 20  # attack size per node (the features' norm is about sqrt(1 + signal^2)) and draws


def bjorck_orthonormalize(w, iterations: int = ITERATIONS):
    """W_{k+1} = 3/2 W_k - 1/2 W_k W_k^T W_k from W_0 = w / ||w||_2 ([B]). w [F_in, F_out] -> same

    With F_in >= F_out the result has orthonormal columns (W^T W ~ I); otherwise orthonormal rows.
    """
    where = "gcorn.bjorck_orthonormalize"
    check_tensor(where, "w", w, ndim=2, kind="float")
    check_finite(where, "w", w)
    check_int(where, "iterations", iterations, low=0)
    norm = torch.linalg.matrix_norm(w, ord=2)
    if norm == 0:
        raise ValueError(f"{where}: `w` must be non-zero (it is scaled by its spectral norm); got all zeros.")
    w = w / norm
    tall = w.shape[0] >= w.shape[1]
    for _ in range(iterations):  # the smaller Gram matrix: W^T W for a tall W, W W^T for a wide one
        w = 1.5 * w - 0.5 * (w @ (w.T @ w) if tall else (w @ w.T) @ w)
    return w


class OrthonormalGCNConv(nn.Module):
    """GCORN's layer: S (x W) + b with W = bjorck_orthonormalize(V). x [N, F_in] -> [N, F_out]"""

    def __init__(self, in_features: int, out_features: int, iterations: int = ITERATIONS):
        super().__init__()
        self.iterations = iterations
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(in_features, out_features)))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def orthonormal_weight(self):
        return bjorck_orthonormalize(self.weight, self.iterations)

    def forward(self, graph: Graph, x, propagation: Propagation | None = None):
        s = propagation or gcn_norm(graph)
        return s(x @ self.orthonormal_weight()) + self.bias


class TwoLayerGCN(nn.Module):
    """conv2(ReLU(conv1(x))): the plain GCN, or GCORN with `orthonormal=True`. -> logits [N, C]"""

    def __init__(self, in_features: int, num_classes: int, orthonormal: bool, hidden: int = HIDDEN):
        super().__init__()
        conv = OrthonormalGCNConv if orthonormal else GCNConv
        self.conv1, self.conv2 = conv(in_features, hidden), conv(hidden, num_classes)

    def forward(self, graph: Graph, x, propagation: Propagation | None = None):
        s = propagation or gcn_norm(graph)
        return self.conv2(graph, torch.relu(self.conv1(graph, x, s)), s)


def random_feature_attacks(x, epsilon: float, samples: int, seed: int = 0):
    """`samples` perturbations of every node's features, each node's of norm `epsilon`, in uniformly
    random directions. x [N, F] -> delta [samples, N, F]"""
    check_tensor("gcorn.random_feature_attacks", "x", x, ndim=2, kind="float")
    check_int("gcorn.random_feature_attacks", "samples", samples, low=1)
    if not epsilon >= 0:
        raise ValueError(f"gcorn.random_feature_attacks: `epsilon` must be >= 0; got {epsilon}.")
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(samples, *x.shape, generator=g, dtype=x.dtype)
    return epsilon * delta / delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def expected_robustness(model: nn.Module, graph: Graph, delta, mask=None) -> dict:
    """Monte-Carlo [R]: the mean over the attacks of the mean per-node ||f(X + delta) - f(X)||_2,
    its ratio to the mean ||f(X)||_2, and the accuracy on the clean and the attacked features (on
    the nodes of `mask`, default all). delta [S, N, F] -> dict of floats."""
    mask = torch.ones(graph.num_nodes, dtype=torch.bool) if mask is None else mask
    s = gcn_norm(graph)
    with torch.no_grad():
        clean = model(graph, graph.x, s)  # [N, C]
        changes, accuracies = [], []
        for d in delta:
            attacked = model(graph, graph.x + d, s)
            changes.append((attacked - clean)[mask].norm(dim=1).mean())
            accuracies.append(accuracy(attacked[mask], graph.y[mask]))
    change = torch.stack(changes).mean().item()
    return {"output_change": change, "relative_change": change / clean[mask].norm(dim=1).mean().item(),
            "clean_accuracy": accuracy(clean[mask], graph.y[mask]),
            "attacked_accuracy": sum(accuracies) / len(accuracies)}


def train(graph: Graph, train_mask, orthonormal: bool, seed: int) -> TwoLayerGCN:
    """Full-batch Adam on the labelled nodes' cross-entropy (Kipf and Welling's rate and L2)."""
    with seeded(seed):
        model = TwoLayerGCN(graph.x.shape[1], int(graph.y.max()) + 1, orthonormal)
    s, y = gcn_norm(graph), graph.y[train_mask]
    fit(model.parameters(), lambda: F.cross_entropy(model(graph, graph.x, s)[train_mask], y), STEPS, LR,
        seed=seed, weight_decay=WEIGHT_DECAY, desc="GCORN" if orthonormal else "GCN")
    return model.eval()


@functools.lru_cache(maxsize=4)
def problem(seed: int):
    """The CSBM of the claim (300 nodes, 3 classes, homophily 0.8, signal 1) and a 10-per-class split."""
    graph = csbm(num_nodes=300, num_classes=3, homophily=0.8, degree=6.0, features=16, signal=1.0, seed=seed)
    return graph, *split_nodes(graph.y, 10, seed=seed)


def gcorn_experiment(seed: int) -> dict:
    """Expected robustness of the GCN and of GCORN on the test nodes, under the same attacks."""
    graph, train_mask, test_mask = problem(seed)
    delta = random_feature_attacks(graph.x, EPSILON, SAMPLES, seed=seed)
    m = {}
    for name, orthonormal in (("gcn", False), ("gcorn", True)):
        model = train(graph, train_mask, orthonormal, seed)
        m.update({f"{name}_{k}": v for k, v in expected_robustness(model, graph, delta, test_mask).items()})
    m["change_ratio"] = m["gcorn_output_change"] / m["gcn_output_change"]
    m["relative_change_ratio"] = m["gcorn_relative_change"] / m["gcn_relative_change"]
    m["clean_accuracy_cost"] = m["gcn_clean_accuracy"] - m["gcorn_clean_accuracy"]
    return m


CLAIM = Claim(
    paper="Abbahaddou et al. 2024",
    citation="Bounding the Expected Robustness of Graph Neural Networks Subject to Node Feature Attacks "
             "(ICLR 2024, arXiv:2404.17947), sections 3-5",
    statement="orthonormalising a GCN's weights (GCORN, Bjorck iterations) lowers its expected output "
              "change under node-feature attacks, at a small cost of clean accuracy",
    kind=REPRODUCTION,
    experiment=gcorn_experiment,
    thresholds=("change_ratio <= 0.7", "clean_accuracy_cost <= 0.05"),
    held_on=(0, 2),
    note="The output change is 9-11% of the GCN's on every seed, but mostly because orthonormal weights "
         "keep GCORN's logits about 10x smaller. Relative to the output's norm the change is 0.63-1.23x "
         "the GCN's, not lower on every seed, and under these random attacks both models keep their "
         "accuracy (drops under 0.02). The clean-accuracy cost is 0.004 and 0.026 on seeds 0 and 2 but "
         "0.081 on seed 1, where the claim fails.",
    summary=lambda m: (
        f"CSBM, {SAMPLES} random attacks of norm {EPSILON:g} on every node: mean output change GCORN "
        f"{m['gcorn_output_change']:.3f} vs GCN {m['gcn_output_change']:.3f} ({m['change_ratio']:.2f}x; "
        f"relative to the output's norm {m['relative_change_ratio']:.2f}x); test accuracy clean "
        f"{m['gcorn_clean_accuracy']:.2f} vs {m['gcn_clean_accuracy']:.2f}, under attack "
        f"{m['gcorn_attacked_accuracy']:.2f} vs {m['gcn_attacked_accuracy']:.2f}"),
)
