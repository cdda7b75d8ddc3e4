"""Stable assemblies of contracting RNNs: skew-symmetric (negative-feedback) coupling keeps contraction.

Kozachkov, Ennis and Slotine 2022, "RNNs of RNNs: Recursive Construction of Stable Assemblies of
Recurrent Neural Networks" (NeurIPS 2022, arXiv:2106.08928). Each module i is a continuous-time RNN
tau x_i' = -x_i + W_i phi(x_i) + U_i u (section 3); with phi = tanh (slope in [0, 1]) the Jacobian is
J_i = -I + W_i D with D diagonal in [0, 1], whose measure in the identity metric,
mu_2(J) = lambda_max((J + J^T) / 2), is at most -1 + ||W_i||_2: ||W_i||_2 < 1 makes the module
contracting (Theorem 1 with M = I). Modules are coupled linearly, x_i' += sum_j L_ij x_j, and the
combination is contracting when the coupling is negative feedback, L_ji = -L_ij^T (section 4, the
"skew-symmetric" combination property, eq. 9): the block-skew L adds nothing to the symmetric part,
so the assembly's measure is still at most max_i (-1 + ||W_i||_2) < 0. Here both are trained by
backpropagation through a discretisation that keeps the guarantee: a Lie-Trotter splitting
x_{t+1} = exp(DT L) [x_t + DT (-x_t + W phi(x_t) + U u_t)], whose step Jacobian
exp(DT L) [(1 - DT) I + DT W D] has 2-norm <= 1 - DT (1 - ||W||_2) < 1, since exp(DT L) is orthogonal
for skew L (plain Euler on a skew coupling expands: |I + DT L| > 1). The task: glyph images read a row
per step, against the same assembly with unconstrained W_i and L_ij (matched size, same scheme).
"""
from functools import lru_cache

import torch

from course import data
from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.train import DecayingAdam, fit, seeded

MODULES, UNITS = 2, 16
PIXELS_PER_STEP = 8  # 8x8 image -> 8 steps, a row each
DT = 0.5
NORM = 0.8  # ||W_i||_2 of the stable modules: measure <= -1 + 0.8 = -0.2
N_TRAIN, N_TEST, NOISE = 256, 512, 0.5
STEPS, LR = 100, 0.03
REPEATS = 4  # the trajectory check runs on 4 test images in a row (32 steps)


def spectral_normed(V: torch.Tensor, norm: float = NORM) -> torch.Tensor:
    """W = norm V / max(1, ||V||_2) [.., n, n]: ||W||_2 <= norm (a contraction-preserving
    parameterisation, differentiable in V)."""
    return norm * V / torch.linalg.matrix_norm(V, ord=2).clamp_min(1.0)[..., None, None]


def skew_coupling(B: torch.Tensor) -> torch.Tensor:
    """L [M n, M n] from B [M, M, n, n]: L_ij = B_ij - B_ji^T for i != j, L_ii = 0, so L^T = -L
    (negative feedback, eq. 9)."""
    M, n = B.shape[0], B.shape[-1]
    off = B * (1 - torch.eye(M, dtype=B.dtype))[:, :, None, None]
    L = off.permute(0, 2, 1, 3).reshape(M * n, M * n)
    return L - L.T


def free_coupling(B: torch.Tensor) -> torch.Tensor:
    """L [M n, M n] from B [M, M, n, n] with no constraint (diagonal blocks zero)."""
    M, n = B.shape[0], B.shape[-1]
    off = B * (1 - torch.eye(M, dtype=B.dtype))[:, :, None, None]
    return off.permute(0, 2, 1, 3).reshape(M * n, M * n)


