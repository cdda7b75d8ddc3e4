"""The neuron-model ops in the registry: the rational activation (Horner's rule, fused), the B-spline KAN
layer (the basis evaluated and contracted on chip), and the PHM layer (a Kronecker-structured matmul)."""
import torch

from course.registry import FLOATS, Case, Impl, Op, register

GPU_DTYPES = (torch.float32, torch.bfloat16)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def values(shape, params: dict, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Random values of `shape`; `strided`: a transposed view of a 2-D tensor; `nan_row`: that row NaN."""
    if params.get("strided") and len(shape) == 2:
        x = torch.randn(shape[1], shape[0], generator=generator).T
    else:
        x = torch.randn(*shape, generator=generator)
    x = x * scale
    if params.get("nan_row") is not None and x.dim() >= 1 and params["nan_row"] < x.shape[0]:
        x[params["nan_row"]] = float("nan")
    return x


def rational_inputs(params: dict, generator: torch.Generator) -> dict:
    """x of `shape` with values up to `spread`; coefficients of degrees (m, n) of order one (a leaky-ReLU-like
    unit plus noise), so that P and Q both matter."""
    m, n = params.get("degrees", (5, 4))
    x = values(params["shape"], params, generator, scale=params.get("spread", 2.0))
    numerator = 0.5 * torch.randn(m + 1, generator=generator)
    denominator = 0.5 * torch.randn(n, generator=generator)
    return dict(x=x, numerator=numerator, denominator=denominator)


def rational_bytes(kwargs: dict, out) -> int:
    return (kwargs["x"].numel() + out.numel()) * kwargs["x"].element_size()


RATIONAL_TEST_CASES = (
    Case("B=64 D=33", dict(shape=(64, 33))),
    Case("one element", dict(shape=(1,))),
    Case("no elements", dict(shape=(0, 8))),
    Case("3-D [4, 7, 19]", dict(shape=(4, 7, 19))),
    Case("degrees (3, 2)", dict(shape=(40, 16), degrees=(3, 2))),
    Case("degree 0 over 1 (a constant)", dict(shape=(10, 5), degrees=(0, 0))),
    Case("large inputs (|x| up to 20)", dict(shape=(50, 12), spread=8.0)),
    Case("many blocks (B=300 D=130)", dict(shape=(300, 130), heavy=True)),
    Case("strided inputs", dict(shape=(40, 12), strided=True)),
    Case("NaN row", dict(shape=(30, 8), nan_row=3)),
    # the coefficients' gradients sum every element with both signs: over the benchmark's 6.7e7 elements a
    # float32 sum (torch's autograd too) is 2e-4 from float64, so the GPU test case is the benchmark's width
    # at 1/16 of its rows
    Case("B=4096 D=1024", dict(shape=(4096, 1024)), devices=("cuda",), dtypes=GPU_DTYPES),
)
RATIONAL_BENCH_CASES = (
    Case("B=4096 D=1024", dict(shape=(4096, 1024)), devices=("cpu",)),
    Case("B=65536 D=1024", dict(shape=(65536, 1024)), devices=("cuda",), dtypes=GPU_DTYPES),
)

rational = register(Op(
    name="neurons.rational",
    doc="The safe rational activation P(x) / (1 + |b_1 x + ... + b_n x^n|) (Molina et al. 2020; Delfosse et "
        "al. 2024), elementwise, the coefficients shared.",
    impls=(
        Impl("reference", "course.neurons.rational:rational", dtypes=FLOATS),
        Impl("powers", "course.neurons.rational:rational_powers", dtypes=FLOATS),
        Impl("triton", "course.kernels.neurons.triton_neurons:rational", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.neurons.cuda_neurons:rational", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=rational_inputs,
    test_cases=RATIONAL_TEST_CASES,
    bench_cases=RATIONAL_BENCH_CASES,
    grad_inputs=("x", "numerator", "denominator"),
    # the coefficients' gradients are sums over every element: float32 sums of 4e4 terms differ by 2e-5
    tol=5e-5,
    bytes_moved=rational_bytes,
))


def kan_linear_inputs(params: dict, generator: torch.Generator) -> dict:
    """x [B, I] with values over the grid and past it (`spread` x R); base [I, O]; coef [I, G + 3, O]."""
    B, I, O, G = params["B"], params["I"], params["O"], params.get("G", 5)
    R = params.get("grid_range", 1.0)
    x = values((B, I), params, generator, scale=params.get("spread", 0.8) * R)
    base = torch.randn(I, O, generator=generator) / max(I, 1) ** 0.5
    coef = torch.randn(I, G + 3, O, generator=generator) / max(I, 1) ** 0.5
    return dict(x=x, base=base, coef=coef, grid_range=R)


def kan_linear_bytes(kwargs: dict, out) -> int:
    x, base, coef = kwargs["x"], kwargs["base"], kwargs["coef"]
    return (x.numel() + out.numel() + base.numel() + coef.numel()) * x.element_size()


def kan_linear_flops(kwargs: dict) -> int:
    """The base matmul and the spline contraction: 2 B I O (1 + G + 3)."""
    (B, I), (_, C, O) = kwargs["x"].shape, kwargs["coef"].shape
    return 2 * B * I * O * (1 + C)


KAN_TEST_CASES = (
    Case("B=64 I=8 O=5 G=5", dict(B=64, I=8, O=5)),
    Case("one input, one output", dict(B=20, I=1, O=1)),
    Case("no rows", dict(B=0, I=6, O=4)),
    Case("G=1 (one interval)", dict(B=30, I=5, O=3, G=1)),
    Case("G=20, R=3", dict(B=40, I=6, O=7, G=20, grid_range=3.0)),
    Case("inputs past the grid (|x| up to 4 R)", dict(B=50, I=6, O=4, spread=2.0)),
    Case("wide: I=70 O=40 (many blocks)", dict(B=33, I=70, O=40, heavy=True)),
    Case("strided inputs", dict(B=40, I=12, O=6, strided=True)),
    # pykan's B_batch replaces a NaN basis value by 0 (nan_to_num): a NaN input leaves its coefficient
    # gradient finite, silently, so the peer sits this case out
    Case("NaN row", dict(B=30, I=8, O=4, nan_row=3), skip_backends=("pykan",)),
    Case("B=65536 I=O=1024", dict(B=65536, I=1024, O=1024), devices=("cuda",), dtypes=GPU_DTYPES),
)
KAN_BENCH_CASES = (
    Case("B=1024 I=O=128 G=5", dict(B=1024, I=128, O=128), devices=("cpu",)),
    Case("B=65536 I=O=1024 G=5", dict(B=65536, I=1024, O=1024), devices=("cuda",), dtypes=GPU_DTYPES),
)

kan_linear = register(Op(
    name="neurons.kan_linear",
    doc="The B-spline KAN layer, out_o = sum_i w_io silu(x_i) + sum_i sum_c c_ioc B_c(x_i) (Liu et al. 2024, "
        "eq. 2.10), cubic splines on a uniform grid.",
    impls=(
        Impl("reference", "course.neurons.kan:kan_linear", dtypes=FLOATS),
        Impl("input_loop", "course.neurons.kan:kan_linear_input_loop", dtypes=FLOATS),
        Impl("pykan", "course.neurons.kan:kan_linear_pykan", dtypes=(torch.float32, torch.float64),
             requires="kan"),
        Impl("triton", "course.kernels.neurons.triton_neurons:kan_linear", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.neurons.cuda_neurons:kan_linear", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=kan_linear_inputs,
    test_cases=KAN_TEST_CASES,
    bench_cases=KAN_BENCH_CASES,
    tol=1e-5,
    grad_inputs=("x", "base", "coef"),
    bytes_moved=kan_linear_bytes,
    flops=kan_linear_flops,
))


def phm_inputs(params: dict, generator: torch.Generator) -> dict:
    B, n, I, O = params["B"], params["n"], params["I"], params["O"]
    x = values((B, I), params, generator)
    A = torch.randn(n, n, n, generator=generator) / n ** 0.5
    F = torch.randn(n, I // n, O // n, generator=generator) / max(I, 1) ** 0.5
    return dict(x=x, A=A, F=F)


def phm_bytes(kwargs: dict, out) -> int:
    x, A, F = kwargs["x"], kwargs["A"], kwargs["F"]
    return (x.numel() + out.numel() + A.numel() + F.numel()) * x.element_size()


def phm_flops(kwargs: dict) -> int:
    """B I O multiply-adds (as many as the dense product)."""
    (B, I), O = kwargs["x"].shape, kwargs["F"].shape[0] * kwargs["F"].shape[2]
    return 2 * B * I * O


PHM_TEST_CASES = (
    Case("B=64 n=4 I=16 O=12", dict(B=64, n=4, I=16, O=12)),
    Case("n=1 (a dense layer)", dict(B=20, n=1, I=7, O=5)),
    Case("n=2 I=2 O=2", dict(B=9, n=2, I=2, O=2)),
    Case("no rows", dict(B=0, n=4, I=8, O=8)),
    Case("n=3 I=33 O=21", dict(B=31, n=3, I=33, O=21)),
    Case("wide: n=4 I=O=256 (many blocks)", dict(B=40, n=4, I=256, O=256, heavy=True)),
    Case("strided inputs", dict(B=40, n=2, I=12, O=6, strided=True)),
    Case("NaN row", dict(B=30, n=4, I=8, O=8, nan_row=3)),
    Case("B=65536 n=4 I=O=1024", dict(B=65536, n=4, I=1024, O=1024), devices=("cuda",), dtypes=GPU_DTYPES),
)
PHM_BENCH_CASES = (
    Case("B=4096 n=4 I=O=512", dict(B=4096, n=4, I=512, O=512), devices=("cpu",)),
    Case("B=65536 n=4 I=O=1024", dict(B=65536, n=4, I=1024, O=1024), devices=("cuda",), dtypes=GPU_DTYPES),
)

phm_linear = register(Op(
    name="neurons.phm_linear",
    doc="The PHM layer y = x W with W = sum_i A_i (x) F_i (Zhang et al. 2021, eq. 4; Grassucci et al. 2022): "
        "1/n of the weights of a dense layer.",
    impls=(
        Impl("reference", "course.neurons.phm:phm_linear", dtypes=FLOATS),
        Impl("blocks", "course.neurons.phm:phm_linear_blocks", dtypes=FLOATS),
        Impl("triton", "course.kernels.neurons.triton_neurons:phm_linear", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.neurons.cuda_neurons:phm_linear", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=phm_inputs,
    test_cases=PHM_TEST_CASES,
    bench_cases=PHM_BENCH_CASES,
    tol=1e-5,
    grad_inputs=("x", "A", "F"),
    bytes_moved=phm_bytes,
    flops=phm_flops,
))
