"""What the response-surface widget draws: four kinds of neuron trained briefly on one 2-D classification
task (two interleaved spirals), with their states recorded at a few training steps.

Every network is two inputs -> HIDDEN neurons of one kind -> one logit (class 1 against class 0), trained
full-batch on the binary cross-entropy with Adam (`course.train.fit`, seeded, one thread):

- linear + ReLU: relu(x W + b), then a linear readout (the standard neuron);
- rational: R(x W + b) with the safe rational R(z) = P(z) / (1 + |S(z)|), P of degree m, S of degree
  n = m - 1 (Delfosse et al. 2024, "Adaptive Rational Activations", arXiv:2102.09407, section 2; Molina
  et al. 2020, arXiv:1907.06732), one activation shared by the hidden layer and learned with it,
  initialised by `fit_rational` to leaky ReLU (the paper's start) or to tanh (`layers.RationalActivation`);
- KAN spline: a Kolmogorov-Arnold network [2, HIDDEN, 1] (Liu et al. 2024, arXiv:2404.19756, eqs.
  2.10-2.12, `layers.KANLayer`): hidden neuron j sums one learned function per input,
  phi_ij(x_i) = w_ij silu(x_i) + sum_c c_ijc B_c(x_i), cubic B-splines on a grid of G intervals;
  spline coefficients start small (the layer's 0.1 scale, the paper's "noise" initialisation) or random
  (ten times that: coefficients of the size of the base weights);
- quadratic: relu((x W_r + b_r) * (x W_g + b_g) + (x * x) W_b + c) (Fan et al. 2023, "On Expressivity
  and Trainability of Quadratic Networks", arXiv:2110.06081, eq. 1, `layers.QuadraticLinear`), starting
  linear (ReLinear, section 4: W_g = 0, b_g = 1, W_b = 0) or with every term random.

A snapshot at each of SNAPSHOT_STEPS holds, on an R x R grid over the input square [-LIMIT, LIMIT]^2:
the response surface of one hidden neuron (the one whose trained response varies most over the training
points; the same neuron at every step) and the network's probability of class 1; the full-batch loss and
accuracy; and the activation's shape: the rational R(z), the KAN neuron's two edge functions phi_1j and
phi_2j, or the fixed ReLU. `training(kind, size, init)` trains one setting (cached); `precompute()` all
of them. The widget reads these and trains nothing.
"""
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.neurons.kan import cubic_b_spline_basis, knots_for
from course.neurons.layers import KANLayer, QuadraticLinear, RationalActivation, leaky_relu
from course.train import fit, one_thread, seeded

WHERE = "neurons.views"
LINEAR, RATIONAL, KAN, QUADRATIC = "linear + ReLU", "rational", "KAN spline", "quadratic"
NEURONS = (LINEAR, RATIONAL, KAN, QUADRATIC)
DEGREES = (3, 5, 7)      # the rational's numerator degree m (its denominator's is m - 1)
GRID_SIZES = (3, 5, 10)  # the KAN's grid intervals G
SIZES = {RATIONAL: DEGREES, KAN: GRID_SIZES}  # the one size control that applies to a kind
DEFAULT_SIZE = {RATIONAL: 5, KAN: 5}
LEAKY, TANH, SMALL, RANDOM, DEFAULT, RELINEAR = (
    "from leaky ReLU", "from tanh", "small spline coefficients", "random spline coefficients",
    "PyTorch default", "ReLinear (starts linear)")
QUADRATIC_RANDOM = "all terms random"
INITS = {LINEAR: (DEFAULT,), RATIONAL: (LEAKY, TANH), KAN: (SMALL, RANDOM),
         QUADRATIC: (RELINEAR, QUADRATIC_RANDOM)}
SNAPSHOT_STEPS = (0, 5, 15, 30, 50, 80)   # the training steps recorded (the last is the training's length)
HIDDEN = 8           # hidden neurons of every network
POINTS = 160         # training points (half per class)
TURNS = 1.25         # turns of each spiral
NOISE = 0.04         # Gaussian noise on the points
LIMIT = 1.3          # the input square [-LIMIT, LIMIT]^2 the surfaces cover
RESOLUTION = 41      # grid points per side of a surface
KAN_RANGES = (1.5, 3.0)     # the two KAN layers' grid ranges [-R, R]: the inputs', the hidden values'
KAN_RANDOM_SCALE = 10.0     # "random" spline coefficients: the layer's small ones times this
CURVE_POINTS = 121          # points of an activation's curve
CURVE_RANGE = 3.0           # the rational and ReLU curves cover [-CURVE_RANGE, CURVE_RANGE]
LR = 0.04
SEED = 0


def check_choice(where: str, name: str, value, choices: tuple, what: str = ""):
    """`value` must be one of `choices` (`what`, if given, says what the argument is)."""
    if value not in choices:
        raise ValueError(f"{where}: `{name}`{f' ({what})' if what else ''} must be one of {choices}; got "
                         f"{value!r}.")


