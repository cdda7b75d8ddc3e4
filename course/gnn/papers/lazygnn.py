"""LazyGNN: long-range propagation at the cost of a shallow model, by reusing the propagation of the
previous training iterations.

Xue, Han, Torkamani, Pei and Liu 2023, "LazyGNN: Large-Scale Graph Neural Networks via Lazy
Propagation" (ICML 2023, arXiv:2302.01503). The model is the graph-signal-denoising fixed
point that APPNP unrolls (Gasteiger et al. 2019): features X_in = f(X; theta) propagated by

    X^{l+1} = (1 - alpha) S X^l + alpha X_in,     S = D^-1/2 (A + I) D^-1/2         [N, C]

whose fixed point X* = alpha (I - (1 - alpha) S)^-1 X_in reaches arbitrarily far; a deep model
needs many steps l per training iteration to approach it. LazyGNN runs only K steps per iteration
and starts them from the previous iteration's result (the memory M), corrected towards the new
features by a momentum beta (lazy forward):

    X_k^0 = (1 - beta) M_{k-1} + beta X_in^k,   K steps of the recursion,   M_k = X_k^K

so that the steps accumulate across iterations. With beta = 0 and fixed features the memory
converges to X* itself; beta > 0 trades some reach, (1 - alpha)(1 - beta) per hop instead of
(1 - alpha), for less staleness while the features change. The gradient of the fixed point, dL/dX_in =
alpha (I - (1 - alpha) S)^-T dL/dX*, is the fixed point of the same recursion driven by G = dL/dX^K,
Z^{l+1} = (1 - alpha) S Z^l + alpha G, and is computed lazily too, from a gradient memory with its
own momentum gamma (lazy backward): Z_k^0 = (1 - gamma) Z_{k-1} + gamma G_k, K steps,
dL/dX_in := Z_k^K. With beta = gamma = 1 this is exactly the shallow model, K steps of APPNP,
forward and backward.

The toy: chains of cliques, one chain per community, whose class is written only on one node at
the chain's far end (a one-hot feature); every node must predict its chain's class, so most nodes
have to hear from a node up to 11 hops away. Transductive, as in the paper: a random 30% of the
nodes are labelled, the others are tested, and the measure is the accuracy on the test nodes 5 or
more hops from their chain's marker. Three models share f (a 2-layer MLP) and the propagation: the
deep one (APPNP with 16 steps per iteration), the shallow one (K = 2 steps) and LazyGNN (K = 2 steps
from its memories). The cost of an iteration is counted in propagations (products with S, forward
and backward).
"""
import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.gnn.graph import Graph, undirected
from course.gnn.layers import gcn_norm
from course.metrics import accuracy
from course.train import fit, seeded

ALPHA, BETA, GAMMA = 0.1, 0.1, 0.1
SHALLOW_STEPS, DEEP_STEPS = 2, 16
FAR = 5  # hops from the marker from which a test node counts as far


def clique_chains(num_chains: int = 24, cliques: int = 6, clique_size: int = 4, num_classes: int = 4,
                  seed: int = 0):
    """Chains of `cliques` cliques of `clique_size` nodes, consecutive cliques joined by one edge;
    the first node of each chain is its marker, whose features are the one-hot of the chain's class.

    -> graph (x [N, C], zero except at the markers; y [N] the chain's class), distance [N] (hops to
    the chain's marker).
    """
    where = "lazygnn.clique_chains"
    for name, value, low in (("num_chains", num_chains, 1), ("cliques", cliques, 1),
                             ("clique_size", clique_size, 2), ("num_classes", num_classes, 2)):
        check_int(where, name, value, low=low)
    g = torch.Generator().manual_seed(seed)
    per_chain = cliques * clique_size
    pairs = []
    for c in range(cliques):  # one chain's edges, node ids from 0
        members = range(c * clique_size, (c + 1) * clique_size)
        pairs += [(a, b) for a in members for b in members if a < b]
        if c + 1 < cliques:
            pairs.append(((c + 1) * clique_size - 1, (c + 1) * clique_size))  # last -> next's first
    chain = torch.tensor(pairs)
    edges = torch.cat([chain + k * per_chain for k in range(num_chains)])
    n = num_chains * per_chain
    within = torch.arange(per_chain)
    clique, slot = within // clique_size, within % clique_size
    distance = (2 * clique + (slot > 0).long()).repeat(num_chains)  # first node 2c, the others 2c + 1
    label = torch.randint(num_classes, (num_chains,), generator=g)
    y = label.repeat_interleave(per_chain)
    x = torch.zeros(n, num_classes)
    markers = torch.arange(num_chains) * per_chain
    x[markers, label] = 1.0
    return Graph(undirected(edges, n), n, x=x, y=y), distance


