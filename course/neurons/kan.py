"""The B-spline Kolmogorov-Arnold layer: a learnable univariate function on every edge.

Liu et al. 2024 ("KAN: Kolmogorov-Arnold Networks", arXiv:2404.19756, eqs. 2.10-2.12): an input x [B, I]
goes to an output [B, O] by a sum of functions of one variable,

    out_o = sum_i phi_io(x_i),   phi_io(x) = w_io silu(x) + sum_c c_ioc B_c(x),

with B_c the B-splines of order k on a uniform grid of G intervals over [-R, R], extended by k knots on
each side (G + 2k + 1 knots, G + k splines; the scale w_s of eq. 2.12 is folded into c). Cox-de Boor's
recursion gives B_c for any order; for cubics on a uniform grid, the course's kernels use the closed form
B_c(x) = N(|x - m_c| / h) with the spline's middle knot m_c and N(r) = (4 - 6 r^2 + 3 r^3) / 6 for r < 1,
(2 - r)^3 / 6 for 1 <= r < 2, else 0.

Inside the grid [-R, R] the splines sum to 1 (a partition of unity). Outside the extended knots
[-R - k h, R + k h] every B_c is 0: the layer is then w silu(x) alone (as pykan's layer is); between
R and R + k h the splines fade out. Nothing is clamped.

`kan_linear` is the op `neurons.kan_linear`'s reference: it forms the basis [B, I, G + 3] and contracts it
with c in one einsum. `kan_linear_input_loop` adds one input's [B, G + 3] basis at a time (the fused
kernels' order of work: the [B, I, G + 3] tensor never exists); `kan_linear_pykan` runs pykan's KANLayer
with the same parameters (the peer a user would pick).
"""
import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.registry import check_backend

ORDER = 3  # the op's splines are cubic


def uniform_knots(grid_size: int, order: int = ORDER, grid_range: float = 1.0, dtype=torch.float32):
    """The G + 2k + 1 knots of a uniform grid of G intervals over [-R, R], extended by k on each side."""
    check_int("neurons.uniform_knots", "grid_size", grid_size, low=1)
    check_int("neurons.uniform_knots", "order", order, low=0)
    if not grid_range > 0:
        raise ValueError(f"neurons.uniform_knots: `grid_range` must be positive; got {grid_range!r}.")
    h = 2 * grid_range / grid_size
    return torch.arange(-order, grid_size + order + 1, dtype=dtype) * h - grid_range


def b_spline_basis(x, grid, order: int = ORDER):
    """Cox-de Boor: the B-splines of `order` on the knots `grid` [G + 2 order + 1] at x [...].

    -> [..., G + order] basis values (they sum to 1 inside the grid's central range).
    """
    x = x.unsqueeze(-1)
    basis = ((x >= grid[:-1]) & (x < grid[1:])).to(x.dtype)  # order 0
    for p in range(1, order + 1):
        left = (x - grid[:-(p + 1)]) / (grid[p:-1] - grid[:-(p + 1)]) * basis[..., :-1]
        right = (grid[p + 1:] - x) / (grid[p + 1:] - grid[1:-p]) * basis[..., 1:]
        basis = left + right
    return basis


def cubic_b_spline_basis(x, grid):
    """The cubic B-splines of a uniform grid in closed form. x [...], grid [G + 7] -> [..., G + 3]"""
    h = grid[1] - grid[0]
    r = ((x.unsqueeze(-1) - grid[2:-2]) / h).abs()  # distance to the middle knots of the G + 3 splines
    inner = (4 - 6 * r ** 2 + 3 * r ** 3) / 6
    outer = (2 - r).clamp(min=0) ** 3 / 6
    return torch.where(r < 1, inner, outer)


