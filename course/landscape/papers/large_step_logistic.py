"""Logistic regression by gradient descent with huge step sizes is the batch perceptron.

Tyurin 2024, "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with
Large Step Sizes" (arXiv:2412.08424). On a linearly separable dataset (a_i, y_i), y_i in {-1, +1}, full-
batch gradient descent on the logistic loss f(w) = (1/n) sum_i log(1 + exp(-y_i <a_i, w>)) (LR+GD),

    w_{t+1} = w_t + (gamma / n) sum_i y_i a_i sigma(-y_i <a_i, w_t>),

has iterates w_t = gamma v_t + O(1) as gamma -> infinity, where v_t is the batch perceptron
v_{t+1} = v_t + (1/n) sum_i y_i a_i h(-y_i <a_i, v_t>) from v_0 = 0, with h the step function
(h(0) = 1/2, the limit of sigma at 0). So large steps separate the data as fast as the perceptron
does, while the logistic loss of those iterates can be far higher, and rise from one step to the
next: the loss is a misleading measure of progress. Normalized LR+GD, the paper's method built on
that connection, is taken here as GD with each step divided by the gradient's norm,
w_{t+1} = w_t - gamma grad f(w_t) / |grad f(w_t)|, so its steps keep their length gamma once the
points are nearly classified.

The toy: n = 200 points in 2-D, separable through the origin with margin 0.05, a tenth of them in
the minority class on the same side of the origin (`separable_data`), so that the class mean is not
a separator; w_0 = 0. GD with gamma in 0.1, 1, ..., 1e4;
every run lasts up to 2,000 steps. Measured: steps until every point is classified correctly, the
number of steps at which the loss rose, the cosine between GD's and the perceptron's iterates, the
mean loss before separation, and Normalized LR+GD's steps.
"""
import math

import torch

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim

N, MARGIN = 200, 0.05
STEP_SIZES = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
SMALL, LARGE = 0.1, 1e4
MAX_STEPS = 2000
NORMALIZED_STEP = 1.0


def separable_data(n: int = N, margin: float = MARGIN, seed: int = 0):
    """a [n, 2] and y [n] (+-1, float64): a tenth of the points labelled -1, the rest +1, on the same
    side of the origin along the line x2 = 0 that separates them (x1 in [1, 3], |x2| in [margin,
    margin + 0.3], x2 of the sign of y), then rotated by a random angle. The classes' imbalance tilts
    the first step, the class mean, away from the separator: the perceptron needs several steps."""
    check_int("large_step_logistic.separable_data", "n", n, low=10)
    if not margin > 0:
        raise ValueError(f"large_step_logistic.separable_data: `margin` must be > 0; got {margin}.")
    g = torch.Generator().manual_seed(seed)
    y = torch.ones(n, dtype=torch.float64)
    y[: n // 10] = -1
    x1 = 1 + 2 * torch.rand(n, generator=g, dtype=torch.float64)
    x2 = y * (margin + 0.3 * torch.rand(n, generator=g, dtype=torch.float64))
    angle = float(torch.rand((), generator=g)) * 2 * math.pi
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                            dtype=torch.float64)
    return torch.stack([x1, x2], 1) @ rotation.T, y


def check_data(where: str, a: torch.Tensor, y: torch.Tensor):
    check_tensor(where, "a", a, ndim=2, kind="float")
    check_tensor(where, "y", y, ndim=1, kind="float")
    check_finite(where, "a", a)
    if len(y) != len(a) or not bool(((y == 1) | (y == -1)).all()):
        raise ValueError(f"{where}: `y` must hold one label +-1 per row of `a` ({len(a)}); got "
                         f"{len(y)} labels with values {sorted(set(y.tolist()))[:4]}.")


