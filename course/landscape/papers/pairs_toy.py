"""The toy the mode-connectivity papers share: MLPs on the spirals, trained side by side.

Git Re-Basin (arXiv:2209.04836), Landscaping Linear Mode Connectivity (arXiv:2406.16300) and
Mechanistic Mode Connectivity (arXiv:2211.08422) all compare pairs of trained networks: two from
different seeds, two children spawned from one parent checkpoint, two trained on different data. Every
network here is the MLP of `widths_for(width)` = (inputs, width, width, classes) trained by mini-batch
SGD on the 3-arm spirals (`tasks.spirals`), and the networks of one experiment are trained side by
side, as one batched network (`train_side_by_side`: one `torch.bmm` per layer for the M members, each
with its own parameters, mini-batches and, if given, its own data), which is what M separate runs
would give, at about the cost of one.

A member's data order is a table of row indices [T, B] drawn from its own generator. Spawning
(Frankle, Dziugaite, Roy and Carbin 2020, the protocol Landscaping LMC follows) is then a matter of
the table alone: children that share the parent's rows up to step k and draw their own after it
*are* the parent until k and its children after, with no copy of a checkpoint (`spawn_rows`).
"""
import functools

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.landscape import models, tasks
from course.train import fit

STEPS = 600  # SGD steps per network
LR = 0.2
BATCH = 64
N_TRAIN = 512


def widths_for(width: int, inputs: int = 2, classes: int = 3) -> tuple:
    """The MLP of the toy: two hidden layers of `width` units."""
    check_int("pairs_toy.widths_for", "width", width, low=1)
    return (inputs, width, width, classes)


@functools.lru_cache(maxsize=4)
def task(seed: int) -> tasks.Task:
    """The 3-arm spirals of `seed` (N_TRAIN training points)."""
    return tasks.spirals(n_train=N_TRAIN, n_test=N_TRAIN, seed=seed)


def initial_thetas(widths, seeds) -> torch.Tensor:
    """theta [M, P]: torch's default initialisation of the MLP, one member per seed."""
    return torch.stack([models.flatten(models.mlp(widths, seed=s)) for s in seeds])


def batched_logits(theta: torch.Tensor, x: torch.Tensor, widths) -> torch.Tensor:
    """M MLPs at once: theta [M, P], x [M, B, I] -> logits [M, B, C] (one bmm per layer)."""
    layers = models.unflatten(theta, widths)
    h = x
    for i, (W, b) in enumerate(layers):
        h = torch.baddbmm(b[:, None, :], h, W.transpose(1, 2))
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


def data_rows(generator_seeds, steps: int, n: int, batch: int = BATCH) -> torch.Tensor:
    """rows [T, M, B]: each member's mini-batches, drawn with replacement from n rows by its own
    generator (seeded by generator_seeds[m])."""
    check_int("pairs_toy.data_rows", "steps", steps, low=0)
    check_int("pairs_toy.data_rows", "batch", batch, low=1)
    return torch.stack([torch.randint(n, (steps, batch), generator=torch.Generator().manual_seed(s))
                        for s in generator_seeds], dim=1)


def spawn_rows(parent: torch.Tensor, children: torch.Tensor, spawn_steps) -> torch.Tensor:
    """Frankle et al.'s spawning, as data orders: member m follows the parent's rows [T, B] before
    step spawn_steps[m] and its own children[:, m] [T, M, B] from then on. -> rows [T, M, B]"""
    check_tensor("pairs_toy.spawn_rows", "children", children, ndim=3, kind="int")
    if parent.shape != (children.shape[0], children.shape[2]) or len(spawn_steps) != children.shape[1]:
        T, M, B = children.shape
        raise ValueError(f"pairs_toy.spawn_rows: `parent` must be [T, B] = {(T, B)} and `spawn_steps` one "
                         f"per member ({M}); got parent {tuple(parent.shape)} and {len(spawn_steps)} spawn "
                         "steps.")
    before = torch.arange(children.shape[0])[:, None] < torch.as_tensor(spawn_steps)[None, :]  # [T, M]
    return torch.where(before[..., None], parent[:, None, :], children)


class DecayingSGD(torch.optim.SGD):
    """Plain SGD whose learning rate falls linearly from lr to 0 over `total` steps: a noisy start
    that ends at a minimum, not bouncing around it (as `course.train.DecayingAdam` does for Adam)."""

    def __init__(self, params, lr: float, total: int):
        super().__init__(params, lr=lr)
        self.base_lr, self.total, self.done = lr, total, 0

    def step(self, closure=None):
        for group in self.param_groups:
            group["lr"] = self.base_lr * max(0.0, 1 - self.done / self.total)
        self.done += 1
        return super().step(closure)


def train_side_by_side(theta0: torch.Tensor, widths, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
                       lr: float = LR, seed: int = 0, record_at=(), decay: bool = False,
                       optimizer=torch.optim.SGD) -> tuple:
    """M MLPs trained at once by `optimizer` (plain SGD unless given) on the sum of their mean
    cross-entropies (so each member gets its own gradient): theta0 [M, P]; data x [M, N, I],
    y [M, N] (a member's own data) or x [N, I], y [N] (shared); rows [T, M, B], the mini-batch of
    every member at every step.
    `decay`: plain SGD whose learning rate falls linearly to 0 (`DecayingSGD`).
    -> (theta [M, P] trained, {step: theta [M, P]} at the steps in `record_at`)"""
    check_tensor("pairs_toy.train_side_by_side", "theta0", theta0, ndim=2, kind="float")
    check_tensor("pairs_toy.train_side_by_side", "rows", rows, ndim=3, kind="int")
    M = theta0.shape[0]
    if rows.shape[1] != M:
        raise ValueError(f"pairs_toy.train_side_by_side: `rows` must be [T, M = {M}, B]; got "
                         f"{tuple(rows.shape)}.")
    if x.dim() == 2:
        x, y = x.expand(M, *x.shape), y.expand(M, *y.shape)
    theta = theta0.clone().requires_grad_(True)
    members, step, recorded = torch.arange(M)[:, None], [0], {}

    def loss():
        if step[0] in record_at:
            recorded[step[0]] = theta.detach().clone()
        r = rows[step[0]]  # [M, B]
        step[0] += 1
        logits = batched_logits(theta, x[members, r], widths)
        return F.cross_entropy(logits.flatten(0, 1), y[members, r].flatten(), reduction="sum") / r.shape[1]

    options = {"optimizer": DecayingSGD, "total": rows.shape[0]} if decay else {"optimizer": optimizer}
    fit([theta], loss, rows.shape[0], lr, seed=seed, progress=False, **options)
    if rows.shape[0] in record_at:
        recorded[rows.shape[0]] = theta.detach().clone()
    return theta.detach(), recorded


@functools.lru_cache(maxsize=16)
def trained_pair(width: int, seed: int) -> tuple:
    """Two networks of widths_for(width) trained on the spirals of `seed` from different
    initialisations (seeds 2 seed + 1000 and 2 seed + 1001) and different data orders.
    -> (theta_a [P], theta_b [P])"""
    widths = widths_for(width)
    data = task(seed)
    inits = (2 * seed + 1000, 2 * seed + 1001)
    rows = data_rows(inits, STEPS, len(data.x_train))
    theta, _ = train_side_by_side(initial_thetas(widths, inits), widths, data.x_train, data.y_train, rows,
                                  seed=seed)
    return theta[0], theta[1]
