"""What the state widget draws: six sequence models' gates, states and receptive fields on a few
generated sequences, with fixed seeded weights (nothing is trained; the widget never trains).

Every recurrent model here runs, per channel c, the one diagonal recurrence of `course.ssm.scan`,

    h_t = a_t * h_{t-1} + b_t * v_t,        h_0 = 0,        a, b, v, h [T, D],

with a decay gate a_t in (0, 1], an input scale b_t and a value v_t, each computed from the input
sequence x [T, F] by the model's own maps (Sieber et al. 2024, "Understanding the differences in
Foundation Models", arXiv:2405.15731, the dynamical-systems framework: h_t = A_t h_{t-1} + B_t x_t
with a diagonal A_t). The maps follow the papers' formulas:

- RG-LRU (Griffin, De et al. 2024, arXiv:2402.19427, section 2, the RG-LRU's equations): recurrence
  gate r_t = sigmoid(W_a x_t + b_a), input gate i_t = sigmoid(W_x x_t + b_x), a_t = a^(c r_t) with
  a = sigmoid(Lambda) and c = 8, the input scaled by sqrt(1 - a_t^2): b_t = sqrt(1 - a_t^2) i_t.
  Lambda is set so that a^c is uniform in [0.9, 0.999] over the channels (the paper's initialisation).
- HGRN (Qin, Yang and Zhong 2023, arXiv:2311.04823, section 3, the lower-bounded forget gate): forget
  gate lambda_t = gamma + (1 - gamma) sigmoid(W_f x_t + b_f) with the lower bound gamma, candidate
  c_t = SiLU(W_c x_t + b_c), and h_t = lambda_t h_{t-1} + (1 - lambda_t) c_t: a_t = lambda_t,
  b_t = 1 - lambda_t, v_t = c_t.
- a selective SSM (Mamba, Gu and Dao 2023, arXiv:2312.00752, section 3.2, Algorithm 2) with N = 1
  state per channel: Delta_t = softplus(W_Delta x_t + b_Delta) > 0, A < 0 per channel,
  B_t = W_B x_t + b_B: a_t = exp(Delta_t A), b_t = Delta_t B_t, v_t = u_t (zero-order hold for A,
  Euler for B, as `course.ssm.selective`).
- retention (Sun et al. 2023, "Retentive Network", arXiv:2307.08621, section 2; ViR, arXiv:2310.19731):
  S_t = gamma S_{t-1} + k_t^T v_t with a fixed decay gamma per head, 1 - 2^(-5 - head) (time-invariant);
  the widget shows the diagonal of S, which runs the diagonal recurrence a_t = gamma, b_t = k_t.
- linear attention (Katharopoulos et al. 2020, arXiv:2006.16236, section 3.4, its recurrent form):
  S_t = S_{t-1} + phi(k_t)^T v_t with phi = elu + 1, no decay: a_t = 1, b_t = phi(k_t) (the diagonal
  of S again).
- local attention (Griffin's local multi-query attention; Beltagy et al. 2020, arXiv:2004.05150):
  softmax attention over the last `window` positions, no recurrence.

The effective receptive field of position t for input position s is how much the value at s still
contributes to the state at t, d h_t / d v_s with the gates and scales as the sequence sets them: for a
diagonal linear recurrence prod_{k=s+1..t} a_k * b_s (computed from cumulative log-gates in float64,
which neither underflows to NaN nor multiplies T terms one at a time); for local attention the softmax
weight of s in t's window, zero outside it.
"""
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.ssm.scan import scan

WHERE = "ssm.views"
T, FEATURES, CHANNELS = 64, 4, 16  # sequence length, input features, channels of every model
HEADS = 4                          # retention's heads (CHANNELS / HEADS channels each)
RG_LRU_C = 8.0                     # Griffin's constant c in a_t = a^(c r_t)
SEED = 0                           # the models' weights and the noise sequence

RG_LRU, HGRN, SELECTIVE, RETENTION, LINEAR, LOCAL = (
    "RG-LRU (Griffin)", "HGRN", "selective SSM (Mamba)", "retention (fixed decay)",
    "linear attention (no decay)", "local attention")
MODELS = (RG_LRU, HGRN, SELECTIVE, RETENTION, LINEAR, LOCAL)
RECURRENT = MODELS[:-1]       # the diagonal linear recurrences
TIME_INVARIANT = (RETENTION, LINEAR)  # gates that do not depend on the input
SPIKE, NOISE, STEP, COPY = "spike", "noise", "step", "copy task"
SEQUENCES = (SPIKE, NOISE, STEP, COPY)
COPY_TOKENS = 8               # symbols to remember at the start of the copy-task sequence


