"""Adaptive rational activations keep a network plastic on a target that keeps changing.

Delfosse, Schramowski, Mundt, Molina and Kersting, "Adaptive Rational Activations to Boost Deep
Reinforcement Learning" (arXiv:2102.09407). The activation of each layer is a learnable rational function
(section 2, the safe Padé form of `course.neurons.rational`),

    R(x) = (a_0 + a_1 x + ... + a_5 x^5) / (1 + |b_1 x + ... + b_4 x^4|),

initialised to leaky ReLU and trained with the network. The paper's point is that reinforcement learning is
non-stationary (the targets move as the policy improves), that a network with a fixed activation adapts
to each new target slowly and loses plasticity, and that learnable rationals, which can change their
shape per layer, fit the moving targets faster (its Atari experiments; the toy below stands in for them).

The toy (`plasticity_experiment`, a reproduction): a regression whose target switches every PHASE_STEPS
steps, PHASES times, to a new sine sin(omega pi / 2 x + phi) on [-1, 1] (omega uniform in [2, 6], phi
uniform, drawn from the seed); the network trains on without a reset, as an agent does. A one-hidden-layer
net of width WIDTH with a rational activation against the same net with ReLU, widened to the smallest
width whose parameter count is at least the rational net's (matched parameter count: the rational adds its
10 coefficients; the ReLU net is never the smaller one). Both train with Adam at one learning rate on the
relative MSE (MSE over the target's variance). Measured: the relative MSE at the end of each phase (mean
of its last END_STEPS steps), averaged over the phases, and the relative MSE averaged over every step (the
area under the training curve: how fast each phase is fitted).

The pieces shared with `rational_shape` (the activation's shape claim) live here: the leaky-ReLU rational,
the MLP and the distances of an activation from leaky ReLU.
"""
import copy
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.neurons.layers import RationalActivation, leaky_relu
from course.train import fit, one_thread, seeded

WIDTH, PHASES, PHASE_STEPS, LR, POINTS = 24, 4, 120, 0.02, 64
END_STEPS = 10  # the end of a phase: the mean relative MSE of its last steps
OMEGA = (2.0, 6.0)  # the sines' frequencies, in half-periods over [-1, 1]
SHAPE_RANGE = (-3.0, 3.0)  # where an activation's shape is compared with leaky ReLU
SHAPE_POINTS = 601


@functools.lru_cache(maxsize=1)
def _leaky_relu_rational() -> RationalActivation:
    return RationalActivation(leaky_relu)


def rational_activation() -> RationalActivation:
    """A fresh RationalActivation initialised to leaky ReLU (section 2). The coefficients are fitted once
    (`fit_rational`, about 0.4 s) and copied; the fit draws no random numbers."""
    return copy.deepcopy(_leaky_relu_rational())


def mlp(width: int, activation, depth: int = 1) -> nn.Sequential:
    """1 -> width (-> activation -> width) ... -> 1: `depth` hidden layers, each followed by a fresh
    `activation()` (a module factory: `nn.ReLU`, `rational_activation`). x [N, 1] -> [N, 1]"""
    check_int("neurons.rational_activations.mlp", "width", width, low=1)
    check_int("neurons.rational_activations.mlp", "depth", depth, low=1)
    layers, d_in = [], 1
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), activation()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, 1))


def mlp_parameters(width: int, depth: int = 1, per_activation: int = 0) -> int:
    """The parameter count of `mlp(width, ., depth)` whose activations hold `per_activation` each."""
    return 2 * width + (depth - 1) * (width * width + width) + width + 1 + depth * per_activation


def matched_relu_width(parameters: int, depth: int = 1) -> int:
    """The smallest width whose ReLU `mlp` has at least `parameters` parameters."""
    check_int("neurons.rational_activations.matched_relu_width", "parameters", parameters, low=1)
    width = 1
    while mlp_parameters(width, depth) < parameters:
        width += 1
    return width


def switching_targets(seed: int, phases: int = PHASES, points: int = POINTS):
    """The non-stationary regression: x [points, 1] on [-1, 1] and targets [phases, points, 1], phase k's
    target sin(omega_k pi / 2 x + phi_k) with omega_k uniform in OMEGA and phi_k uniform in [0, 2 pi)."""
    check_int("neurons.rational_activations.switching_targets", "phases", phases, low=1)
    check_int("neurons.rational_activations.switching_targets", "points", points, low=2)
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, points)[:, None]
    omega = OMEGA[0] + (OMEGA[1] - OMEGA[0]) * torch.rand(phases, 1, 1, generator=g)
    phi = 2 * math.pi * torch.rand(phases, 1, 1, generator=g)
    return x, torch.sin(omega * math.pi / 2 * x + phi)


def relative_mse_loss(prediction, target):
    """MSE over the target's (population) variance: the training loss, comparable across targets."""
    return (prediction - target).pow(2).mean() / target.var(correction=0)