def propagation_matrix(graph: Graph) -> torch.Tensor:
    """S = D^-1/2 (A + I) D^-1/2 (course.gnn.layers.gcn_norm) as a sparse CSR tensor [N, N], for
    the many products of a training loop (the gnn.spmm op checks its arguments on every call)."""
    s = gcn_norm(graph)
    with warnings.catch_warnings():  # "sparse CSR support is in beta", said once per process anyway
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(s.rowptr, s.col, s.weight, size=(graph.num_nodes, graph.num_nodes),
                                       check_invariants=False)


def appnp_steps(s: torch.Tensor, x_in, start, steps: int, alpha: float = ALPHA):
    """`steps` steps of X <- (1 - alpha) S X + alpha X_in from `start`. [N, C] -> [N, C]"""
    x = start
    for _ in range(steps):
        x = (1 - alpha) * torch.sparse.mm(s, x) + alpha * x_in
    return x


class Predictor(nn.Module):
    """f(X; theta): a 2-layer MLP without biases from features to class scores, [N, F] -> [N, C].

    f(0) = 0: a node without features adds no scores, so what reaches it from far away is not
    drowned by a learned constant (a bias would be propagated from every node, near or far).
    """

    def __init__(self, features: int, classes: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden, bias=False), nn.ReLU(),
                                 nn.Linear(hidden, classes, bias=False))

    def forward(self, x):
        return self.net(x)


class APPNP(nn.Module):
    """f followed by `steps` propagation steps from X_in, differentiated by autograd (the deep and
    the shallow model). x [N, F] -> logits [N, C]"""

    def __init__(self, s, features: int, classes: int, steps: int):
        super().__init__()
        self.s, self.steps = s, steps
        self.predictor = Predictor(features, classes)

    @property
    def propagations_per_step(self) -> int:
        return 2 * self.steps  # forward, and the same products transposed in the backward

    def forward(self, x):
        x_in = self.predictor(x)
        return appnp_steps(self.s, x_in, x_in, self.steps)


class _LazyPropagate(torch.autograd.Function):
    """The lazy forward and backward of one training iteration, with the memories kept on `lazy`."""

    @staticmethod
    def forward(ctx, x_in, lazy):
        ctx.lazy = lazy
        start = (1 - lazy.beta) * lazy.memory + lazy.beta * x_in
        out = appnp_steps(lazy.s, x_in, start, lazy.steps, lazy.alpha)
        lazy.memory = out.detach()
        return out

    @staticmethod
    def backward(ctx, grad):
        lazy = ctx.lazy
        start = (1 - lazy.gamma) * lazy.grad_memory + lazy.gamma * grad
        z = appnp_steps(lazy.s, grad, start, lazy.steps, lazy.alpha)
        lazy.grad_memory = z
        return z, None


class LazyGNN(nn.Module):
    """f followed by K lazy propagation steps from the forward memory M, with the gradient taken
    lazily from the gradient memory Z (Xue et al. 2023). x [N, F] -> logits [N, C]

    Each call in training mode advances both memories by one iteration; `predict` reads the model
    without changing them.
    """

    def __init__(self, s, features: int, classes: int, steps: int = SHALLOW_STEPS, alpha: float = ALPHA,
                 beta: float = BETA, gamma: float = GAMMA):
        super().__init__()
        if not 0 < alpha <= 1:
            raise ValueError(f"lazygnn.LazyGNN: `alpha` must be in (0, 1]; got {alpha}.")
        for name, value in (("beta", beta), ("gamma", gamma)):
            if not 0 <= value <= 1:
                raise ValueError(f"lazygnn.LazyGNN: `{name}` must be in [0, 1]; got {value}.")
        self.s, self.steps, self.alpha, self.beta, self.gamma = s, steps, alpha, beta, gamma
        self.predictor = Predictor(features, classes)
        n = s.shape[0]
        self.memory = torch.zeros(n, classes)  # M: the last iteration's propagated features
        self.grad_memory = torch.zeros(n, classes)  # Z: the last iteration's propagated gradient

    @property
    def propagations_per_step(self) -> int:
        return 2 * self.steps  # K in the lazy forward, K in the lazy backward

    def forward(self, x):
        return _LazyPropagate.apply(self.predictor(x), self)

    def predict(self, x):
        """The logits from the memory, one more lazy forward without updating it."""
        with torch.no_grad():
            x_in = self.predictor(x)
            start = (1 - self.beta) * self.memory + self.beta * x_in
            return appnp_steps(self.s, x_in, start, self.steps, self.alpha)