def check_kan_linear_args(where: str, x, base, coef, grid_range) -> int:
    """The op's argument checks, shared by every backend; returns the number of grid intervals G."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "base", base, ndim=2, kind="float")
    check_tensor(where, "coef", coef, ndim=3, kind="float")
    I = x.shape[1]
    if base.shape[0] != I:
        raise ValueError(f"{where}: `base` must be [I, O] with I = x.shape[1] = {I}; got {tuple(base.shape)}.")
    O = base.shape[1]
    if coef.shape[0] != I or coef.shape[2] != O:
        raise ValueError(f"{where}: `coef` must be [I, G + 3, O] = [{I}, G + 3, {O}]; got {tuple(coef.shape)}.")
    G = coef.shape[1] - ORDER
    if G < 1:
        raise ValueError(f"{where}: `coef` must hold G + 3 >= 4 spline coefficients an edge (a grid of at "
                         f"least one interval); got {coef.shape[1]}.")
    for name, t in (("base", base), ("coef", coef)):
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
        if t.device != x.device:
            raise ValueError(f"{where}: `{name}` must be on x's device {x.device}; got {t.device}.")
    if isinstance(grid_range, bool) or not isinstance(grid_range, (int, float)) or not grid_range > 0:
        raise ValueError(f"{where}: `grid_range` must be a positive number R (the grid spans [-R, R]); got "
                         f"{grid_range!r}.")
    return G


def knots_for(coef, grid_range: float, dtype, device):
    """The uniform cubic knots [G + 7] that coef [I, G + 3, O] needs."""
    return uniform_knots(coef.shape[1] - ORDER, ORDER, float(grid_range), dtype).to(device)


def kan_linear(x, base, coef, grid_range: float = 1.0):
    """out_o = sum_i w_io silu(x_i) + sum_i sum_c c_ioc B_c(x_i) (Liu et al. 2024, eq. 2.10), cubic B-splines
    on a uniform grid over [-grid_range, grid_range]. x [B, I], base [I, O], coef [I, G + 3, O] -> [B, O]"""
    check_kan_linear_args("neurons.kan_linear", x, base, coef, grid_range)
    acc = torch.promote_types(x.dtype, torch.float32)
    xa = x.to(acc)
    basis = cubic_b_spline_basis(xa, knots_for(coef, grid_range, acc, x.device))  # [B, I, G + 3]
    spline = torch.einsum("nic,ico->no", basis, coef.to(acc))
    return (F.silu(xa) @ base.to(acc) + spline).to(x.dtype)


def kan_linear_input_loop(x, base, coef, grid_range: float = 1.0):
    """The same, one input at a time: its [B, G + 3] basis times its [G + 3, O] coefficients, summed over
    the inputs; the [B, I, G + 3] basis is never formed. -> [B, O]"""
    check_kan_linear_args("neurons.kan_linear_input_loop", x, base, coef, grid_range)
    acc = torch.promote_types(x.dtype, torch.float32)
    xa, ca = x.to(acc), coef.to(acc)
    knots = knots_for(coef, grid_range, acc, x.device)
    out = F.silu(xa) @ base.to(acc)
    for i in range(x.shape[1]):
        out = out + cubic_b_spline_basis(xa[:, i], knots) @ ca[i]
    return out.to(x.dtype)


def kan_linear_pykan(x, base, coef, grid_range: float = 1.0):
    """The same with pykan's KANLayer (Liu et al.'s own library), its parameters set to these by
    torch.func.functional_call, so that the gradients reach base and coef. -> [B, O]"""
    G = check_kan_linear_args("neurons.kan_linear_pykan", x, base, coef, grid_range)
    check_backend("neurons.kan_linear", "pykan", "x", x)
    layer = pykan_layer(x.shape[1], base.shape[1], G, float(grid_range), str(x.device))
    params = {"coef": coef.permute(0, 2, 1), "scale_base": base,
              "scale_sp": torch.ones_like(base), "mask": torch.ones_like(base),
              "grid": knots_for(coef, grid_range, x.dtype, x.device).expand(x.shape[1], -1)}
    return torch.func.functional_call(layer, params, (x,))[0]


_PYKAN_LAYERS: dict = {}


def pykan_layer(I: int, O: int, G: int, grid_range: float, device: str):
    """pykan's KANLayer of these sizes, built once (its constructor fits splines: not part of a call)."""
    key = (I, O, G, grid_range, device)
    if key not in _PYKAN_LAYERS:
        from kan.KANLayer import KANLayer as PykanLayer

        with torch.random.fork_rng():
            _PYKAN_LAYERS[key] = PykanLayer(in_dim=I, out_dim=O, num=G, k=ORDER,
                                            grid_range=[-grid_range, grid_range], device=device)
    return _PYKAN_LAYERS[key]
