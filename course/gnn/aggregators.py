"""The aggregator zoo: sum, mean and max, and three learned aggregators, each over CSR segments.

Every aggregator reduces the messages of each destination, one contiguous CSR segment
ptr[i]:ptr[i + 1] of `src`, to one vector:

    src [E, D] (CSR order), ptr [N + 1] -> [N, D']

- `SumAggregation`, `MeanAggregation`, `MaxAggregation`: the fixed reductions of `course.gnn.segment`
  (an empty segment gives 0).
- `PowerMeanPool`, GNP: Ko et al. 2022, "Learning to Pool in Graph Neural Networks for Extrapolation"
  (ICLR 2022, arXiv:2106.06210), its definition of GNP. Generalised norm-based pooling of a set X of
  non-negative numbers, with p and q learned (one pair per channel):

      GNP_{p,q}(X) = ( |X|^(-q) * sum_{x in X} x^p )^(1/p)

  (p, q) = (1, 0) is the sum, (1, 1) the mean, (2, 1) the root mean square, (2, 0) the Euclidean
  norm, and p -> inf tends to the max whatever q. Real inputs are split into their positive and
  negative parts, GNP^+(relu x) - GNP^-(relu -x), each part with its own (p, q). Computed in log
  space, log GNP = (logsumexp_x(p log(x + eps)) - q log|X|) / p, so that a large p neither
  overflows nor underflows; eps > 0 keeps log x finite. An empty segment gives 0.
- `CommutativeMonoid`, LCM: Ong and Velickovic 2022, "Learnable Commutative Monoids for Graph Neural
  Networks" (LoG 2022, arXiv:2212.08541). A learned binary operator made commutative by
  symmetrising a GRU cell,

      a (+) b = ( GRU(a; b) + GRU(b; a) ) / 2          (GRU(input; hidden))

  a learned identity element e that pads every segment to a power of two, and a balanced binary
  tree of (+) over the padded segment: ceil(log2 d) sequential steps for d neighbours instead of a
  recurrent aggregator's d. Commutativity is exact; associativity and e (+) a = a are not built in,
  so the tree's result can depend on the neighbours' order; `monoid_penalty` measures how far the
  operator is from a monoid (the regulariser that pulls it towards one). An empty segment gives e.
- `RecurrentAggregation`: Xu and Velickovic 2024, "Recurrent Aggregators in Neural Algorithmic
  Reasoning" (arXiv:2409.07154), the RNAR model: an LSTM reads the segment's messages in a natural order
  (here: sorted by a `key` [E], e.g. the neighbours' positions; without one, the CSR order) and its
  last hidden state is the aggregate. Order-sensitive by design. An empty segment gives 0.

`to_padded` lays segments out as rows of a dense [N, L, D] tensor (what the tree and the LSTM read);
`order_within_segments` sorts the positions of each segment by a key.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor
from course.gnn.segment import broadcast, check_segments, segment

AGGREGATORS = ("sum", "mean", "max", "gnp", "lcm", "lstm")


def check_messages(where: str, src, ptr, channels: int):
    """Segments of `src` [E, channels] over `ptr` [N + 1] (course.gnn.segment's checks, and the width)."""
    check_segments(where, src, ptr)
    if src.dim() != 2 or src.shape[1] != channels:
        raise ValueError(f"{where}: `src` must be [E, D] with D = {channels} channels; got shape "
                         f"{tuple(src.shape)}.")


def to_padded(src: torch.Tensor, ptr: torch.Tensor, length: int | None = None, fill=0.0):
    """Segments as rows: src [E, ...], ptr [N + 1] -> dense [N, L, ...], mask [N, L] (True on entries).

    L is the longest segment unless `length` (>= it) is given; the rest of a row is `fill`, a number
    or a vector [D].
    """
    check_segments("gnn.to_padded", src, ptr)
    degree = ptr.diff()  # [N]
    longest = int(degree.max()) if degree.numel() else 0
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"gnn.to_padded: `length` must be at least the longest segment, {longest}; "
                         f"got {length}.")
    n = degree.shape[0]
    slot = torch.arange(length, device=src.device)
    mask = slot < degree[:, None]  # [N, L]
    dense = torch.as_tensor(fill, dtype=src.dtype, device=src.device).expand(n, length, *src.shape[1:])
    dense = dense.clone()
    dense[mask] = src  # row-major order of the mask is the CSR order
    return dense, mask