def check_setting(where: str, kind: str, size, init: str) -> tuple:
    """(kind, size, init) checked; size is None for the kinds that have none (any size given is ignored)."""
    check_choice(where, "kind", kind, NEURONS)
    if kind in SIZES:
        check_choice(where, "size", size, SIZES[kind],
                     f"the {kind} neuron's {'grid size' if kind == KAN else 'numerator degree'}")
    else:
        size = None
    check_choice(where, "init", init, INITS[kind], f"the {kind} neuron's initialisation")
    return kind, size, init


def two_spirals(n: int = POINTS, turns: float = TURNS, noise: float = NOISE, seed: int = SEED) -> tuple:
    """Two interleaved spirals in the unit disc: x [n, 2] (float32) and labels y [n] (0. or 1., alternating).

    Point k of class c lies at angle t + pi c and radius t / t_max, t = 0.3 + 2 pi turns sqrt(u), u uniform
    (sqrt: evenly spread along the arm), plus Gaussian noise of std `noise`."""
    where = f"{WHERE}.two_spirals"
    check_int(where, "n", n, low=2)
    if not turns > 0:
        raise ValueError(f"{where}: `turns` must be positive; got {turns!r}.")
    if not noise >= 0:
        raise ValueError(f"{where}: `noise` must be >= 0; got {noise!r}.")
    g = torch.Generator().manual_seed(seed)
    t_max = 0.3 + 2 * math.pi * turns
    t = 0.3 + 2 * math.pi * turns * torch.rand(n, generator=g).sqrt()
    y = (torch.arange(n) % 2).float()
    angle = t + math.pi * y
    x = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * (t / t_max)[:, None]
    return x + noise * torch.randn(n, 2, generator=g), y


@functools.lru_cache(maxsize=None)
def task() -> tuple:
    """The widget's task: `two_spirals()` (x [POINTS, 2], y [POINTS])."""
    return two_spirals()


def surface_axis() -> torch.Tensor:
    """The grid's coordinates along each axis [RESOLUTION] over [-LIMIT, LIMIT]."""
    return torch.linspace(-LIMIT, LIMIT, RESOLUTION)


def surface_points() -> torch.Tensor:
    """The grid as inputs [RESOLUTION^2, 2], row-major with x2 over rows: reshaped to [R, R], row i is
    x2 = axis[i] and column j is x1 = axis[j] (a heatmap's z[y][x])."""
    axis = surface_axis()
    x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x1.reshape(-1), x2.reshape(-1)], 1)


class Network(nn.Module):
    """Two inputs -> HIDDEN neurons of one kind -> one logit. x [N, 2] -> logits [N]"""

    def __init__(self, kind: str, size, init: str, generator: torch.Generator):
        super().__init__()
        self.kind = kind
        if kind == KAN:
            self.hidden_layer = KANLayer(2, HIDDEN, grid_size=size, grid_range=KAN_RANGES[0],
                                         generator=generator)
            self.readout = KANLayer(HIDDEN, 1, grid_size=size, grid_range=KAN_RANGES[1], generator=generator)
            if init == RANDOM:
                with torch.no_grad():
                    for layer in (self.hidden_layer, self.readout):
                        layer.coef.mul_(KAN_RANDOM_SCALE)
            return
        self.readout = nn.Linear(HIDDEN, 1)
        if kind == QUADRATIC:
            self.hidden_layer = QuadraticLinear(2, HIDDEN, generator=generator)
            if init == QUADRATIC_RANDOM:
                with torch.no_grad():
                    for part in (self.hidden_layer.g, self.hidden_layer.b):
                        part.weight.copy_(torch.randn(HIDDEN, 2, generator=generator) / math.sqrt(2))
        else:
            self.hidden_layer = nn.Linear(2, HIDDEN)
        if kind == RATIONAL:
            shape = leaky_relu if init == LEAKY else torch.tanh
            self.activation = RationalActivation(shape, (size, size - 1))

    def act(self, z: torch.Tensor) -> torch.Tensor:
        """The activation after a linear or quadratic hidden layer (the KAN has none). z [...] -> z's shape"""
        return self.activation(z) if self.kind == RATIONAL else torch.relu(z)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden neurons' responses. x [N, 2] -> [N, HIDDEN]"""
        h = self.hidden_layer(x)
        return h if self.kind == KAN else self.act(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden(x))[:, 0]

    def curves(self, unit: int) -> tuple:
        """The activation's shape: ((name, z [CURVE_POINTS], value [CURVE_POINTS]), ...): the KAN's two edge
        functions into hidden neuron `unit`, phi_1j(z) and phi_2j(z) over its grid's range, else the
        rational's or the ReLU's curve over [-CURVE_RANGE, CURVE_RANGE]."""
        if self.kind == KAN:
            layer = self.hidden_layer
            z = torch.linspace(-layer.grid_range, layer.grid_range, CURVE_POINTS)
            basis = cubic_b_spline_basis(z, knots_for(layer.coef, layer.grid_range, z.dtype, z.device))
            return tuple((f"φ_{i + 1},{unit + 1}(x_{i + 1})", z,
                          layer.base[i, unit] * F.silu(z) + basis @ layer.coef[i, :, unit]) for i in range(2))
        z = torch.linspace(-CURVE_RANGE, CURVE_RANGE, CURVE_POINTS)
        return ((("R(z)" if self.kind == RATIONAL else "ReLU(z)"), z, self.act(z)),)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One recorded training step: the loss and accuracy on the task, the chosen hidden neuron's response
    [R, R], the probability of class 1 [R, R] (row i: x2 = axis[i]; column j: x1 = axis[j]), and the
    activation's curves ((name, z [P], value [P]), ...)."""

    step: int
    loss: float
    accuracy: float
    hidden: torch.Tensor
    probability: torch.Tensor
    curves: tuple


