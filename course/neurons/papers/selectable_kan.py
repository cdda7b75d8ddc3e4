"""Activation-space selectable KANs (Yang et al. 2024, "Activation Space Selectable Kolmogorov-Arnold
Networks", arXiv:2408.08338: the selectable activation spaces and the three training phases).

A KAN layer puts a learnable function of one variable on every edge (Liu et al. 2024, eq. 2.10, the
library's `course.neurons.kan`); the function is a combination of one fixed family of basis functions, its
*activation space*: cubic B-splines in the original KAN, sines and cosines in a Fourier KAN, Gaussian bumps
in an RBF KAN. No single space suits every target. S-KAN gives each input node i a learnable choice among
K spaces, here a softmax over selection logits s_i [K]:

    out_o = b_o + sum_i [ w_io silu(x_i) + sum_k softmax(s_i)_k sum_c c^k_ioc B^k_c(x_i) ],

trained in full first (every space present, Adam), then *selected*: each node keeps the space of its
largest weight (the weights become one-hot), and the selected network's coefficients are fitted again
(the paper's full training, selective training and pruning phases, in their simplest form). A selected
S-KAN has exactly the parameters of a single-space KAN of the same shape; only which space each node uses
differs. With the selection fixed, a KAN layer is linear in its coefficients, so the selected S-KAN and
every single-space KAN baseline get their least-squares coefficients (`least_squares_coefficients`): each
is compared at the best fit its space allows, and no optimiser's luck decides between them.

The spaces here, each with C = 8 functions on [-1, 1]: "bspline" (the library's cubic B-splines on a
uniform grid of 5 intervals, `course.neurons.kan.cubic_b_spline_basis`), "fourier" (sin k pi x, cos k pi x,
k = 1..4) and "rbf" (Gaussians exp(-((x - c_j) / h)^2) at 8 evenly spaced centres, h their spacing).

The claim's toys: a periodic 1-D target sin(3 pi x) (which a Fourier space fits exactly and B-splines on 5
intervals cannot), an aperiodic one exp(1.5 x) (smooth, but its periodic extension jumps: a Fourier space
fits it only with the silu term's help, to a relative MSE of about 1e-4 where B-splines reach 1e-8), and
the 2-D mixed target sin(3 pi x_1) + exp(1.5 x_2), which needs a different space on each input. The
experiment compares S-KAN with the single-space KANs on every target, and with an MLP of the selected
S-KAN's parameter count on the 2-D one (`fit_target(..., with_mlp=True)` adds it on the 1-D targets).

Shapes: x [N, I] in [-1, 1]; basis values [N, I, C]; a layer maps [N, I] -> [N, O].
"""
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count, relative_mse
from course.neurons.kan import cubic_b_spline_basis, uniform_knots
from course.train import DecayingAdam, fit, one_thread, seeded

SPACES = ("bspline", "fourier", "rbf")
LOCAL_SPACES = ("bspline", "rbf")  # spaces of localised functions: what suits an aperiodic target
SIZE = 8  # basis functions per edge in every space
N_TRAIN, N_TEST, FULL_STEPS, MLP_STEPS, LR = 256, 2000, 150, 300, 0.03
TARGETS = {"periodic": lambda x: torch.sin(3 * math.pi * x[:, 0]),
           "aperiodic": lambda x: torch.exp(1.5 * x[:, 0]),
           "mixed_2d": lambda x: torch.sin(3 * math.pi * x[:, 0]) + torch.exp(1.5 * x[:, 1])}
SUITED = {"periodic": (("fourier",),), "aperiodic": (LOCAL_SPACES,),
          "mixed_2d": (("fourier",), LOCAL_SPACES)}  # per input node: the spaces that suit it