def check_sequence_input(where: str, x):
    check_tensor(where, "x", x, ndim=2, kind="float")
    if x.shape[1] != FEATURES or x.shape[0] < 1:
        raise ValueError(f"{where}: `x` must be [T, F] with T >= 1 and F = {FEATURES}; got shape "
                         f"{tuple(x.shape)}.")


def check_choice(where: str, name: str, value, choices: tuple):
    if value not in choices:
        raise ValueError(f"{where}: `{name}` must be one of {choices}; got {value!r}.")


def check_lower_bound(where: str, gamma):
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma < 1:
        raise ValueError(f"{where}: `lower_bound` (HGRN's gamma) must be a number in [0, 1); got {gamma!r}.")


def sequence(name: str, length: int = T) -> torch.Tensor:
    """One of the generated input sequences [length, FEATURES] (float64):

    - spike: zero everywhere but one impulse (all features 1) at length // 8 (the impulse response);
    - noise: standard Gaussian (seeded);
    - step: zero, then 1 from the middle on;
    - copy task: COPY_TOKENS one-hot symbols (of FEATURES - 1) to remember, blanks, a marker (the last
      feature) COPY_TOKENS steps before the end, blanks where the copy would be written.
    """
    where = f"{WHERE}.sequence"
    check_choice(where, "name", name, SEQUENCES)
    check_int(where, "length", length, low=2 * COPY_TOKENS + 1 if name == COPY else 1)
    x = torch.zeros(length, FEATURES, dtype=torch.float64)
    g = torch.Generator().manual_seed(SEED + 1)
    if name == SPIKE:
        x[length // 8] = 1.0
    elif name == NOISE:
        x = torch.randn(length, FEATURES, generator=g, dtype=torch.float64)
    elif name == STEP:
        x[length // 2:] = 1.0
    else:
        symbols = torch.randint(0, FEATURES - 1, (COPY_TOKENS,), generator=g)
        x[torch.arange(COPY_TOKENS), symbols] = 1.0
        x[length - COPY_TOKENS - 1, FEATURES - 1] = 1.0
    return x


@functools.lru_cache(maxsize=None)
def projection(name: str, outputs: int = CHANNELS, scale: float = 1.0) -> tuple:
    """(W [FEATURES, outputs], bias [outputs]) of a named map, fixed by SEED and the name (float64):
    W ~ N(0, scale^2 / FEATURES), bias ~ N(0, (scale / 2)^2)."""
    name_code = sum(ord(c) * 31 ** i for i, c in enumerate(name)) % 2**31
    g = torch.Generator().manual_seed(SEED * 1_000_003 + name_code)
    W = torch.randn(FEATURES, outputs, generator=g, dtype=torch.float64) * scale / math.sqrt(FEATURES)
    return W, torch.randn(outputs, generator=g, dtype=torch.float64) * scale / 2


def affine(name: str, x: torch.Tensor, outputs: int = CHANNELS, scale: float = 1.0) -> torch.Tensor:
    """x [T, F] @ W + bias of the named map. -> [T, outputs]"""
    W, bias = projection(name, outputs, scale)
    return x.to(W.dtype) @ W + bias


def rg_lru_lambda() -> torch.Tensor:
    """Griffin's Lambda [D]: a = sigmoid(Lambda) with a^c evenly spread over [0.9, 0.999]."""
    a_c = torch.linspace(0.9, 0.999, CHANNELS, dtype=torch.float64)
    a = a_c ** (1 / RG_LRU_C)
    return torch.log(a) - torch.log1p(-a)  # logit


def rg_lru_maps(x: torch.Tensor) -> tuple:
    """(a, b, v) [T, D] of the RG-LRU (Griffin, section 2): a_t = sigmoid(Lambda)^(c r_t), computed as
    exp(-c r_t softplus(-Lambda)); b_t = sqrt(1 - a_t^2) i_t; v_t = W_v x_t + b_v."""
    check_sequence_input(f"{WHERE}.rg_lru_maps", x)
    r = torch.sigmoid(affine("rg_lru.recurrence_gate", x, scale=2.0))
    i = torch.sigmoid(affine("rg_lru.input_gate", x, scale=2.0))
    log_a = -RG_LRU_C * r * F.softplus(-rg_lru_lambda())
    a = torch.exp(log_a)
    return a, torch.sqrt(-torch.expm1(2 * log_a)) * i, affine("rg_lru.value", x)


def hgrn_maps(x: torch.Tensor, lower_bound: float) -> tuple:
    """(a, b, v) [T, D] of HGRN (section 3): a_t = lambda_t = gamma + (1 - gamma) sigmoid(W_f x_t + b_f)
    (gamma = `lower_bound`), b_t = 1 - lambda_t, v_t = c_t = SiLU(W_c x_t + b_c)."""
    where = f"{WHERE}.hgrn_maps"
    check_sequence_input(where, x)
    check_lower_bound(where, lower_bound)
    mu = torch.sigmoid(affine("hgrn.forget_gate", x, scale=2.0))
    forget = lower_bound + (1 - lower_bound) * mu
    return forget, (1 - lower_bound) * (1 - mu), F.silu(affine("hgrn.candidate", x))


def selective_A() -> torch.Tensor:
    """The selective SSM's A [D] < 0, from -1/2 to -8 (log-spaced over the channels)."""
    return -torch.logspace(math.log10(0.5), math.log10(8.0), CHANNELS, dtype=torch.float64)


def selective_maps(x: torch.Tensor) -> tuple:
    """(a, b, v) [T, D] of a selective SSM with N = 1 (Mamba, section 3.2): Delta_t = softplus(W_Delta x_t
    + b_Delta), biased so that Delta spreads over [0.01, 0.1] at zero input (Mamba's dt initialisation);
    a_t = exp(Delta_t A); b_t = Delta_t B_t with B_t = W_B x_t + b_B (one number per step, the same for
    every channel); v_t = u_t = W_u x_t + b_u."""
    check_sequence_input(f"{WHERE}.selective_maps", x)
    dt = torch.logspace(-2, -1, CHANNELS, dtype=torch.float64)
    delta = F.softplus(affine("selective.delta", x, scale=2.0) + torch.log(torch.expm1(dt)))
    B = affine("selective.B", x, outputs=1) + 1.0
    return torch.exp(delta * selective_A()), delta * B, affine("selective.u", x)


def retention_gammas() -> torch.Tensor:
    """RetNet's decays per channel [D]: 1 - 2^(-5 - head) for HEADS heads (arXiv:2307.08621, section 2.2)."""
    heads = torch.arange(HEADS, dtype=torch.float64).repeat_interleave(CHANNELS // HEADS)
    return 1 - 2.0 ** (-5 - heads)


def retention_maps(x: torch.Tensor) -> tuple:
    """(a, b, v) [T, D] of the diagonal of retention's state: a_t = gamma (fixed), b_t = k_t = W_K x_t + b_K,
    v_t = W_V x_t + b_V."""
    check_sequence_input(f"{WHERE}.retention_maps", x)
    a = retention_gammas().expand(x.shape[0], CHANNELS).clone()
    return a, affine("retention.k", x), affine("retention.v", x)


def linear_attention_maps(x: torch.Tensor) -> tuple:
    """(a, b, v) [T, D] of the diagonal of linear attention's state: a_t = 1, b_t = elu(k_t) + 1,
    v_t = W_V x_t + b_V."""
    check_sequence_input(f"{WHERE}.linear_attention_maps", x)
    return (torch.ones(x.shape[0], CHANNELS, dtype=torch.float64), F.elu(affine("linear.k", x)) + 1,
            affine("linear.v", x))


def local_attention_weights(x: torch.Tensor, window: int) -> torch.Tensor:
    """Softmax attention weights [T, T] of one head over the last `window` positions (s in
    (t - window, t]), zero elsewhere: q_t . k_s / sqrt(D) with q, k = W x + b."""
    where = f"{WHERE}.local_attention_weights"
    check_sequence_input(where, x)
    check_int(where, "window", window, low=1)
    q, k = affine("local.q", x), affine("local.k", x)
    t = torch.arange(x.shape[0])
    inside = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - window)
    scores = (q @ k.T / math.sqrt(CHANNELS)).masked_fill(~inside, -math.inf)
    return torch.softmax(scores, dim=-1)


def recurrence_maps(model: str, x: torch.Tensor, lower_bound: float = 0.0) -> tuple:
    """(a, b, v) [T, D] of one of the RECURRENT models."""
    check_choice(f"{WHERE}.recurrence_maps", "model", model, RECURRENT)
    if model == HGRN:
        return hgrn_maps(x, lower_bound)
    return {RG_LRU: rg_lru_maps, SELECTIVE: selective_maps, RETENTION: retention_maps,
            LINEAR: linear_attention_maps}[model](x)


def states(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """h [T, D] of h_t = a_t h_{t-1} + b_t v_t (h_0 = 0) by the library's scan (the reference)."""
    return scan(a[None], (b * v)[None])[0]


def decay_field(a: torch.Tensor) -> torch.Tensor:
    """prod_{k=s+1..t} a_k [T, T, D] (t, s, channel): the fraction of h_s still in h_t; 1 on the
    diagonal, 0 for s > t. From the cumulative log-gates in float64: exp(L_t - L_s), L_t = sum_{k<=t}
    log a_k (a product of tiny gates is 0, never NaN)."""
    where = f"{WHERE}.decay_field"
    check_tensor(where, "a", a, ndim=2, kind="float")
    if a.numel() and not (float(a.min()) > 0 and float(a.max()) <= 1):
        raise ValueError(f"{where}: the gates `a` must lie in (0, 1]; got values from {float(a.min()):.4g} "
                         f"to {float(a.max()):.4g}.")
    L = torch.log(a.double()).cumsum(0)  # [T, D]
    causal = torch.ones(len(a), len(a), dtype=torch.bool).tril()[:, :, None]
    return torch.where(causal, torch.exp((L[:, None] - L[None, :]).clamp_max(0)), 0.0)


def receptive_field(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d h_t / d v_s [T, T, D] = prod_{k=s+1..t} a_k * b_s for h_t = a_t h_{t-1} + b_t v_t."""
    check_tensor(f"{WHERE}.receptive_field", "b", b, ndim=2, kind="float")
    if b.shape != a.shape:
        raise ValueError(f"{WHERE}.receptive_field: `b` must have a's shape {tuple(a.shape)}; got "
                         f"{tuple(b.shape)}.")
    return decay_field(a) * b.double()[None]


def half_life(a: torch.Tensor, t: int = -1) -> int | None:
    """The memory half-life at position t (default the last): the fewest steps k back for which the
    fraction of h_{t-k} still in h_t, averaged over the channels, is at most 1/2; None if it never
    falls that far within the sequence."""
    check_tensor(f"{WHERE}.half_life", "a", a, ndim=2, kind="float")
    t = t % len(a)
    kept = decay_field(a[:t + 1])[t].mean(-1).flip(0)  # [t + 1], k = 0, 1, ..., t steps back
    below = (kept <= 0.5).nonzero()
    return int(below[0]) if len(below) else None


@dataclass(frozen=True, eq=False)
class Trace:
    """One model on one sequence: x [T, F]; gates a, scales b, values v [T, D] (None for local attention,
    whose v are the attention's values); states [T, D] (local attention: its output); field [T, T, D]
    (d h_t / d v_s; local attention: its weights for every channel)."""

    model: str
    sequence: str
    lower_bound: float
    window: int
    x: torch.Tensor
    gates: torch.Tensor | None
    scales: torch.Tensor | None
    values: torch.Tensor
    states: torch.Tensor
    field: torch.Tensor

    @property
    def mean_gate(self) -> float | None:
        return None if self.gates is None else float(self.gates.mean())

    @property
    def half_life(self) -> int | None:
        return None if self.gates is None else half_life(self.gates)

    @property
    def field_mean(self) -> torch.Tensor:
        """|d h_t / d v_s| averaged over the channels. -> [T, T]"""
        return self.field.abs().mean(-1)


@functools.lru_cache(maxsize=256)
def trace(model: str, sequence_name: str, lower_bound: float = 0.5, window: int = 8) -> Trace:
    """The model's gates, states and receptive field on the named sequence (cached: the widget asks again
    for what it drew before). `lower_bound` applies to HGRN only, `window` to local attention only."""
    where = f"{WHERE}.trace"
    check_choice(where, "model", model, MODELS)
    check_lower_bound(where, lower_bound)
    check_int(where, "window", window, low=1)
    x = sequence(sequence_name)
    if model == LOCAL:
        weights = local_attention_weights(x, window)
        v = affine("local.v", x)
        return Trace(model, sequence_name, lower_bound, window, x, None, None, v, weights @ v,
                     weights[:, :, None].expand(-1, -1, CHANNELS))
    a, b, v = recurrence_maps(model, x, lower_bound)
    return Trace(model, sequence_name, lower_bound, window, x, a, b, v, states(a, b, v),
                 receptive_field(a, b))
