"""The aggregator toy that three papers share: size extrapolation of one message-passing round.

Each example is a star: a centre node and d leaves, every leaf with a key and a value (both uniform
in [0, 1)), edges leaf -> centre. One round of message passing computes, at the centre,

    m_j = phi(key_j, value_j)          the message of each leaf (an MLP)             [E, H]
    a   = AGG_j m_j                    one aggregator of `course.gnn.aggregators`    [S, H]
    y   = rho(a)                       the readout (an MLP)                          [S, 1]

and only AGG changes between the models (sum, mean, max, GNP, LCM, LSTM). The leaves of a star are
numbered in key order, so the CSR (each neighbourhood sorted by source id) reads them in key order:
the natural order the recurrent aggregator uses (Xu and Velickovic 2024 order CLRS's nodes by their
positions). Three targets of the leaves, each learned by a model of its own:

- `norm`: the Euclidean norm of the values, (sum_j value_j^2)^(1/2) = GNP_{2,0}: grows with d;
- `second_largest`: the second largest value: order-free, bounded, a top-2 state suffices;
- `second_key_value`: the value of the leaf with the second smallest key: the second leaf in the
  natural order, found by position by a reader of that order, by an order statistic otherwise.

Training sets have 2-8 leaves; the test sets 16, 32 and 64 (size extrapolation, as in Ko et al.
2022, Ong and Velickovic 2022). Errors are relative MSEs (MSE / Var of the target) on the test sizes.
Every (task, aggregator) pair of `STUDY` is trained once per seed (`trained_study`, cached); the
claims are in `learning_to_pool`, `commutative_monoids` and `recurrent_aggregators`.
"""
import functools
import time

import torch
from torch import nn

from course.checks import check_int
from course.gnn.aggregators import make_aggregator
from course.gnn.graph import Graph
from course.metrics import relative_mse
from course.train import fit, seeded

TASKS = ("norm", "second_largest", "second_key_value")
TRAIN_SIZES = (2, 8)  # leaves per star, inclusive
TEST_SIZES = (16, 32, 64)


