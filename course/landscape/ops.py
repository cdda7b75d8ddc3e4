"""The landscape ops in the registry: the loss on a grid of parameter points (one batched pass, the
perturbation fused into each layer's matmul by the kernels), and the Hessian-vector product that the
curvature estimates are built on."""
import torch

from course.landscape.models import flatten, mlp
from course.registry import FLOATS, Case, Impl, Op, register

GPU_DTYPES = (torch.float32, torch.bfloat16)
KERNEL_DTYPES = (torch.float32, torch.bfloat16)  # forward only, in single and bfloat16 (the issue's)


def mlp_problem(params: dict, generator: torch.Generator) -> dict:
    """x [N, I] (a transposed view if `strided`; row `nan_row` NaN), labels [N] and the parameters
    theta [P] of a freshly initialised MLP of `widths`."""
    widths, N = tuple(params["widths"]), params["N"]
    if params.get("strided"):
        x = torch.randn(widths[0], N, generator=generator).T
    else:
        x = torch.randn(N, widths[0], generator=generator)
    if params.get("nan_row") is not None and params["nan_row"] < N:
        x[params["nan_row"]] = float("nan")
    labels = torch.randint(widths[-1], (N,), generator=generator)
    seed = int(torch.randint(2 ** 31, (1,), generator=generator))
    return dict(x=x, labels=labels, theta=flatten(mlp(widths, seed=seed)), widths=widths)


def grid_loss_inputs(params: dict, generator: torch.Generator) -> dict:
    """The MLP problem, two directions of theta's scale, and G coordinates in [-span, span]^2: a
    regular sqrt(G) x sqrt(G) grid (alpha the slow index, as `grid.surface` lays it out), or
    `scattered` random points."""
    kw = mlp_problem(params, generator)
    P = kw["theta"].numel()
    scale = kw["theta"].norm() / P ** 0.5
    d1, d2 = (torch.randn(P, generator=generator) * scale for _ in range(2))
    G, span = params["G"], params.get("span", 1.0)
    if params.get("scattered"):
        coords = (2 * torch.rand(G, 2, generator=generator) - 1) * span
    else:
        S = round(G ** 0.5)
        assert S * S == G, f"a regular grid case needs a square G; got {G}"
        axis = torch.linspace(-span, span, S) if S > 1 else torch.zeros(S)
        a, b = torch.meshgrid(axis, axis, indexing="ij")
        coords = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    return dict(x=kw["x"], labels=kw["labels"], theta=kw["theta"], d1=d1, d2=d2, coords=coords,
                widths=kw["widths"])


def grid_loss_flops(kwargs: dict) -> int:
    """2 N G sum_l fan_in fan_out: every grid point's forward pass (the weights' combination, 4 flops
    a weight per grid point, not counted: the kernels do it once per tile per point)."""
    w, N, G = kwargs["widths"], kwargs["x"].shape[0], kwargs["coords"].shape[0]
    return 2 * N * G * sum(a * b for a, b in zip(w, w[1:]))


SCATTERED = ("loss_landscapes",)  # the peer walks regular grids only
GRID_TEST_CASES = (
    Case("widths (2,16,3) 3x3 grid", dict(widths=(2, 16, 3), N=40, G=9)),
    Case("deep (5,24,20,16,4) 5x5 grid", dict(widths=(5, 24, 20, 16, 4), N=33, G=25)),
    Case("grid point (0,0) only", dict(widths=(4, 12, 3), N=20, G=1)),
    Case("no grid points", dict(widths=(4, 12, 3), N=20, G=0)),
    Case("one example", dict(widths=(3, 8, 2), N=1, G=4)),
    Case("I=1 C=2, scattered points", dict(widths=(1, 9, 2), N=17, G=7, scattered=True),
         skip_backends=SCATTERED),
    Case("hidden 160 (wider than a block)", dict(widths=(8, 160, 5), N=24, G=4)),
    Case("no hidden layer (logistic regression)", dict(widths=(6, 4), N=30, G=9, scattered=True),
         skip_backends=SCATTERED),
    Case("far from theta (span 20)", dict(widths=(4, 12, 3), N=20, G=9, span=20.0)),
    Case("strided inputs", dict(widths=(6, 16, 3), N=25, G=4, strided=True)),
    Case("NaN row", dict(widths=(4, 12, 3), N=20, G=4, nan_row=3)),
    Case("G=400 (a 20x20 grid)", dict(widths=(2, 32, 32, 3), N=64, G=400, heavy=True)),
    Case("1M parameters, 16x16 grid", dict(widths=(64, 1024, 960, 10), N=256, G=256), devices=("cuda",),
         dtypes=GPU_DTYPES, skip_backends=("point_loop",)),
)
GRID_BENCH_CASES = (
    Case("51x51 grid, widths (2,32,32,3), N=600", dict(widths=(2, 32, 32, 3), N=600, G=51 * 51),
         devices=("cpu",)),
    # the reference's [G, P] weights are 160 GB here: the kernels alone
    Case("201x201 grid, 1M parameters, N=256", dict(widths=(64, 1024, 960, 10), N=256, G=201 * 201),
         devices=("cuda",), dtypes=GPU_DTYPES, skip_backends=("reference", "point_loop")),
)

