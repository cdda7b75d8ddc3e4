"""CMoE: carving a trained dense feed-forward layer into a mixture of experts, without training.

Pei et al. 2025, "CMoE: Fast Carving of Mixture-of-Experts for Efficient LLM Inference" (arXiv
2502.04416, the Methodology section; its equations are not numbered alike in every version, so the
steps are named here, as checked against the official code, JarvisPei/CMoE). For a dense FFN with
hidden activations h(x) = ReLU(x W1 + b1) [H] and output y = h W2 + b2:

    activation marker   a_ti = 1 if neuron i is among the K_a largest |h_i(x_t)|, else 0
    activation rate     mu_i = (1/Q) sum_t a_ti            over Q calibration tokens
    shared experts      the N_s * m neurons with the highest mu_i, always active
    routed experts      the other neurons, split into N_r groups of exactly m neurons by a balanced
                        clustering of their marker columns a_:i (L1 distance to N_r centroids that
                        start at the highest-rate neurons; the balance is a linear assignment)
    router              each routed expert's representative neuron (the member nearest its
                        centroid) scores the token; the k best routed experts are chosen
    carved output       y = sum over the shared and the k chosen experts of h_S(x) W2[S] + b2

With every expert active the carved layer is the dense layer exactly: the experts partition the
hidden neurons, and the training-free gates are all 1 (the paper's gate scale starts at 0).
Active parameters are the fraction of hidden neurons a token uses, (N_s + k) / N.
"""
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import accuracy
from course.train import fit


class FFN(NamedTuple):
    """A dense ReLU feed-forward layer: y = ReLU(x w1 + b1) w2 + b2."""

    w1: torch.Tensor  # [D, H]
    b1: torch.Tensor  # [H]
    w2: torch.Tensor  # [H, C]
    b2: torch.Tensor  # [C]


class Carving(NamedTuple):
    """Which hidden neurons form each expert, and the router's representative neurons."""

    shared: torch.Tensor          # [N_s * m] neurons of the shared experts
    routed: torch.Tensor          # [N_r, m] neurons of each routed expert
    representative: torch.Tensor  # [N_r] one neuron per routed expert, the router's key


def sphere_blob_classification(n: int, dim: int = 8, blobs: int = 64, classes: int = 8,
                               radius: float = 4.0, std: float = 0.5, seed: int = 0):
    """Points around `blobs` centers on a sphere of `radius` in `dim` dimensions, one class a blob.

    The centers and their classes are fixed; `seed` draws the points, so two seeds give a train and
    a test set of one problem. Every center lies on the convex hull, so a single ReLU neuron can
    detect one blob: the dense model learns localized, sparsely active neurons (CMoE's premise).
    Returns x [n, dim], label [n].
    """
    g = torch.Generator().manual_seed(1000)
    centers = torch.randn(blobs, dim, generator=g)
    centers = radius * centers / centers.norm(dim=1, keepdim=True)  # [blobs, dim]
    blob_class = torch.randperm(blobs, generator=g) % classes
    g = torch.Generator().manual_seed(seed)
    blob = torch.randint(blobs, (n,), generator=g)
    return centers[blob] + std * torch.randn(n, dim, generator=g), blob_class[blob]


def train_dense_mlp(x, label, hidden: int = 128, steps: int = 300, lr: float = 0.01,
                    activation_l1: float = 1.0, seed: int = 0) -> FFN:
    """A dense ReLU classifier trained with Adam (full batch): the model CMoE carves.

    The L1 penalty on hidden activations stands in for the activation sparsity that large trained
    FFNs show and that CMoE exploits (the paper's premise); a toy MLP does not develop it alone.
    x [T, D], label [T] -> FFN with w1 [D, hidden], w2 [hidden, C].
    """
    g = torch.Generator().manual_seed(seed)
    D, C = x.shape[1], int(label.max()) + 1
    params = [torch.randn(D, hidden, generator=g) / D ** 0.5, torch.zeros(hidden),
              torch.randn(hidden, C, generator=g) / hidden ** 0.5, torch.zeros(C)]
    for p in params:
        p.requires_grad_(True)

    def loss():
        ffn = FFN(*params)
        h = hidden_activations(ffn, x)  # [T, H]
        return F.cross_entropy(h @ ffn.w2 + ffn.b2, label) + activation_l1 * h.mean()

    fit(params, loss, steps, lr, seed=seed, desc="dense MLP")
    return FFN(*(p.detach() for p in params))


def hidden_activations(ffn: FFN, x):
    """h(x) = ReLU(x W1 + b1). x [T, D] -> [T, H]"""
    return torch.relu(x @ ffn.w1 + ffn.b1)


def dense_forward(ffn: FFN, x):
    """The dense layer. x [T, D] -> [T, C]"""
    return hidden_activations(ffn, x) @ ffn.w2 + ffn.b2


