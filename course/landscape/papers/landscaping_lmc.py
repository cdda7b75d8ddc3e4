"""Landscaping Linear Mode Connectivity: children spawned early in training fall into valleys
separated by a ridge; children spawned later share one valley, and the ridge's height is the curvature.

Singh, Adilova, Kamp, Fischer, Schölkopf and Hofmann 2024, "Landscaping Linear Mode Connectivity"
(arXiv:2406.16300). The paper's picture of the landscape along a training run (the "mountainside
and ridge"): early on, the network is on a mountainside, and two children spawned from it (copies
trained on from there with different data orders; Frankle et al. 2020's protocol) can descend into
valleys separated by a ridge, so the line between them has a barrier; spawned later, the children
share one valley and are linearly connected. The paper backs the picture with an analysis of the
barrier's height by a Taylor expansion along the line. The form used here: with Delta = theta_b -
theta_a and the midpoint m = (theta_a + theta_b) / 2, expanding L(m +- Delta / 2) about m, the odd
terms cancel and

    L(m) - [L(theta_a) + L(theta_b)] / 2 = -(1/8) Delta^T H(m) Delta + O(|Delta|^4),          [1]

so a barrier at the midpoint is negative curvature of the loss along the line there: a ridge
(`midpoint_estimate`, one Hessian-vector product, `curvature.hvp`). [1] is exact to fourth order for
a smooth loss; a ReLU network's loss has kinks where units switch, which the Hessian does not see, so
there [1] is an approximation even for close networks (within about 20% in the tests).

The toy (`pairs_toy`): one parent MLP (2, 32, 32, 3) trained by SGD with small batches on the
spirals, and at each step k of SPAWN_STEPS a pair of children, all trained side by side in one
batched run: a child is the parent until step k (it shares the parent's mini-batches) and follows its
own data order after it, to the end of the T steps; the learning rate falls linearly to 0, so that
every child ends in a minimum. The baseline the point needs is built in: the same children spawned at
step 0, from the shared initialisation. `plane_through` gives the plane through three solutions (a
checkpoint and its two children) for 2-D loss slices (`grid.surface`).
"""
import functools

import torch

from course.checks import check_tensor
from course.claims import REPRODUCTION, Claim
from course.landscape import curvature
from course.landscape.interpolation import barrier, check_pair, line_losses
from course.landscape.papers import pairs_toy

WIDTH = 32
SPAWN_STEPS = (0, 10, 30, 100, 300)  # of STEPS = 600
STEPS, LR, BATCH = 600, 0.5, 8  # small batches: SGD noise that can split the children
POINTS = 25


@functools.lru_cache(maxsize=4)
def spawned_children(seed: int) -> dict:
    """The parent's checkpoints and the children's endpoints: {"widths", "checkpoints": {k: theta [P]},
    "children": {k: (theta_a [P], theta_b [P])}} for k in SPAWN_STEPS."""
    widths, data = pairs_toy.widths_for(WIDTH), pairs_toy.task(seed)
    n = len(data.x_train)
    parent = pairs_toy.data_rows((3000 + seed,), STEPS, n, BATCH)[:, 0]
    own = pairs_toy.data_rows([4000 + 100 * seed + i for i in range(2 * len(SPAWN_STEPS))], STEPS, n, BATCH)
    rows = pairs_toy.spawn_rows(parent, own, [k for k in SPAWN_STEPS for _ in range(2)])
    theta0 = pairs_toy.initial_thetas(widths, (2000 + seed,)).expand(own.shape[1], -1).contiguous()
    theta, recorded = pairs_toy.train_side_by_side(theta0, widths, data.x_train, data.y_train, rows, lr=LR,
                                                   seed=seed, record_at=set(SPAWN_STEPS), decay=True)
    return {"widths": widths,
            "checkpoints": {k: recorded[k][2 * i] for i, k in enumerate(SPAWN_STEPS)},
            "children": {k: (theta[2 * i], theta[2 * i + 1]) for i, k in enumerate(SPAWN_STEPS)}}


def midpoint_estimate(x, labels, theta_a, theta_b, widths) -> float:
    """[1]: -(1/8) Delta^T H(m) Delta, the second-order estimate of the loss at the midpoint above
    the mean of the two ends (theta_a, theta_b [P]; x [N, I], labels [N])."""
    widths = check_pair("landscaping_lmc.midpoint_estimate", theta_a, theta_b, widths)
    delta, middle = theta_b - theta_a, (theta_a + theta_b) / 2
    return -float(delta @ curvature.hvp(x, labels, middle, delta, widths)) / 8


