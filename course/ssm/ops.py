"""The sequence-model ops in the registry: the diagonal linear scan h_t = a_t h_{t-1} + x_t, and Mamba's
selective scan with its state of size N per channel. Both have forward and backward (the backward of a
scan is a scan run in reverse: g_t = dh_t + a_{t+1} g_{t+1}, dx_t = g_t, da_t = g_t h_{t-1})."""
import torch

from course.registry import FLOATS, Case, Impl, Op, register

GPU_DTYPES = (torch.float32, torch.bfloat16)
KERNEL_DTYPES = (torch.float32, torch.bfloat16)  # inputs; the state is float32


def sequences(params: dict, generator: torch.Generator, channels: int) -> torch.Tensor:
    """[B, T, channels] Gaussian values (a transposed view if `strided`; row `nan_row` of batch 0 NaN)."""
    Bt, T = params["B"], params["T"]
    if params.get("strided"):
        v = torch.randn(Bt, channels, T, generator=generator).transpose(1, 2)
    else:
        v = torch.randn(Bt, T, channels, generator=generator)
    if params.get("nan_row") is not None and params["nan_row"] < T:
        v[0, params["nan_row"]] = float("nan")
    return v


def gates(params: dict, generator: torch.Generator, shape) -> torch.Tensor:
    """Gates in [low, 1]: uniform, so that some forget fast and some keep (`low` 0.5 by default;
    `ones`: every gate exactly 1, a plain cumulative sum)."""
    if params.get("ones"):
        return torch.ones(shape)
    low = params.get("low", 0.5)
    return low + (1 - low) * torch.rand(shape, generator=generator)


def scan_inputs(params: dict, generator: torch.Generator) -> dict:
    x = sequences(params, generator, params["D"])
    return dict(a=gates(params, generator, x.shape), x=x)


def scan_bytes(kwargs: dict, out) -> int:
    """a and x read once, h written once: a scan's floor, the memory traffic of a copy and a half."""
    x = kwargs["x"]
    return 3 * x.numel() * x.element_size()


SCAN_TEST_CASES = (
    Case("B=2 T=16 D=8", dict(B=2, T=16, D=8)),
    Case("T=1", dict(B=3, T=1, D=5)),
    Case("empty sequence (T=0)", dict(B=2, T=0, D=4)),
    Case("T=63 (not a power of two)", dict(B=2, T=63, D=3, heavy=True)),
    Case("D=1", dict(B=1, T=40, D=1)),
    Case("D=160 (more than one block)", dict(B=1, T=20, D=160, heavy=True)),
    Case("every gate 1 (a cumulative sum)", dict(B=2, T=30, D=4, ones=True)),
    Case("fast-forgetting gates (0.01..1)", dict(B=2, T=30, D=4, low=0.01)),
    Case("strided inputs", dict(B=2, T=24, D=6, strided=True, heavy=True)),
    Case("NaN row", dict(B=2, T=20, D=4, nan_row=5)),
    Case("T=1000 (many chunks)", dict(B=1, T=1000, D=8, heavy=True)),
    Case("B=8 T=4096 D=1024", dict(B=8, T=4096, D=1024), devices=("cuda",), dtypes=GPU_DTYPES),
)
SCAN_BENCH_CASES = (
    Case("B=4 T=1024 D=256", dict(B=4, T=1024, D=256), devices=("cpu",), skip_backends=("step_loop",)),
    Case("B=1 T=256 D=64", dict(B=1, T=256, D=64), devices=("cpu",)),
    Case("B=8 T=4096 D=1024", dict(B=8, T=4096, D=1024), devices=("cuda",), dtypes=GPU_DTYPES,
         skip_backends=("step_loop", "torch_associative_scan")),
)

