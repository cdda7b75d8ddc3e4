"""Griffin's and HGRN's layers, every recurrence through the family's scan op `course.ssm.ops.scan`.

- `RGLRU`: the Real-Gated Linear Recurrent Unit (De et al. 2024, "Griffin", arXiv:2402.19427,
  section 2.4), eqs. (1)-(4):
      r_t = sigmoid(W_a x_t + b_a)          recurrence gate
      i_t = sigmoid(W_x x_t + b_x)          input gate
      a_t = a^(c r_t),  a = sigmoid(Lambda), c = 8
      h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)
  computed in log space (log a_t = -c r_t softplus(-Lambda)), W_a and W_x block-diagonal as in the
  paper, Lambda initialised so that a^c is uniform in [0.9, 0.999] (section 2.4).
- `LocalAttention`: causal sliding-window softmax attention (position t sees t-w+1 .. t), rotary
  position embeddings on queries and keys (Griffin's local MQA uses RoPE, section 2.3).
- `RecurrentBlock` (Griffin Figure 2, right): a GeLU branch times a branch Linear -> causal depthwise
  Conv1D (width 4) -> RG-LRU, then a Linear back to the model width.
- `GriffinBlock`: Griffin's residual block (Figure 2, left): x + mix(RMSNorm(x)), then
  x + gatedMLP(RMSNorm(x)); the temporal mix is a recurrent block ("R") or local attention ("A").
- `GriffinModel`: embedding, a stack of residual blocks by a pattern ("RRA" Griffin, "RRR" Hawk,
  "AAA" local attention only), final RMSNorm and read-out to logits.
- `HGRNLayer` (Qin et al. 2023, "Hierarchically Gated Recurrent Neural Network for Sequence
  Modeling", arXiv:2311.04823, section 3), real-valued (the paper's complex-valued recurrence, its
  phase theta, is dropped here):
      f_t = sigmoid(x_t W_f + b_f),   lambda_t = gamma^k + (1 - gamma^k) f_t     forget gate, bound gamma^k
      c_t = SiLU(x_t W_c + b_c)                                                  input
      h_t = lambda_t * h_{t-1} + (1 - lambda_t) * c_t                             (the input gate 1-lambda_t)
      g_t = sigmoid(x_t W_g + b_g),   o_t = LayerNorm(g_t * h_t) W_o + b_o         output gate
  with the lower bounds of the H layers from one learnable matrix Gamma [H, D] (section 3, "lower
  bound"): P = softmax(Gamma, dim=0), gamma^k = sum_{j<=k} P_j - P_0 (a cumulative softmax, 0 at the
  first layer and rising with depth, below 1). `HGRNModel` stacks them (token mix + GLU channel mix).

Shapes: tokens [B, T] int; activations [B, T, D]; logits [B, T, V].
"""
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.ssm import ops

C_RGLRU = 8.0  # Griffin's constant c (section 2.4)
LOG_GATE_FLOOR = -30.0  # a gate below exp(-30) is 0 for float32; the scan op refuses a gate of 0


@functools.lru_cache(maxsize=None)
def scan_backend(device: str, dtype: torch.dtype):
    """The scan op's backend that `auto` picks for (device, dtype), resolved once: resolving costs more
    than the scan itself at the toys' sizes."""
    return ops.scan.resolve("auto", device, dtype).load()


