"""The offline tasks the landscape experiments train on, and the one training loop that records a
trajectory.

- `spirals`: points on `arms` interleaved spiral arms in 2-D, a class per arm (a non-linear boundary
  that a small MLP learns in a few hundred steps);
- `glyphs`: the course's 8x8 glyph images (`course.data.glyph_images`) flattened to 64 features, the
  class being the glyph, at one of four places, with pixel noise.

A `Task` holds a training and a test split drawn from the same seed. `train` fits an MLP through
`course.train.fit` and records the flat parameters every `record_every` steps: the trajectory that
the landscape plots project and PCA reads.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course.checks import check_int
from course.data import glyph_images
from course.landscape.models import flatten
from course.train import Fit, fit


@dataclass(frozen=True)
class Task:
    """x_train [N, I], y_train [N], x_test [M, I], y_test [M]; `classes` C."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def inputs(self) -> int:
        return self.x_train.shape[1]


def spiral_points(n: int, arms: int, noise: float, g: torch.Generator):
    """n points on `arms` spiral arms: radius t, angle 1.75 pi t + 2 pi arm / arms, t in [0.1, 1]."""
    arm = torch.randint(arms, (n,), generator=g)
    t = 0.1 + 0.9 * torch.rand(n, generator=g)
    angle = 1.75 * math.pi * t + 2 * math.pi * arm / arms
    x = torch.stack([t * angle.cos(), t * angle.sin()], dim=1)
    return x + noise * torch.randn(n, 2, generator=g), arm


def spirals(n_train: int = 600, n_test: int = 600, arms: int = 3, noise: float = 0.04,
            seed: int = 0) -> Task:
    """The spiral task: 2 features, `arms` classes."""
    check_int("landscape.spirals", "n_train", n_train, low=1)
    check_int("landscape.spirals", "n_test", n_test, low=1)
    check_int("landscape.spirals", "arms", arms, low=2)
    g = torch.Generator().manual_seed(seed)
    x, y = spiral_points(n_train + n_test, arms, noise, g)
    return Task("spirals", x[:n_train], y[:n_train], x[n_train:], y[n_train:], arms)


def glyphs(n_train: int = 512, n_test: int = 512, noise: float = 0.5, seed: int = 0) -> Task:
    """The glyph task: 64 pixel features, one class per glyph."""
    check_int("landscape.glyphs", "n_train", n_train, low=1)
    check_int("landscape.glyphs", "n_test", n_test, low=1)
    images, what, _ = glyph_images(n_train + n_test, noise=noise, seed=seed)
    x = images.reshape(len(images), -1)
    return Task("glyphs", x[:n_train], what[:n_train], x[n_train:], what[n_train:],
                int(what.max()) + 1)


@dataclass
class Run:
    """A trained model, its training record, and its trajectory [T, P] (theta every few steps,
    the first row the initialisation, the last the trained parameters)."""

    model: torch.nn.Module
    fit: Fit
    trajectory: torch.Tensor


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, *,
          seed: int = 0, batch: int | None = None, optimizer=torch.optim.SGD, record_every: int = 10,
          **options) -> Run:
    """Minimise the mean cross-entropy of `model` on (x, y) for `steps` steps of `optimizer`
    (full batch, or seeded mini-batches of `batch`), recording theta every `record_every` steps."""
    check_int("landscape.train", "record_every", record_every, low=1)
    check_int("landscape.train", "batch", batch, low=1, allow_none=True)
    g = torch.Generator().manual_seed(seed)
    trajectory, step = [], [0]

    def loss():  # called once a step, before the update
        if step[0] % record_every == 0:
            trajectory.append(flatten(model))
        step[0] += 1
        if batch is None or batch >= len(x):
            return F.cross_entropy(model(x), y)
        rows = torch.randint(len(x), (batch,), generator=g)
        return F.cross_entropy(model(x[rows]), y[rows])

    result = fit(model.parameters(), loss, steps, lr, seed=seed, optimizer=optimizer, **options)
    trajectory.append(flatten(model))  # the trained parameters
    return Run(model, result, torch.stack(trajectory))


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y)."""
    with torch.no_grad():
        logits = model(x)
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())
