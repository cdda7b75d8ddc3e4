"""The family's generated sequence tasks, and the one loop that trains a sequence model on them.

Every task is a batch of token sequences with the positions that are scored marked:

- `selective_copying` (Gu and Dao 2023, arXiv:2312.00752, section 3.1 and Figure 2): `copies` data
  tokens scattered at random places among noise tokens; at the end, after as many `GO` tokens, the
  model must output the data tokens in order. Content-aware: where the data sit changes per sequence.
- `associative_recall` (the recall task of Zoology, Arora et al. 2023, and of Griffin's section 6):
  `pairs` key-value pairs, then one of the keys; the answer is its value.
- `long_range`: a class token `distance` positions before the end of a sequence of noise tokens; the
  class is asked at the last position. The farther back the class token, the longer a recurrence must
  keep it without letting the noise overwrite it, so the difficulty grows with `distance`.

Each generator is seeded (same seed, same draw) and returns a `Sequences`: inputs [N, T] int64 tokens
in [0, vocab), targets [N, T] int64 (meaningful only where scored), mask [N, T] bool (the scored
positions). `train_sequence_model` fits any model mapping tokens [B, T] to logits [B, T, vocab]
through `course.train.fit` and returns its accuracy on a held-out draw.
"""
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from course.checks import check_int
from course.train import DecayingAdam, fit


@dataclass(frozen=True)
class Sequences:
    """inputs [N, T] int64 in [0, vocab), targets [N, T] int64, mask [N, T] bool (scored positions)."""

    name: str
    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    vocab: int

    @property
    def length(self) -> int:
        return self.inputs.shape[1]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def batch(self, rows: torch.Tensor) -> "Sequences":
        """The sequences at `rows` (an index tensor or slice)."""
        return Sequences(self.name, self.inputs[rows], self.targets[rows], self.mask[rows], self.vocab)


# selective copying: token 0 is noise, token 1 is GO (output here), data tokens are 2 .. tokens + 1.
NOISE, GO = 0, 1


def selective_copying(n: int, T: int = 32, tokens: int = 8, copies: int = 4, seed: int = 0) -> Sequences:
    """Gu and Dao 2023 (arXiv:2312.00752, section 3.1): `copies` data tokens, drawn from `tokens`
    kinds, at random increasing positions among the first T - copies positions (noise elsewhere);
    the last `copies` positions hold GO and must output the data tokens in order. vocab = tokens + 2."""
    where = "ssm.selective_copying"
    check_int(where, "n", n, low=1)
    check_int(where, "copies", copies, low=1)
    check_int(where, "T", T, low=2 * copies)
    check_int(where, "tokens", tokens, low=1)
    g = torch.Generator().manual_seed(seed)
    body = T - copies
    data = 2 + torch.randint(tokens, (n, copies), generator=g)
    places = torch.rand(n, body, generator=g).argsort(dim=1)[:, :copies].sort(dim=1).values
    inputs = torch.full((n, T), NOISE, dtype=torch.long)
    inputs.scatter_(1, places, data)
    inputs[:, body:] = GO
    targets = torch.zeros(n, T, dtype=torch.long)
    targets[:, body:] = data
    mask = torch.zeros(n, T, dtype=torch.bool)
    mask[:, body:] = True
    return Sequences("selective copying", inputs, targets, mask, tokens + 2)


def associative_recall(n: int, pairs: int = 4, seed: int = 0, keys: int = 8, values: int = 8,
                       gap: int = 0) -> Sequences:
    """Key-value recall: k_1 v_1 ... k_p v_p, then `gap` noise tokens, then a query k_q (one of the
    keys, distinct within a sequence); the answer at the query's position is v_q.

    Tokens: keys 0 .. keys-1, values keys .. keys+values-1, noise keys+values. T = 2 pairs + gap + 1."""
    where = "ssm.associative_recall"
    check_int(where, "n", n, low=1)
    check_int(where, "keys", keys, low=1)
    check_int(where, "pairs", pairs, low=1, high=keys)
    check_int(where, "values", values, low=1)
    check_int(where, "gap", gap, low=0)
    g = torch.Generator().manual_seed(seed)
    key = torch.rand(n, keys, generator=g).argsort(dim=1)[:, :pairs]
    value = keys + torch.randint(values, (n, pairs), generator=g)
    asked = torch.randint(pairs, (n,), generator=g)
    rows = torch.arange(n)
    T = 2 * pairs + gap + 1
    inputs = torch.full((n, T), keys + values, dtype=torch.long)
    inputs[:, 0:2 * pairs:2], inputs[:, 1:2 * pairs:2] = key, value
    inputs[:, -1] = key[rows, asked]
    targets = torch.zeros(n, T, dtype=torch.long)
    targets[:, -1] = value[rows, asked]
    mask = torch.zeros(n, T, dtype=torch.bool)
    mask[:, -1] = True
    return Sequences("associative recall", inputs, targets, mask, keys + values + 1)