def make_models(graph: Graph, seed: int = 0) -> dict:
    """The deep, shallow and lazy models on one graph, each initialised from `seed` alone."""
    s = propagation_matrix(graph)
    f, c = graph.x.shape[1], int(graph.y.max()) + 1
    builders = {"deep": lambda: APPNP(s, f, c, DEEP_STEPS), "shallow": lambda: APPNP(s, f, c, SHALLOW_STEPS),
                "lazy": lambda: LazyGNN(s, f, c, SHALLOW_STEPS)}
    models = {}
    for name, build in builders.items():
        with seeded(seed):
            models[name] = build()
    return models


def train_node_classifier(model, graph: Graph, train_mask, steps: int = 200, lr: float = 0.02,
                          seed: int = 0):
    """Full-batch Adam on the cross-entropy of the labelled nodes."""
    fit(model.parameters(), lambda: F.cross_entropy(model(graph.x)[train_mask], graph.y[train_mask]),
        steps, lr, seed=seed, desc=type(model).__name__)
    return model


def predictions(model, graph: Graph):
    """The logits [N, C] after training: the lazy model reads its memory."""
    if isinstance(model, LazyGNN):
        return model.predict(graph.x)
    with torch.no_grad():
        return model(graph.x)


@functools.lru_cache(maxsize=4)
def trained_models(seed: int) -> tuple:
    """(graph, distance, train_mask, {name: model}) with the three models trained on one split."""
    graph, distance = clique_chains(seed=seed)
    train_mask = torch.rand(graph.num_nodes, generator=torch.Generator().manual_seed(seed)) < 0.3
    models = make_models(graph, seed)
    for model in models.values():
        train_node_classifier(model, graph, train_mask, seed=seed)
    return graph, distance, train_mask, models


def lazygnn_experiment(seed: int) -> dict:
    """Accuracy on the far test nodes of the deep, shallow and lazy models, and their costs."""
    graph, distance, train_mask, models = trained_models(seed)
    far = ~train_mask & (distance >= FAR)
    near = ~train_mask & (distance < FAR)
    out = {}
    for name, model in models.items():
        logits = predictions(model, graph)
        out[f"{name}_far_accuracy"] = accuracy(logits[far], graph.y[far])
        out[f"{name}_near_accuracy"] = accuracy(logits[near], graph.y[near])
        out[f"{name}_propagations"] = float(model.propagations_per_step)
    out["lazy_minus_deep"] = out["lazy_far_accuracy"] - out["deep_far_accuracy"]
    out["lazy_minus_shallow"] = out["lazy_far_accuracy"] - out["shallow_far_accuracy"]
    out["lazy_over_shallow_cost"] = out["lazy_propagations"] / out["shallow_propagations"]
    out["chance"] = 1 / (int(graph.y.max()) + 1)
    return out


CLAIM = Claim(
    paper="Xue et al. 2023",
    citation="LazyGNN: Large-Scale Graph Neural Networks via Lazy Propagation (ICML 2023, "
             "arXiv:2302.01503), its lazy forward and backward propagation",
    statement="a shallow model whose propagation is reused across training iterations captures "
              "long-distance dependencies as a deep model does, at the per-iteration cost of the shallow one",
    kind=REPRODUCTION,
    experiment=lazygnn_experiment,
    thresholds=("lazy_minus_deep >= -0.05", "lazy_minus_shallow >= 0.2", "lazy_over_shallow_cost <= 1"),
    summary=lambda m: (f"accuracy on test nodes {FAR}-11 hops from the only labelled-class feature: "
                       f"LazyGNN {m['lazy_far_accuracy']:.2f} with {m['lazy_propagations']:.0f} "
                       f"propagations per iteration, the deep APPNP {m['deep_far_accuracy']:.2f} with "
                       f"{m['deep_propagations']:.0f}, the shallow one {m['shallow_far_accuracy']:.2f} "
                       f"with {m['shallow_propagations']:.0f} (chance {m['chance']:.2f})."),
    note="f has no biases, so a node without features adds no scores and the faint signal that "
         "reaches it from far away decides its class; with biases even the deep model stayed near "
         "chance on the far nodes in a first version of this toy. Costs are counted products with S, "
         "not timed; the momenta beta = gamma = 0.1 are this toy's choice.",
)
