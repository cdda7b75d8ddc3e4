"""Exact Gauss-Newton (EGN): the Levenberg-Marquardt step solved in the mini-batch's dimension.

Korbit, Adeoye, Bemporad and Zanon 2024, "Exact Gauss-Newton Optimization for Training Deep Neural
Networks" (arXiv:2405.14402), section 3. For a regression network f(x; theta) with P parameters on a
mini-batch of b examples, with residuals r = f(X; theta) - y [b] and the Jacobian J = df/dtheta [b, P],
the Gauss-Newton model of the loss |r|^2 / 2 with the proximal term lambda |d|^2 / 2 is minimised by
the Levenberg-Marquardt direction

    d = -(J^T J + lambda I)^{-1} J^T r                      (P x P: the "direct" solve)
      = -J^T (J J^T + lambda I)^{-1} r                      (b x b: EGN)

by the Duncan-Guttman (Woodbury) identity (J^T J + lambda I)^{-1} J^T = J^T (J J^T + lambda I)^{-1},
which follows from (J^T J + lambda I) J^T = J^T (J J^T + lambda I). (The paper writes the loss as a
mean over the batch, so its lambda is ours / b.) With b << P, EGN factorises a b x b matrix instead
of a P x P one. The update is theta <- theta + alpha d (the paper adds line search, adaptive lambda
and momentum; here alpha and lambda are fixed).

The toy: a (1, 32, 32, 1) MLP fits y = sin(2 x) + x^2 / 4 + noise on [-2, 2], with mini-batches of
32; EGN against SGD and Adam, each at the best of a small grid of learning rates, over the same
number of steps and the same batches.
"""
import torch
from torch.func import jacrev

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.landscape.models import flatten, load, mlp, mlp_logits
from course.train import fit, seeded

WIDTHS = (1, 32, 32, 1)
N_TRAIN, N_TEST, BATCH, STEPS = 256, 256, 32, 100
ALPHA, DAMPING = 1.0, 0.1  # EGN's step size and lambda
SGD_LRS, ADAM_LRS = (0.1, 0.3, 1.0), (0.003, 0.01, 0.03)
NOISE = 0.05  # the targets' noise: no function fits below 1/2 NOISE^2 in expectation


def wave_data(n: int, seed: int):
    """x [n, 1] uniform on [-2, 2], y [n] = sin(2 x) + x^2 / 4 + 0.05 noise."""
    check_int("exact_gauss_newton.wave_data", "n", n, low=1)
    g = torch.Generator().manual_seed(seed)
    x = 4 * torch.rand(n, 1, generator=g) - 2
    return x, torch.sin(2 * x[:, 0]) + x[:, 0] ** 2 / 4 + NOISE * torch.randn(n, generator=g)


def regression_output(theta, x, widths=WIDTHS) -> torch.Tensor:
    """f(x; theta) [N] of the one-output MLP at parameters theta [P]."""
    return mlp_logits(theta, x, widths)[:, 0]


def half_mse(theta, x, y, widths=WIDTHS) -> float:
    """1/(2N) |f(x; theta) - y|^2 (inf where training diverged)."""
    value = float((regression_output(theta, x, widths) - y).pow(2).mean() / 2)
    return value if value == value else float("inf")


def check_step_args(where: str, J, r, damping: float):
    check_tensor(where, "J", J, ndim=2, kind="float")
    check_tensor(where, "r", r, ndim=1, kind="float")
    check_shape(where, "r", r, (J.shape[0],), "[b]")
    if not damping > 0:
        raise ValueError(f"{where}: `damping` (lambda) must be > 0; got {damping}.")


def egn_direction(J, r, damping: float) -> torch.Tensor:
    """d = -J^T (J J^T + lambda I)^{-1} r [P] from J [b, P], r [b]: a Cholesky solve of size b
    (eq. of section 3, by the Duncan-Guttman identity)."""
    check_step_args("exact_gauss_newton.egn_direction", J, r, damping)
    gram = J @ J.T + damping * torch.eye(J.shape[0], dtype=J.dtype)  # [b, b]
    factor = torch.linalg.cholesky(gram)
    return -J.T @ torch.cholesky_solve(r[:, None], factor)[:, 0]


def direct_direction(J, r, damping: float) -> torch.Tensor:
    """d = -(J^T J + lambda I)^{-1} J^T r [P]: the same step by a P x P solve (the reference)."""
    check_step_args("exact_gauss_newton.direct_direction", J, r, damping)
    system = J.T @ J + damping * torch.eye(J.shape[1], dtype=J.dtype)  # [P, P]
    return -torch.linalg.solve(system, J.T @ r)


def batch_jacobian(theta, x, widths=WIDTHS) -> torch.Tensor:
    """J [b, P]: the per-example Jacobian of the outputs with respect to theta (torch.func.jacrev,
    which vmaps the reverse pass over the b outputs)."""
    return jacrev(lambda t: regression_output(t, x, widths))(theta)


