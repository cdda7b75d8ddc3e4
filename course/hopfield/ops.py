"""The associative-memory ops in the registry: modern Hopfield retrieval (a streaming softmax, flash
attention's loop, the kernel design the diffusion family's ideal denoiser shares) and its sparse form
with sparsemax (STanHop)."""
import torch

from course.registry import FLOATS, Case, Impl, Op, register
from course.streaming import MAX_SPARSE_ROWS

GPU_DTYPES = (torch.float32, torch.bfloat16)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def retrieve_inputs(params: dict, generator: torch.Generator) -> dict:
    """Patterns [M, D] of norm about sqrt(D); queries [N, D]: stored patterns with noise of `noise` x
    their scale (`random`: unrelated queries); `strided`: transposed views; `nan_row`: that query NaN.
    beta is given per unit of |x|^2 (beta / D), so that the weights are as spread at every D."""
    N, M, D = params["N"], params["M"], params["D"]
    patterns = torch.randn(M, D, generator=generator)
    if params.get("random") or M == 0:
        queries = torch.randn(N, D, generator=generator)
    else:
        pick = torch.randint(0, M, (N,), generator=generator)
        queries = patterns[pick] + params.get("noise", 0.5) * torch.randn(N, D, generator=generator)
    if params.get("strided"):
        patterns = patterns.T.contiguous().T
        queries = queries.T.contiguous().T
    if params.get("nan_row") is not None and params["nan_row"] < N:
        queries[params["nan_row"]] = float("nan")
    beta = params.get("beta", 4.0) / max(D, 1)
    return dict(queries=queries, patterns=patterns, beta=beta, steps=params.get("steps", 1))


def retrieve_bytes(kwargs: dict, out) -> int:
    """Queries and output once, the M patterns once a step (the bound a streaming kernel reaches when
    the patterns stay in cache across blocks of queries)."""
    q, X = kwargs["queries"], kwargs["patterns"]
    return ((q.numel() + out.numel()) + X.numel() * kwargs["steps"]) * q.element_size()


def retrieve_flops(kwargs: dict) -> int:
    """Two products of N x M x D a step (logits, then weights times patterns)."""
    (N, D), M = kwargs["queries"].shape, kwargs["patterns"].shape[0]
    return 4 * N * M * D * kwargs["steps"]


RETRIEVE_TEST_CASES = (
    Case("N=50 M=300 D=2", dict(N=50, M=300, D=2)),
    Case("D=64", dict(N=40, M=200, D=64)),
    Case("D=1", dict(N=33, M=65, D=1)),
    Case("D=160", dict(N=20, M=100, D=160)),  # wider than one block of columns
    Case("one stored pattern", dict(N=17, M=1, D=8)),  # every query retrieves it
    Case("no queries", dict(N=0, M=50, D=8)),
    Case("three steps", dict(N=30, M=120, D=16, steps=3)),
    Case("small beta (metastable averages)", dict(N=30, M=200, D=16, beta=0.5, random=True)),
    Case("M=1000 (many blocks)", dict(N=64, M=1000, D=16, heavy=True)),
    # near one-hot weights: the gradient, a covariance of nearly one pattern, cancels; SDPA's CPU softmax
    # (an approximate exp) leaves 1e-3 of it there (as in diffusion.ideal_denoiser's sigma 0.01 case)
    Case("large beta (nearest pattern)", dict(N=40, M=200, D=8, beta=30.0), skip_backends=("sdpa",),
         dtypes=(torch.float32, torch.float64)),
    Case("strided inputs", dict(N=40, M=150, D=12, strided=True)),
    Case("NaN row", dict(N=30, M=100, D=8, nan_row=3)),
    Case("N=4096 M=65536 D=128", dict(N=4096, M=65536, D=128), devices=("cuda",), dtypes=GPU_DTYPES),
)
RETRIEVE_BENCH_CASES = (
    Case("N=1024 M=16384 D=128", dict(N=1024, M=16384, D=128), devices=("cpu",)),
    Case("N=4096 M=1048576 D=128", dict(N=4096, M=1 << 20, D=128), devices=("cuda",), dtypes=GPU_DTYPES),
)

