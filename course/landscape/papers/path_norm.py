"""The L^q path-norm of a ReLU MLP with biases, computed by one forward pass, and its invariances.

Gonon, Brisebarre, Riccietti and Gribonval 2024, "A path-norm toolkit for modern networks:
consequences, promises and challenges" (arXiv:2310.01225, ICLR 2024), section 2. A ReLU network is a
DAG of neurons; a *path* starts at an input neuron, or at a hidden or output neuron (it then starts with
that neuron's bias), and follows edges to an output neuron. The path-lifting Phi(theta) has one entry
per path, the product of the parameters along it (the bias first, for a path that starts at a bias).
The network's output is linear in Phi(theta): R_theta(x)_o = sum over paths p ending at o of
Phi_p(theta) a_p(x), with a_p(x) = x_i times the path's ReLU gates (1 in place of x_i for a bias path),
so |R_theta(x)|_1 <= ||Phi(theta)||_1 max(1, ||x||_inf).

Phi(theta) has exponentially many entries, yet the L^q path-norm needs none of them (section 2, and the
appendix's computation): ||Phi(theta)||_q^q = ||R_{|theta|^q}(1)||_1, one forward pass of the network
whose weights and biases are |theta|^q, on the all-ones input (every pre-activation is then >= 0, so
every ReLU is the identity). Each entry of Phi is unchanged when a hidden neuron's incoming weights and
bias are scaled by c > 0 and its outgoing weights by 1/c (the rescaling symmetry), and Phi is only
permuted when hidden neurons are permuted, so the path-norm is invariant under both; a product of the
layers' operator norms is not.

Here (`path_norm_experiment`, a demonstration: each number holds by construction) a spiral MLP of
widths (2, 8, 8, 3) is trained briefly, then: the forward-pass path-norm against the sum over every
path enumerated (float64); its change under random neuron-wise rescalings (c from 1e-2 to 1e2) and a
permutation of each hidden layer, beside the change of the product of spectral norms under the same
rescalings; and the bound |R_theta(x)|_1 <= ||Phi(theta)||_1 on inputs with ||x||_inf <= 1.
"""
import functools
import itertools

import torch

from course.checks import check_int, check_tensor
from course.claims import DEMONSTRATION, Claim
from course.landscape.models import check_widths, flatten, mlp, mlp_logits, parameter_count, unflatten
from course.landscape.tasks import spirals, train
from course.train import seeded

WIDTHS = (2, 8, 8, 3)
TRAIN_STEPS = 200


def check_theta(where: str, theta: torch.Tensor, widths) -> tuple:
    """theta [P] for `widths`; returns the checked widths."""
    widths = check_widths(where, widths)
    check_tensor(where, "theta", theta, ndim=1, kind="float")
    if theta.numel() != parameter_count(widths):
        raise ValueError(f"{where}: `theta` must have P = {parameter_count(widths)} parameters for widths "
                         f"{widths}; got {theta.numel()}.")
    return widths


def path_norm(theta: torch.Tensor, widths, q: float = 1.0) -> torch.Tensor:
    """||Phi(theta)||_q (Gonon et al. 2024, section 2): (sum of the outputs of the MLP with parameters
    |theta|^q on the all-ones input [1, I])^(1/q). theta [P] -> a scalar."""
    widths = check_theta("path_norm", theta, widths)
    if not q >= 1:
        raise ValueError(f"path_norm: `q` must be >= 1; got {q}.")
    ones = torch.ones(1, widths[0], dtype=theta.dtype)
    return mlp_logits(theta.abs() ** q, ones, widths).sum() ** (1.0 / q)


def path_lifting(theta: torch.Tensor, widths) -> torch.Tensor:
    """Phi(theta) [paths]: every path's product of parameters, enumerated one by one (section 2's
    definition; exponential in depth, for tiny networks and tests). Paths from the inputs come first,
    then those from the biases of layer 1, 2, ..., each ordered by its neurons."""
    widths = check_theta("path_lifting", theta, widths)
    layers = unflatten(theta, widths)
    values = []
    for start in range(len(layers) + 1):  # 0: the inputs; l >= 1: the biases of layer l
        first = range(widths[start])
        for neurons in itertools.product(first, *[range(w) for w in widths[start + 1:]]):
            value = theta.new_ones(()) if start == 0 else layers[start - 1][1][neurons[0]]
            for (W, _), a, b in zip(layers[start:], neurons, neurons[1:]):
                value = value * W[b, a]
            values.append(value)
    return torch.stack(values)


def rescale_neurons(theta: torch.Tensor, widths, scales: list) -> torch.Tensor:
    """The rescaling symmetry: hidden layer l's incoming weights and biases times scales[l] [H_l] (> 0),
    its outgoing weights divided by them. theta [P] -> theta' [P], the same function."""
    widths = check_theta("rescale_neurons", theta, widths)
    if len(scales) != len(widths) - 2:
        raise ValueError(f"rescale_neurons: `scales` must hold one tensor per hidden layer "
                         f"({len(widths) - 2}); got {len(scales)}.")
    layers = [(W.clone(), b.clone()) for W, b in unflatten(theta, widths)]
    for i, c in enumerate(scales):
        check_tensor("rescale_neurons", f"scales[{i}]", c, ndim=1, kind="float")
        if c.numel() != widths[i + 1] or not bool((c > 0).all()):
            raise ValueError(f"rescale_neurons: `scales[{i}]` must hold {widths[i + 1]} positive numbers; "
                             f"got {c.numel()} with minimum {float(c.min()) if c.numel() else 'none'}.")
        W, b = layers[i]
        layers[i] = (W * c[:, None], b * c)
        layers[i + 1] = (layers[i + 1][0] / c[None, :], layers[i + 1][1])
    return torch.cat([t.reshape(-1) for layer in layers for t in layer])


