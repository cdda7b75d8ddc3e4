"""The diffusion ops in the registry: the ideal denoiser of a training set (a streaming-softmax
attention), Heun's fused step of EDM's Algorithm 2, and the preconditioning after the network."""
import torch

from course.registry import FLOATS, Case, Impl, Op, register

GPU_DTYPES = (torch.float32, torch.bfloat16)


def rows(n: int, d: int, params: dict, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """[n, d] random rows; `strided`: a transposed view; `nan_row`: that row NaN."""
    if params.get("strided"):
        x = torch.randn(d, n, generator=generator).T
    else:
        x = torch.randn(n, d, generator=generator)
    x = x * scale
    if params.get("nan_row") is not None and params["nan_row"] < n:
        x[params["nan_row"]] = float("nan")
    return x


def noise_levels(n: int, params: dict, generator: torch.Generator) -> torch.Tensor:
    """[n] levels: `sigma` if given, else log-uniform in [0.1, 20] (a batch at mixed noise).

    Below 0.1 the ideal denoiser's gradient, Cov(y) / sigma^2, is a difference of terms 1 / sigma^2
    larger than itself: two correct float32 algorithms then differ by 1e-3 of it, which no tolerance
    that catches a wrong one can allow. The fully one-hot case (sigma 0.01) has its own test case."""
    if "sigma" in params:
        return torch.full((n,), float(params["sigma"]))
    return torch.exp(torch.empty(n).uniform_(-2.3, 3.0, generator=generator))


def ideal_denoiser_inputs(params: dict, generator: torch.Generator) -> dict:
    N, M, D = params["N"], params["M"], params["D"]
    y = torch.randn(M, D, generator=generator)
    x = rows(N, D, params, generator, scale=params.get("spread", 1.5))
    return dict(x=x, y=y, sigma=noise_levels(N, params, generator))


def ideal_denoiser_bytes(kwargs: dict, out) -> int:
    """x and the output once; the M training points once per block of queries the kernel keeps
    (counted once: the bound a streaming kernel reaches when the points stay in cache)."""
    x, y = kwargs["x"], kwargs["y"]
    return (x.numel() + out.numel() + y.numel()) * x.element_size() + kwargs["sigma"].numel() * 4


def ideal_denoiser_flops(kwargs: dict) -> int:
    """Two products of N x M x D (logits, then weights times values)."""
    (N, D), M = kwargs["x"].shape, kwargs["y"].shape[0]
    return 4 * N * M * D


IDEAL_TEST_CASES = (
    Case("N=50 M=300 D=2", dict(N=50, M=300, D=2)),
    Case("D=64", dict(N=40, M=200, D=64)),
    Case("D=1", dict(N=33, M=65, D=1)),
    Case("D=160", dict(N=20, M=100, D=160)),  # wider than one block of columns
    Case("one training point", dict(N=17, M=1, D=8)),  # every query denoises to it
    Case("no queries", dict(N=0, M=50, D=8)),
    Case("M=1000 (many blocks)", dict(N=64, M=1000, D=16, heavy=True)),
    # near one-hot weights: the gradient, a covariance of nearly one point, cancels; SDPA's CPU softmax
    # (an approximate exp) leaves 4e-3 of it there, the torch reference and the streaming one 2e-5
    # (in bfloat16 the gradient is rounding noise around 0 for the reference too)
    Case("sigma 0.01 (nearest point)", dict(N=40, M=200, D=4, sigma=0.01), skip_backends=("sdpa",),
         dtypes=(torch.float32, torch.float64, torch.float16)),
    # the gradient, Cov(y) / sigma^2 ~ 1e-6, is subnormal in float16: single and double precision
    Case("sigma 1000 (the mean)", dict(N=40, M=200, D=4, sigma=1000.0),
         dtypes=(torch.float32, torch.float64)),
    Case("strided inputs", dict(N=40, M=150, D=12, strided=True)),
    Case("NaN row", dict(N=30, M=100, D=8, nan_row=3)),
    # (the benchmark's N = M = 65536 would make the float64 reference's weights 34 GB a tensor)
    Case("N=M=16384 D=64", dict(N=16384, M=16384, D=64), devices=("cuda",), dtypes=GPU_DTYPES),
)
IDEAL_BENCH_CASES = (
    Case("N=M=4096 D=64", dict(N=4096, M=4096, D=64), devices=("cpu",)),
    Case("N=M=65536 D=64", dict(N=65536, M=65536, D=64), devices=("cuda",), dtypes=GPU_DTYPES),
)

ideal_denoiser = register(Op(
    name="diffusion.ideal_denoiser",
    doc="The ideal denoiser of a training set, sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i "
        "(Karras et al. 2022, eq. 2): attention with a key bias.",
    impls=(
        Impl("reference", "course.diffusion.ideal:ideal_denoiser", dtypes=FLOATS),
        Impl("online_softmax", "course.diffusion.ideal:ideal_denoiser_online", dtypes=FLOATS),
        # torch's own attention, the peer: its CPU kernels keep half-precision softmax gradients only
        # to about 4e-2, so it declares float32 and float64
        Impl("sdpa", "course.diffusion.ideal:ideal_denoiser_sdpa", dtypes=(torch.float32, torch.float64)),
        Impl("triton", "course.kernels.diffusion.triton_diffusion:ideal_denoiser", kind="triton",
             dtypes=FLOATS),
        Impl("cuda", "course.kernels.diffusion.cuda_diffusion:ideal_denoiser", kind="cuda",
             dtypes=(torch.float32, torch.float16, torch.bfloat16)),
    ),
    make_inputs=ideal_denoiser_inputs,
    test_cases=IDEAL_TEST_CASES,
    bench_cases=IDEAL_BENCH_CASES,
    # the gradient Cov(y) / sigma^2 cancels: the float32 reference is 2.4e-5 from float64, SDPA 7e-5
    tol=1e-4,
    tols={torch.float16: 3e-3, torch.bfloat16: 2e-2},
    grad_inputs=("x",),
    bytes_moved=ideal_denoiser_bytes,
    flops=ideal_denoiser_flops,
))


def heun_step_inputs(params: dict, generator: torch.Generator) -> dict:
    N, D = params["N"], params["D"]
    sigma = noise_levels(N, params, generator)
    # at most 0.95 sigma: bfloat16's rounding (2^-9 relative) cannot lift sigma_next to sigma
    sigma_next = sigma * 0.95 * torch.rand(N, generator=generator)
    last = torch.rand(N, generator=generator) < params.get("last", 0.2)  # rows at their last step
    sigma_next = torch.where(last, torch.zeros_like(sigma_next), sigma_next)
    gamma = params.get("churn", 0.3) * torch.rand(N, generator=generator)
    x = rows(N, D, params, generator) * sigma[:, None]
    denoised = torch.randn(N, D, generator=generator)
    denoised_next = torch.randn(N, D, generator=generator)
    noise = torch.randn(N, D, generator=generator)
    return dict(x=x, denoised=denoised, denoised_next=denoised_next, noise=noise, sigma=sigma,
                sigma_next=sigma_next, sigma_next_hat=sigma_next * (1 + gamma))


def heun_step_bytes(kwargs: dict, out) -> int:
    """Four [N, D] inputs read and one written, plus three levels a row."""
    x = kwargs["x"]
    return 5 * x.numel() * x.element_size() + 3 * x.shape[0] * kwargs["sigma"].element_size()


HEUN_TEST_CASES = (
    Case("N=64 D=2", dict(N=64, D=2)),
    Case("D=3072 (3x32x32)", dict(N=8, D=3072)),
    Case("D=1", dict(N=31, D=1)),
    Case("no churn", dict(N=40, D=16, churn=0.0)),
    Case("every row at its last step", dict(N=20, D=8, last=1.0)),
    Case("no rows", dict(N=0, D=8)),
    Case("strided inputs", dict(N=40, D=12, strided=True)),
    Case("NaN row", dict(N=30, D=8, nan_row=3)),
    Case("N=4096 D=3072", dict(N=4096, D=3072), devices=("cuda",), dtypes=GPU_DTYPES),
)
HEUN_BENCH_CASES = (
    Case("N=1024 D=3072", dict(N=1024, D=3072), devices=("cpu",)),
    Case("N=4096 D=3072", dict(N=4096, D=3072), devices=("cuda",), dtypes=GPU_DTYPES),
)

heun_step = register(Op(
    name="diffusion.heun_step",
    doc="One step of EDM's Algorithm 2: Euler slope, Heun's correction, the next step's churn noise.",
    impls=(
        Impl("reference", "course.diffusion.samplers:heun_step", dtypes=FLOATS),
        Impl("triton", "course.kernels.diffusion.triton_diffusion:heun_step", kind="triton",
             dtypes=FLOATS),
        Impl("cuda", "course.kernels.diffusion.cuda_diffusion:heun_step", kind="cuda",
             dtypes=(torch.float32, torch.float16, torch.bfloat16)),
    ),
    make_inputs=heun_step_inputs,
    test_cases=HEUN_TEST_CASES,
    bench_cases=HEUN_BENCH_CASES,
    grad_inputs=("x", "denoised", "denoised_next", "noise"),
    bytes_moved=heun_step_bytes,
))


def edm_output_inputs(params: dict, generator: torch.Generator) -> dict:
    N, D = params["N"], params["D"]
    sigma = noise_levels(N, params, generator)
    return dict(x=rows(N, D, params, generator) * sigma[:, None], raw=torch.randn(N, D, generator=generator),
                sigma=sigma, sigma_data=params.get("sigma_data", 0.5))


def edm_output_bytes(kwargs: dict, out) -> int:
    x = kwargs["x"]
    return 3 * x.numel() * x.element_size() + x.shape[0] * kwargs["sigma"].element_size()


EDM_OUTPUT_TEST_CASES = (
    Case("N=64 D=2", dict(N=64, D=2)),
    Case("D=3072 (3x32x32)", dict(N=8, D=3072)),
    Case("sigma_data=1", dict(N=30, D=5, sigma_data=1.0)),
    Case("no rows", dict(N=0, D=8)),
    Case("strided inputs", dict(N=40, D=12, strided=True)),
    Case("NaN row", dict(N=30, D=8, nan_row=3)),
)

edm_output = register(Op(
    name="diffusion.edm_output",
    doc="EDM's preconditioning after the network: D = c_skip(sigma) x + c_out(sigma) F (Karras et al. "
        "2022, eq. 7 and Table 1).",
    impls=(
        Impl("reference", "course.diffusion.edm:edm_output", dtypes=FLOATS),
        Impl("triton", "course.kernels.diffusion.triton_diffusion:edm_output", kind="triton",
             dtypes=FLOATS),
        Impl("cuda", "course.kernels.diffusion.cuda_diffusion:edm_output", kind="cuda",
             dtypes=(torch.float32, torch.float16, torch.bfloat16)),
    ),
    make_inputs=edm_output_inputs,
    test_cases=EDM_OUTPUT_TEST_CASES,
    bench_cases=(Case("N=1024 D=3072", dict(N=1024, D=3072), devices=("cpu",)),
                 Case("N=4096 D=3072", dict(N=4096, D=3072), devices=("cuda",), dtypes=GPU_DTYPES)),
    grad_inputs=("x", "raw"),
    bytes_moved=edm_output_bytes,
))