def scan(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """h_t = a_t h_{t-1} + x_t over [B, T, D] through the registry's op `ssm.scan`, backend "auto"."""
    return scan_backend(str(x.device), x.dtype)(a, x)


class BlockDiagonalLinear(nn.Module):
    """y = x W + b with W block-diagonal of `blocks` blocks [D/blocks, D/blocks] (Griffin's gate weights)."""

    def __init__(self, width: int, blocks: int):
        super().__init__()
        if width % blocks:
            raise ValueError(f"ssm.BlockDiagonalLinear: `width` {width} must be divisible by `blocks` "
                             f"{blocks}.")
        size = width // blocks
        self.blocks = blocks
        self.weight = nn.Parameter(torch.randn(blocks, size, size) / math.sqrt(size))
        self.bias = nn.Parameter(torch.zeros(blocks, size))

    def forward(self, x):
        """x [B, T, D] -> [B, T, D]."""
        xb = x.unflatten(-1, (self.blocks, -1))
        return (torch.einsum("...hi,hij->...hj", xb, self.weight) + self.bias).flatten(-2)


class RGLRU(nn.Module):
    """Griffin's RG-LRU (arXiv:2402.19427, section 2.4, eqs. 1-4) over [B, T, D] -> [B, T, D]."""

    def __init__(self, width: int, blocks: int = 2, c: float = C_RGLRU):
        super().__init__()
        check_int("ssm.RGLRU", "width", width, low=1)
        self.c = c
        self.gate_a = BlockDiagonalLinear(width, blocks)  # W_a, b_a
        self.gate_x = BlockDiagonalLinear(width, blocks)  # W_x, b_x
        # a^c uniform in [0.9, 0.999]: a = sigmoid(Lambda) = u^(1/c), Lambda = logit(u^(1/c))
        u = torch.empty(width).uniform_(0.9, 0.999) ** (1 / c)
        self.Lambda = nn.Parameter(torch.log(u / (1 - u)))

    def log_a(self) -> torch.Tensor:
        """log a = log sigmoid(Lambda) = -softplus(-Lambda), [D]."""
        return -F.softplus(-self.Lambda)

    def gates(self, x):
        """The per-step decay a_t [B, T, D] and the gated, normalised input sqrt(1 - a_t^2) i_t x_t."""
        r = torch.sigmoid(self.gate_a(x))                               # eq. (1)
        i = torch.sigmoid(self.gate_x(x))                               # eq. (2)
        log_a_t = (self.c * r * self.log_a()).clamp(min=LOG_GATE_FLOOR)  # eq. (3) in log space
        a_t = log_a_t.exp()
        multiplier = torch.sqrt((-torch.expm1(2 * log_a_t)).clamp(min=1e-12))  # sqrt(1 - a_t^2)
        return a_t, multiplier * (i * x)

    def forward(self, x):
        """x [B, T, D] -> h [B, T, D] (eq. 4), through the scan op."""
        check_tensor("ssm.RGLRU", "x", x, ndim=3, kind="float")
        a_t, u = self.gates(x)
        return scan(a_t, u)


def rglru_step_loop(layer: RGLRU, x: torch.Tensor) -> torch.Tensor:
    """The RG-LRU written step by step straight from the paper's equations (1)-(4): the reference the
    scanned layer is tested against. x [B, T, D] -> h [B, T, D]."""
    a = torch.sigmoid(layer.Lambda)
    h, out = torch.zeros_like(x[:, 0]), []
    for t in range(x.shape[1]):
        r_t = torch.sigmoid(layer.gate_a(x[:, t:t + 1]))[:, 0]
        i_t = torch.sigmoid(layer.gate_x(x[:, t:t + 1]))[:, 0]
        a_t = a ** (layer.c * r_t)
        h = a_t * h + torch.sqrt(1 - a_t ** 2) * (i_t * x[:, t])
        out.append(h)
    return torch.stack(out, 1)


def rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) of x [B, H, T, E] (E even), position t rotating the
    pair (x_j, x_{j + E/2}) by angle t / 10000^(2j/E)."""
    T, E = x.shape[-2], x.shape[-1]
    half = E // 2
    freq = 10000 ** (-torch.arange(half, dtype=x.dtype) * 2 / E)
    angle = torch.arange(T, dtype=x.dtype)[:, None] * freq
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def local_mask(T: int, window: int) -> torch.Tensor:
    """[T, T] bool, True where query t may attend key s: t - window < s <= t."""
    t = torch.arange(T)
    gap = t[:, None] - t[None, :]
    return (gap >= 0) & (gap < window)


class LocalAttention(nn.Module):
    """Causal sliding-window multi-head softmax attention, window w (Griffin section 2.3, Beltagy et al.
    2020): [B, T, D] -> [B, T, D], position t attending positions t-w+1 .. t, RoPE on q and k."""

    def __init__(self, width: int, window: int, heads: int = 2):
        super().__init__()
        check_int("ssm.LocalAttention", "window", window, low=1)
        if width % heads or (width // heads) % 2:
            raise ValueError(f"ssm.LocalAttention: `width` {width} must split into `heads` {heads} heads "
                             "of even size.")
        self.window, self.heads = window, heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x):
        check_tensor("ssm.LocalAttention", "x", x, ndim=3, kind="float")
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q), rotary(k)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // self.heads)
        scores = scores.masked_fill(~local_mask(T, self.window), float("-inf"))
        y = scores.softmax(-1) @ v  # [B, H, T, E]
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class RecurrentBlock(nn.Module):
    """Griffin's recurrent block (Figure 2): GeLU(x W_1) * RG-LRU(Conv1D(x W_2)), then W_3.
    [B, T, D] -> [B, T, D]; width E of the recurrence (`expansion` E/D), conv width 4, causal."""

    def __init__(self, width: int, expansion: float = 1.0, conv: int = 4, blocks: int = 2):
        super().__init__()
        inner = int(round(width * expansion))
        self.gate_branch = nn.Linear(width, inner)
        self.recurrent_branch = nn.Linear(width, inner)
        self.conv = nn.Conv1d(inner, inner, conv, groups=inner, padding=conv - 1)  # depthwise
        self.rglru = RGLRU(inner, blocks)
        self.out = nn.Linear(inner, width)

    def forward(self, x):
        T = x.shape[1]
        gate = F.gelu(self.gate_branch(x))
        u = self.conv(self.recurrent_branch(x).transpose(1, 2))[..., :T].transpose(1, 2)  # causal
        return self.out(gate * self.rglru(u))


class RMSNorm(nn.Module):
    """x / rms(x) * scale over the last axis."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.scale, self.eps = nn.Parameter(torch.ones(width)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.scale