def batches(n: int, batch: int, steps: int, seed: int) -> torch.Tensor:
    """[steps, batch] row indices, seeded: every optimiser sees the same mini-batches."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n, generator=g)[:batch] for _ in range(steps)])


def egn_train(theta, x, y, rows, alpha: float = ALPHA, damping: float = DAMPING,
              widths=WIDTHS) -> torch.Tensor:
    """theta [P] after one EGN step on each mini-batch of rows [steps, b]."""
    for batch in rows:
        xb, yb = x[batch], y[batch]
        residual = regression_output(theta, xb, widths) - yb
        theta = theta + alpha * egn_direction(batch_jacobian(theta, xb, widths), residual, damping)
    return theta.detach()


def first_order_train(theta, x, y, rows, lr: float, optimizer, widths=WIDTHS) -> torch.Tensor:
    """theta [P] after one step of `optimizer` (SGD or Adam) on 1/(2b)|r|^2 of each mini-batch."""
    model = load(mlp(widths), theta)
    step = iter(rows)

    def loss():
        batch = next(step)
        return (model(x[batch])[:, 0] - y[batch]).pow(2).mean() / 2

    fit(model.parameters(), loss, len(rows), lr, optimizer=optimizer)
    return flatten(model)


def egn_experiment(seed: int) -> dict:
    """Training loss after STEPS steps of EGN, and of SGD and Adam at their best learning rate."""
    x, y = wave_data(N_TRAIN + N_TEST, seed)
    x, y, x_test, y_test = x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
    with seeded(seed):
        theta0 = flatten(mlp(WIDTHS, seed=seed))
    rows = batches(N_TRAIN, BATCH, STEPS, seed)
    m = {"initial_loss": half_mse(theta0, x, y), "noise_floor": NOISE ** 2 / 2}
    final = {"egn": egn_train(theta0, x, y, rows)}
    for name, optimizer, lrs in (("sgd", torch.optim.SGD, SGD_LRS), ("adam", torch.optim.Adam, ADAM_LRS)):
        runs = {lr: first_order_train(theta0, x, y, rows, lr, optimizer) for lr in lrs}
        best = min(runs, key=lambda lr: half_mse(runs[lr], x, y))
        final[name] = runs[best]
        m[f"{name}_best_lr"] = best
    for name, theta in final.items():
        m[f"{name}_loss"] = half_mse(theta, x, y)
        m[f"{name}_test_loss"] = half_mse(theta, x_test, y_test)
    m["egn_over_sgd"] = m["egn_loss"] / m["sgd_loss"]
    m["egn_over_adam"] = m["egn_loss"] / m["adam_loss"]
    return m


CLAIM = Claim(
    paper="Korbit et al. 2024 (EGN)",
    citation="Exact Gauss-Newton Optimization for Training Deep Neural Networks (arXiv:2405.14402), "
             "section 3 (the Duncan-Guttman step) and the regression experiments",
    statement="the exact Gauss-Newton step, solved as a mini-batch-sized linear system, trains a "
              "network to a lower loss than well-tuned SGD and Adam in the same number of steps",
    kind=REPRODUCTION,
    experiment=egn_experiment,
    thresholds=("egn_over_sgd <= 0.8", "egn_over_adam <= 0.8"),
    held_on=(),
    note="Not reproduced against Adam: EGN's training loss is 5-27x below SGD's at its best learning "
         "rate on seeds 0, 1, 2, but against Adam at its best it is 1.15x, 0.96x and 1.27x, short of "
         "the 0.8x asked. Both end within 15-46% of the noise floor 1/2 0.05^2 = 0.00125 in 100 "
         "steps, so this toy cannot separate them; EGN is the one that needs no learning-rate search "
         "(alpha = 1, lambda = 0.1 throughout). The learning-rate grids were cut to the three rates "
         "around each optimiser's best for the budget, after the wider grids (SGD 0.03-1, Adam "
         "0.001-0.03) had picked the same rates; Adam's best, 0.03, is the grid's largest on every seed.",
    summary=lambda m: (
        f"after {STEPS} steps on mini-batches of {BATCH}, the training loss 1/2 MSE is "
        f"{m['egn_loss']:.3g} with EGN, {m['sgd_loss']:.3g} with SGD (lr {m['sgd_best_lr']:g}) and "
        f"{m['adam_loss']:.3g} with Adam (lr {m['adam_best_lr']:g}): {m['egn_over_sgd']:.2f}x and "
        f"{m['egn_over_adam']:.2f}x (test: {m['egn_test_loss']:.3g}, {m['sgd_test_loss']:.3g}, "
        f"{m['adam_test_loss']:.3g})"),
)
