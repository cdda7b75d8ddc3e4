"""The one training loop of the course's toy experiments: seeded, on one thread, with a progress bar.

Every paper's experiment trains small models on small tensors for a few hundred steps. `fit` is that
loop, written once:

    result = fit(model.parameters(), lambda: loss_of(model), steps=300, lr=0.02, seed=0)

- seeded: the global RNG is seeded with `seed` for the loop (dropout, noise drawn without a generator)
  and restored afterwards, so an experiment does not disturb the caller's random state;
- one intra-op thread by default: on tensors this small a second thread only adds fork/join waits;
- a progress bar (tqdm.auto) in notebooks, shown only for loops that last longer than two seconds,
  and never while notebooks are executed to be tested or committed (COURSE_PROGRESS=0);
- an early stop once the loss reaches `target`;
- Adam (and `DecayingAdam`) update every parameter in one foreach call a step.
"""
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from course.checks import check_int

PROGRESS_DELAY_S = 2.0  # a loop shorter than this never shows a bar


@dataclass
class Fit:
    """What a training loop did: the loss at every step it ran, and how long it took."""

    losses: list = field(default_factory=list)
    seconds: float = 0.0
    reached_target: bool = False

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


@contextmanager
def intra_op_threads(threads: int | None):
    """Run with `threads` intra-op threads (None: leave the setting), then restore it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread():
    """One intra-op thread for a block (also a decorator): on toy tensors a second one only waits."""
    return intra_op_threads(1)


@contextmanager
def seeded(seed: int | None):
    """The global RNG seeded with `seed` inside the block (None: left as it is), and restored after:
    how an experiment builds its models, so the caller's random state is never disturbed."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


class DecayingAdam(torch.optim.Adam):
    """Adam whose learning rate falls linearly from lr to 0 over `total` steps (pass it to `fit` as
    `optimizer=DecayingAdam, total=steps`): a short toy training ends at a minimum, not bouncing."""

    def __init__(self, params, lr: float, total: int, **adam_options):
        super().__init__(params, lr=lr, **adam_options)
        self.base_lr, self.total, self.done = lr, total, 0

    def step(self, closure=None):
        for group in self.param_groups:
            group["lr"] = self.base_lr * max(0.0, 1 - self.done / self.total)
        self.done += 1
        return super().step(closure)


def progress_enabled(progress) -> bool:
    """`progress` is True, False or "auto" (on, unless COURSE_PROGRESS=0 is set)."""
    if progress == "auto":
        return os.environ.get("COURSE_PROGRESS", "1") != "0"
    return bool(progress)


def fit(params: Iterable[torch.Tensor], loss: Callable[[], torch.Tensor], steps: int, lr: float,
        *, seed: int | None = None, optimizer: Callable = torch.optim.Adam, target: float | None = None,
        threads: int | None = 1, progress="auto", desc: str = "training", **optimizer_options) -> Fit:
    """Minimize `loss()` over `params` for `steps` optimizer steps (Adam unless `optimizer` says).

    `loss` computes the training loss from scratch each call (full batch, or a fresh mini-batch it
    draws itself). Stops early once the loss is <= `target`. `threads=None` keeps torch's setting.
    """
    check_int("train.fit", "steps", steps, low=0)
    if not lr > 0:
        raise ValueError(f"train.fit: `lr` must be > 0; got {lr}.")
    params = [p for p in params]
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("train.fit: `params` must be a non-empty list of tensors that require grad; "
                         f"got {len(params)} tensor(s), of which "
                         f"{sum(getattr(p, 'requires_grad', False) for p in params)} require grad.")
    from tqdm.auto import tqdm

    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Adam):
        # one update over every parameter a step (torch's foreach Adam, the same arithmetic as its
        # per-tensor loop): on toy tensors the per-tensor calls cost more than the arithmetic
        optimizer_options.setdefault("foreach", True)
    opt = optimizer(params, lr=lr, **optimizer_options)
    result = Fit()
    start = time.perf_counter()
    with intra_op_threads(threads), seeded(seed):
        bar = tqdm(total=steps, desc=desc, delay=PROGRESS_DELAY_S, leave=False,
                   disable=not progress_enabled(progress))
        with bar:
            for _ in range(steps):
                value = loss()
                opt.zero_grad()
                value.backward()
                opt.step()
                result.losses.append(value.item())
                bar.update()
                if target is not None and result.losses[-1] <= target:
                    result.reached_target = True
                    break
    result.seconds = time.perf_counter() - start
    return result