def permute_neurons(theta: torch.Tensor, widths, perms: list) -> torch.Tensor:
    """Hidden layer l's neurons reordered by perms[l] [H_l] (rows of W_l and b_l, columns of W_{l+1}).
    theta [P] -> theta' [P], the same function."""
    widths = check_theta("permute_neurons", theta, widths)
    if len(perms) != len(widths) - 2:
        raise ValueError(f"permute_neurons: `perms` must hold one permutation per hidden layer "
                         f"({len(widths) - 2}); got {len(perms)}.")
    layers = [(W.clone(), b.clone()) for W, b in unflatten(theta, widths)]
    for i, p in enumerate(perms):
        check_tensor("permute_neurons", f"perms[{i}]", p, ndim=1, kind="int")
        if sorted(p.tolist()) != list(range(widths[i + 1])):
            raise ValueError(f"permute_neurons: `perms[{i}]` must be a permutation of "
                             f"range({widths[i + 1]}); got {p.tolist()}.")
        layers[i] = (layers[i][0][p], layers[i][1][p])
        layers[i + 1] = (layers[i + 1][0][:, p], layers[i + 1][1])
    return torch.cat([t.reshape(-1) for layer in layers for t in layer])


def spectral_norm_product(theta: torch.Tensor, widths) -> torch.Tensor:
    """prod_l ||W_l||_2, the operator-norm complexity the paper compares with (biases left out)."""
    widths = check_theta("spectral_norm_product", theta, widths)
    return torch.stack([torch.linalg.matrix_norm(W, ord=2) for W, _ in unflatten(theta, widths)]).prod()


@functools.lru_cache(maxsize=3)
def trained_theta(seed: int) -> torch.Tensor:
    """theta [P] (float64) of the spiral MLP of WIDTHS after TRAIN_STEPS of Adam."""
    task = spirals(n_train=300, n_test=10, seed=seed)
    model = mlp(WIDTHS, seed=seed)
    train(model, task.x_train, task.y_train, TRAIN_STEPS, 0.02, seed=seed, optimizer=torch.optim.Adam)
    return flatten(model).double()


def path_norm_experiment(seed: int) -> dict:
    """Forward pass against enumeration, invariance under rescaling and permutation, and the bound."""
    check_int("path_norm_experiment", "seed", seed, low=0)
    theta = trained_theta(seed)
    norm = float(path_norm(theta, WIDTHS))
    phi = path_lifting(theta, WIDTHS)
    with seeded(seed):
        hidden = WIDTHS[1:-1]
        rescalings = [[10 ** (4 * torch.rand(h, dtype=torch.float64) - 2) for h in hidden] for _ in range(5)]
        perms = [torch.randperm(h) for h in hidden]
        x = 2 * torch.rand(256, WIDTHS[0], dtype=torch.float64) - 1
    moved = [rescale_neurons(theta, WIDTHS, s) for s in rescalings]
    moved.append(permute_neurons(moved[-1], WIDTHS, perms))
    norms = torch.stack([path_norm(t, WIDTHS) for t in moved])
    spectral = torch.stack([spectral_norm_product(t, WIDTHS) for t in [theta, *moved]])
    outputs = [mlp_logits(t, x, WIDTHS) for t in moved]
    return {
        "path_norm": norm,
        "paths": float(phi.numel()),
        "forward_vs_paths_error": abs(norm - float(phi.abs().sum())) / norm,
        "path_norm_change": float((norms - norm).abs().max()) / norm,
        "function_change": max(float((o - mlp_logits(theta, x, WIDTHS)).abs().max()) for o in outputs),
        "spectral_product_spread": float(spectral.max() / spectral.min()),
        "bound_slack": norm / float(mlp_logits(theta, x, WIDTHS).abs().sum(1).max()),
    }


CLAIM = Claim(
    paper="Gonon et al. 2024",
    citation="A path-norm toolkit for modern networks: consequences, promises and challenges "
             "(arXiv:2310.01225), section 2 (the path-lifting, its norms computed by one forward pass, "
             "invariance under the network's symmetries)",
    statement="the L1 path-norm is computed by one forward pass of |theta| on the all-ones input, is "
              "invariant under neuron-wise rescaling and permutation (a product of operator norms is "
              "not), and bounds the network's output",
    kind=DEMONSTRATION,
    experiment=path_norm_experiment,
    thresholds=("forward_vs_paths_error <= 1e-12", "path_norm_change <= 1e-10", "function_change <= 1e-9",
                "spectral_product_spread >= 2", "bound_slack >= 1"),
    summary=lambda m: (
        f"L1 path-norm {m['path_norm']:.4g} by one forward pass, equal to the sum over all "
        f"{m['paths']:.0f} paths to {m['forward_vs_paths_error']:.1e}; under neuron rescalings by 1e-2 to "
        f"1e2 and permutations it moves by {m['path_norm_change']:.1e} (relative) while the product of "
        f"spectral norms spans a factor {m['spectral_product_spread']:.3g}; it exceeds the largest "
        f"|R(x)|_1 on ||x||_inf <= 1 by {m['bound_slack']:.3g}x"),
)
