"""PoNet: token mixing by multi-granularity pooling, linear in the sequence length.

Tan, Chen, Wang, Zhang, Zheng and Ling 2022, "PoNet: Pooling Network for Efficient Token Mixing in
Long Sequences" (arXiv:2110.02442, ICLR 2022), section 3. The token mixer replaces self-attention by
three poolings of linear projections of the tokens x_t [D], each O(T D):

- global aggregation (GA): g = mean_t q_t, then one query's attention over the tokens,
  g' = softmax(g K^T / sqrt(D)) V, a single [D] summary of the whole sequence;
- segment max-pooling (SMP): s_t = max over the segment of `segment` tokens holding t;
- local max-pooling (LMP): l_t = max over the `window` tokens around t;

and pooling fusion, which here takes the form o_t = o_t^(O) * (g' + s_t) + l_t: the global and
segment summaries modulate the token's own projection (a multiplicative interaction, as the paper's
fusion has) and the local pool is added; the paper's exact fusion equations may differ in detail.
Attention's cost is O(T^2 D); PoNet's is O(T D^2).

Here (`ponet_experiment`, a reproduction) one PoNet mixer and one softmax self-attention layer of
about the same size each classify which of four symbols is the most frequent in a sequence, read at a
CLS token in front (the answer needs every token), and their forward time is measured at two lengths.
"""
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import accuracy, parameter_count
from course.train import DecayingAdam, fit, seeded

SYMBOLS, LENGTH, SEGMENT, WINDOW = 4, 64, 8, 3
WIDTH, ATTENTION_WIDTH = 32, 39  # 6692 and 6673 parameters
STEPS, BATCH, LR = 60, 32, 0.01
SHORT, LONG = 256, 2048  # lengths at which the forward time is measured


def segment_max_pool(x: torch.Tensor, segment: int) -> torch.Tensor:
    """SMP: every token gets the max over its segment of `segment` tokens (the last one may be
    shorter). x [B, T, D] -> [B, T, D]."""
    check_tensor("segment_max_pool", "x", x, ndim=3, kind="float")
    check_int("segment_max_pool", "segment", segment, low=1)
    B, T, D = x.shape
    pad = (-T) % segment
    padded = F.pad(x, (0, 0, 0, pad), value=-math.inf)
    pooled = padded.view(B, -1, segment, D).amax(2)  # [B, T / segment, D]
    return pooled.repeat_interleave(segment, 1)[:, :T]


