"""The loss on a grid of parameter points, in one batched pass.

Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(arXiv:1712.09913), section 3: a 2-D slice of the loss around parameters theta_0 is

    f(alpha, beta) = L(theta_0 + alpha delta + beta eta)                              (eq. 1 there)

for two directions delta, eta. A plot needs f on a whole grid of G = A x B points (alpha_g, beta_g).
`grid_loss` computes all G losses as one batched computation: torch.func's `functional_call` over
the module under `vmap`, so the G parameter points are one batch (each point's weights are formed,
[G, P] in all: the reference's cost that the kernels remove). The batch is mapped in chunks of grid
points whose activations [chunk, N, H] fit in about 4 MB (`vmap`'s chunk_size): all G at once would
stream [G, N, H] through memory (200 MB a layer for a 51 x 51 grid on 600 examples), which measured
3x slower on a CPU than chunks that stay in cache. `grid_loss_point_loop` is what a
plot script does, one point at a time. The Triton and CUDA kernels (`kernels/landscape/`) fold the
perturbation into each layer's matmul, W_g = W_0 + alpha_g D_1 + beta_g D_2 formed tile by tile on
chip, so the G weight copies never exist in memory.

A non-finite loss at a grid point (a direction that blows the logits up) comes back as inf or NaN at
that point, never as an error: a plot shows it as a hole.
"""
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from course.checks import check_shape, check_tensor
from course.landscape.models import check_widths, mlp, parameter_count, unflatten
from course.precision import accumulating
from course.registry import check_backend


CACHED_ACTIVATIONS = 2 ** 20  # per chunk of grid points: [chunk, N, widest layer] stays in cache


def check_grid_loss_args(where: str, x, labels, theta, d1, d2, coords, widths) -> tuple:
    """The op's argument checks, shared by every backend; returns widths as a tuple."""
    widths = check_widths(where, widths)
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "labels", labels, ndim=1, kind="int")
    for name, t in (("theta", theta), ("d1", d1), ("d2", d2)):
        check_tensor(where, name, t, ndim=1, kind="float")
        check_shape(where, name, t, (parameter_count(widths),), "[P]")
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
    check_tensor(where, "coords", coords, ndim=2, kind="float")
    if coords.shape[1] != 2:
        raise ValueError(f"{where}: `coords` must be [G, 2] (alpha, beta per grid point); "
                         f"got shape {tuple(coords.shape)}.")
    if x.shape[1] != widths[0]:
        raise ValueError(f"{where}: `x` [N, I] must have I = widths[0] = {widths[0]} features; "
                         f"got shape {tuple(x.shape)}.")
    check_shape(where, "labels", labels, (x.shape[0],), "[N]")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: `x` must hold at least one example (the mean loss over none is "
                         "undefined); got shape (0, I).")
    if labels.numel() and (labels.min() < 0 or labels.max() >= widths[-1]):
        raise ValueError(f"{where}: `labels` must be in [0, C) = [0, {widths[-1]}); got values from "
                         f"{labels.min().item()} to {labels.max().item()}.")
    return widths


def grid_points(theta, d1, d2, coords) -> torch.Tensor:
    """The G parameter points theta + alpha_g d1 + beta_g d2, [G, P] (materialised)."""
    return theta + coords[:, :1].to(theta.dtype) * d1 + coords[:, 1:].to(theta.dtype) * d2