class Assembly(torch.nn.Module):
    """M RNN modules of n units, x' = -x + blockdiag(W_i) tanh(x) + L x + U u, read out after the last
    step. `stable`: W_i spectrally normed and L skew-symmetric; else both free."""

    def __init__(self, inputs: int, classes: int, stable: bool, modules: int = MODULES, units: int = UNITS):
        super().__init__()
        self.stable, self.M, self.n = stable, modules, units
        self.V = torch.nn.Parameter(torch.randn(modules, units, units) / units ** 0.5)
        self.B = torch.nn.Parameter(0.3 * torch.randn(modules, modules, units, units) / units ** 0.5)
        self.U = torch.nn.Linear(inputs, modules * units)
        self.readout = torch.nn.Linear(modules * units, classes)

    def weights(self) -> tuple:
        """(W [M n, M n] block-diagonal, L [M n, M n])."""
        W = spectral_normed(self.V) if self.stable else self.V
        L = skew_coupling(self.B) if self.stable else free_coupling(self.B)
        return torch.block_diag(*W), L

    def velocity(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x' [B, M n] at x [B, M n], input u [B, inputs]."""
        W, L = self.weights()
        return -x + torch.tanh(x) @ W.T + x @ L.T + self.U(u)

    def run(self, u: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        """States [B, T, M n] for inputs u [B, T, inputs] by Euler steps of DT from x0 (default 0)."""
        check_tensor("rnns_of_rnns.Assembly.run", "u", u, ndim=3, kind="float")
        x = u.new_zeros(u.shape[0], self.M * self.n) if x0 is None else x0
        W, L = self.weights()
        Q = torch.linalg.matrix_exp(DT * L)  # the coupling's exact flow: orthogonal when L^T = -L
        drive = self.U(u)
        out = []
        for t in range(u.shape[1]):
            x = (x + DT * (-x + torch.tanh(x) @ W.T + drive[:, t])) @ Q.T
            out.append(x)
        return torch.stack(out, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.readout(self.run(u)[:, -1])

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """J [B, M n, M n] = -I + W diag(tanh'(x)) + L at states x [B, M n]."""
        W, L = self.weights()
        D = 1 - torch.tanh(x) ** 2
        return -torch.eye(x.shape[1]) + W * D[:, None, :] + L

    def step_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """dx_{t+1}/dx_t [B, M n, M n] = exp(DT L) ((1 - DT) I + DT W diag(tanh'(x))) at x [B, M n]."""
        W, L = self.weights()
        D = 1 - torch.tanh(x) ** 2
        return torch.linalg.matrix_exp(DT * L) @ ((1 - DT) * torch.eye(x.shape[1]) + DT * W * D[:, None, :])


def contraction_measure(J: torch.Tensor) -> torch.Tensor:
    """mu_2(J) = lambda_max((J + J^T) / 2) for J [..., n, n]: negative everywhere -> contracting in the
    identity metric (Lohmiller and Slotine 1998), rate -mu."""
    check_tensor("rnns_of_rnns.contraction_measure", "J", J, kind="float")
    if J.dim() < 2 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"rnns_of_rnns.contraction_measure: `J` must be [..., n, n]; got {tuple(J.shape)}.")
    return torch.linalg.eigvalsh((J + J.transpose(-1, -2)) / 2)[..., -1]


def as_sequences(images: torch.Tensor) -> torch.Tensor:
    """Images [N, 8, 8] -> pixel sequences [N, 64 / PIXELS_PER_STEP, PIXELS_PER_STEP], row by row."""
    return images.reshape(len(images), -1, PIXELS_PER_STEP)


def trajectory_gap(model: Assembly, u: torch.Tensor, seed: int, scale: float = 3.0) -> torch.Tensor:
    """|x_t - y_t| [T] (mean over the batch) for two runs on the same inputs u from random initial
    states of norm ~ scale: decays exponentially when the assembly contracts."""
    g = torch.Generator().manual_seed(seed)
    x0, y0 = (scale * torch.randn(len(u), model.M * model.n, generator=g) / (model.M * model.n) ** 0.5
              for _ in range(2))
    return (model.run(u, x0) - model.run(u, y0)).norm(dim=-1).mean(0)


@lru_cache(maxsize=8)
def trained(seed: int, stable: bool) -> tuple:
    """(model, test accuracy) for the seed's glyph task, trained with the same budget."""
    check_int("rnns_of_rnns.trained", "seed", seed, low=0)
    images, what, _ = data.glyph_images(N_TRAIN + N_TEST, noise=NOISE, seed=seed)
    u = as_sequences(images)
    with seeded(seed):
        model = Assembly(PIXELS_PER_STEP, len(data.GLYPHS), stable)
        fit(model.parameters(), lambda: torch.nn.functional.cross_entropy(model(u[:N_TRAIN]), what[:N_TRAIN]),
            STEPS, LR, seed=seed, optimizer=DecayingAdam, total=STEPS, progress=False)
    with torch.no_grad():
        accuracy = float((model(u[N_TRAIN:]).argmax(1) == what[N_TRAIN:]).float().mean())
    return model, accuracy, u[N_TRAIN:N_TRAIN + 64 * REPEATS].reshape(64, -1, PIXELS_PER_STEP)


def assembly_experiment(seed: int) -> dict:
    """Test accuracy, the largest Jacobian measure over the test trajectories, and the trajectory gap's
    shrink factor over the sequence, for the stable and the free assembly."""
    out = {}
    for name, stable in (("stable", True), ("free", False)):
        model, accuracy, u = trained(seed, stable)
        with torch.no_grad():
            states = model.run(u).reshape(-1, model.M * model.n)
            gap = trajectory_gap(model, u, seed)
            out[f"accuracy_{name}"] = accuracy
            out[f"max_measure_{name}"] = float(contraction_measure(model.jacobian(states)).max())
            out[f"gap_ratio_{name}"] = float(gap[-1] / gap[0])
            step_norms = torch.linalg.matrix_norm(model.step_jacobian(states), ord=2)
            out[f"max_step_norm_{name}"] = float(step_norms.max())
    out["accuracy_gap"] = out["accuracy_free"] - out["accuracy_stable"]
    return out


CLAIM = Claim(
    paper="Kozachkov et al. 2022",
    citation="RNNs of RNNs: Recursive Construction of Stable Assemblies of Recurrent Neural Networks "
             "(arXiv:2106.08928), sections 3-4 (Theorem 1, skew-symmetric combination, eq. 9) and 5",
    statement="an assembly of contracting RNN modules coupled by negative feedback is itself contracting "
              "and trains on a sequential-pixel task as well as the same modules coupled without constraint",
    kind=REPRODUCTION,
    experiment=assembly_experiment,
    thresholds=("max_measure_stable < 0", "max_step_norm_stable < 1", "gap_ratio_stable <= 0.1",
                "accuracy_stable >= 0.9", "accuracy_gap <= 0.05"),
    held_on=(),
    note="Does not reproduce in full at this budget: the accuracy threshold (0.9, set before running) fails "
         "on every seed for both assemblies alike (stable 0.75, 0.73, 0.73; free 0.75, 0.70, 0.74 after 100 "
         "Adam steps), while the rest holds on every seed: the stable assembly's largest measure is about "
         "-0.22, its step Jacobian's norm at most 0.89, two trajectories from different states close by a "
         "factor ~1e-4 over 32 steps, and it matches the free one's accuracy (gap <= 0.01); the free one "
         "reaches measure ~1.5 and its trajectories drift apart (x1.3-1.9). "
         "Glyph images (4 classes, noise 0.5) read a row per step (8 steps; the trajectory check runs 4 "
         "images in a row, 32 steps), 2 modules of 16 units, "
         "the identity metric only (the paper also learns metrics and uses sparse/diagonal conditions). "
         "The free assembly's measure and gap are reported, not thresholded.",
    summary=lambda m: (f"stable: accuracy {m['accuracy_stable']:.2f}, "
                       f"max mu_2(J) {m['max_measure_stable']:.2f},"
                       f" gap x{m['gap_ratio_stable']:.1g}; free: accuracy {m['accuracy_free']:.2f}, "
                       f"max mu_2(J) {m['max_measure_free']:.2f}, gap x{m['gap_ratio_free']:.2g}"),
)
