"""Quadratic networks (Fan et al. 2023, "On Expressivity and Trainability of Quadratic Networks",
arXiv:2110.06081): the quadratic neuron of eq. 1,

    q(x) = (x W_r + b_r) * (x W_g + b_g) + (x * x) W_b + c,

and the paper's training strategy ReLinear (section 4): start every quadratic neuron at a linear one
(W_g = 0, b_g = 1, W_b = 0, c = 0, W_r random: `course.neurons.layers.QuadraticLinear`'s start), then let
the quadratic terms grow slowly, either with a smaller learning rate gamma (ReLinear^sg, "shrinking the
gradients", the authors' code: lr_gb beside lr) or with a penalty alpha (|W_g|^2 + |b_g - 1|^2 + |W_b|^2 +
c^2) on their distance from the linear start (ReLinear^sw, "shrinking the weights").

This module holds the pieces both claims share, and the expressivity claim (section 3, and the
introduction's remark that one quadratic neuron does XOR): on two 2-D toys, concentric circles and XOR
quadrants, the smallest hidden width k at which one hidden layer of k quadratic neurons (ReLU after
them, a linear readout) reaches 95% held-out accuracy, against the same network of k ReLU neurons. Both
widths are searched from k = 1 up with the same budget per k (`accuracy_at_width`). The trainability claim
(ReLinear against plain training) is `quadratic_relinear`.

Shapes: points x [N, 2], labels y [N] in {0, 1}; a network maps [N, 2] -> logits [N, 1].
"""
import functools
import math

import torch
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.neurons.layers import QuadraticLinear
from course.train import fit, one_thread, seeded

TARGET_ACCURACY = 0.95
WIDTHS = tuple(range(1, 9))  # hidden widths searched, smallest first
N_TRAIN, N_TEST, STEPS, LR, GAMMA, RESTARTS = 256, 1000, 150, 0.05, 1.0, 2
MARGIN = 0.05  # XOR: no point closer than this to an axis (the circles have their gap 1 < r < 1.4)


def concentric_circles(n: int, seed: int):
    """Label 1 inside the disc of radius 1, label 0 on the ring 1.4 <= r <= 2, uniform in area.

    -> x [n, 2], y [n]"""
    check_int("quadratic_networks.concentric_circles", "n", n, low=0)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    u = torch.rand(n, generator=g)
    radius = torch.where(y == 1, u.sqrt(), (1.4 ** 2 + u * (2 ** 2 - 1.4 ** 2)).sqrt())
    angle = 2 * math.pi * torch.rand(n, generator=g)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], 1), y


def xor_quadrants(n: int, seed: int):
    """Uniform points of [-1, 1]^2 at least MARGIN from both axes; label 1 where x1 x2 > 0 (XOR of the
    signs). -> x [n, 2], y [n]"""
    check_int("quadratic_networks.xor_quadrants", "n", n, low=0)
    g = torch.Generator().manual_seed(seed)
    magnitude = MARGIN + (1 - MARGIN) * torch.rand(n, 2, generator=g)
    sign = torch.randint(2, (n, 2), generator=g) * 2 - 1
    x = magnitude * sign
    return x, (x[:, 0] * x[:, 1] > 0).long()


TASKS = {"circles": concentric_circles, "xor": xor_quadrants}


