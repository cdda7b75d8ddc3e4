"""Learning-rate schedules as pure functions of the iteration, and the learning-rate range test.

Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (arXiv:1506.01186):
- `triangular_lr`, section 3.1: the learning rate rises linearly from base_lr to max_lr over
  `step_size` iterations, falls back over the next `step_size`, and repeats:
      cycle = floor(1 + it / (2 step_size)),  x = |it / step_size - 2 cycle + 1|,
      lr = base_lr + (max_lr - base_lr) max(0, 1 - x);
- the range test, section 3.3: one short run whose learning rate grows every iteration
  (`range_test_lrs`, linearly or exponentially; `lr_range_test` runs it), then base_lr is read where
  the loss starts to fall and max_lr where it turns up again (`range_test_bounds`).

`ScheduledSGD` is SGD whose learning rate is `schedule(iteration)` at every step, so that any schedule
trains through `course.train.fit` (pass `optimizer=ScheduledSGD, schedule=...`).
"""
import math
from typing import Callable

import torch

from course.checks import check_int
from course.train import fit


def check_rates(where: str, **rates):
    for name, value in rates.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{where}: `{name}` must be a finite number > 0; got {value!r}.")


def triangular_lr(iteration: int, step_size: int, base_lr: float, max_lr: float) -> float:
    """The triangular policy's learning rate at `iteration` (section 3.1): base_lr at iterations
    0, 2 step_size, 4 step_size, ..., max_lr at step_size, 3 step_size, ..."""
    where = "landscape.triangular_lr"
    check_int(where, "iteration", iteration, low=0)
    check_int(where, "step_size", step_size, low=1)
    check_rates(where, base_lr=base_lr, max_lr=max_lr)
    if max_lr < base_lr:
        raise ValueError(f"{where}: `max_lr` must be >= `base_lr` = {base_lr}; got {max_lr}.")
    cycle = math.floor(1 + iteration / (2 * step_size))
    x = abs(iteration / step_size - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * max(0.0, 1 - x)


def range_test_lrs(min_lr: float, max_lr: float, steps: int, spacing: str = "linear") -> list:
    """The range test's learning rates (section 3.3): `steps` values from min_lr to max_lr, evenly
    spaced ("linear", as in the paper) or evenly spaced in log ("exponential")."""
    where = "landscape.range_test_lrs"
    check_rates(where, min_lr=min_lr, max_lr=max_lr)
    check_int(where, "steps", steps, low=2)
    if max_lr <= min_lr:
        raise ValueError(f"{where}: `max_lr` must be > `min_lr` = {min_lr}; got {max_lr}.")
    if spacing == "linear":
        return torch.linspace(min_lr, max_lr, steps, dtype=torch.float64).tolist()
    if spacing == "exponential":
        return torch.logspace(math.log10(min_lr), math.log10(max_lr), steps, dtype=torch.float64).tolist()
    raise ValueError(f"{where}: `spacing` must be 'linear' or 'exponential'; got {spacing!r}.")


def smoothed(losses, beta: float) -> list:
    """The bias-corrected exponential moving average of `losses` (weight `beta` on the past)."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def range_test_bounds(lrs, losses, start_fraction: float = 0.1, beta: float = 0.8) -> tuple:
    """(base_lr, max_lr) read off a range test (section 3.3): base_lr where the smoothed loss has
    fallen by `start_fraction` of its whole fall (it starts to fall), max_lr where it is lowest (after
    which it turns up). `lrs` and `losses` [T] are the run's learning rates and losses."""
    where = "landscape.range_test_bounds"
    lrs, losses = list(lrs), [float(v) for v in losses]
    if len(lrs) != len(losses) or len(lrs) < 2:
        raise ValueError(f"{where}: `lrs` and `losses` must have one entry per iteration (at least 2); "
                         f"got {len(lrs)} and {len(losses)}.")
    if not math.isfinite(losses[0]):
        raise ValueError(f"{where}: `losses` must start finite; got {losses[0]}.")
    if not 0 < start_fraction < 1:
        raise ValueError(f"{where}: `start_fraction` must be in (0, 1); got {start_fraction}.")
    # a diverged run: keep the iterations before the first non-finite loss
    finite = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    curve = smoothed(losses[:finite], beta)
    lowest = min(range(len(curve)), key=curve.__getitem__)
    fall = curve[0] - curve[lowest]
    if fall <= 0:
        raise ValueError(f"{where}: the loss never falls below its first value {curve[0]:.4g}, so there "
                         f"are no bounds to read; try a wider range of `lrs`.")
    start = next(i for i, v in enumerate(curve) if v <= curve[0] - start_fraction * fall)
    return lrs[start], lrs[lowest]


class ScheduledSGD(torch.optim.SGD):
    """SGD whose learning rate at its k-th step is `schedule(k)` (`lr` is only the first value):
    `fit(params, loss, steps, lr, optimizer=ScheduledSGD, schedule=...)`. `offset` starts the count
    at a later iteration (training in pieces)."""

    def __init__(self, params, lr: float, schedule: Callable[[int], float], offset: int = 0, **options):
        super().__init__(params, lr=lr, **options)
        self.schedule, self.iteration = schedule, offset

    def step(self, closure=None):
        for group in self.param_groups:
            group["lr"] = self.schedule(self.iteration)
        self.iteration += 1
        return super().step(closure)


def lr_range_test(params, loss: Callable[[], torch.Tensor], lrs, seed: int = 0) -> list:
    """Run the range test: one SGD step at each learning rate of `lrs` in turn (section 3.3); the
    losses [T] before each step (once it diverges they are NaN or infinite; `range_test_bounds`
    reads only the iterations before)."""
    lrs = list(lrs)
    result = fit(params, loss, len(lrs), lrs[0], seed=seed, optimizer=ScheduledSGD,
                 schedule=lrs.__getitem__, desc="range test")
    return result.losses
