"""KAMoE: a mixture of experts whose gate is a gated residual Kolmogorov-Arnold network (GRKAN).

Inzirillo and Genet 2024, "A Gated Residual Kolmogorov-Arnold Networks for Mixtures of Experts"
(arXiv 2409.15161, section III). The mixture is y = sum_e G(x)_e E_e(x), where the gate G is either
the usual softmax of a linear map, Softmax(W x + b), or

    GRKAN(x) = LayerNorm(W_skip x + GLU(eta_1))    (skip projected where widths differ, as in TFT)
    eta_1    = KAN_1(eta_2),  eta_2 = ELU(KAN_2(x))
    GLU(g)   = sigmoid(W_4 g + b_4) * (W_5 g + b_5)
    G(x)     = Softmax(GRKAN(x))

which is the gated residual network of the Temporal Fusion Transformer (Lim et al. 2021, eqs. 2-5)
with its two linear maps replaced by KAN layers (Liu et al. 2024, "KAN", eq. 2.10):
phi_ij(x_i) = w_b silu(x_i) + w_s sum_c c_ijc B_c(x_i), out_j = sum_i phi_ij(x_i), with cubic
B-splines B_c on a uniform grid (Cox-de Boor recursion).

The toy is a regime-switching autoregressive series (a self-exciting threshold AR): the next value
follows a persistent AR rule while the recent window is calm and an oscillating rule once its mean
absolute level crosses a threshold, so the right gate is a sum of univariate functions of the
window, which a KAN represents directly and a linear gate cannot.

The paper's point is the KAN inside the gate, so the baseline that decides the claim is the same
gate with linear layers (GRN) at a matched parameter count; the 28-parameter softmax-linear gate is
reported beside them. The KAN layer is the course's one B-spline KAN layer, the neuron-models family's
(`course.neurons.layers.KANLayer`, over the op `neurons.kan_linear`).
"""
import random

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.neurons.layers import KANLayer
from course.train import fit, seeded


def regime_switching_series(length: int = 3000, window: int = 6, threshold: float = 0.3,
                            noise: float = 0.15, seed: int = 0):
    """A threshold AR series: calm x_t = 0.99 x_{t-1}, turbulent x_t = -0.6 x_{t-1} + 0.3 x_{t-2}.

    Plus noise * N(0, 1). The turbulent rule applies when the mean |x| of the last `window` values
    exceeds `threshold` (about a third of the time with the defaults). Returns x [length]
    (standardized), regime [length] (0 calm, 1 turbulent) and the noise standard deviation in the
    standardized units (the best possible RMS error of a one-step prediction).
    """
    rng = random.Random(seed)
    x, regime = [0.0] * length, [0] * length
    for t in range(window, length):  # plain floats: a scalar loop is 100x faster than on tensors
        turbulent = sum(abs(v) for v in x[t - window:t]) > threshold * window
        regime[t] = int(turbulent)
        step = -0.6 * x[t - 1] + 0.3 * x[t - 2] if turbulent else 0.99 * x[t - 1]
        x[t] = step + noise * rng.gauss(0.0, 1.0)
    x = torch.tensor(x)
    return (x - x.mean()) / x.std(), torch.tensor(regime), noise / x.std().item()


def lagged_windows(x, window: int):
    """Inputs and next-value targets: X[t] = x[t - window : t], y[t] = x[t]. -> [N, window], [N]"""
    X = x.unfold(0, window, 1)[:-1]  # [N, window]
    return X, x[window:]


class GRKANGate(nn.Module):
    """The KAMoE gate: Softmax(LayerNorm(W_skip x + GLU(KAN_1(ELU(KAN_2(x)))))).

    With `kan=False` the two KAN layers are linear maps: the gated residual network (GRN) of the
    Temporal Fusion Transformer, the gate the paper compares GRKAN with.
    """

    def __init__(self, d_in: int, num_experts: int, d_hidden: int = 4, kan: bool = True,
                 seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        if kan:
            self.layer_2 = KANLayer(d_in, d_hidden, generator=g)
            self.layer_1 = KANLayer(d_hidden, d_hidden, generator=g)
        else:
            self.layer_2, self.layer_1 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_hidden)
        self.glu = nn.Linear(d_hidden, 2 * num_experts)  # W_5 (values) and W_4 (gates) side by side
        self.skip = nn.Linear(d_in, num_experts, bias=False)
        self.norm = nn.LayerNorm(num_experts)

    def forward(self, x):
        """x [N, d_in] -> gates [N, E], rows summing to 1"""
        eta_1 = self.layer_1(F.elu(self.layer_2(x)))  # [N, d_hidden]
        return self.norm(self.skip(x) + F.glu(self.glu(eta_1), dim=-1)).softmax(dim=-1)


class LinearGate(nn.Module):
    """The usual gate: Softmax(W x + b)."""

    def __init__(self, d_in: int, num_experts: int):
        super().__init__()
        self.linear = nn.Linear(d_in, num_experts)

    def forward(self, x):
        """x [N, d_in] -> gates [N, E]"""
        return self.linear(x).softmax(dim=-1)