def grid_loss(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """Mean cross-entropy of the MLP of `widths` at each grid point, as one vmapped functional_call.

    x [N, I], labels [N], theta/d1/d2 [P], coords [G, 2] -> losses [G] (x's dtype).
    """
    widths = check_grid_loss_args("landscape.grid_loss", x, labels, theta, d1, d2, coords, widths)
    module = mlp(widths).to(device=x.device, dtype=x.dtype)
    names = [name for name, _ in module.named_parameters()]

    def loss_at(point):  # point [P] -> scalar
        params = {}
        for (W, b), (wname, bname) in zip(unflatten(point, widths), zip(names[::2], names[1::2])):
            params[wname], params[bname] = W, b
        logits = functional_call(module, params, (x,))
        return F.cross_entropy(accumulating(logits), labels).to(x.dtype)

    if coords.shape[0] == 0:
        return x.new_empty(0)
    return vmap(loss_at, chunk_size=chunk_size(x.shape[0], widths))(grid_points(theta, d1, d2, coords))


def chunk_size(N: int, widths) -> int:
    """Grid points per vmapped chunk: about 2^20 activations (4 MB in float32) of the widest layer."""
    return max(1, CACHED_ACTIVATIONS // (N * max(widths)))


def grid_loss_point_loop(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """The same losses, one grid point at a time (a plot script's loop)."""
    widths = check_grid_loss_args("landscape.grid_loss_point_loop", x, labels, theta, d1, d2, coords,
                                  widths)
    module = mlp(widths).to(device=x.device, dtype=x.dtype)
    out = x.new_empty(coords.shape[0])
    with torch.no_grad():
        for g in range(coords.shape[0]):
            point = theta + coords[g, 0].to(theta.dtype) * d1 + coords[g, 1].to(theta.dtype) * d2
            torch.nn.utils.vector_to_parameters(point, module.parameters())
            out[g] = F.cross_entropy(accumulating(module(x)), labels).to(x.dtype)
    return out


def surface(x, labels, theta, d1, d2, alphas, betas, widths, backend: str = "auto") -> torch.Tensor:
    """The loss on the grid alphas [A] x betas [B], as [A, B] (row i: alpha_i), through the op."""
    from course.landscape.ops import grid_loss as grid_loss_op

    a, b = torch.meshgrid(alphas.to(x.dtype), betas.to(x.dtype), indexing="ij")
    coords = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    losses = grid_loss_op(x, labels, theta, d1, d2, coords, widths, backend=backend)
    return losses.reshape(len(alphas), len(betas))


def regular_grid(coords: torch.Tensor, where: str) -> tuple:
    """(S, alpha_0, d_alpha, beta_0, d_beta) if coords [S*S, 2] is a regular S x S grid with alpha
    the slow index (as `surface` and meshgrid 'ij' lay it out); else a ValueError that says so."""
    G = coords.shape[0]
    S = round(G ** 0.5)
    if S * S != G:
        raise ValueError(f"{where}: `coords` must be a regular S x S grid for loss-landscapes' "
                         f"planar_interpolation; got G = {G} points, not a square.")
    c = coords.double().reshape(S, S, 2)
    a, b = c[:, 0, 0], c[0, :, 1]
    da = float(a[1] - a[0]) if S > 1 else 0.0
    db = float(b[1] - b[0]) if S > 1 else 0.0
    expected = torch.stack(torch.meshgrid(a[0] + da * torch.arange(S, dtype=torch.float64),
                                          b[0] + db * torch.arange(S, dtype=torch.float64),
                                          indexing="ij"), dim=-1)
    if not torch.allclose(c, expected, rtol=1e-5, atol=1e-6):
        raise ValueError(f"{where}: `coords` must be a regular S x S grid (alpha the slow index, "
                         "equal steps) for loss-landscapes' planar_interpolation; got another layout.")
    return S, float(a[0]), da, float(b[0]), db


def grid_loss_loss_landscapes(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """The same losses by the `loss-landscapes` package (PyPI), the peer a user would pick: its
    `planar_interpolation` walks a plane from a start model towards two end models, evaluating a
    `Loss` metric at each point (so the grid must be regular).

    loss-landscapes 3.0.6 walks the rows in a zigzag and is off by one on alternate rows: with
    `steps` = K, row i holds start + i/K (end_1 - start) + k/K (end_2 - start) for k = 1..K on even
    rows but k = 0..K-1 on odd ones. So it is asked for K = S + 1 steps from one beta-step before the
    grid, and the S x S points are read out of its (S+1) x (S+1): (S+1)^2 / S^2 of the work (4% at
    S = 51), which the benchmark's ratio includes."""
    import loss_landscapes
    import loss_landscapes.metrics

    widths = check_grid_loss_args("landscape.grid_loss", x, labels, theta, d1, d2, coords, widths)
    check_backend("landscape.grid_loss", "loss_landscapes", "x", x)
    if coords.shape[0] == 0:
        return x.new_empty(0)
    S, a0, da, b0, db = regular_grid(coords, "landscape.grid_loss (loss_landscapes)")
    K = S + 1
    models = []
    for point in (theta + a0 * d1 + (b0 - db) * d2,  # start: one beta-step before the grid
                  theta + (a0 + K * da) * d1 + (b0 - db) * d2,  # end one: K alpha-steps on
                  theta + a0 * d1 + (b0 - db + K * db) * d2):  # end two: K beta-steps on
        module = mlp(widths).to(device=x.device, dtype=x.dtype)
        torch.nn.utils.vector_to_parameters(point, module.parameters())
        models.append(module)
    metric = loss_landscapes.metrics.Loss(lambda out, y: F.cross_entropy(accumulating(out), y),
                                          x, labels)
    with torch.no_grad():
        walked = torch.as_tensor(loss_landscapes.planar_interpolation(*models, metric, steps=K))
    rows = [walked[i, :S] if i % 2 == 0 else walked[i, 1:] for i in range(S)]  # beta offsets 1..S
    return torch.stack(rows).reshape(-1).to(dtype=x.dtype, device=x.device)