def basis_functions(x, space: str):
    """The C = 8 functions of one activation space at every input. x [N, I] -> [N, I, 8]"""
    if space not in SPACES:
        raise ValueError(f"selectable_kan.basis_functions: `space` must be one of {SPACES}; got {space!r}.")
    check_tensor("selectable_kan.basis_functions", "x", x, kind="float")
    if space == "bspline":
        return cubic_b_spline_basis(x, uniform_knots(SIZE - 3, 3, 1.0, x.dtype).to(x.device))
    if space == "fourier":
        angles = math.pi * x.unsqueeze(-1) * torch.arange(1, SIZE // 2 + 1, dtype=x.dtype, device=x.device)
        return torch.cat([angles.sin(), angles.cos()], -1)
    centres = torch.linspace(-1, 1, SIZE, dtype=x.dtype, device=x.device)
    return torch.exp(-((x.unsqueeze(-1) - centres) / (2 / (SIZE - 1))) ** 2)


class SelectableKANLayer(nn.Module):
    """A KAN layer whose every input node mixes the activation spaces `spaces` by softmax weights (S-KAN);
    with one space it is that space's plain KAN layer. [N, d_in] -> [N, d_out]"""

    def __init__(self, d_in: int, d_out: int, spaces=SPACES, generator: torch.Generator | None = None):
        super().__init__()
        check_int("selectable_kan.SelectableKANLayer", "d_in", d_in, low=1)
        check_int("selectable_kan.SelectableKANLayer", "d_out", d_out, low=1)
        spaces = tuple(spaces)
        if not spaces or any(s not in SPACES for s in spaces) or len(set(spaces)) < len(spaces):
            raise ValueError(f"selectable_kan.SelectableKANLayer: `spaces` must be distinct names among "
                             f"{SPACES}; got {spaces!r}.")
        self.spaces = spaces
        self.base = nn.Parameter(torch.randn(d_in, d_out, generator=generator) / d_in ** 0.5)
        self.coef = nn.Parameter(0.1 * torch.randn(len(spaces), d_in, SIZE, d_out, generator=generator)
                                 / d_in ** 0.5)
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.logits = nn.Parameter(torch.zeros(d_in, len(spaces)))  # s_i: uniform weights at the start
        self.register_buffer("chosen", torch.full((d_in,), -1))  # -1: not selected yet

    def weights(self):
        """The selection weights [d_in, K], a distribution over the spaces per input node (one-hot once
        `select` has run)."""
        if (self.chosen >= 0).all():
            return F.one_hot(self.chosen, len(self.spaces)).to(self.logits.dtype)
        return torch.softmax(self.logits, -1)

    def features(self, x):
        """What does not depend on the parameters, computed once for a fixed batch: (silu(x) [N, I], each
        space's basis values [N, I, C])."""
        check_tensor("selectable_kan.SelectableKANLayer", "x", x, ndim=2, kind="float")
        if x.shape[1] != self.base.shape[0]:
            raise ValueError(f"selectable_kan.SelectableKANLayer: `x` must be [N, {self.base.shape[0]}]; "
                             f"got {tuple(x.shape)}.")
        return F.silu(x), [basis_functions(x, space) for space in self.spaces]

    def combine(self, features):
        """The layer's output from `features`: silu part, bias, and the weighted spaces. -> [N, d_out]"""
        silu, bases = features
        weights = self.weights()
        out = silu @ self.base + self.bias
        for k, basis in enumerate(bases):
            if (weights[:, k] == 0).all():
                continue  # a space no node selected costs nothing
            out = out + torch.einsum("nic,ico->no", basis * weights[:, k, None], self.coef[k])
        return out

    def forward(self, x):
        return self.combine(self.features(x))

    def select(self) -> tuple:
        """The selective phase: each input node keeps the space of its largest weight. -> the names"""
        with torch.no_grad():
            self.chosen.copy_(self.logits.argmax(-1))
        return tuple(self.spaces[k] for k in self.chosen.tolist())

    def deployed_parameters(self) -> int:
        """Parameters a selected layer keeps: silu weights, bias and each node's chosen coefficients."""
        I, O = self.base.shape
        return I * O + O + I * SIZE * O


def mlp(d_in: int, parameters: int) -> nn.Sequential:
    """One hidden SiLU layer, as wide as `parameters` allows: [N, d_in] -> [N, 1]"""
    width = max(1, (parameters - 1) // (d_in + 2))
    return nn.Sequential(nn.Linear(d_in, width), nn.SiLU(), nn.Linear(width, 1))


def uniform_inputs(n: int, d: int, seed: int):
    """n points uniform in [-1, 1]^d. -> [n, d]"""
    check_int("selectable_kan.uniform_inputs", "n", n, low=0)
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def train(model: nn.Module, x, y, steps: int, seed: int):
    """Full-batch MSE, Adam decaying to 0 (a KAN layer's basis values computed once for the batch)."""
    if isinstance(model, SelectableKANLayer):
        features = model.features(x)
        predict = lambda: model.combine(features)  # noqa: E731
    else:
        predict = lambda: model(x)  # noqa: E731
    loss = lambda: (predict().squeeze(-1) - y).pow(2).mean()  # noqa: E731
    fit(model.parameters(), loss, steps, LR, seed=seed, optimizer=DecayingAdam, total=steps)


def held_out_error(model: nn.Module, x, y) -> float:
    """Relative MSE of the model's output [N] against y [N] (`course.metrics.relative_mse`)."""
    with torch.no_grad():
        return relative_mse(model(x).squeeze(-1), y)


def least_squares_coefficients(layer: SelectableKANLayer, x, y, ridge: float = 1e-6):
    """For fixed selection weights a KAN layer is linear in (silu weights, bias, coefficients): set them to
    the (ridge-regularised) least-squares fit of y [N] or [N, O] on x [N, I], the best fit any training of
    them could reach. Spaces of weight 0 keep their coefficients."""
    check_tensor("selectable_kan.least_squares_coefficients", "y", y, kind="float")
    if y.shape[0] != x.shape[0] or y.dim() not in (1, 2):
        raise ValueError(f"selectable_kan.least_squares_coefficients: `y` must be [N] or [N, O] with N = "
                         f"{x.shape[0]} rows of x; got {tuple(y.shape)}.")
    silu, bases = layer.features(x)
    weights = layer.weights().detach()
    columns, slots = [silu, torch.ones(x.shape[0], 1, dtype=x.dtype)], []
    for k, basis in enumerate(bases):
        for i in range(x.shape[1]):
            if weights[i, k] > 0:
                columns.append(basis[:, i] * weights[i, k])
                slots.append((k, i))
    design = torch.cat(columns, 1).double()  # [N, I + 1 + C * (used (space, node) pairs)]
    target = (y if y.dim() == 2 else y[:, None]).double()
    gram = design.T @ design + ridge * torch.eye(design.shape[1], dtype=torch.float64)
    solution = torch.linalg.solve(gram, design.T @ target).to(layer.coef.dtype)  # [columns, O]
    I = x.shape[1]
    with torch.no_grad():
        layer.base.copy_(solution[:I])
        layer.bias.copy_(solution[I])
        for n, (k, i) in enumerate(slots):
            layer.coef[k, i] = solution[I + 1 + n * SIZE: I + 1 + (n + 1) * SIZE]
    return layer


def fit_target(target: str, seed: int, with_mlp: bool = True) -> dict:
    """S-KAN on one target: the full phase trained with every space (Adam), then selected, then its
    coefficients fitted by least squares; each single-space KAN fitted by least squares; an MLP of the
    selected S-KAN's parameter count (Adam; only `with_mlp`). -> held-out relative MSEs, the selection
    weights after the full phase and the spaces selected."""
    if target not in TARGETS:
        raise ValueError(f"selectable_kan.fit_target: `target` must be one of {tuple(TARGETS)}; got "
                         f"{target!r}.")
    d = 2 if target.endswith("2d") else 1
    x, x_test = uniform_inputs(N_TRAIN, d, seed), uniform_inputs(N_TEST, d, seed + 1000)
    y, y_test = TARGETS[target](x), TARGETS[target](x_test)
    out = {}
    with seeded(seed):
        skan = SelectableKANLayer(d, 1)
    train(skan, x, y, FULL_STEPS, seed)
    out["full"] = held_out_error(skan, x_test, y_test)
    out["weights"] = skan.weights().detach()
    out["selected_spaces"] = skan.select()
    least_squares_coefficients(skan, x, y)
    out["skan"], out["skan_parameters"] = held_out_error(skan, x_test, y_test), skan.deployed_parameters()
    for space in SPACES:
        single = least_squares_coefficients(SelectableKANLayer(d, 1, spaces=(space,)), x, y)
        out[space] = held_out_error(single, x_test, y_test)
    if with_mlp:
        with seeded(seed):
            net = mlp(d, skan.deployed_parameters())
        train(net, x, y, MLP_STEPS, seed)
        out["mlp"], out["mlp_parameters"] = held_out_error(net, x_test, y_test), parameter_count(net)
    out["selected_right"] = sum(chosen in suited for chosen, suited in zip(out["selected_spaces"],
                                                                              SUITED[target]))
    return out


@functools.lru_cache(maxsize=3)
@one_thread()
def selection_experiment(seed: int) -> dict:
    """The three targets: what S-KAN selects, and its error against single-space KANs and an MLP."""
    out, right = {}, 0
    for target in TARGETS:
        result = fit_target(target, seed, with_mlp=target == "mixed_2d")
        right += result["selected_right"]
        for name in ("skan", "full", *SPACES, "mlp"):
            if name in result:
                out[f"{target}_{name}"] = result[name]
        for i, node_weights in enumerate(result["weights"]):
            for space, w in zip(SPACES, node_weights.tolist()):
                out[f"{target}_node{i}_{space}_weight"] = w
    out["selected_right"] = float(right)  # of 4 nodes: periodic, aperiodic, and the 2-D target's two
    out["skan_parameters"] = float(result["skan_parameters"])
    out["mlp_parameters"] = float(result["mlp_parameters"])
    best_single = min(out[f"mixed_2d_{space}"] for space in SPACES)
    out["mixed_best_single_over_skan"] = best_single / out["mixed_2d_skan"]
    out["mixed_mlp_over_skan"] = out["mixed_2d_mlp"] / out["mixed_2d_skan"]
    return out


CLAIM = Claim(
    paper="Yang et al. 2024",
    citation="Activation Space Selectable Kolmogorov-Arnold Networks (arXiv:2408.08338): S-KAN selects an "
             "activation space per node, and outperforms single-space KANs and MLPs of the same parameter "
             "level on function fitting (abstract and the function-fitting experiments)",
    statement="each node's learned selection picks the activation space that suits its input's target, and "
              "on a target that needs different spaces on different inputs the selected S-KAN fits better "
              "than any single-space KAN and than an MLP of the same parameter count",
    kind=REPRODUCTION,
    experiment=selection_experiment,
    thresholds=("selected_right >= 4", "mixed_best_single_over_skan >= 2", "mixed_mlp_over_skan >= 2"),
    summary=lambda m: (
        f"{m['selected_right']:.0f} of 4 nodes selected the suited space; on sin(3 pi x1) + exp(1.5 x2) "
        f"held-out relative MSE {m['mixed_2d_skan']:.2g} for the selected S-KAN against B-spline "
        f"{m['mixed_2d_bspline']:.2g}, Fourier {m['mixed_2d_fourier']:.2g}, RBF {m['mixed_2d_rbf']:.2g} KANs "
        f"and {m['mixed_2d_mlp']:.2g} for an MLP ({m['mlp_parameters']:.0f} parameters against "
        f"{m['skan_parameters']:.0f})"),
    held_on=(0, 1),
    note="One KAN layer (the targets are sums of one-variable functions, which one layer represents), 8 "
         "basis functions per edge in each space, a silu term and a bias on every layer; S-KAN's full phase "
         "trains 150 full-batch Adam steps with every space, then the selected S-KAN and each single-space "
         "KAN get least-squares coefficients; the MLP (17 parameters against 19) trains 300 Adam steps. "
         "Not reproduced on seed 2: the aperiodic input of the 2-D target selected Fourier (weights 0.45 "
         "Fourier, 0.30 RBF, 0.25 B-spline), since a Fourier space plus the silu term and the bias also fits "
         "exp(1.5 x) closely (relative MSE 1e-4), so the weights separate weakly in 150 steps; the selected "
         "S-KAN is then the Fourier KAN (ratio 1). The periodic inputs chose Fourier on every seed (weight "
         "about 0.85 in 1-D). An earlier variant with 300 full-phase steps (cut for the time budget) "
         "selected the suited space on all three seeds.",
)
