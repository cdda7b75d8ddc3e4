"""The trained networks the landscape widget draws, trained once (`widget_data`): the widget never trains.

Li, Xu, Taylor, Studer and Goldstein 2018 ("Visualizing the Loss Landscape of Neural Nets",
arXiv:1712.09913) draw the loss around a trained network with its optimiser's path on the plane
(section 7); Ainsworth, Hayase and Srinivasa 2023 ("Git Re-Basin", arXiv:2209.04836) compare the loss
on the line between two independently trained networks before and after permuting one onto the other
(section 3, weight matching). The widget needs, for each model pair:

- two MLPs of widths (2, h, h, 3) on the spiral task (`tasks.spirals`), trained from different seeds
  (initialisation and mini-batch order) by plain SGD at BASE_LR: networks A and B, the line's ends;
- runs from A's initialisation with A's mini-batches at each of LEARNING_RATES (the widget's "short
  re-run" control), each trajectory recorded every RECORD_EVERY steps (`tasks.train`); the run at
  BASE_LR is network A's own training, so its last point is theta_a.

All of it (12 runs of 300 steps) trains in about 2 s on one thread, once per seed (cached).
"""
import functools
from dataclasses import dataclass

import torch

from course.checks import check_int
from course.landscape import tasks
from course.landscape.models import mlp
from course.train import one_thread

PAIR_HIDDEN = (16, 32, 64)      # the model pairs: hidden widths h of (2, h, h, 3); 371, 1251, 4547 parameters
LEARNING_RATES = (0.1, 0.5, 2.0)  # the re-runs: too small to get far, A's own, too large to settle
BASE_LR = 0.5                   # networks A and B are trained at this one
STEPS, BATCH, RECORD_EVERY = 300, 50, 10  # SGD steps on mini-batches of 50; theta every 10 steps
N_TRAIN = 300                   # spiral points the networks train on (and the widget's losses are of)


@dataclass(frozen=True, eq=False)
class Pair:
    """Two independently trained networks of one width, and the runs from A's initialisation.

    widths (2, h, h, 3); theta_a, theta_b [P]; runs {lr: trajectory [T, P]} (T = STEPS / RECORD_EVERY
    + 1; the first row A's initialisation, the last the trained parameters; runs[BASE_LR][-1] is
    theta_a); train_losses {lr: [STEPS] mini-batch losses}.
    """

    hidden: int
    widths: tuple
    theta_a: torch.Tensor
    theta_b: torch.Tensor
    runs: dict
    train_losses: dict

    @property
    def name(self) -> str:
        return pair_name(self.hidden, self.theta_a.numel())


@dataclass(frozen=True, eq=False)
class WidgetData:
    """The task and the model pairs {h: Pair} the widget draws, with the settings they were trained at."""

    task: tasks.Task
    pairs: dict
    learning_rates: tuple
    base_lr: float
    steps: int
    record_every: int
    seed: int


def pair_name(hidden: int, parameters: int) -> str:
    return f"width {hidden} ({parameters} parameters)"


def seeds_of(seed: int) -> tuple:
    """(A's seed, B's seed): initialisation and mini-batch order, different for every widget seed."""
    return 2 * seed, 2 * seed + 1


def train_run(task: tasks.Task, widths: tuple, lr: float, seed: int) -> tasks.Run:
    """SGD at `lr` from the MLP initialised with `seed`, mini-batches drawn with `seed`."""
    return tasks.train(mlp(widths, seed=seed), task.x_train, task.y_train, STEPS, lr, seed=seed,
                       batch=BATCH, record_every=RECORD_EVERY, progress=False)


def train_pair(task: tasks.Task, hidden: int, seed: int = 0, learning_rates=LEARNING_RATES) -> Pair:
    """Networks A and B of width `hidden` at BASE_LR, and A's re-runs at each learning rate."""
    widths = (task.inputs, hidden, hidden, task.classes)
    seed_a, seed_b = seeds_of(seed)
    runs = {lr: train_run(task, widths, lr, seed_a) for lr in sorted({*learning_rates, BASE_LR})}
    b = train_run(task, widths, BASE_LR, seed_b)
    return Pair(hidden, widths, runs[BASE_LR].trajectory[-1], b.trajectory[-1],
                {lr: run.trajectory for lr, run in runs.items()},
                {lr: run.fit.losses for lr, run in runs.items()})


def widget_data(seed: int = 0) -> WidgetData:
    """Everything the landscape widget draws, trained once per seed (cached): the spiral task and a
    `Pair` per hidden width of PAIR_HIDDEN, on one thread."""
    check_int("landscape.widget_data", "seed", seed, low=0)
    return _widget_data(seed)


@functools.lru_cache(maxsize=2)
def _widget_data(seed: int) -> WidgetData:
    task = tasks.spirals(n_train=N_TRAIN, n_test=N_TRAIN, seed=seed)
    with one_thread():
        pairs = {h: train_pair(task, h, seed) for h in PAIR_HIDDEN}
    return WidgetData(task, pairs, tuple(sorted({*LEARNING_RATES, BASE_LR})), BASE_LR, STEPS, RECORD_EVERY,
                      seed)