def plane_through(theta_0, theta_1, theta_2) -> tuple:
    """The plane through three solutions [P], in orthonormal directions (Gram-Schmidt of theta_1 -
    theta_0 and theta_2 - theta_0): -> (origin theta_0 [P], d1 [P], d2 [P], coords [3, 2] of the three),
    for `grid.surface`. The three must not lie on one line."""
    where = "landscaping_lmc.plane_through"
    for name, t in (("theta_0", theta_0), ("theta_1", theta_1), ("theta_2", theta_2)):
        check_tensor(where, name, t, ndim=1, kind="float")
        if t.shape != theta_0.shape:
            raise ValueError(f"{where}: `{name}` must have theta_0's shape {tuple(theta_0.shape)}: one "
                             f"architecture; got {tuple(t.shape)}.")
    u, v = theta_1 - theta_0, theta_2 - theta_0
    d1 = u / u.norm()
    w = v - (v @ d1) * d1
    if not float(u.norm()) > 0 or not float(w.norm()) > 1e-9 * float(v.norm() + u.norm()):
        raise ValueError(f"{where}: the three points must span a plane (not coincide or lie on one line); "
                         f"got |theta_1 - theta_0| = {float(u.norm()):.3g} and an off-line part of "
                         f"theta_2 of {float(w.norm()):.3g}.")
    d2 = w / w.norm()
    coords = torch.stack([torch.stack([(p - theta_0) @ d1, (p - theta_0) @ d2])
                          for p in (theta_0, theta_1, theta_2)])
    return theta_0, d1, d2, coords


def spawn_barriers(seed: int) -> dict:
    """For each spawn step k: the barrier between the two children, the midpoint's rise above the
    chord, and its estimate [1]."""
    run, data = spawned_children(seed), pairs_toy.task(seed)
    x, y, widths = data.x_train, data.y_train, run["widths"]
    ts = torch.linspace(0, 1, POINTS)
    m = {}
    for k, (a, b) in run["children"].items():
        losses = line_losses(x, y, a, b, widths, ts)
        m[f"barrier_{k}"] = barrier(losses, ts)
        m[f"midpoint_{k}"] = float(losses[POINTS // 2] - (losses[0] + losses[-1]) / 2)
        m[f"estimate_{k}"] = midpoint_estimate(x, y, a, b, widths)
        m[f"loss_{k}"] = float(losses[[0, -1]].mean())
    return m


def landscaping_experiment(seed: int) -> dict:
    """The barrier between children by spawn step, early against late, and how well [1] tracks the
    measured midpoint rise across the spawn steps (Pearson correlation)."""
    m = spawn_barriers(seed)
    early, late = SPAWN_STEPS[0], SPAWN_STEPS[-1]
    m["barrier_early"], m["barrier_late"] = m[f"barrier_{early}"], m[f"barrier_{late}"]
    m["late_over_early"] = m["barrier_late"] / max(m["barrier_early"], 1e-9)
    pairs = torch.tensor([[m[f"midpoint_{k}"], m[f"estimate_{k}"]] for k in SPAWN_STEPS], dtype=torch.float64)
    m["estimate_correlation"] = float(torch.corrcoef(pairs.T)[0, 1])
    return m


CLAIM = Claim(
    paper="Singh et al. 2024 (Landscaping LMC)",
    citation="Landscaping Linear Mode Connectivity (arXiv:2406.16300): the mountainside-and-ridge picture "
             "of the landscape along training runs, and the Taylor analysis of the barrier height",
    statement="children spawned from a parent early in training descend into valleys separated by a ridge "
              "(a loss barrier on the line between them), children spawned later are linearly connected; "
              "the barrier's height follows from the curvature along the line (a second-order expansion)",
    kind=REPRODUCTION,
    experiment=landscaping_experiment,
    thresholds=("barrier_early >= 0.05", "late_over_early <= 0.2", "estimate_correlation >= 0.8"),
    held_on=(0, 2),
    note="The picture holds on every seed: children spawned at step 0 are 0.07-0.33 nats apart, those "
         "spawned at step 300 of 600 are linearly connected (barrier 0.000), though not monotonically in "
         "between (seed 0: 0.134, 0.028, 0.202 at steps 0, 10, 30). The second-order estimate tracks the "
         "midpoint's rise on seeds 0 and 2 (correlation 0.98, 0.95) but not on seed 1 (0.44), where the "
         "early children's rises of 0.07-0.10 nats are estimated at 0.03, -0.005 and 0.03: far apart, "
         "the ReLU kinks and the higher orders that [1] drops dominate; for the late, close children the "
         "estimate is within 0.001 nats on every seed.",
    summary=lambda m: (
        "barrier between two children by the step they were spawned at (of 600): "
        + ", ".join(f"{k}: {m[f'barrier_{k}']:.3f}" for k in SPAWN_STEPS)
        + f" nats; the second-order estimate -(1/8) Delta^T H Delta of the midpoint rise correlates "
          f"{m['estimate_correlation']:.2f} with the measured rise"),
)