def order_within_segments(key: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    """The permutation [E] that sorts every segment's positions by `key` [E] (stable), segments kept
    in place: src[perm] is src with each neighbourhood in key order."""
    check_tensor("gnn.order_within_segments", "key", key, ndim=1)
    check_tensor("gnn.order_within_segments", "ptr", ptr, ndim=1, kind="int")
    if ptr.numel() == 0 or key.shape[0] != int(ptr[-1]):
        raise ValueError(f"gnn.order_within_segments: `key` must have one entry per position, [E] "
                         f"with E = {int(ptr[-1])}; got shape {tuple(key.shape)}.")
    rank = torch.argsort(torch.argsort(key.double(), stable=True))  # global rank of every key
    owner = torch.repeat_interleave(torch.arange(ptr.numel() - 1, device=key.device), ptr.diff())
    return torch.argsort(owner * (key.numel() + 1) + rank, stable=True)


class SumAggregation(nn.Module):
    """sum_j m_ij. [E, D] -> [N, D]"""

    def forward(self, src, ptr):
        return segment(src, ptr, "sum")


class MeanAggregation(nn.Module):
    """(1 / d_i) sum_j m_ij. [E, D] -> [N, D]"""

    def forward(self, src, ptr):
        return segment(src, ptr, "mean")


class MaxAggregation(nn.Module):
    """max_j m_ij, channel by channel. [E, D] -> [N, D]"""

    def forward(self, src, ptr):
        return segment(src, ptr, "max")


def generalized_norm_pool(x: torch.Tensor, ptr: torch.Tensor, p: torch.Tensor, q: torch.Tensor,
                          eps: float = 1e-6) -> torch.Tensor:
    """GNP_{p,q} of each segment of non-negative x (Ko et al. 2022), in log space.

    x [E, D] >= 0, ptr [N + 1], p, q [D] (p != 0) -> [N, D]; an empty segment gives 0.
    """
    where = "gnn.generalized_norm_pool"
    check_segments(where, x, ptr)
    if x.numel() and x.min() < 0:
        raise ValueError(f"{where}: `x` must be non-negative (split real inputs into their positive and "
                         f"negative parts, as PowerMeanPool does); got a minimum of {x.min().item():.3g}.")
    if (p == 0).any():
        raise ValueError(f"{where}: `p` must be non-zero (the 1/p power); got {int((p == 0).sum())} zeros.")
    log_terms = p * torch.log(x + eps)  # [E, D]: log x^p
    top = segment(log_terms.detach(), ptr, "max")  # [N, D], a constant shift for logsumexp
    total = segment(torch.exp(log_terms - broadcast(top, ptr)), ptr, "sum")  # [N, D]
    size = ptr.diff().clamp(min=1).to(x.dtype)[:, None]  # [N, 1]
    log_pool = (top + torch.log(total.clamp(min=torch.finfo(x.dtype).tiny)) - q * torch.log(size)) / p
    return torch.where(ptr.diff()[:, None] > 0, torch.exp(log_pool), torch.zeros((), dtype=x.dtype))


class PowerMeanPool(nn.Module):
    """GNP with a learnable (p, q) per channel, for the positive and the negative part of the input.

    GNP(X) = GNP_{p+,q+}(relu X) - GNP_{p-,q-}(relu -X). p starts at `p`, q at `q` (1, 1: the mean);
    p is kept in [p_min, p_max] (positive: GNP's sum-to-max family). [E, D] -> [N, D]
    """

    def __init__(self, channels: int, p: float = 1.0, q: float = 1.0, learn_q: bool = True,
                 p_min: float = 0.2, p_max: float = 50.0, eps: float = 1e-6):
        super().__init__()
        check_int("gnn.PowerMeanPool", "channels", channels, low=1)
        if not p_min <= p <= p_max or p_min <= 0:
            raise ValueError(f"gnn.PowerMeanPool: `p` must be in [p_min, p_max] with p_min > 0; got p = "
                             f"{p}, p_min = {p_min}, p_max = {p_max}.")
        self.p = nn.Parameter(torch.full((2, channels), float(p)))  # [positive part, negative part]
        q = torch.full((2, channels), float(q))
        self.q = nn.Parameter(q) if learn_q else nn.Buffer(q)
        self.channels, self.p_min, self.p_max, self.eps = channels, p_min, p_max, eps

    def exponents(self):
        """(p, q), each [2, D], p clamped to [p_min, p_max]."""
        return self.p.clamp(self.p_min, self.p_max), self.q

    def forward(self, src, ptr):
        check_messages("gnn.PowerMeanPool", src, ptr, self.channels)
        p, q = self.exponents()
        positive = generalized_norm_pool(F.relu(src), ptr, p[0], q[0], self.eps)
        negative = generalized_norm_pool(F.relu(-src), ptr, p[1], q[1], self.eps)
        return positive - negative


class CommutativeMonoid(nn.Module):
    """LCM: a symmetrised GRU operator folded over each padded segment in a balanced binary tree.

    [E, D] -> [N, D]; `depth(d)` = ceil(log2 d) sequential applications of the operator.
    """

    def __init__(self, channels: int):
        super().__init__()
        check_int("gnn.CommutativeMonoid", "channels", channels, low=1)
        self.channels = channels
        self.cell = nn.GRUCell(channels, channels)
        self.identity = nn.Parameter(torch.zeros(channels))  # e, learned

    def combine(self, a, b):
        """a (+) b = (GRU(a; b) + GRU(b; a)) / 2: commutative by construction. [M, D], [M, D] -> [M, D]"""
        both = self.cell(torch.cat([a, b]), torch.cat([b, a]))  # GRU(a; b) and GRU(b; a) in one call
        return 0.5 * (both[: a.shape[0]] + both[a.shape[0]:])

    @staticmethod
    def depth(degree: int) -> int:
        """Levels of the balanced tree over `degree` leaves (padded to a power of two)."""
        return math.ceil(math.log2(degree)) if degree > 1 else 0

    def forward(self, src, ptr):
        check_messages("gnn.CommutativeMonoid", src, ptr, self.channels)
        degree = ptr.diff()
        depth = torch.ceil(torch.log2(degree.clamp(min=1).double())).long()  # [N] each segment's own tree
        width = 2 ** int(depth.max()) if depth.numel() else 1
        level, _ = to_padded(src, ptr, width, fill=self.identity)  # [N, W, D], padded with e
        done = 0
        while level.shape[1] > 1:
            n, w, d = level.shape
            pairs = level.reshape(n, w // 2, 2, d)
            merged = self.combine(pairs[:, :, 0].reshape(-1, d), pairs[:, :, 1].reshape(-1, d))
            merged = merged.reshape(n, w // 2, d)
            done += 1
            # a segment whose own tree (padded to its own power of two) is complete keeps its root,
            # so its result never depends on the other segments of the batch
            finished = (depth < done)[:, None, None]
            level = torch.where(finished, level[:, : w // 2], merged)
        return level[:, 0]

    def monoid_penalty(self, samples: torch.Tensor) -> torch.Tensor:
        """How far (+) is from a monoid on `samples` [M, D]: the mean squared gap of associativity,
        (a (+) b) (+) c vs a (+) (b (+) c), plus that of the identity, e (+) a vs a; a, b, c are the
        samples rolled by 0, 1, 2. -> scalar"""
        a, b, c = samples, samples.roll(1, 0), samples.roll(2, 0)
        associativity = (self.combine(self.combine(a, b), c) - self.combine(a, self.combine(b, c))).pow(2)
        e = self.identity.expand_as(a)
        return associativity.mean() + (self.combine(e, a) - a).pow(2).mean()


class RecurrentAggregation(nn.Module):
    """An LSTM over each segment's messages in key order; the aggregate is its last hidden state.

    src [E, D_in], ptr [N + 1], key [E] or None (CSR order) -> [N, D_out]
    """

    order_sensitive = True

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        check_int("gnn.RecurrentAggregation", "channels", channels, low=1)
        self.channels = channels
        self.lstm = nn.LSTM(channels, out_channels or channels, batch_first=True)

    def forward(self, src, ptr, key=None):
        check_messages("gnn.RecurrentAggregation", src, ptr, self.channels)
        if key is not None:
            src = src[order_within_segments(key, ptr)]
        degree = ptr.diff()
        dense, _ = to_padded(src, ptr)  # [N, L, D], zeros after each segment's end
        if dense.shape[1] == 0:
            return src.new_zeros(degree.shape[0], self.lstm.hidden_size)
        states, _ = self.lstm(dense)  # [N, L, H]; a causal read: padding never reaches earlier steps
        last = states[torch.arange(degree.shape[0]), (degree - 1).clamp(min=0)]  # [N, H]
        return torch.where(degree[:, None] > 0, last, torch.zeros((), dtype=last.dtype))


def make_aggregator(name: str, channels: int) -> nn.Module:
    """One aggregator of the zoo by name (AGGREGATORS), over `channels` message channels."""
    if name == "sum":
        return SumAggregation()
    if name == "mean":
        return MeanAggregation()
    if name == "max":
        return MaxAggregation()
    if name == "gnp":
        return PowerMeanPool(channels)
    if name == "lcm":
        return CommutativeMonoid(channels)
    if name == "lstm":
        return RecurrentAggregation(channels)
    raise ValueError(f"gnn.make_aggregator: `name` must be one of {AGGREGATORS}; got {name!r}.")