def star_targets(key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The three targets of one star's leaves: key, value [d] (d >= 2) -> [3] in TASKS order."""
    top = torch.topk(value, 2).values
    by_key = value[torch.argsort(key)]
    return torch.stack([value.pow(2).sum().sqrt(), top[1], by_key[1]])


def stars(sizes, seed: int = 0):
    """Stars with the given numbers of leaves, batched into one Graph.

    -> graph (x [N, 2] = (key, value), 0 at the centres; edges leaf -> centre, leaves numbered in
    key order), centres [S] (node ids), y [S, 3] (the targets, TASKS order).
    """
    sizes = [int(d) for d in sizes]
    if not sizes or min(sizes) < 2:
        raise ValueError(f"aggregator_toy.stars: every star needs at least 2 leaves (the second largest); "
                         f"got sizes from {min(sizes, default=None)} to {max(sizes, default=None)}.")
    g = torch.Generator().manual_seed(seed)
    total = sum(sizes) + len(sizes)
    x = torch.zeros(total, 2)
    sources, destinations, centres, targets = [], [], [], []
    start = 0
    for d in sizes:
        key = torch.sort(torch.rand(d, generator=g)).values  # leaves numbered in key order
        value = torch.rand(d, generator=g)
        x[start + 1:start + 1 + d, 0], x[start + 1:start + 1 + d, 1] = key, value
        sources.append(torch.arange(start + 1, start + 1 + d))
        destinations.append(torch.full((d,), start))
        centres.append(start)
        targets.append(star_targets(key, value))
        start += d + 1
    edge_index = torch.stack([torch.cat(sources), torch.cat(destinations)])
    return Graph(edge_index, total, x=x), torch.tensor(centres), torch.stack(targets)


def task_index(task: str) -> int:
    if task not in TASKS:
        raise ValueError(f"aggregator_toy: `task` must be one of {TASKS}; got {task!r}.")
    return TASKS.index(task)


def leaf_features(graph: Graph) -> torch.Tensor:
    """(key, value) of every leaf in CSR order, the order in which each centre aggregates. -> [E, 2]"""
    return graph.x.index_select(0, graph.csr.index)


def centre_segments(graph: Graph, centres: torch.Tensor) -> torch.Tensor:
    """ptr [S + 1] of the centres' segments in the CSR (the leaves receive nothing, so the centres'
    segments, in node order, tile the CSR)."""
    ptr = graph.csr.ptr
    return torch.cat([ptr[centres], ptr[-1:]])


class StarModel(nn.Module):
    """phi -> AGG -> rho at the centre of every star. (graph, centres [S]) -> [S, outputs]"""

    def __init__(self, aggregator: str, hidden: int = 16, outputs: int = len(TASKS)):
        super().__init__()
        self.name = aggregator
        self.message = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.aggregate = make_aggregator(aggregator, hidden)
        self.readout = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def messages(self, graph: Graph):
        """phi of every leaf, in CSR order. -> [E, H]"""
        return self.message(leaf_features(graph))

    def forward(self, graph: Graph, centres: torch.Tensor):
        return self.predict(self.messages(graph), centre_segments(graph, centres))

    def predict(self, messages, ptr):
        """rho(AGG(messages)) at every centre: messages [E, H] in CSR order, ptr [S + 1] -> [S, outputs]"""
        return self.readout(self.aggregate(messages, ptr))


def train_sizes(count: int, seed: int) -> list:
    """`count` numbers of leaves drawn uniformly from TRAIN_SIZES (inclusive)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(TRAIN_SIZES[0], TRAIN_SIZES[1] + 1, (count,), generator=g).tolist()


def train_star_model(aggregator: str, data, task: str, steps: int = 250, lr: float = 0.01,
                     hidden: int = 16, monoid_weight: float = 0.1, seed: int = 0) -> StarModel:
    """Full-batch Adam on MSE / Var(target) of one task; the LCM adds its monoid penalty."""
    graph, centres, y = data
    y = y[:, task_index(task)]  # [S]
    with seeded(seed):
        model = StarModel(aggregator, hidden, outputs=1)
    leaves, ptr, spread = leaf_features(graph), centre_segments(graph, centres), y.var(correction=0)

    def loss():  # what does not change between steps (leaves, segments, Var) is computed above, once
        value = (model.predict(model.message(leaves), ptr)[:, 0] - y).pow(2).mean() / spread
        if aggregator == "lcm" and monoid_weight:  # the penalty's samples: the first 64 leaves' messages
            value = value + monoid_weight * model.aggregate.monoid_penalty(model.message(leaves[:64]))
        return value
    fit(model.parameters(), loss, steps, lr, seed=seed, desc=f"{aggregator} on {task}")
    return model


def error(model: StarModel, data, task: str) -> float:
    """Relative MSE (MSE / Var of the target) of a one-task model on `data`."""
    graph, centres, y = data
    with torch.no_grad():
        out = model(graph, centres)[:, 0]
    return relative_mse(out, y[:, task_index(task)])


def extrapolation_data(per_size: int, seed: int):
    """`per_size` stars of each test size (TEST_SIZES), drawn apart from the training stars."""
    return stars([d for d in TEST_SIZES for _ in range(per_size)], seed=seed + 10_000)


# which aggregators each task trains: the ones its claim compares, and the best fixed one beside
STUDY = {"norm": ("sum", "mean", "max", "gnp"),
         "second_largest": ("max", "lcm", "lstm"),
         "second_key_value": ("sum", "mean", "max", "lstm")}


@functools.lru_cache(maxsize=8)
def trained_study(seed: int, num_train: int = 256, per_size: int = 64, steps: int = 250) -> dict:
    """Every (task, aggregator) pair of STUDY trained once (`steps` steps) on `num_train` stars of
    2-8 leaves, tested on `per_size` stars of each test size.

    -> {"models": {(task, name): StarModel}, "test": {(task, name): error on 16-64 leaves},
    "train": {(task, name): error on fresh stars of 2-8 leaves}, "seconds": {(task, name): CPU s}}.
    One model per task: trained on the three targets at once (one model per aggregator), the learned
    aggregators extrapolated far worse at this size (the LSTM's test error on `second_key_value`
    4.4 instead of 0.3 on seed 0). Callers must not modify the result.
    """
    check_int("aggregator_toy", "seed", seed, low=0)
    data = stars(train_sizes(num_train, seed), seed=seed)
    held_in = stars(train_sizes(256, seed + 5_000), seed=seed + 5_000)
    held_out = extrapolation_data(per_size, seed)
    result = {"models": {}, "test": {}, "train": {}, "seconds": {}}
    for task, names in STUDY.items():
        for name in names:
            start = time.process_time()
            model = train_star_model(name, data, task, steps=steps, seed=seed)
            result["seconds"][task, name] = time.process_time() - start
            result["models"][task, name] = model
            result["test"][task, name] = error(model, held_out, task)
            result["train"][task, name] = error(model, held_in, task)
    return result


def extrapolation_error(seed: int, task: str, aggregator: str) -> float:
    """The relative test MSE of one aggregator on one task (16-64 leaves), from the cached study."""
    return trained_study(seed)["test"][task, aggregator]


def best_of(seed: int, task: str, among) -> tuple[str, float]:
    """The aggregator among `among` with the lowest test error on `task`, and that error."""
    name = min(among, key=lambda a: extrapolation_error(seed, task, a))
    return name, extrapolation_error(seed, task, name)