class MixtureOfLinearExperts(nn.Module):
    """y = sum_e G(x)_e (x w_e + b_e): linear autoregressive experts under a given gate."""

    def __init__(self, gate: nn.Module, d_in: int, num_experts: int):
        super().__init__()
        self.gate = gate
        self.experts = nn.Linear(d_in, num_experts)  # column e is expert e

    def forward(self, x):
        """x [N, d_in] -> prediction [N], gates [N, E]"""
        gates = self.gate(x)
        return (gates * self.experts(x)).sum(-1), gates


def train_mixture(model: nn.Module, X, y, steps: int = 300, lr: float = 0.02, seed: int = 0):
    """Full-batch Adam on the squared error of the next value."""
    fit(model.parameters(), lambda: F.mse_loss(model(X)[0], y), steps, lr, seed=seed,
        desc="mixture")
    return model


def matched_grn_width(d_in: int, num_experts: int, target: int) -> int:
    """The hidden width at which the GRN gate has the parameter count closest to `target`."""
    return min(range(1, 65), key=lambda h: abs(
        parameter_count(GRKANGate(d_in, num_experts, d_hidden=h, kan=False)) - target))


def make_gates(window: int, num_experts: int, seed: int) -> dict:
    """The three gates, each initialised from its own seeded RNG (so one's size cannot move another)."""
    def built(build):
        with seeded(seed):
            return build()

    grkan = built(lambda: GRKANGate(window, num_experts, seed=seed))
    width = matched_grn_width(window, num_experts, parameter_count(grkan))
    return {"linear": built(lambda: LinearGate(window, num_experts)),
            "grn": built(lambda: GRKANGate(window, num_experts, d_hidden=width, kan=False, seed=seed)),
            "grkan": grkan}


def kamoe_experiment(seed: int, num_experts: int = 4, window: int = 6, steps: int = 300) -> dict:
    """Test MSE of the linear-, GRN- (matched size) and GRKAN-gated mixtures of linear AR experts.

    The first two thirds of the series train, the last third tests; the mixtures get the same
    experts, optimizer and steps. With two experts the GRKAN gate degenerates: the LayerNorm of a
    2-vector is always (+1, -1) up to its affine map, so the gate can only pick a side.
    """
    check_int("kamoe.kamoe_experiment", "num_experts", num_experts, low=3)
    x, regime, noise = regime_switching_series(window=window, seed=seed)
    X, y = lagged_windows(x, window)
    split = 2 * len(y) // 3
    m = {"noise_floor_mse": noise ** 2, "turbulent_fraction": regime.float().mean().item()}
    for name, gate in make_gates(window, num_experts, seed).items():
        with seeded(seed):
            model = MixtureOfLinearExperts(gate, window, num_experts)
        train_mixture(model, X[:split], y[:split], steps=steps, seed=seed)
        with torch.no_grad():
            m[f"{name}_mse"] = F.mse_loss(model(X[split:])[0], y[split:]).item()
        m[f"{name}_gate_params"] = parameter_count(gate)
    m["grkan_over_grn"] = m["grkan_mse"] / m["grn_mse"]
    m["grkan_over_linear"] = m["grkan_mse"] / m["linear_mse"]
    return m


CLAIM = Claim(
    paper="Inzirillo and Genet 2024",
    citation="A Gated Residual Kolmogorov-Arnold Networks for Mixtures of Experts (KAMoE, "
             "arXiv:2409.15161), section III",
    statement="replacing the linear layers of the mixture's gated residual gate by KAN layers "
              "(GRKAN) improves the mixture's predictions on sequential data",
    kind=REPRODUCTION,
    experiment=kamoe_experiment,
    thresholds=("grkan_over_grn <= 0.95",),
    held_on=(2,),
    note="At a matched parameter count the GRKAN gate's error is 0.95x, 1.00x and 0.89x the GRN "
         "gate's on seeds 0, 1, 2: past the 5% margin on seed 2 only (seed 0 misses it by a hair, "
         "0.952); both beat the small softmax-linear gate by 20-35%. The KAN's gain over the same gate "
         "with linear layers is small and not consistent here.",
    summary=lambda m: (
        f"threshold-AR series ({m['turbulent_fraction']:.0%} turbulent), 4 linear AR experts, "
        f"one-step test MSE (standardized; noise floor {m['noise_floor_mse']:.2f}): GRKAN gate "
        f"{m['grkan_mse']:.3f} ({m['grkan_gate_params']} parameters) vs the same gate with linear "
        f"layers (GRN, {m['grn_gate_params']} parameters) {m['grn_mse']:.3f}: "
        f"{m['grkan_over_grn']:.2f}x; the softmax-linear gate ({m['linear_gate_params']} "
        f"parameters) {m['linear_mse']:.3f}"),
)