def train_switching(model: nn.Module, x, targets, seed: int, phase_steps: int = PHASE_STEPS,
                    lr: float = LR) -> torch.Tensor:
    """Train `model` on each target for `phase_steps` Adam steps in turn, never reset (one optimizer, one
    loop). -> the relative MSE at every step [phases, phase_steps] (before that step's update)."""
    check_tensor("neurons.rational_activations.train_switching", "targets", targets, ndim=3, kind="float")
    check_int("neurons.rational_activations.train_switching", "phase_steps", phase_steps, low=1)
    phases, step = targets.shape[0], [0]

    def loss():
        target = targets[step[0] // phase_steps]
        step[0] += 1
        return relative_mse_loss(model(x), target)

    result = fit(model.parameters(), loss, phases * phase_steps, lr, seed=seed, desc="switching targets")
    return torch.tensor(result.losses).view(phases, phase_steps)


def activation_grid(lo: float = SHAPE_RANGE[0], hi: float = SHAPE_RANGE[1], points: int = SHAPE_POINTS):
    return torch.linspace(lo, hi, points)


def leaky_relu_distance(activation, lo: float = SHAPE_RANGE[0], hi: float = SHAPE_RANGE[1]) -> float:
    """RMS(activation - leaky ReLU) / RMS(leaky ReLU) on [lo, hi]: how far an activation is from the
    initial shape, as it stands (a rescaling counts)."""
    x = activation_grid(lo, hi)
    with torch.no_grad():
        difference = (activation(x) - leaky_relu(x)).pow(2).mean().sqrt()
        return float(difference / leaky_relu(x).pow(2).mean().sqrt())


def shape_change(activation, lo: float = SHAPE_RANGE[0], hi: float = SHAPE_RANGE[1]) -> float:
    """How much of the activation no leaky-ReLU-like function explains: the relative RMS residual of its
    least-squares fit by c_1 relu(x) + c_2 x + c_3 on [lo, hi] (every line pair with its kink at 0, which
    includes every rescaled and shifted leaky ReLU, since the neighbouring linear layers absorb a scale and
    an offset). 0: still a kinked line; 1: nothing of it is. -> float in [0, 1]"""
    x = activation_grid(lo, hi).double()
    with torch.no_grad():
        y = activation(x.float()).double()
    basis = torch.stack([F.relu(x), x, torch.ones_like(x)], 1)  # [P, 3]
    residual = y - basis @ torch.linalg.lstsq(basis, y[:, None]).solution[:, 0]
    variance = y.var(correction=0)
    return float((residual.pow(2).mean() / variance).sqrt()) if variance > 0 else 0.0


def steps_to_reach(losses: torch.Tensor, level: float) -> torch.Tensor:
    """Per phase, the first step whose loss is <= level (phase_steps if never). [phases, K] -> [phases]"""
    reached = losses <= level
    first = reached.float().argmax(1)
    return torch.where(reached.any(1), first, torch.full_like(first, losses.shape[1])).float()


@functools.lru_cache(maxsize=3)
@one_thread()
def plasticity_experiment(seed: int) -> dict:
    """The rational net against the ReLU net of matched parameter count on the switching targets."""
    check_int("neurons.rational_activations.plasticity_experiment", "seed", seed, low=0)
    x, targets = switching_targets(seed)
    with seeded(seed):
        rational_net = mlp(WIDTH, rational_activation)
    relu_width = matched_relu_width(parameter_count(rational_net))
    with seeded(seed):
        relu_net = mlp(relu_width, nn.ReLU)
    out = {"rational_parameters": float(parameter_count(rational_net)),
           "relu_parameters": float(parameter_count(relu_net)), "relu_width": float(relu_width)}
    for name, net in (("rational", rational_net), ("relu", relu_net)):
        losses = train_switching(net, x, targets, seed)
        out[f"{name}_end_mse"] = float(losses[:, -END_STEPS:].mean())
        out[f"{name}_worst_end_mse"] = float(losses[:, -END_STEPS:].mean(1).max())
        out[f"{name}_mean_mse"] = float(losses.mean())
        out[f"{name}_steps_to_0.05"] = float(steps_to_reach(losses, 0.05).mean())
    out["relu_over_rational_end_mse"] = out["relu_end_mse"] / out["rational_end_mse"]
    out["relu_over_rational_mean_mse"] = out["relu_mean_mse"] / out["rational_mean_mse"]
    out["parameter_gap"] = out["relu_parameters"] - out["rational_parameters"]
    return out


CLAIM = Claim(
    paper="Delfosse et al. 2024",
    citation="Adaptive Rational Activations to Boost Deep Reinforcement Learning (arXiv:2102.09407), "
             "sections 2-3 (learnable rational activations keep networks plastic under the "
             "non-stationarity of reinforcement learning)",
    statement="a network with learnable rational activations fits a target that keeps switching faster and "
              "better than the same network with ReLU at a matched parameter count",
    kind=REPRODUCTION,
    experiment=plasticity_experiment,
    thresholds=("relu_over_rational_end_mse >= 3", "relu_over_rational_mean_mse >= 1.3",
                "parameter_gap >= 0"),
    summary=lambda m: (
        f"over {PHASES} switching sines, the relative MSE at the end of a phase is "
        f"{m['rational_end_mse']:.2g} "
        f"with rationals ({m['rational_parameters']:.0f} parameters) against {m['relu_end_mse']:.2g} with "
        f"ReLU ({m['relu_parameters']:.0f} parameters, width {m['relu_width']:.0f}), "
        f"{m['relu_over_rational_end_mse']:.1f}x; averaged over every step "
        f"{m['rational_mean_mse']:.3f} against {m['relu_mean_mse']:.3f} "
        f"({m['relu_over_rational_mean_mse']:.1f}x); steps to reach 0.05 per phase "
        f"{m['rational_steps_to_0.05']:.0f} against {m['relu_steps_to_0.05']:.0f} of {PHASE_STEPS}"),
    note="A one-hidden-layer regression on switching sines stands in for the paper's Atari agents; it "
         "measures how fast and how well each new target is fitted, not rewards. Most of the gap is there "
         "from the first phase: on seeds 1 and 2 the ReLU net (about half its units dead by the end) stays "
         "near relative MSE 0.6-1 in every phase, so the toy shows the rationals' speed and expressivity "
         "more than a loss of plasticity that grows with the switches. ReLU is trained at the rational "
         "net's learning rate, not tuned on its own.",
)