def quadratic_network(width: int, d_in: int = 2, depth: int = 1) -> nn.Sequential:
    """`depth` hidden layers of `width` quadratic neurons, each followed by a ReLU, and a linear readout to
    one logit, at ReLinear's start (every quadratic neuron a linear one). [N, d_in] -> [N, 1]"""
    check_int("quadratic_networks.quadratic_network", "width", width, low=1)
    check_int("quadratic_networks.quadratic_network", "depth", depth, low=1)
    layers = []
    for i in range(depth):
        layers += [QuadraticLinear(d_in if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def relu_network(width: int, d_in: int = 2, depth: int = 1) -> nn.Sequential:
    """The conventional network of the same shape: linear neurons and ReLUs. [N, d_in] -> [N, 1]"""
    check_int("quadratic_networks.relu_network", "width", width, low=1)
    check_int("quadratic_networks.relu_network", "depth", depth, low=1)
    layers = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def quadratic_layers(model: nn.Module) -> list[QuadraticLinear]:
    return [m for m in model.modules() if isinstance(m, QuadraticLinear)]


def split_parameters(model: nn.Module) -> tuple[list, list]:
    """(quadratic parameters W_g, b_g, W_b, c of every quadratic neuron; all the others)."""
    quadratic = [p for layer in quadratic_layers(model) for p in layer.quadratic_parameters()]
    chosen = {id(p) for p in quadratic}
    return quadratic, [p for p in model.parameters() if id(p) not in chosen]


class GroupDecayingAdam(torch.optim.Adam):
    """`course.train.DecayingAdam` for several parameter groups: each group's own learning rate falls
    linearly to 0 over `total` steps."""

    def __init__(self, params, lr: float, total: int, **adam_options):
        super().__init__(params, lr=lr, **adam_options)  # `fit` asks for the foreach update
        self.base_lrs, self.total, self.done = [g["lr"] for g in self.param_groups], total, 0

    def step(self, closure=None):
        for group, base_lr in zip(self.param_groups, self.base_lrs):
            group["lr"] = base_lr * max(0.0, 1 - self.done / self.total)
        self.done += 1
        return super().step(closure)


def relinear_optimizer(model: nn.Module, gamma: float, base=GroupDecayingAdam):
    """ReLinear^sg (section 4): an optimizer factory for `course.train.fit` that gives the quadratic
    parameters the learning rate gamma * lr and the others lr (the authors' lr_gb beside lr)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"quadratic_networks.relinear_optimizer: `gamma` must be in (0, 1]; got {gamma}.")
    quadratic, others = split_parameters(model)

    def make(params, lr, **options):
        if gamma == 1:  # one group: the same updates, half the optimizer's calls
            return base(others + quadratic, lr=lr, **options)
        return base([{"params": others}, {"params": quadratic, "lr": gamma * lr}], lr=lr, **options)

    return make


def relinear_penalty(model: nn.Module, alpha: float):
    """ReLinear^sw (section 4): alpha times the squared distance of the quadratic parameters from the
    linear start (W_g = 0, b_g = 1, W_b = 0, c = 0), added to the loss. -> scalar"""
    if not alpha >= 0:
        raise ValueError(f"quadratic_networks.relinear_penalty: `alpha` must be >= 0; got {alpha}.")
    total = 0.0
    for layer in quadratic_layers(model):
        total = total + layer.g.weight.pow(2).sum() + (layer.g.bias - 1).pow(2).sum()
        total = total + layer.b.weight.pow(2).sum() + layer.b.bias.pow(2).sum()
    return alpha * total


def train_classifier(model: nn.Module, x, y, *, steps: int = STEPS, lr: float = LR, seed: int = 0,
                     optimizer=None):
    """Full-batch logistic loss through `course.train.fit` (Adam decaying to 0 unless `optimizer` says)."""
    target = y.float()
    loss = lambda: nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), target)  # noqa: E731
    return fit(model.parameters(), loss, steps, lr, seed=seed, optimizer=optimizer or GroupDecayingAdam,
               total=steps)


def held_out_accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return ((model(x).squeeze(-1) > 0).long() == y).float().mean().item()


def accuracy_at_width(kind: str, task: str, width: int, seed: int) -> tuple[float, int]:
    """Train a network of `width` hidden neurons of `kind` ("quadratic" or "relu") on `task` from up to
    RESTARTS initialisations (a second only when the first fits under 99% of the training set: a width-1
    ReLU layer often dies), keep the one of lowest training loss; -> (its held-out accuracy, parameter
    count). Quadratic networks start at ReLinear's linear neurons and train with gamma = GAMMA."""
    make = TASKS[task]
    x, y = make(N_TRAIN, seed)
    x_test, y_test = make(N_TEST, seed + 1000)
    best = None
    for restart in range(RESTARTS):
        with seeded(seed + 7919 * restart):
            model = quadratic_network(width) if kind == "quadratic" else relu_network(width)
        optimizer = relinear_optimizer(model, GAMMA) if kind == "quadratic" else None
        loss = train_classifier(model, x, y, seed=seed, optimizer=optimizer).final_loss
        if best is None or loss < best[0]:
            best = (loss, model)
        if held_out_accuracy(model, x, y) >= 0.99:
            break
    return held_out_accuracy(best[1], x_test, y_test), parameter_count(best[1])


def smallest_width(kind: str, task: str, seed: int) -> tuple[int, int, float]:
    """The smallest width of WIDTHS reaching TARGET_ACCURACY -> (width, parameters, accuracy); width
    max(WIDTHS) + 1 and parameters NaN where none does."""
    best = 0.0
    for width in WIDTHS:
        accuracy, parameters = accuracy_at_width(kind, task, width, seed)
        best = max(best, accuracy)
        if accuracy >= TARGET_ACCURACY:
            return width, parameters, accuracy
    return WIDTHS[-1] + 1, math.nan, best


@functools.lru_cache(maxsize=3)
@one_thread()
def expressivity_experiment(seed: int) -> dict:
    """Per toy: the smallest width (and its parameter count) at which each kind of neuron reaches 95%."""
    out = {}
    for task in TASKS:
        for kind in ("quadratic", "relu"):
            width, parameters, accuracy = smallest_width(kind, task, seed)
            out.update({f"{task}_{kind}_neurons": float(width),
                        f"{task}_{kind}_parameters": float(parameters), f"{task}_{kind}_accuracy": accuracy})
        out[f"{task}_neuron_ratio"] = out[f"{task}_relu_neurons"] / out[f"{task}_quadratic_neurons"]
        out[f"{task}_parameter_ratio"] = (out[f"{task}_relu_parameters"]
                                          / out[f"{task}_quadratic_parameters"])
    return out


CLAIM = Claim(
    paper="Fan et al. 2023",
    citation="On Expressivity and Trainability of Quadratic Networks (arXiv:2110.06081), section 3 "
             "(a quadratic network is more expressive than a conventional one of the same structure) and "
             "the introduction (one quadratic neuron implements XOR)",
    statement="quadratic neurons separate concentric circles and XOR-like data with fewer neurons than "
              "a network of conventional (linear + ReLU) neurons",
    kind=REPRODUCTION,
    experiment=expressivity_experiment,
    thresholds=("circles_neuron_ratio >= 1.5", "xor_neuron_ratio >= 1.5"),
    summary=lambda m: (
        f"smallest hidden width reaching 95% held-out accuracy: circles {m['circles_quadratic_neurons']:.0f} "
        f"quadratic ({m['circles_quadratic_parameters']:.0f} parameters) against "
        f"{m['circles_relu_neurons']:.0f} ReLU ({m['circles_relu_parameters']:.0f}); XOR "
        f"{m['xor_quadratic_neurons']:.0f} quadratic ({m['xor_quadratic_parameters']:.0f}) against "
        f"{m['xor_relu_neurons']:.0f} ReLU ({m['xor_relu_parameters']:.0f})"),
    note="One hidden layer on two 2-D toys, each width trained from up to two initialisations (150 Adam "
         "steps; the quadratic network from ReLinear's linear start at one learning rate, gamma = 1: the "
         "shrunk rates are the subject of quadratic_relinear). A quadratic neuron has three times a linear "
         "neuron's weights, so at the smallest widths the quadratic network has fewer parameters on the "
         "circles (11 against 13 or 17) but not always on XOR (21 against 13 on seeds 0 and 1).",
)
