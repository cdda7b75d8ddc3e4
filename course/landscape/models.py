"""The landscape family's models: MLPs whose parameters are one flat vector.

A loss landscape is a function of the parameters, so every tool of this family (directions, grids,
interpolation, permutations, curvature) works on the flat vector theta [P] of a model, in the order of
`module.parameters()`: for the MLP of `widths` = (I, H_1, ..., C) that is W_1 [H_1, I], b_1 [H_1],
W_2 [H_2, H_1], b_2, ..., each row-major. `unflatten` cuts theta back into those tensors (views), and
`mlp_loss` is the functional form, loss(theta; x, labels), that grids, Hessian-vector products and
matching all evaluate.

The MLP is Linear, ReLU, Linear, ReLU, ..., Linear; its loss is the mean cross-entropy of its logits.
"""
import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor


def check_widths(where: str, widths) -> tuple:
    """`widths` = (inputs, hidden..., classes): a tuple of at least two positive ints."""
    if not isinstance(widths, (tuple, list)) or len(widths) < 2:
        raise ValueError(f"{where}: `widths` must be a tuple (inputs, hidden..., classes) of at least two "
                         f"ints; got {widths!r}.")
    for i, w in enumerate(widths):
        check_int(where, f"widths[{i}]", w, low=1)
    return tuple(widths)


def mlp(widths, seed: int | None = None) -> nn.Sequential:
    """The MLP of `widths`, initialised by torch's default (seeded with `seed` if given)."""
    widths = check_widths("landscape.mlp", widths)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        layers = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def widths_of(model: nn.Sequential) -> tuple:
    """The widths (inputs, hidden..., classes) of an MLP built by `mlp`."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"landscape.widths_of: `model` must be an MLP of nn.Linear layers; got {model}.")
    return (linears[0].in_features, *[m.out_features for m in linears])


def parameter_count(widths) -> int:
    """P, the length of theta: sum over layers of (fan_in + 1) * fan_out."""
    widths = check_widths("landscape.parameter_count", widths)
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def flatten(model: nn.Module) -> torch.Tensor:
    """theta [P]: the model's parameters, concatenated in `parameters()` order (a detached copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def load(model: nn.Module, theta: torch.Tensor) -> nn.Module:
    """Copy theta [P] into the model's parameters (in place) and return the model. (Copied, not
    viewed: training the model afterwards leaves theta as it was.)"""
    count = sum(p.numel() for p in model.parameters())
    check_tensor("landscape.load", "theta", theta, ndim=1, kind="float")
    if theta.numel() != count:
        raise ValueError(f"landscape.load: `theta` must have the model's {count} parameters; "
                         f"got {theta.numel()}.")
    with torch.no_grad():
        at = 0
        for p in model.parameters():
            p.copy_(theta[at:at + p.numel()].view_as(p))
            at += p.numel()
    return model


def unflatten(theta: torch.Tensor, widths) -> list:
    """[(W_l [out, in], b_l [out]) for each layer]: views into theta [..., P] (a leading batch of
    parameter points is kept: theta [G, P] gives W_l [G, out, in])."""
    widths = check_widths("landscape.unflatten", widths)
    P = parameter_count(widths)
    if theta.shape[-1] != P:
        raise ValueError(f"landscape.unflatten: `theta` must end in P = {P} parameters for widths "
                         f"{widths}; got shape {tuple(theta.shape)}.")
    layers, at = [], 0
    for a, b in zip(widths, widths[1:]):
        W = theta[..., at:at + a * b].unflatten(-1, (b, a))
        at += a * b
        bias = theta[..., at:at + b]
        at += b
        layers.append((W, bias))
    return layers


def mlp_logits(theta: torch.Tensor, x: torch.Tensor, widths) -> torch.Tensor:
    """The MLP's logits [N, C] at parameters theta [P] for inputs x [N, I] (functional form)."""
    layers = unflatten(theta, widths)
    h = x
    for i, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


def mlp_loss(theta: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, widths) -> torch.Tensor:
    """Mean cross-entropy of the MLP at theta [P] on (x [N, I], labels [N]): a scalar."""
    return F.cross_entropy(mlp_logits(theta, x, widths), labels)