@dataclass(frozen=True, eq=False)
class Training:
    """One setting trained: its snapshots at SNAPSHOT_STEPS, the loss at every step (and after the last),
    the hidden neuron the surfaces show (0-based: the one whose trained response has the largest standard
    deviation over the training points), the hidden layer's parameter count and the whole network's."""

    kind: str
    size: int | None
    init: str
    unit: int
    snapshots: tuple
    losses: tuple
    hidden_parameters: int
    parameters: int

    def at(self, step: int) -> Snapshot:
        check_choice(f"{WHERE}.Training.at", "step", step, SNAPSHOT_STEPS)
        return self.snapshots[SNAPSHOT_STEPS.index(step)]


def network(kind: str, size=None, init: str | None = None, seed: int = SEED) -> Network:
    """A fresh network of `kind` (its size and initialisation checked; None: the defaults), seeded."""
    init = INITS[kind][0] if init is None and kind in INITS else init
    size = DEFAULT_SIZE.get(kind) if size is None else size
    kind, size, init = check_setting(f"{WHERE}.network", kind, size, init)
    with seeded(seed):
        return Network(kind, size, init, torch.Generator().manual_seed(seed))


@torch.no_grad()
def record(model: Network, x: torch.Tensor, y: torch.Tensor, step: int, unit: int) -> Snapshot:
    """The snapshot of `model` now (its loss on the task x [N, 2], y [N])."""
    logits = model(x)
    grid = surface_points()
    shape = (RESOLUTION, RESOLUTION)
    return Snapshot(step, F.binary_cross_entropy_with_logits(logits, y).item(),
                    ((logits > 0).float() == y).float().mean().item(),
                    model.hidden(grid)[:, unit].reshape(shape), torch.sigmoid(model(grid)).reshape(shape),
                    tuple((name, z, v.detach()) for name, z, v in model.curves(unit)))


def training(kind: str, size=None, init: str | None = None) -> Training:
    """Train one setting for SNAPSHOT_STEPS[-1] steps (Adam, lr LR, full batch, seeded, one thread) and
    record its snapshots (cached per checked setting: a size that does not apply to `kind` is ignored;
    None: the kind's default size or initialisation)."""
    init = INITS[kind][0] if init is None and kind in INITS else init
    size = DEFAULT_SIZE.get(kind) if size is None else size
    return trained(*check_setting(f"{WHERE}.training", kind, size, init))


@functools.lru_cache(maxsize=None)
def trained(kind: str, size, init: str) -> Training:
    """`training` for a checked setting (`check_setting`), cached."""
    x, y = task()
    with one_thread():
        model = network(kind, size, init)
        states, step = {}, [0]

        def loss():  # called before each optimizer step: the parameters after `step` steps
            if step[0] in SNAPSHOT_STEPS:
                states[step[0]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            step[0] += 1
            return F.binary_cross_entropy_with_logits(model(x), y)

        result = fit(model.parameters(), loss, steps=SNAPSHOT_STEPS[-1], lr=LR, seed=SEED, progress=False)
        states[SNAPSHOT_STEPS[-1]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            spread = model.hidden(x).std(0)  # [HIDDEN], over the training points
        unit = int(spread.argmax())
        snapshots = []
        for done in SNAPSHOT_STEPS:
            model.load_state_dict(states[done])
            snapshots.append(record(model, x, y, done, unit))
    count = sum(p.numel() for p in model.hidden_layer.parameters())
    count += sum(p.numel() for p in model.activation.parameters()) if kind == RATIONAL else 0
    return Training(kind, size, init, unit, tuple(snapshots), tuple(result.losses) + (snapshots[-1].loss,),
                    count, sum(p.numel() for p in model.parameters()))


def settings() -> tuple:
    """Every (kind, size, init) the widget offers."""
    return tuple((kind, size, init) for kind in NEURONS for size in SIZES.get(kind, (None,))
                 for init in INITS[kind])


def precompute() -> dict:
    """Every setting trained: {(kind, size, init): Training} (each cached by `training`)."""
    return {s: training(*s) for s in settings()}
