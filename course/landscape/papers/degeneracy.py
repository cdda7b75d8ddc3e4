"""Degeneracy in a trained MLP, and the interaction basis that removes it without changing the function.

Bushnaq, Mendel, Heimersheim, Braun, Goldowsky-Dill, Hänni, Wu and Hobbhahn 2024, "Using Degeneracy in
the Loss Landscape for Mechanistic Interpretability" (arXiv:2405.10927). Section 3 names three ways a
network's parameters are degenerate (free to move without changing the loss):

1. linear dependence between the activations f_l of a layer: a direction u with u . f_l(x) = 0 on every
   input (a zero eigenvalue of the Gram matrix G_l = E[f_l f_l^T]); the weights that read u are free;
2. linear dependence between the gradients passed back to a layer: a direction u with J_l(x) u = 0,
   where J_l = d output / d f_l (a zero eigenvalue of E[J_l^T J_l], or of the gradient covariance
   E[g g^T], g = dL/df_l); moving f_l along u changes nothing downstream;
3. ReLUs that fire on the same subset of inputs (synchronised nonlinearities): dead units, units that
   are always on (affine, so linearly dependent on the layer below) and units with identical patterns.

Section 6's interaction basis removes degeneracies 1 and 2 at once: with G_l = U D U^T (here the bias is
folded in as a constant activation 1, so the next layer is one linear map), whiten, w = D^{-1/2} U^T f_l
(null directions of D dropped); with M_l = E[J_l^T J_l], diagonalise the Jacobian Gram in the whitened
coordinates, D^{1/2} U^T M_l U D^{1/2} = V Lambda V^T, and take z = V^T w (any further per-coordinate
scaling of z leaves unchanged which directions are dropped). Each z_i has unit second moment and
E|J_l dz_i|^2 = Lambda_i, so the coordinates with Lambda_i ~ 0 do not reach the output: the network can
be rewritten to read only the kept ones, f_l -> A z_kept, with fewer effective parameters (the next
layer becomes [W, b] A, [H_{l+1}, k_l], in place of [H_{l+1}, H_l + 1]).

The toy (`degeneracy_experiment`): a spiral MLP of widths (2, 24, 24, 3), trained with Adam. Measured:
per hidden layer the numerical rank (eigenvalues above RANK_TOL times the largest) of the activation
Gram, of the gradient covariance, and of the Jacobian Gram, the ReLU co-firing counts, and the number
of interaction-basis directions with Lambda below RANK_TOL times the largest. All those directions are
removed at once (every hidden layer projected onto its kept interaction coordinates) and the training
loss is compared with the trained network's, and with the network in which the same number of
directions, drawn at random (a random orthonormal basis), is removed from each layer. The last hidden
layer's Jacobian has rank <= 3 by construction (three logits); the first layer's count is measured.
The basis is computed on the training points; the loss change on held-out points is reported beside it
(the paper's degeneracies are those of the training distribution: a direction null on the training data
need not be null elsewhere).
"""
import functools

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.landscape.models import check_widths, flatten, mlp, parameter_count, unflatten
from course.landscape.tasks import spirals, train

WIDTHS = (2, 24, 24, 3)
TRAIN_STEPS = 300
RANK_TOL = 1e-6  # an eigenvalue below RANK_TOL times the largest counts as zero


def with_constant(f: torch.Tensor) -> torch.Tensor:
    """f [N, H] -> [N, H + 1]: the activations with the constant 1 that the next layer's bias reads."""
    return torch.cat([f, f.new_ones(len(f), 1)], dim=1)


def layer_activations(theta: torch.Tensor, x: torch.Tensor, widths, projections=None):
    """The forward pass, keeping what the degeneracies are measured on: -> (features, gates, logits),
    features[l] [N, H_l + 1] (hidden layer l's ReLU outputs and the constant), gates[l] [N, H_l] (1 where
    the ReLU is on). `projections[l]` [H_l + 1, H_l + 1] (or None) replaces features[l] by
    features[l] @ P^T before the next layer reads it: the ablation."""
    widths = check_widths("degeneracy.layer_activations", widths)
    layers = unflatten(theta, widths)
    check_tensor("degeneracy.layer_activations", "x", x, ndim=2, kind="float")
    features, gates, h = [], [], with_constant(x)
    for i, (W, b) in enumerate(layers):
        pre = h @ torch.cat([W, b[:, None]], dim=1).T
        if i == len(layers) - 1:
            return features, gates, pre
        gates.append((pre > 0).to(x.dtype))
        h = with_constant(torch.relu(pre))
        features.append(h)
        if projections is not None and projections[i] is not None:
            h = h @ projections[i].T