def long_range(n: int, T: int = 64, seed: int = 0, distance: int | None = None, classes: int = 4,
               noise: int = 8) -> Sequences:
    """A class token (one of `classes`) at position T - 1 - distance (default: the first position)
    among noise tokens (`noise` kinds, drawn uniformly); the class is scored at the last position.

    Tokens: classes 0 .. classes-1, noise classes .. classes+noise-1, a final ASK token classes+noise."""
    where = "ssm.long_range"
    check_int(where, "n", n, low=1)
    check_int(where, "T", T, low=2)
    check_int(where, "distance", distance, low=1, high=T - 1, allow_none=True)
    check_int(where, "classes", classes, low=2)
    check_int(where, "noise", noise, low=1)
    distance = T - 1 if distance is None else distance
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(classes, (n,), generator=g)
    inputs = classes + torch.randint(noise, (n, T), generator=g)
    inputs[:, T - 1 - distance] = label
    inputs[:, -1] = classes + noise
    targets = torch.zeros(n, T, dtype=torch.long)
    targets[:, -1] = label
    mask = torch.zeros(n, T, dtype=torch.bool)
    mask[:, -1] = True
    return Sequences("long range", inputs, targets, mask, classes + noise + 1)


def masked_loss(logits: torch.Tensor, data: Sequences) -> torch.Tensor:
    """Cross-entropy of logits [B, T, V] against the targets, averaged over the scored positions."""
    return F.cross_entropy(logits[data.mask], data.targets[data.mask])


def masked_accuracy(logits: torch.Tensor, data: Sequences) -> float:
    """Fraction of scored positions whose arg-max logit is the target."""
    return (logits[data.mask].argmax(-1) == data.targets[data.mask]).float().mean().item()


HELD_OUT = 1_000_003  # the held-out draw's seed is the training seed plus this


def train_sequence_model(model: torch.nn.Module, task: Callable[[int, int], Sequences], steps: int,
                         lr: float, seed: int, *, batch: int = 32, n_test: int = 512) -> float:
    """Train `model` (tokens [B, T] -> logits [B, T, vocab]) on `task(n, seed)` draws for `steps`
    Adam steps (learning rate falling linearly to 0) on mini-batches of `batch` fresh sequences, then
    return its accuracy on a held-out draw of `n_test` sequences (seed + HELD_OUT).

    `task` is a callable (n, seed) -> Sequences, e.g. `lambda n, s: associative_recall(n, 4, s)`."""
    check_int("ssm.train_sequence_model", "steps", steps, low=1)
    check_int("ssm.train_sequence_model", "batch", batch, low=1)
    train = task(steps * batch, seed)
    step = [0]

    def loss():
        rows = slice(step[0] * batch, (step[0] + 1) * batch)
        step[0] += 1
        data = train.batch(rows)
        return masked_loss(model(data.inputs), data)

    fit(model.parameters(), loss, steps, lr, seed=seed, optimizer=DecayingAdam, total=steps)
    test = task(n_test, seed + HELD_OUT)
    with torch.no_grad():
        return masked_accuracy(model(test.inputs), test)


def mixture(first: Sequences, second: Sequences, seed: int = 0) -> Sequences:
    """The rows of two tasks in one batch, shuffled: `second`'s tokens are shifted past `first`'s
    vocabulary, and the shorter sequences are left-padded with one new PAD token (never scored) to the
    longer length. vocab = first.vocab + second.vocab + 1; the last token is PAD."""
    pad = first.vocab + second.vocab
    T = max(first.length, second.length)

    def padded(d: Sequences, shift: int):
        left = T - d.length
        inputs = torch.cat([torch.full((len(d), left), pad, dtype=torch.long), d.inputs + shift], 1)
        targets = torch.cat([torch.zeros(len(d), left, dtype=torch.long), d.targets + shift], 1)
        mask = torch.cat([torch.zeros(len(d), left, dtype=torch.bool), d.mask], 1)
        return inputs, targets, mask

    parts = [padded(first, 0), padded(second, first.vocab)]
    inputs, targets, mask = (torch.cat(p, 0) for p in zip(*parts))
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    return Sequences(f"{first.name} + {second.name}", inputs[order], targets[order], mask[order], pad + 1)
