"""Rational activations change their shape where the task rewards it, and keep it where it does not.

Delfosse et al., "Adaptive Rational Activations to Boost Deep Reinforcement Learning" (arXiv:2102.09407),
section 2 and its figures of learned activations: each layer's rational R(x) = P(x) / (1 + |S(x)|) starts
as leaky ReLU and is learned with the network, and the learned functions differ from the initial one,
differently from task to task (the paper's plots of rationals learned on the Atari games).

The toy (`shape_experiment`, a reproduction): the one-hidden-layer net of `rational_activations` (width
SHAPE_WIDTH, one shared rational activation) is trained on two regressions on [-2, 2]:
- the oscillation sin(pi x), which a leaky-ReLU net of this width fits badly (its error is measured too);
- the control: the output of a random teacher net of the same architecture with leaky ReLU, for which the
  initial activation is already right.
The learned rational's `shape_change` (the part of it on [-3, 3] that no rescaled and shifted kinked line
explains, 0 at initialisation) is compared between the two; `leaky_relu_distance` (the distance as it
stands, rescaling included) is reported beside it.
"""
import functools
import math

import torch
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.neurons.papers.rational_activations import (leaky_relu_distance, mlp, rational_activation,
                                                        relative_mse_loss, shape_change)
from course.train import fit, one_thread, seeded

SHAPE_WIDTH, SHAPE_STEPS, SHAPE_LR, SHAPE_POINTS = 16, 300, 0.01, 64
TEACHER_SEED = 1000  # the control's teacher is built from TEACHER_SEED + seed


def leaky_relu_module():
    return nn.LeakyReLU(0.01)


def oscillation_task(points: int = SHAPE_POINTS):
    """x [points, 1] on [-2, 2] and y = sin(pi x) [points, 1]."""
    check_int("neurons.rational_shape.oscillation_task", "points", points, low=2)
    x = torch.linspace(-2, 2, points)[:, None]
    return x, torch.sin(math.pi * x)


def teacher_task(seed: int, points: int = SHAPE_POINTS):
    """The control: x as in `oscillation_task`, y = a leaky-ReLU `mlp` of width SHAPE_WIDTH, drawn from
    TEACHER_SEED + seed, evaluated at x. [points, 1], [points, 1]"""
    x, _ = oscillation_task(points)
    with seeded(TEACHER_SEED + seed):
        teacher = mlp(SHAPE_WIDTH, leaky_relu_module)
    with torch.no_grad():
        return x, teacher(x)


def train_regression(model: nn.Module, x, y, seed: int, steps: int = SHAPE_STEPS,
                     lr: float = SHAPE_LR) -> float:
    """Adam on the relative MSE for `steps` steps -> the final relative MSE."""
    fit(model.parameters(), lambda: relative_mse_loss(model(x), y), steps, lr, seed=seed,
                 desc="shape")
    with torch.no_grad():
        return float(relative_mse_loss(model(x), y))


@functools.lru_cache(maxsize=3)
@one_thread()
def shape_experiment(seed: int) -> dict:
    """The learned rational's change of shape on the oscillation and on the leaky-ReLU teacher."""
    check_int("neurons.rational_shape.shape_experiment", "seed", seed, low=0)
    out = {}
    for name, (x, y) in (("task", oscillation_task()), ("control", teacher_task(seed))):
        with seeded(seed):
            net = mlp(SHAPE_WIDTH, rational_activation)
        out[f"{name}_mse"] = train_regression(net, x, y, seed)
        out[f"{name}_shape_change"] = shape_change(net[1])
        out[f"{name}_distance"] = leaky_relu_distance(net[1])
    x, y = oscillation_task()
    with seeded(seed):
        leaky_net = mlp(SHAPE_WIDTH, leaky_relu_module)
    out["leaky_task_mse"] = train_regression(leaky_net, x, y, seed)
    out["shape_change_ratio"] = out["task_shape_change"] / max(out["control_shape_change"], 1e-12)
    out["leaky_over_rational_task_mse"] = out["leaky_task_mse"] / max(out["task_mse"], 1e-12)
    return out


CLAIM = Claim(
    paper="Delfosse et al. 2024",
    citation="Adaptive Rational Activations to Boost Deep Reinforcement Learning (arXiv:2102.09407), "
             "section 2 and its plots of learned rational activations",
    statement="a learnable rational activation initialised to leaky ReLU moves away from that shape when the "
              "task rewards it (an oscillation a leaky-ReLU net fits badly) and stays much closer to it when "
              "leaky ReLU is already right",
    kind=REPRODUCTION,
    experiment=shape_experiment,
    thresholds=("task_shape_change >= 0.3", "shape_change_ratio >= 2", "leaky_over_rational_task_mse >= 3",
                "control_mse <= 0.05"),
    summary=lambda m: (
        f"shape change on [-3, 3]: {m['task_shape_change']:.2f} on sin(pi x) against "
        f"{m['control_shape_change']:.2f} on the leaky-ReLU teacher ({m['shape_change_ratio']:.1f}x); "
        f"distance from leaky ReLU as it stands {m['task_distance']:.2f} against "
        f"{m['control_distance']:.2f}; "
        f"relative MSE on sin(pi x) {m['task_mse']:.1e} with the rational against {m['leaky_task_mse']:.1e} "
        f"with leaky ReLU"),
    note="Measured by the shape change, which discounts the rescaling and shift the neighbouring linear "
         "layers absorb. As it stands, the control's rational still moves (distance from leaky ReLU "
         "0.24-0.52 on seeds 0-2, against 0.82-1.01 on the oscillation): the student starts from other "
         "weights than the teacher's, and much of that move is a rescaling.",
)