def local_max_pool(x: torch.Tensor, window: int) -> torch.Tensor:
    """LMP: the max over the `window` (odd) tokens centred on each one. [B, T, D] -> [B, T, D]."""
    check_tensor("local_max_pool", "x", x, ndim=3, kind="float")
    check_int("local_max_pool", "window", window, low=1)
    if window % 2 == 0:
        raise ValueError(f"local_max_pool: `window` must be odd; got {window}.")
    return F.max_pool1d(x.transpose(1, 2), window, 1, window // 2).transpose(1, 2)


def global_aggregation(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """GA: the mean query's attention over the tokens. q, k, v [B, T, D] -> g' [B, 1, D]."""
    g = q.mean(1, keepdim=True)
    weights = torch.softmax(g @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1)  # [B, 1, T]
    return weights @ v


class PoNetMixer(nn.Module):
    """The PoNet token mixer of section 3: six projections, GA, SMP, LMP and pooling fusion.
    x [B, T, D] -> [B, T, D]."""

    def __init__(self, D: int, segment: int = SEGMENT, window: int = WINDOW):
        super().__init__()
        self.project = nn.Linear(D, 6 * D)
        self.segment, self.window = segment, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, o, s, l = self.project(x).chunk(6, -1)
        g = global_aggregation(q, k, v)
        return o * (g + segment_max_pool(s, self.segment)) + local_max_pool(l, self.window)


class AttentionMixer(nn.Module):
    """The baseline: single-head softmax self-attention, Q K V and output projections. [B, T, D]."""

    def __init__(self, D: int):
        super().__init__()
        self.qkv, self.out = nn.Linear(D, 3 * D), nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1)  # [B, T, T]
        return self.out(weights @ v)


class Classifier(nn.Module):
    """tokens [B, T] -> logits [B, classes]: embedding, one residual token mixer with LayerNorm, and a
    linear readout of the first (CLS) position."""

    def __init__(self, mixer: nn.Module, D: int, vocab: int, classes: int):
        super().__init__()
        self.embed, self.mixer, self.norm = nn.Embedding(vocab, D), mixer, nn.LayerNorm(D)
        self.head = nn.Linear(D, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        return self.head(self.norm(x + self.mixer(x))[:, 0])


def most_frequent(n: int, T: int = LENGTH, symbols: int = SYMBOLS, seed: int = 0) -> tuple:
    """A CLS token (id `symbols`) then T symbols; the label is the most frequent symbol, which is drawn
    twice as often as each other one (ties go to the smallest id). (tokens [n, T + 1], labels [n])."""
    check_int("most_frequent", "n", n, low=1)
    check_int("most_frequent", "T", T, low=1)
    check_int("most_frequent", "symbols", symbols, low=2)
    g = torch.Generator().manual_seed(seed)
    favoured = torch.randint(symbols, (n, 1), generator=g)
    p = torch.ones(n, symbols).scatter(1, favoured, 2.0)
    body = torch.multinomial(p, T, replacement=True, generator=g)
    counts = F.one_hot(body, symbols).sum(1)  # [n, symbols]
    tokens = torch.cat([torch.full((n, 1), symbols), body], 1)
    return tokens, counts.argmax(1)


def train_classifier(model: nn.Module, seed: int) -> float:
    """STEPS Adam steps on fresh batches; accuracy on 1024 held-out sequences."""
    x, y = most_frequent(STEPS * BATCH, seed=seed)
    step = [0]

    def loss():
        rows = slice(step[0] * BATCH, (step[0] + 1) * BATCH)
        step[0] += 1
        return F.cross_entropy(model(x[rows]), y[rows])

    fit(model.parameters(), loss, STEPS, LR, seed=seed, optimizer=DecayingAdam, total=STEPS)
    x_test, y_test = most_frequent(1024, seed=seed + 1_000_003)
    with torch.no_grad():
        return accuracy(model(x_test), y_test)


def forward_flops(mixer: nn.Module, T: int, D: int) -> float:
    """Floating-point operations of one forward pass of `mixer` on one sequence [1, T, D], as torch's
    FlopCounterMode counts them (matmuls and attention; the max-pooling's comparisons are not counted):
    the same on every machine, unlike a wall-clock time."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        mixer(torch.randn(1, T, D))
    return float(counter.get_total_flops())


@functools.lru_cache(maxsize=3)
def ponet_experiment(seed: int) -> dict:
    """PoNet against attention of about the same size: accuracy, and forward FLOPs at SHORT and LONG."""
    check_int("ponet_experiment", "seed", seed, low=0)
    with seeded(seed):
        ponet = Classifier(PoNetMixer(WIDTH), WIDTH, SYMBOLS + 1, SYMBOLS)
    with seeded(seed):
        attention = Classifier(AttentionMixer(ATTENTION_WIDTH), ATTENTION_WIDTH, SYMBOLS + 1, SYMBOLS)
    ponet_acc, attention_acc = train_classifier(ponet, seed), train_classifier(attention, seed)
    times = {f"{name}_flops_{T}": forward_flops(model.mixer, T, D)
             for name, model, D in (("ponet", ponet, WIDTH), ("attention", attention, ATTENTION_WIDTH))
             for T in (SHORT, LONG)}
    ponet_growth = times[f"ponet_flops_{LONG}"] / times[f"ponet_flops_{SHORT}"]
    attention_growth = times[f"attention_flops_{LONG}"] / times[f"attention_flops_{SHORT}"]
    return {"ponet_accuracy": ponet_acc, "attention_accuracy": attention_acc,
            "accuracy_gap": attention_acc - ponet_acc, **times, "ponet_growth": ponet_growth,
            "attention_growth": attention_growth, "growth_ratio": attention_growth / ponet_growth,
            "ponet_params": float(parameter_count(ponet)),
            "attention_params": float(parameter_count(attention))}


CLAIM = Claim(
    paper="Tan et al. 2022",
    citation="PoNet: Pooling Network for Efficient Token Mixing in Long Sequences (arXiv:2110.02442), "
             "section 3 (multi-granularity pooling and pooling fusion) and section 4 (Long Range Arena, "
             "speed against sequence length)",
    statement="multi-granularity pooling mixes tokens with linear complexity, at an accuracy comparable "
              "to self-attention's on a task that needs the whole sequence",
    kind=REPRODUCTION,
    experiment=ponet_experiment,
    thresholds=("ponet_accuracy >= 0.8", "accuracy_gap <= 0.05", "growth_ratio >= 2"),
    summary=lambda m: (
        f"accuracy {m['ponet_accuracy']:.3f} for PoNet ({m['ponet_params']:.0f} parameters) against "
        f"{m['attention_accuracy']:.3f} for attention ({m['attention_params']:.0f}); from T = {SHORT} to "
        f"{LONG} PoNet's forward FLOPs grow {m['ponet_growth']:.3g}x, attention's "
        f"{m['attention_growth']:.3g}x"),
    note=f"One mixer layer each; the most frequent of {SYMBOLS} symbols in {LENGTH} tokens, read at a CLS "
         f"token. The cost is counted in FLOPs (torch's FlopCounterMode; wall-clock times, measured "
         f"first, grew 3.7-4.8x and 52-55x) so that every machine gives the same number; the threshold "
         f"is on their growth, with a wide margin ({LONG // SHORT}x longer: linear {LONG // SHORT}x, "
         f"quadratic {(LONG // SHORT) ** 2}x).",
)