def output_jacobian(theta: torch.Tensor, widths, gates: list, layer: int) -> torch.Tensor:
    """J_l = d logits / d features[layer]: [N, C, H_l + 1], by the chain rule through the gates
    (the last column, for the constant, is the derivative with respect to the next layer's bias)."""
    widths = check_widths("degeneracy.output_jacobian", widths)
    check_int("degeneracy.output_jacobian", "layer", layer, low=0, high=len(widths) - 3)
    layers = unflatten(theta, widths)
    n, classes = len(gates[0]), widths[-1]
    J = torch.eye(classes, dtype=theta.dtype).expand(n, classes, classes)  # d logits / d pre of the last
    for k in range(len(layers) - 1, layer + 1, -1):
        J = (J @ layers[k][0]) * gates[k - 1][:, None, :]
    W, b = layers[layer + 1]
    return J @ torch.cat([W, b[:, None]], dim=1)


def gram(v: torch.Tensor) -> torch.Tensor:
    """E[v v^T]: v [N, D] -> [D, D] (uncentred, as the paper's Gram matrices)."""
    return v.T @ v / len(v)


def numerical_rank(matrix: torch.Tensor, tol: float = RANK_TOL) -> int:
    """The number of eigenvalues of a symmetric PSD matrix [D, D] above tol times the largest."""
    check_tensor("degeneracy.numerical_rank", "matrix", matrix, ndim=2, kind="float")
    eig = torch.linalg.eigvalsh(matrix)
    return int((eig > tol * eig.max().clamp_min(0)).sum()) if eig.max() > 0 else 0


def gradient_covariance(J: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """E[g g^T] over the units (constant left out), g = dL_n/df_l = J_n^T (softmax - one-hot): [H, H]."""
    error = torch.softmax(logits, 1) - F.one_hot(labels, logits.shape[1]).to(logits.dtype)  # [N, C]
    g = torch.einsum("nch,nc->nh", J[:, :, :-1], error)
    return gram(g)


def cofiring(gates: torch.Tensor) -> dict:
    """ReLU co-firing (section 3) over the data: gates [N, H] -> counts of dead units (never on),
    always-on units, and units whose on/off pattern repeats another non-constant unit's."""
    check_tensor("degeneracy.cofiring", "gates", gates, ndim=2)
    on = gates.sum(0)
    dead, always = int((on == 0).sum()), int((on == len(gates)).sum())
    varying = gates[:, (on > 0) & (on < len(gates))].T
    patterns = torch.unique(varying, dim=0) if len(varying) else varying
    return {"dead": dead, "always_on": always, "duplicate": len(varying) - len(patterns)}


def interaction_basis(features: torch.Tensor, J: torch.Tensor, tol: float = RANK_TOL):
    """Section 6's interaction basis of one layer: features [N, D], J [N, C, D] -> (A [D, k], B [k, D],
    Lambda [r]): z = B f are the kept coordinates (Lambda above tol times the largest, after dropping the
    Gram's null directions), and A z is f with the dropped ones removed (A B is a projection)."""
    D, U = torch.linalg.eigh(gram(features))
    live = D > tol * D.max()
    U, D = U[:, live], D[live]
    M = torch.einsum("ncd,nce->de", J, J) / len(J)
    Lambda, V = torch.linalg.eigh(D.sqrt()[:, None] * (U.T @ M @ U) * D.sqrt()[None, :])
    V = V[:, Lambda > tol * Lambda.max()]
    return U @ (D.sqrt()[:, None] * V), V.T @ (D.rsqrt()[:, None] * U.T), Lambda.flip(0)


def random_removal(size: int, removed: int, g: torch.Generator) -> torch.Tensor:
    """I - Q Q^T [size, size]: removes `removed` directions of a random orthonormal basis."""
    Q, _ = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=torch.float64))
    Q = Q[:, :removed]
    return torch.eye(size, dtype=torch.float64) - Q @ Q.T


def test_split(seed: int):
    """(x_test [M, 2] float64, y_test [M]): the held-out spiral points of `trained(seed)`'s task."""
    task = spirals(n_train=300, n_test=300, seed=seed)
    return task.x_test.double(), task.y_test