scan = register(Op(
    name="ssm.scan",
    doc="The diagonal linear recurrence h_t = a_t h_{t-1} + x_t over [B, T, D] (Martin and Cundy 2018; "
        "Blelloch 1990): the parallel associative scan.",
    impls=(
        Impl("reference", "course.ssm.scan:scan", dtypes=FLOATS),
        Impl("step_loop", "course.ssm.scan:scan_step_loop", dtypes=FLOATS),
        Impl("chunked", "course.ssm.scan:scan_chunked", dtypes=FLOATS),
        Impl("torch_associative_scan", "course.ssm.scan:scan_torch_associative", devices=("cpu",),
             dtypes=FLOATS),
        Impl("triton", "course.kernels.ssm.triton_ssm:scan", kind="triton", dtypes=KERNEL_DTYPES),
        Impl("cuda", "course.kernels.ssm.cuda_ssm:scan", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=scan_inputs,
    test_cases=SCAN_TEST_CASES,
    bench_cases=SCAN_BENCH_CASES,
    tol=1e-5,
    # every backend accumulates in float32 and rounds once: 1.6e-5 at most in bfloat16, where a store
    # that truncates instead of rounding is 4.1e-3 off
    tols={torch.bfloat16: 1e-3},
    grad_inputs=("a", "x"),
    bytes_moved=scan_bytes,
))


def selective_scan_inputs(params: dict, generator: torch.Generator) -> dict:
    """u and B, C Gaussian; Delta = softplus of a Gaussian (as Mamba's); A = -exp(Gaussian) [D, N]
    (Mamba's S4D-real initialisation is -(1..N)); D Gaussian."""
    Dm, N = params["D"], params["N"]
    u = sequences(params, generator, Dm)
    delta = torch.nn.functional.softplus(torch.randn(u.shape, generator=generator) - 1)
    A = -torch.exp(torch.randn(Dm, N, generator=generator) * 0.5)
    B = torch.randn(params["B"], params["T"], N, generator=generator)
    C = torch.randn(params["B"], params["T"], N, generator=generator)
    D = None if params.get("no_D") else torch.randn(Dm, generator=generator)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=D)


def selective_scan_bytes(kwargs: dict, out) -> int:
    """u, Delta, B, C read once and y written once (the states stay on chip)."""
    u, B = kwargs["u"], kwargs["B"]
    return (3 * u.numel() + 2 * B.numel()) * u.element_size()


SELECTIVE_TEST_CASES = (
    Case("B=2 T=16 D=8 N=4", dict(B=2, T=16, D=8, N=4)),
    Case("T=1", dict(B=2, T=1, D=4, N=4)),
    Case("empty sequence (T=0)", dict(B=2, T=0, D=4, N=4)),
    Case("T=63 (not a power of two)", dict(B=1, T=63, D=3, N=5, heavy=True)),
    Case("N=16 (Mamba's state size)", dict(B=1, T=32, D=8, N=16)),
    Case("D=160 (more than one block)", dict(B=1, T=12, D=160, N=4, heavy=True)),
    Case("without D", dict(B=2, T=20, D=6, N=4, no_D=True)),
    Case("strided inputs", dict(B=2, T=24, D=6, N=4, strided=True, heavy=True)),
    Case("NaN row", dict(B=2, T=20, D=4, N=4, nan_row=5)),
    Case("T=200 (many chunks)", dict(B=1, T=200, D=8, N=8, heavy=True)),  # 13 chunks of the CPU's 16 steps
    Case("B=8 T=2048 D=1024 N=16", dict(B=8, T=2048, D=1024, N=16), devices=("cuda",), dtypes=GPU_DTYPES),
)

selective_scan = register(Op(
    name="ssm.selective_scan",
    doc="Mamba's selective scan: h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t u_t, y_t = C_t . h_t + D u_t "
        "(Gu and Dao 2023, section 3, Algorithm 2).",
    impls=(
        Impl("reference", "course.ssm.selective:selective_scan", dtypes=FLOATS),
        Impl("step_loop", "course.ssm.selective:selective_scan_step_loop", dtypes=FLOATS),
        Impl("triton", "course.kernels.ssm.triton_ssm:selective_scan", kind="triton", dtypes=KERNEL_DTYPES),
        Impl("cuda", "course.kernels.ssm.cuda_ssm:selective_scan", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=selective_scan_inputs,
    test_cases=SELECTIVE_TEST_CASES,
    bench_cases=(
        Case("B=2 T=1024 D=64 N=16", dict(B=2, T=1024, D=64, N=16), devices=("cpu",),
             skip_backends=("step_loop",)),
        Case("B=1 T=256 D=32 N=16", dict(B=1, T=256, D=32, N=16), devices=("cpu",)),
        Case("B=8 T=2048 D=1024 N=16", dict(B=8, T=2048, D=1024, N=16), devices=("cuda",),
             dtypes=GPU_DTYPES, skip_backends=("step_loop",)),
    ),
    tol=1e-5,
    tols={torch.bfloat16: 1e-3},  # as the scan's: rounding passes, truncation (4e-3) does not
    grad_inputs=("u", "delta", "A", "B", "C", "D"),
    bytes_moved=selective_scan_bytes,
))
