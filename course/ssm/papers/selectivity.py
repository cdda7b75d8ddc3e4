"""Selectivity: an input-dependent A_t solves selective copying where a time-invariant recurrence fails.

Gu and Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (arXiv:2312.00752),
section 3.1 (Figure 2) and section 4.1.1 (Table 1): on *selective copying* (data tokens scattered at
random places among noise tokens, to be output in order at the end; `course.ssm.tasks`), a linear
time-invariant SSM (S4) cannot skip the noise, since its convolution kernel is the same whatever the
input, while S6, whose Delta_t, B_t and C_t are projections of the input, solves it. In the DSF's words
(arXiv:2405.15731): A_t = exp(Delta_t A) depends on the input, or it does not.

The toy: a small model (embedding, per block a causal depthwise convolution of width 4, SiLU, an SSM
through the `ssm.selective_scan` op, a residual; a linear read-out), trained on short selective-copying
sequences. The baseline is the same model with Delta, B and C fixed parameters (LTI, the S4D-like
ablation of Table 1), widened until it has at least as many parameters. The claim (a reproduction, 3
seeds): the selective model's accuracy on held-out sequences is high, the LTI model's is well below.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.ssm import ops
from course.ssm.tasks import selective_copying, train_sequence_model

T_TASK, TOKENS, COPIES = 16, 4, 3
WIDTH, STATE, BLOCKS, CONV = 16, 8, 2, 4
STEPS, LR, BATCH = 200, 0.02, 32


class SSMBlock(nn.Module):
    """x + SSM(SiLU(conv(x))): Delta = softplus(x W_delta + b), B = x W_B, C = x W_C when `selective`
    (S6, arXiv:2312.00752 Algorithm 2), else Delta, B, C learned constants (LTI). [B, T, D] -> [B, T, D]."""

    def __init__(self, width: int, state: int, selective: bool, conv: int = CONV):
        super().__init__()
        self.selective = selective
        self.conv = nn.Conv1d(width, width, conv, groups=width, padding=conv - 1)
        self.log_A = nn.Parameter(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).repeat(width, 1))
        self.D = nn.Parameter(torch.ones(width))
        if selective:
            self.delta = nn.Linear(width, width)
            self.B, self.C = nn.Linear(width, state, bias=False), nn.Linear(width, state, bias=False)
        else:
            self.delta = nn.Parameter(torch.zeros(width))
            self.B, self.C = (nn.Parameter(torch.randn(state) / math.sqrt(state)) for _ in range(2))
        with torch.no_grad():  # Delta starts in [0.001, 0.1], as Mamba initialises it
            bias = self.delta.bias if selective else self.delta
            bias.copy_(torch.log(torch.expm1(torch.exp(torch.empty(width).uniform_(math.log(1e-3),
                                                                                   math.log(0.1))))))
        self.norm = nn.LayerNorm(width)

    def parts(self, u):
        """(Delta [B, T, D], B [B, T, N], C [B, T, N]) for the SSM input u [B, T, D]."""
        if self.selective:
            return F.softplus(self.delta(u)), self.B(u), self.C(u)
        Bt, T, _ = u.shape
        return (F.softplus(self.delta).expand(Bt, T, -1), self.B.expand(Bt, T, -1).contiguous(),
                self.C.expand(Bt, T, -1).contiguous())

    def forward(self, x):
        T = x.shape[1]
        u = F.silu(self.conv(self.norm(x).transpose(1, 2))[..., :T].transpose(1, 2))
        delta, B, C = self.parts(u)
        return x + ops.selective_scan(u, delta.contiguous(), -self.log_A.exp(), B, C, self.D, backend="auto")


class CopyModel(nn.Module):
    """tokens [B, T] -> logits [B, T, V]: embedding, `blocks` SSMBlocks, LayerNorm, read-out."""

    def __init__(self, vocab: int, width: int, state: int, selective: bool, blocks: int | None = None):
        super().__init__()
        blocks = BLOCKS if blocks is None else blocks
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(SSMBlock(width, state, selective) for _ in range(blocks))
        self.norm, self.read = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, tokens):
        check_tensor("ssm.CopyModel", "tokens", tokens, ndim=2, kind="int")
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.read(self.norm(x))


def build(selective: bool, seed: int, width: int | None = None) -> CopyModel:
    """The selective model at WIDTH, or the LTI model at `width` (default: the smallest width with at
    least the selective model's parameter count), built under `fork_rng` with the seed."""
    vocab = TOKENS + 2
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if selective:
            return CopyModel(vocab, width or WIDTH, STATE, True)
        if width is None:
            target = parameter_count(CopyModel(vocab, WIDTH, STATE, True))
            width = WIDTH
            while parameter_count(CopyModel(vocab, width, STATE, False)) < target:
                width += 1
        torch.manual_seed(seed)
        return CopyModel(vocab, width, STATE, False)


def task(n: int, seed: int):
    return selective_copying(n, T_TASK, TOKENS, COPIES, seed)


def selectivity_experiment(seed: int) -> dict:
    """Held-out accuracy of the selective and the (matched, LTI) model on selective copying."""
    check_int("selectivity_experiment", "seed", seed, low=0)
    accuracy, sizes = {}, {}
    for name, selective in (("selective", True), ("lti", False)):
        model = build(selective, seed)
        sizes[name] = parameter_count(model)
        accuracy[name] = train_sequence_model(model, task, STEPS, LR, seed, batch=BATCH)
    return {"selective_accuracy": accuracy["selective"], "lti_accuracy": accuracy["lti"],
            "accuracy_gap": accuracy["selective"] - accuracy["lti"],
            "selective_parameters": float(sizes["selective"]), "lti_parameters": float(sizes["lti"]),
            "chance": 1.0 / TOKENS}


CLAIM = Claim(
    paper="Gu and Dao 2023 (Mamba)",
    citation="Mamba: Linear-Time Sequence Modeling with Selective State Spaces (arXiv:2312.00752), "
             "section 3.1, Figure 2 and Table 1 (selective copying)",
    statement="selectivity (Delta, B, C, hence A_t = exp(Delta_t A), computed from the input) solves "
              "selective copying, where the same model with a time-invariant recurrence (LTI) fails",
    kind=REPRODUCTION,
    experiment=selectivity_experiment,
    thresholds=("selective_accuracy >= 0.8", "accuracy_gap >= 0.1"),
    summary=lambda m: (f"held-out copying accuracy {m['selective_accuracy']:.2f} selective against "
                       f"{m['lti_accuracy']:.2f} LTI ({m['selective_parameters']:.0f} and "
                       f"{m['lti_parameters']:.0f} parameters; chance {m['chance']:.2f})"),
    note=f"Toy scale: T = {T_TASK}, {COPIES} data tokens of {TOKENS} kinds, {BLOCKS} blocks, "
         f"{STEPS} Adam steps. The LTI model is far above chance (a fixed kernel over a short sequence "
         "still places many tokens); the paper's LTI model (S4) fails at T = 4096.",
)