grid_loss = register(Op(
    name="landscape.grid_loss",
    doc="The mean cross-entropy of an MLP at G parameter points theta + alpha_g d1 + beta_g d2, in one "
        "batched pass (Li et al. 2018, eq. 1 on a whole grid).",
    impls=(
        Impl("reference", "course.landscape.grid:grid_loss", dtypes=FLOATS),
        Impl("point_loop", "course.landscape.grid:grid_loss_point_loop", devices=("cpu",), dtypes=FLOATS),
        Impl("triton", "course.kernels.landscape.triton_landscape:grid_loss", kind="triton",
             dtypes=KERNEL_DTYPES),
        Impl("cuda", "course.kernels.landscape.cuda_landscape:grid_loss", kind="cuda", dtypes=KERNEL_DTYPES),
        # the peer: loss-landscapes' planar_interpolation (regular S x S grids only)
        Impl("loss_landscapes", "course.landscape.grid:grid_loss_loss_landscapes", devices=("cpu",),
             dtypes=(torch.float32, torch.float64), requires="loss_landscapes"),
    ),
    make_inputs=grid_loss_inputs,
    test_cases=GRID_TEST_CASES,
    bench_cases=GRID_BENCH_CASES,
    tol=1e-5,
    # bfloat16: the point loop's bfloat16 forward is off by up to 3.0e-3 on these cases; the Triton kernel
    # keeps float32 activations and is off by 0 (held to 1e-3 in tests/landscape/test_kernels.py)
    tols={torch.bfloat16: 8e-3},
    flops=grid_loss_flops,
))


def hvp_inputs(params: dict, generator: torch.Generator) -> dict:
    kw = mlp_problem(params, generator)
    v = torch.randn(kw["theta"].numel(), generator=generator)
    return dict(x=kw["x"], labels=kw["labels"], theta=kw["theta"], v=v, widths=kw["widths"])


HVP_TEST_CASES = (
    Case("widths (2,16,3)", dict(widths=(2, 16, 3), N=40)),
    Case("deep (5,24,20,16,4)", dict(widths=(5, 24, 20, 16, 4), N=33)),
    Case("one example", dict(widths=(3, 8, 2), N=1)),
    Case("no hidden layer (logistic regression)", dict(widths=(6, 4), N=30)),
    Case("strided inputs", dict(widths=(6, 16, 3), N=25, strided=True)),
    Case("NaN row", dict(widths=(4, 12, 3), N=20, nan_row=3)),
)

hvp = register(Op(
    name="landscape.hvp",
    doc="The Hessian-vector product H v of an MLP's mean cross-entropy at theta, by double backward "
        "(Pearlmutter 1994): the building block of every sharpness estimate.",
    impls=(
        Impl("reference", "course.landscape.curvature:hvp", dtypes=FLOATS),
        Impl("forward_over_reverse", "course.landscape.curvature:hvp_forward_over_reverse", dtypes=FLOATS),
        Impl("pyhessian", "course.landscape.curvature:hvp_pyhessian", dtypes=(torch.float32, torch.float64),
             requires="pyhessian"),
    ),
    make_inputs=hvp_inputs,
    test_cases=HVP_TEST_CASES,
    bench_cases=(Case("widths (2,32,32,3), N=600", dict(widths=(2, 32, 32, 3), N=600), devices=("cpu",)),
                 Case("widths (64,1024,960,10), N=4096", dict(widths=(64, 1024, 960, 10), N=4096),
                      devices=("cuda",), dtypes=(torch.float32,))),
    tol=1e-5,
    tols={torch.float16: 2e-2, torch.bfloat16: 4e-2},  # bfloat16 Hessians: 2.5e-2 measured
))