class GatedMLP(nn.Module):
    """Griffin's MLP block (Figure 2): (GeLU(x W_1) * x W_2) W_3, inner width `expansion` D."""

    def __init__(self, width: int, expansion: float = 2.0):
        super().__init__()
        inner = int(round(width * expansion))
        self.up, self.gate = nn.Linear(width, inner), nn.Linear(width, inner)
        self.down = nn.Linear(inner, width)

    def forward(self, x):
        return self.down(F.gelu(self.gate(x)) * self.up(x))


class GriffinBlock(nn.Module):
    """Griffin's residual block (Figure 2, left): x + mix(RMSNorm(x)); x + MLP(RMSNorm(x)).
    `kind` "R": the recurrent block mixes time; "A": local attention of window `window`."""

    def __init__(self, width: int, kind: str = "R", window: int = 4, mlp_expansion: float = 2.0):
        super().__init__()
        if kind not in ("R", "A"):
            raise ValueError(f"ssm.GriffinBlock: `kind` must be 'R' or 'A'; got {kind!r}.")
        self.kind = kind
        self.norm1, self.norm2 = RMSNorm(width), RMSNorm(width)
        self.mix = RecurrentBlock(width) if kind == "R" else LocalAttention(width, window)
        self.mlp = GatedMLP(width, mlp_expansion)

    def forward(self, x):
        x = x + self.mix(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GriffinModel(nn.Module):
    """tokens [B, T] -> logits [B, T, V]: embedding, GriffinBlocks by `pattern` ("RRA": Griffin,
    "RRR": Hawk, "AAA": local attention only), RMSNorm, read-out."""

    def __init__(self, vocab: int, width: int = 16, pattern: str = "RRA", window: int = 4,
                 mlp_expansion: float = 2.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(GriffinBlock(width, kind, window, mlp_expansion) for kind in pattern)
        self.norm = RMSNorm(width)
        self.read = nn.Linear(width, vocab)

    def forward(self, tokens):
        check_tensor("ssm.GriffinModel", "tokens", tokens, ndim=2, kind="int")
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.read(self.norm(x))


def hgrn_lower_bounds(Gamma: torch.Tensor) -> torch.Tensor:
    """HGRN's lower bounds (arXiv:2311.04823, section 3): Gamma [H, D] -> gamma [H, D],
    gamma^k = cumsum(softmax(Gamma, dim=0))_k - softmax(Gamma, dim=0)_0: 0 at layer 0, non-decreasing in
    k, below 1."""
    P = Gamma.softmax(0)
    return P.cumsum(0) - P[:1]


class HGRNLayer(nn.Module):
    """HGRN's gated linear recurrence (token mixer, arXiv:2311.04823, section 3, real-valued):
    x [B, T, D] and a lower bound gamma [D] (or 0) -> o [B, T, D]."""

    def __init__(self, width: int):
        super().__init__()
        check_int("ssm.HGRNLayer", "width", width, low=1)
        self.forget = nn.Linear(width, width)  # W_f, b_f
        self.input = nn.Linear(width, width)   # W_c, b_c
        self.output_gate = nn.Linear(width, width)  # W_g, b_g
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, width)     # W_o, b_o

    def forget_gate(self, x, gamma):
        """lambda_t = gamma + (1 - gamma) sigmoid(x W_f + b_f), in [gamma, 1]: [B, T, D]."""
        return gamma + (1 - gamma) * torch.sigmoid(self.forget(x))

    def forward(self, x, gamma=0.0):
        check_tensor("ssm.HGRNLayer", "x", x, ndim=3, kind="float")
        lam = self.forget_gate(x, gamma).clamp(min=math.exp(LOG_GATE_FLOOR))
        c = F.silu(self.input(x))
        h = scan(lam, (1 - lam) * c)
        return self.out(self.norm(torch.sigmoid(self.output_gate(x)) * h))


class HGRNModel(nn.Module):
    """tokens [B, T] -> logits [B, T, V]: `layers` HGRN blocks x + HGRN(norm x), x + GLU(norm x), the
    forget-gate lower bounds rising with depth (`lower_bounds=True`) or fixed at 0 (False, the
    ablation of the paper's Table 7)."""

    def __init__(self, vocab: int, width: int = 16, layers: int = 3, lower_bounds: bool = True,
                 mlp_expansion: float = 2.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.mixers = nn.ModuleList(HGRNLayer(width) for _ in range(layers))
        self.mlps = nn.ModuleList(GatedMLP(width, mlp_expansion) for _ in range(layers))
        self.norms = nn.ModuleList(RMSNorm(width) for _ in range(2 * layers))
        self.final = RMSNorm(width)
        self.read = nn.Linear(width, vocab)
        self.Gamma = nn.Parameter(torch.zeros(layers, width)) if lower_bounds else None

    def lower_bounds(self) -> torch.Tensor:
        """gamma [H, D]: the cumulative softmax of Gamma, or zeros without lower bounds."""
        if self.Gamma is None:
            return torch.zeros(len(self.mixers), self.read.in_features)
        return hgrn_lower_bounds(self.Gamma)

    def forward(self, tokens):
        check_tensor("ssm.HGRNModel", "tokens", tokens, ndim=2, kind="int")
        x, gamma = self.embed(tokens), self.lower_bounds()
        for k, (mixer, mlp) in enumerate(zip(self.mixers, self.mlps)):
            x = x + mixer(self.norms[2 * k](x), gamma[k])
            x = x + mlp(self.norms[2 * k + 1](x))
        return self.read(self.final(x))