def activation_markers(h, k_act: int):
    """a_ti = 1 where neuron i is among token t's K_a largest |h|. h [Q, H] -> [Q, H] of 0/1."""
    check_tensor("cmoe.activation_markers", "h", h, ndim=2, kind="float")
    check_int("cmoe.activation_markers", "k_act", k_act, low=1, high=h.shape[1])
    top = h.abs().topk(k_act, dim=1).indices  # [Q, K_a]
    return torch.zeros_like(h).scatter(1, top, 1.0)


def linear_assignment(cost):
    """Minimum-cost perfect matching of rows to columns (Hungarian method, augmenting paths).

    cost [n, n] -> column of each row [n]. The O(n^3) algorithm with row and column potentials; each
    inner step is vectorized over columns.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n = cost.shape[0]
    u, v = np.zeros(n + 1), np.zeros(n + 1)  # potentials; index 0 is the virtual start column
    row_of = np.zeros(n + 1, dtype=np.int64)  # row matched to column j (1-based), 0 when free
    for i in range(1, n + 1):
        row_of[0], j0 = i, 0
        min_slack = np.full(n + 1, np.inf)
        previous = np.zeros(n + 1, dtype=np.int64)
        used = np.zeros(n + 1, dtype=bool)
        while row_of[j0] != 0:
            used[j0] = True
            i0 = row_of[j0]
            slack = cost[i0 - 1] - u[i0] - v[1:]  # [n] reduced costs from row i0
            better = ~used[1:] & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            previous[1:][better] = j0
            free = np.flatnonzero(~used[1:]) + 1
            j1 = free[np.argmin(min_slack[free])]
            delta = min_slack[j1]
            u[row_of[used]] += delta
            v[used] -= delta
            min_slack[~used] -= delta
            j0 = j1
        while j0:  # augment along the path of columns that led here
            j1 = previous[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    col_of = np.empty(n, dtype=np.int64)
    col_of[row_of[1:] - 1] = np.arange(n)
    return torch.from_numpy(col_of)


def balanced_clusters(points, centroids, size: int):
    """Assign points to clusters of exactly `size` members, minimizing the total L1 distance.

    Each centroid is repeated `size` times so that the balanced clustering is one linear assignment
    (the paper's balanced k-means step). points [n, Q], centroids [c, Q] with n = c * size -> [n].
    """
    distance = torch.cdist(points, centroids, p=1)  # [n, c]
    slots = distance.repeat_interleave(size, dim=1)  # [n, n]
    return linear_assignment(slots.numpy()) // size


def carve_experts(markers, num_experts: int, num_shared: int, iterations: int = 1) -> Carving:
    """CMoE grouping: shared experts by activation rate, routed experts by balanced clustering.

    `iterations` rounds of (balanced assignment, centroid update), one as in the official code.
    markers [Q, H] (0/1 activation markers on calibration tokens) -> Carving.
    """
    where = "cmoe.carve_experts"
    check_tensor(where, "markers", markers, ndim=2, kind="float")
    H = markers.shape[1]
    check_int(where, "num_experts", num_experts, low=2, high=H)
    check_int(where, "num_shared", num_shared, low=0, high=num_experts - 1)
    check_int(where, "iterations", iterations, low=1)
    if H % num_experts:
        raise ValueError(f"{where}: `num_experts` must divide the {H} hidden neurons; "
                         f"got {num_experts}.")
    m, routed_count = H // num_experts, num_experts - num_shared
    rates = markers.mean(0)  # [H] mu_i
    order = rates.argsort(descending=True, stable=True)
    shared, rest = order[:num_shared * m], order[num_shared * m:]  # rest is sorted by rate
    points = markers[:, rest].t()  # [n, Q] marker column of each remaining neuron
    centroids = points[:routed_count].clone()  # the highest-rate remaining neurons seed them
    for _ in range(iterations):
        cluster = balanced_clusters(points, centroids, m)  # [n]
        centroids = torch.stack([points[cluster == c].mean(0) for c in range(routed_count)])
    routed = torch.stack([rest[cluster == c] for c in range(routed_count)])  # [N_r, m]
    nearest = [torch.cdist(centroids[c:c + 1], points[cluster == c], p=1).argmin()
               for c in range(routed_count)]
    representative = torch.stack([routed[c, j] for c, j in enumerate(nearest)])
    return Carving(shared, routed, representative)


def random_carving(markers, num_experts: int, num_shared: int, seed: int = 0) -> Carving:
    """The baseline: a random partition into experts, with the same router construction.

    markers [Q, H] -> Carving (representatives nearest their group's mean marker column, as CMoE).
    """
    H = markers.shape[1]
    m = H // num_experts
    perm = torch.randperm(H, generator=torch.Generator().manual_seed(seed))
    shared, routed = perm[:num_shared * m], perm[num_shared * m:].view(-1, m)  # [N_r, m]
    points = markers.t()  # [H, Q]
    representative = torch.stack([
        group[torch.cdist(points[group].mean(0, keepdim=True), points[group], p=1).argmin()]
        for group in routed])
    return Carving(shared, routed, representative)


def router_scores(ffn: FFN, carving: Carving, x):
    """The training-free router: each routed expert's representative neuron, as a unit-norm row.

    (x w_rep + b_rep) / ||w_rep||. The paper scores |activation| of the representative neuron of a
    SwiGLU FFN, which is never exactly zero; a ReLU neuron is zero on half the space, so its
    pre-activation is used: the same order where it fires, and it ranks silent representatives by
    how close they are to firing instead of tying them at zero. x [T, D] -> [T, N_r].
    """
    w = ffn.w1[:, carving.representative]  # [D, N_r]
    return (x @ w + ffn.b1[carving.representative]) / w.norm(dim=0)


def carved_forward(ffn: FFN, carving: Carving, x, k: int):
    """The carved MoE layer: shared experts plus the router's top-k routed experts, gates 1.

    x [T, D] -> logits [T, C]. Inactive experts' neurons are masked out of the dense hidden layer,
    which computes the same numbers as running only the chosen experts.
    """
    check_int("cmoe.carved_forward", "k", k, low=0, high=carving.routed.shape[0])
    T, H = x.shape[0], ffn.w1.shape[1]
    mask = torch.zeros(T, H)
    mask[:, carving.shared] = 1.0
    if k:
        chosen = router_scores(ffn, carving, x).topk(k, dim=1).indices  # [T, k]
        neurons = carving.routed[chosen].flatten(1)  # [T, k * m]
        mask.scatter_(1, neurons, 1.0)
    return (hidden_activations(ffn, x) * mask) @ ffn.w2 + ffn.b2


ROUTED_K = (1, 3, 5, 7)  # routed experts per token: 25%, 50%, 75% and 100% of the 8 experts active


def cmoe_experiment(seed: int, hidden: int = 128, num_experts: int = 8, num_shared: int = 1,
                    k_act: int = 16) -> dict:
    """Accuracy against active parameters of a CMoE-carved classifier and of a random carving.

    Dense ReLU MLP on generated blobs -> activation markers on 512 calibration points -> carve ->
    test accuracy at (N_s + k) / N active hidden neurons for each k of ROUTED_K.
    """
    x, label = sphere_blob_classification(2048, seed=seed)
    x_test, label_test = sphere_blob_classification(2048, seed=seed + 100)
    ffn = train_dense_mlp(x, label, hidden=hidden, seed=seed)
    markers = activation_markers(hidden_activations(ffn, x[:512]), k_act)
    carved = carve_experts(markers, num_experts, num_shared)
    rand = random_carving(markers, num_experts, num_shared, seed=seed)
    measured = {"dense_accuracy": accuracy(dense_forward(ffn, x_test), label_test)}
    for k in ROUTED_K:
        measured[f"active_k{k}"] = (num_shared + k) / num_experts
        measured[f"cmoe_k{k}"] = accuracy(carved_forward(ffn, carved, x_test, k), label_test)
        measured[f"random_k{k}"] = accuracy(carved_forward(ffn, rand, x_test, k), label_test)
    dense = measured["dense_accuracy"]
    measured["kept_at_half"] = measured["cmoe_k3"] / dense  # 50% of the neurons active
    measured["gap_at_quarter"] = measured["cmoe_k1"] - measured["random_k1"]
    measured["gap_at_half"] = measured["cmoe_k3"] - measured["random_k3"]
    measured["all_active_gap"] = abs(measured["cmoe_k7"] - dense)  # every expert active: dense
    return measured


def cmoe_summary(m: dict) -> str:
    points = "; ".join(f"{m[f'active_k{j}']:.0%} active: CMoE {m[f'cmoe_k{j}']:.2f}, random "
                       f"{m[f'random_k{j}']:.2f}" for j in ROUTED_K)
    return (f"dense accuracy {m['dense_accuracy']:.2f}; {points}. At 50% active CMoE keeps "
            f"{m['kept_at_half']:.0%} of the dense accuracy and beats random carving by "
            f"{m['gap_at_half']:.2f}; by {m['gap_at_quarter']:.2f} at 25%")


CLAIM = Claim(
    paper="Pei et al. 2025",
    citation="CMoE: Fast Carving of Mixture-of-Experts for Efficient LLM Inference "
             "(arXiv:2502.04416), Methodology",
    statement="carving a dense FFN into shared experts (highest activation rates) and balanced "
              "clusters of co-activated neurons, with a router built from representative neurons, "
              "keeps most of the dense accuracy at a fraction of the active parameters, without "
              "training, well above a random carving",
    kind=REPRODUCTION,
    experiment=cmoe_experiment,
    thresholds=("kept_at_half >= 0.8", "gap_at_quarter >= 0.1", "gap_at_half >= 0.05",
                "all_active_gap <= 1e-6"),
    summary=cmoe_summary,
)