def logistic_loss(w: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> float:
    """f(w) = (1/n) sum_i log(1 + exp(-y_i <a_i, w>)), computed stably (softplus)."""
    return float(torch.nn.functional.softplus(-y * (a @ w)).mean())


def logistic_gradient(w: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad f(w) [d] = -(1/n) sum_i y_i a_i sigma(-y_i <a_i, w>)."""
    return -((y * torch.sigmoid(-y * (a @ w)))[:, None] * a).mean(0)


def perceptron_direction(v: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch perceptron's step (1/n) sum_i y_i a_i h(-y_i <a_i, v>): the misclassified points,
    with weight 1/2 for those on the boundary (h(0) = 1/2, sigma's limit)."""
    margins = y * (a @ v)
    h = (margins < 0).double() + 0.5 * (margins == 0).double()
    return ((y * h)[:, None] * a).mean(0)


def run(step, a: torch.Tensor, y: torch.Tensor, steps: int = MAX_STEPS) -> torch.Tensor:
    """Iterates w_0 = 0, w_1, ..., w_steps [steps + 1, d] of w_{t+1} = w_t + step(w_t)."""
    w = torch.zeros(a.shape[1], dtype=a.dtype)
    out = [w]
    for _ in range(steps):
        w = w + step(w)
        out.append(w)
    return torch.stack(out)


def gradient_descent(a, y, gamma: float, steps: int = MAX_STEPS) -> torch.Tensor:
    """LR+GD: w_{t+1} = w_t - gamma grad f(w_t), from 0; iterates [steps + 1, d]."""
    check_data("large_step_logistic.gradient_descent", a, y)
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"large_step_logistic.gradient_descent: `gamma` must be a finite step size > 0; "
                         f"got {gamma}.")
    return run(lambda w: -gamma * logistic_gradient(w, a, y), a, y, steps)


def batch_perceptron(a, y, steps: int = MAX_STEPS) -> torch.Tensor:
    """The batch perceptron v_{t+1} = v_t + (1/n) sum_i y_i a_i h(-y_i <a_i, v_t>), from 0 (the limit
    of LR+GD's w_t / gamma as gamma -> infinity); iterates [steps + 1, d]."""
    check_data("large_step_logistic.batch_perceptron", a, y)
    return run(lambda v: perceptron_direction(v, a, y), a, y, steps)


def normalized_gradient_descent(a, y, gamma: float, steps: int = MAX_STEPS) -> torch.Tensor:
    """Normalized LR+GD: w_{t+1} = w_t - gamma grad f(w_t) / |grad f(w_t)|, from 0."""
    check_data("large_step_logistic.normalized_gradient_descent", a, y)

    def step(w):
        gradient = logistic_gradient(w, a, y)
        return -gamma * gradient / gradient.norm().clamp_min(1e-300)

    return run(step, a, y, steps)


def steps_to_separate(iterates: torch.Tensor, a, y) -> float:
    """The first t with y_i <a_i, w_t> > 0 for every i (inf if none)."""
    separated = ((y * (iterates @ a.T)) > 0).all(1)  # [T]
    return float(separated.nonzero()[0, 0]) if separated.any() else math.inf


def losses(iterates: torch.Tensor, a, y) -> torch.Tensor:
    """f(w_t) for every iterate [T]."""
    return torch.nn.functional.softplus(-y * (iterates @ a.T)).mean(1)


def large_step_logistic_experiment(seed: int) -> dict:
    a, y = separable_data(seed=seed)
    m = {}
    runs = {gamma: gradient_descent(a, y, gamma) for gamma in STEP_SIZES}
    for gamma, w in runs.items():
        m[f"steps_gamma_{gamma:g}"] = steps_to_separate(w, a, y)
        m[f"loss_rises_gamma_{gamma:g}"] = float((losses(w, a, y).diff() > 0).sum())
    perceptron = batch_perceptron(a, y)
    m["perceptron_steps"] = steps_to_separate(perceptron, a, y)
    t_large = m[f"steps_gamma_{LARGE:g}"]
    horizon = int(max(t_large, m["perceptron_steps"])) if math.isfinite(t_large) else MAX_STEPS
    w, v = runs[LARGE][1:horizon + 1], perceptron[1:horizon + 1]  # w_0 = v_0 = 0 have no direction
    m["cosine_min"] = float(torch.nn.functional.cosine_similarity(w, v, dim=1).min())
    m["separation_speedup"] = m[f"steps_gamma_{SMALL:g}"] / t_large
    # the loss before the large step separates the data, against the small step's on the same steps
    before = slice(1, int(t_large) + 1)
    m["loss_large_before"] = float(losses(runs[LARGE], a, y)[before].mean())
    m["loss_small_before"] = float(losses(runs[SMALL], a, y)[before].mean())
    m["loss_ratio_before"] = m["loss_large_before"] / m["loss_small_before"]
    m["loss_rises_large"] = m[f"loss_rises_gamma_{LARGE:g}"]
    m["loss_rises_small"] = m[f"loss_rises_gamma_{SMALL:g}"]
    m["normalized_steps"] = steps_to_separate(normalized_gradient_descent(a, y, NORMALIZED_STEP), a, y)
    return m


CLAIM = Claim(
    paper="Tyurin 2024",
    citation="From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with "
             "Large Step Sizes (arXiv:2412.08424): LR+GD -> the batch perceptron as gamma -> infinity; "
             "larger steps give higher logistic losses and faster separation; Normalized LR+GD",
    statement="with a huge step size, gradient descent on the logistic loss follows the batch perceptron's "
              "direction and separates the data in far fewer steps than a small step size, while its "
              "loss is higher and rises from step to step: the loss misleads",
    kind=REPRODUCTION,
    experiment=large_step_logistic_experiment,
    thresholds=("cosine_min >= 0.99", "separation_speedup >= 5", "loss_rises_large >= 1",
                "loss_rises_small == 0", "loss_ratio_before >= 10"),
    held_on=(0, 1),
    note="Holds on seeds 0 and 1; on seed 2 every threshold but one is met: gamma = 1e4 needs 40 steps "
         "where the perceptron needs 33, and the cosine of their iterates falls to 0.982 (< 0.99). "
         "At a finite step size the points nearest the boundary keep sigma(-gamma y <a, w>) away from "
         "0 and 1, and over tens of steps that drift grows; the paper's reduction is the limit gamma "
         "-> infinity (a test checks it at gamma = 1e8). Steps to separate are not monotone in gamma "
         "either (seed 0: 12 at gamma 10, 37 at gamma 100), and Normalized LR+GD at gamma = 1 needs "
         "53-75 steps, more than the perceptron's 14-33 here.",
    summary=lambda m: (
        "steps to separate the data: " + ", ".join(
            f"gamma {g:g}: {m[f'steps_gamma_{g:g}']:.0f}" for g in STEP_SIZES)
        + f"; the perceptron {m['perceptron_steps']:.0f}, Normalized LR+GD {m['normalized_steps']:.0f}; "
          f"cosine of GD at gamma {LARGE:g} with the perceptron >= {m['cosine_min']:.4f}; before it "
          f"separates, its mean loss is {m['loss_ratio_before']:.3g}x gamma {SMALL:g}'s and rose "
          f"{m['loss_rises_large']:.0f} times (gamma {SMALL:g}: {m['loss_rises_small']:.0f})"),
)