@functools.lru_cache(maxsize=3)
def trained(seed: int):
    """(theta [P] float64, x_train [N, 2] float64, y_train [N]) of the spiral MLP of WIDTHS."""
    task = spirals(n_train=300, n_test=300, seed=seed)
    model = mlp(WIDTHS, seed=seed)
    train(model, task.x_train, task.y_train, TRAIN_STEPS, 0.02, seed=seed, optimizer=torch.optim.Adam)
    return flatten(model).double(), task.x_train.double(), task.y_train


def degeneracy_experiment(seed: int) -> dict:
    """The three degeneracies per hidden layer, and the loss after removing the interaction basis's
    degenerate directions against removing as many random ones."""
    check_int("degeneracy_experiment", "seed", seed, low=0)
    theta, x, y = trained(seed)
    features, gates, logits = layer_activations(theta, x, WIDTHS)
    m, keep, drop, removed, count = {}, [], [], 0, 0
    g = torch.Generator().manual_seed(seed)
    for l, f in enumerate(features):
        J = output_jacobian(theta, WIDTHS, gates, l)
        A, B, _ = interaction_basis(f, J)
        m[f"activation_rank_{l + 1}"] = numerical_rank(gram(f))
        m[f"gradient_rank_{l + 1}"] = numerical_rank(gradient_covariance(J, logits, y))
        m[f"jacobian_rank_{l + 1}"] = numerical_rank(torch.einsum("ncd,nce->de", J, J))
        m.update({f"{k}_{l + 1}": v for k, v in cofiring(gates[l]).items()})
        m[f"removed_{l + 1}"] = f.shape[1] - A.shape[1]
        keep.append(A @ B)
        drop.append(random_removal(f.shape[1], f.shape[1] - A.shape[1], g))
        removed, count = removed + f.shape[1] - A.shape[1], count + f.shape[1]
    loss = float(F.cross_entropy(logits, y))
    kept = layer_activations(theta, x, WIDTHS, keep)[2]
    randomly = layer_activations(theta, x, WIDTHS, drop)[2]
    kept_widths = [WIDTHS[0] + 1] + [f.shape[1] - m[f"removed_{l + 1}"] for l, f in enumerate(features)]
    x_test, y_test = test_split(seed)
    test_loss = float(F.cross_entropy(layer_activations(theta, x_test, WIDTHS)[2], y_test))
    test_kept = layer_activations(theta, x_test, WIDTHS, keep)[2]
    m.update({
        "loss": loss,
        "removed_fraction": removed / count,
        "loss_change": abs(float(F.cross_entropy(kept, y)) - loss),
        "random_loss_change": abs(float(F.cross_entropy(randomly, y)) - loss),
        "same_predictions": float((kept.argmax(1) == logits.argmax(1)).double().mean()),
        "test_loss_change": abs(float(F.cross_entropy(test_kept, y_test)) - test_loss),
        "parameters": parameter_count(WIDTHS),
        "effective_parameters": sum(k * h for k, h in zip(kept_widths, WIDTHS[1:])),
    })
    return m


CLAIM = Claim(
    paper="Bushnaq et al. 2024",
    citation="Using Degeneracy in the Loss Landscape for Mechanistic Interpretability (arXiv:2405.10927), "
             "section 3 (activation, Jacobian and ReLU co-firing degeneracy) and section 6 (the "
             "interaction basis)",
    statement="a trained network's activations and the gradients passed back to its layers are linearly "
              "dependent; the interaction basis finds the directions they leave degenerate, and removing "
              "them leaves the network's function, and loss, unchanged with fewer effective parameters, "
              "while removing as many random directions does not",
    kind=REPRODUCTION,
    experiment=degeneracy_experiment,
    thresholds=("removed_fraction >= 0.25", "loss_change <= 0.01", "random_loss_change >= 0.1"),
    summary=lambda m: (
        f"interaction basis drops {m['removed_1']} and {m['removed_2']} of {WIDTHS[1] + 1} and "
        f"{WIDTHS[2] + 1} directions in the hidden layers ({m['removed_fraction']:.0%}; activation ranks "
        f"{m['activation_rank_1']}, {m['activation_rank_2']}, {m['dead_1'] + m['dead_2']} dead ReLUs): "
        f"loss {m['loss']:.4f} moves by {m['loss_change']:.1e} (same prediction on "
        f"{m['same_predictions']:.1%}), "
        f"{m['parameters']} -> {m['effective_parameters']} effective parameters; removing as many random "
        f"directions moves it by {m['random_loss_change']:.2f}; on held-out points the basis's removal moves "
        f"the loss by {m['test_loss_change']:.2g} (no threshold)"),
)