retrieve = register(Op(
    name="hopfield.retrieve",
    doc="Modern Hopfield retrieval, `steps` updates xi <- softmax(beta xi X^T) X (Ramsauer et al. 2020, "
        "eq. 3): attention with K = V = the stored patterns.",
    impls=(
        Impl("reference", "course.hopfield.modern:retrieve", dtypes=FLOATS),
        Impl("online_softmax", "course.hopfield.modern:retrieve_online", dtypes=FLOATS),
        # torch's own attention, the peer: its CPU kernels keep half-precision softmax gradients only
        # to about 4e-2 (as for diffusion.ideal_denoiser), so it declares float32 and float64
        Impl("sdpa", "course.hopfield.modern:retrieve_sdpa", dtypes=(torch.float32, torch.float64)),
        Impl("triton", "course.kernels.hopfield.triton_hopfield:retrieve", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.hopfield.cuda_hopfield:retrieve", kind="cuda", dtypes=KERNEL_DTYPES),
    ),
    make_inputs=retrieve_inputs,
    test_cases=RETRIEVE_TEST_CASES,
    bench_cases=RETRIEVE_BENCH_CASES,
    tol=1e-4,
    tols={torch.float16: 3e-3, torch.bfloat16: 2e-2},
    grad_inputs=("queries", "patterns"),
    bytes_moved=retrieve_bytes,
    flops=retrieve_flops,
))


# gpu_tiles=False: tl.sort, which the GPU's tiles use, takes the interpreter 2-30 s a case here; the
# CPU's tiles run every case, and the GPU's run "one stored pattern" and "NaN row" (tests/test_gpu_tiles.py)
SPARSE_TEST_CASES = (
    Case("N=50 M=300 D=2", dict(N=50, M=300, D=2, gpu_tiles=False)),
    Case("D=64", dict(N=40, M=200, D=64, gpu_tiles=False)),
    Case("D=1", dict(N=33, M=65, D=1, gpu_tiles=False)),
    Case("D=160", dict(N=20, M=100, D=160, gpu_tiles=False)),
    Case("one stored pattern", dict(N=17, M=1, D=8)),
    Case("no queries", dict(N=0, M=50, D=8)),
    Case("three steps", dict(N=30, M=120, D=16, steps=3, gpu_tiles=False)),
    Case("small beta (wide support)", dict(N=30, M=200, D=16, beta=0.5, random=True, gpu_tiles=False)),
    Case("large beta (one pattern)", dict(N=40, M=200, D=8, beta=30.0, gpu_tiles=False)),
    Case("M=1000 (many blocks)", dict(N=64, M=1000, D=16, heavy=True)),
    Case("strided inputs", dict(N=40, M=150, D=12, strided=True, gpu_tiles=False)),
    # entmax's threshold gathers at index -1 on a row of NaN logits (an IndexError), so it sits this out
    Case("NaN row", dict(N=30, M=100, D=8, nan_row=3), skip_backends=("entmax",)),
    Case(f"M={MAX_SPARSE_ROWS} (the kernels' longest row)", dict(N=256, M=MAX_SPARSE_ROWS, D=64),
         devices=("cuda",), dtypes=GPU_DTYPES),
)
SPARSE_BENCH_CASES = (
    Case("N=1024 M=4096 D=64", dict(N=1024, M=4096, D=64), devices=("cpu",)),
    Case("N=16384 M=4096 D=128", dict(N=16384, M=4096, D=128), devices=("cuda",), dtypes=GPU_DTYPES),
)

sparse_retrieve = register(Op(
    name="hopfield.sparse_retrieve",
    doc="Sparse modern Hopfield retrieval, `steps` updates xi <- sparsemax(beta xi X^T) X (Hu et al. 2023; "
        "STanHop, Wu et al. 2023): the softmax replaced by a sort-based threshold.",
    impls=(
        Impl("reference", "course.hopfield.sparse:sparse_retrieve", dtypes=FLOATS),
        Impl("online_sparsemax", "course.hopfield.sparse:sparse_retrieve_online", dtypes=FLOATS),
        Impl("entmax", "course.hopfield.sparse:sparse_retrieve_entmax", dtypes=FLOATS, requires="entmax"),
        Impl("triton", "course.kernels.hopfield.triton_hopfield:sparse_retrieve", kind="triton",
             dtypes=FLOATS),
        Impl("cuda", "course.kernels.hopfield.cuda_hopfield:sparse_retrieve", kind="cuda",
             dtypes=KERNEL_DTYPES),
    ),
    make_inputs=retrieve_inputs,
    test_cases=SPARSE_TEST_CASES,
    bench_cases=SPARSE_BENCH_CASES,
    tol=1e-4,
    tols={torch.float16: 3e-3, torch.bfloat16: 2e-2},
    grad_inputs=("queries", "patterns"),
    bytes_moved=retrieve_bytes,
    flops=retrieve_flops,
))
