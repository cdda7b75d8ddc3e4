"""The mixture-of-experts ops in the registry: dispatch, combine and the experts, their backends,
dtypes and test cases."""
import torch

from course.moe.dispatch import route_slots
from course.registry import FLOATS, Case, Impl, Op, register

HALF_AND_SINGLE = (torch.float32, torch.float16, torch.bfloat16)


def routing(params: dict, generator: torch.Generator):
    """Random router choices for a test case: expert_index [T, k] and gates [T, k].

    `skew` tilts the router towards low-numbered experts so capacities overflow; `empty_expert`
    makes expert 0 unreachable (unless k = E).
    """
    T, E, k = params["T"], params["E"], params["k"]
    logits = torch.randn(T, E, generator=generator)
    logits -= params.get("skew", 0.0) * torch.linspace(0, 1, E)
    if params.get("empty_expert"):
        logits[:, 0] = -1e4
    top, expert_index = logits.topk(k, dim=-1)
    return expert_index, top.softmax(dim=-1)


def rows(n: int, d: int, params: dict, generator: torch.Generator) -> torch.Tensor:
    """[n, d] random rows; `strided`: a transposed view (not contiguous); `nan_row`: that row NaN."""
    x = torch.randn(d, n, generator=generator).t() if params.get("strided") else \
        torch.randn(n, d, generator=generator)
    if params.get("nan_row") is not None and params["nan_row"] < n:
        x[params["nan_row"]] = float("nan")
    return x


def layout(t: torch.Tensor, params: dict) -> torch.Tensor:
    """An index or gate tensor in the case's layout: `index_dtype`, `strided` (column-major)."""
    if not t.is_floating_point():
        t = t.to(params.get("index_dtype", torch.long))
    return t.t().contiguous().t() if params.get("strided") else t


def dispatch_inputs(params: dict, generator: torch.Generator) -> dict:
    expert_index, _ = routing(params, generator)
    x = rows(params["T"], params["D"], params, generator)
    return dict(x=x, expert_index=layout(expert_index, params), num_experts=params["E"],
                capacity=params.get("capacity"))


def combine_inputs(params: dict, generator: torch.Generator) -> dict:
    expert_index, gates = routing(params, generator)
    slot, counts = route_slots(expert_index, params["E"], params.get("capacity"))
    y = rows(int(counts.sum()), params["D"], params, generator)
    return dict(y=y, slot=layout(slot, params), gates=layout(gates, params))


def dispatch_bytes(kwargs: dict, out) -> int:
    """Rows read and written, plus the router's indices read and the slots written."""
    rows = out.x.numel() * out.x.element_size()
    return 2 * rows + kwargs["expert_index"].numel() * 8 + out.slot.numel() * 8


def combine_bytes(kwargs: dict, out) -> int:
    """Expert rows and gates read, token rows written."""
    y, gates = kwargs["y"], kwargs["gates"]
    return (y.numel() + out.numel()) * y.element_size() + gates.numel() * (gates.element_size() + 8)


TEST_CASES = (
    Case("T=64 E=4 k=2", dict(T=64, D=32, E=4, k=2)),
    Case("T=63 D=17 E=5 k=2", dict(T=63, D=17, E=5, k=2, heavy=True)),
    Case("capacity drops", dict(T=63, D=16, E=4, k=2, capacity=20, skew=3.0)),
    Case("capacity=1", dict(T=20, D=4, E=4, k=2, capacity=1)),
    Case("T=1", dict(T=1, D=8, E=4, k=1)),
    Case("one expert", dict(T=10, D=8, E=1, k=1)),
    Case("empty expert", dict(T=32, D=8, E=4, k=1, empty_expert=True)),
    Case("k=E", dict(T=16, D=8, E=3, k=3, capacity=7)),
    Case("D=1", dict(T=33, D=1, E=6, k=2)),
    Case("no tokens", dict(T=0, D=8, E=4, k=2)),
    Case("T=300 E=8 k=2", dict(T=300, D=64, E=8, k=2, capacity=80, skew=1.0)),
    Case("k=1 capacity drops", dict(T=40, D=8, E=4, k=1, capacity=6, skew=2.0)),
    Case("int32 indices", dict(T=50, D=8, E=5, k=2, capacity=12, index_dtype=torch.int32, heavy=True)),
    Case("T=600 capacity", dict(T=600, D=24, E=8, k=2, capacity=120, skew=1.0)),  # many chunks
    Case("D=160", dict(T=40, D=160, H=32, E=4, k=2, heavy=True)),  # wider than one block of columns
    Case("strided inputs", dict(T=45, D=12, E=4, k=2, capacity=20, strided=True, heavy=True)),
    Case("NaN row", dict(T=30, D=8, E=4, k=2, nan_row=3)),
    Case("T=16384 D=1024 E=64 k=2", dict(T=16384, D=1024, E=64, k=2, capacity=640, skew=0.5),
         devices=("cuda",)),  # the benchmark's shape
)
# Rows at T D >= 2^31 elements: int32 offsets overflow here (GPU only: 8.6 GB a tensor).
BEYOND_INT32 = Case("beyond int32 offsets", dict(T=2 ** 21 + 64, D=1024, E=8, k=1), devices=("cuda",),
                    dtypes=(torch.float32,))

GPU_DTYPES = (torch.float32, torch.bfloat16)
BENCH_CASES = (
    Case("T=4096 D=512 E=8 k=2", dict(T=4096, D=512, E=8, k=2), devices=("cpu",)),
    Case("T=4096 D=512 E=64 k=2", dict(T=4096, D=512, E=64, k=2), devices=("cpu",)),
    Case("T=16384 D=1024 E=8 k=2", dict(T=16384, D=1024, E=8, k=2), devices=("cuda",), dtypes=GPU_DTYPES),
    Case("T=16384 D=1024 E=64 k=2", dict(T=16384, D=1024, E=64, k=2), devices=("cuda",),
         dtypes=GPU_DTYPES),
)

dispatch = register(Op(
    name="moe.dispatch",
    doc="Group token rows by expert, with optional capacity (GShard Algorithm 1).",
    impls=(
        Impl("reference", "course.moe.dispatch:dispatch", dtypes=FLOATS),
        Impl("token_loop", "course.moe.token_loop:dispatch_token_loop", devices=("cpu",), dtypes=FLOATS),
        Impl("triton", "course.kernels.moe.triton_moe:dispatch", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.moe.cuda_moe:dispatch", kind="cuda", dtypes=HALF_AND_SINGLE),
    ),
    make_inputs=dispatch_inputs,
    test_cases=TEST_CASES + (BEYOND_INT32,),
    bench_cases=BENCH_CASES,
    tol=1e-6,
    grad_inputs=("x",),
    bytes_moved=dispatch_bytes,
))

combine = register(Op(
    name="moe.combine",
    doc="Gate-weighted sum of each token's expert outputs (Shazeer et al. 2017, eq. 1).",
    impls=(
        Impl("reference", "course.moe.dispatch:combine", dtypes=FLOATS),
        Impl("token_loop", "course.moe.token_loop:combine_token_loop", devices=("cpu",), dtypes=FLOATS),
        Impl("triton", "course.kernels.moe.triton_moe:combine", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.moe.cuda_moe:combine", kind="cuda", dtypes=HALF_AND_SINGLE),
    ),
    make_inputs=combine_inputs,
    test_cases=TEST_CASES + (BEYOND_INT32,),
    bench_cases=BENCH_CASES,
    tol=1e-6,
    # k products summed in float32 and rounded once: rounding-to-nearest stays far below these,
    # truncation (about one ulp on half the entries) does not.
    tols={torch.float16: 1.5e-4, torch.bfloat16: 1.2e-3},
    grad_inputs=("y", "gates"),
    bytes_moved=combine_bytes,
))


def expert_mlp_inputs(params: dict, generator: torch.Generator) -> dict:
    """Grouped rows and expert weights; `counts` come from a routing, so experts can be empty."""
    expert_index, _ = routing(params, generator)
    _, counts = route_slots(expert_index, params["E"], params.get("capacity"))
    D, H, E = params["D"], params.get("H", 2 * params["D"]), params["E"]
    x = rows(int(counts.sum()), D, params, generator)
    w1 = torch.randn(E, D, H, generator=generator) / D ** 0.5
    w2 = torch.randn(E, H, D, generator=generator) / H ** 0.5
    if params.get("strided"):
        w1 = w1.transpose(1, 2).contiguous().transpose(1, 2)
    return dict(x=x, counts=layout(counts, params), w1=w1, w2=w2)


def expert_mlp_bytes(kwargs: dict, out) -> int:
    """Rows in and out, every expert's weights read once, and the hidden activations written and read."""
    x, w1, w2 = kwargs["x"], kwargs["w1"], kwargs["w2"]
    hidden = x.shape[0] * w1.shape[2]
    return (x.numel() + out.numel() + w1.numel() + w2.numel() + 2 * hidden) * x.element_size()


# H = D on the CPU keeps one reference call under a tenth of a second on 2 cores; the GPU cases use
# the usual H = 2 D.
EXPERT_MLP_BENCH_CASES = (
    Case("T=4096 D=512 H=512 E=8 k=2", dict(T=4096, D=512, H=512, E=8, k=2), devices=("cpu",)),
    Case("T=4096 D=512 H=512 E=64 k=2", dict(T=4096, D=512, H=512, E=64, k=2), devices=("cpu",)),
    Case("T=16384 D=1024 H=2048 E=8 k=2", dict(T=16384, D=1024, H=2048, E=8, k=2),
         devices=("cuda",), dtypes=GPU_DTYPES),
    Case("T=16384 D=1024 H=2048 E=64 k=2", dict(T=16384, D=1024, H=2048, E=64, k=2),
         devices=("cuda",), dtypes=GPU_DTYPES),
)


def expert_mlp_flops(kwargs: dict) -> int:
    """Two products per row, x W1_e then h W2_e: 2 S D H multiply-adds each."""
    S, D = kwargs["x"].shape
    return 2 * 2 * S * D * kwargs["w1"].shape[2]

expert_mlp = register(Op(
    name="moe.expert_mlp",
    doc="Every expert's ReLU MLP over its block of grouped rows (a grouped matmul, no padding).",
    impls=(
        Impl("reference", "course.moe.experts:expert_mlp", dtypes=FLOATS),
        Impl("padded_bmm", "course.moe.experts:expert_mlp_padded", dtypes=FLOATS),
        # The interpreter's tl.dot multiplies bfloat16 bit patterns, not values (triton-lang/triton#11584).
        Impl("triton", "course.kernels.moe.triton_experts:expert_mlp", kind="triton",
             dtypes=HALF_AND_SINGLE, interpreted_dtypes=(torch.float32, torch.float16)),
        Impl("cuda", "course.kernels.moe.cuda_moe:expert_mlp", kind="cuda"),
    ),
    make_inputs=expert_mlp_inputs,
    test_cases=TEST_CASES,
    bench_cases=EXPERT_MLP_BENCH_CASES,
    tol=1e-5,
    # The hidden layer h is stored in the input's dtype, so two roundings compound through W2.
    tols={torch.float16: 3e-3, torch.bfloat16: 2.5e-2},
    grad_inputs=("x", "w1", "w2"),
    bytes_moved=expert_mlp_bytes,
    flops=expert_mlp_flops,
))


def round_trip_inputs(params: dict, generator: torch.Generator) -> dict:
    expert_index, gates = routing(params, generator)
    x = rows(params["T"], params["D"], params, generator)
    return dict(x=x, expert_index=layout(expert_index, params), gates=layout(gates, params),
                num_experts=params["E"], capacity=params.get("capacity"))


def round_trip_bytes(kwargs: dict, out) -> int:
    """Token rows read and written twice (into the experts' rows and back), indices and gates read."""
    x, index = kwargs["x"], kwargs["expert_index"]
    return 2 * (x.numel() + index.numel() * x.shape[1]) * x.element_size() + index.numel() * 16


# The peer: what users write instead (transformers' Mixtral block), checked by the same harness.
PEER_BENCH_CASES = (Case("T=16384 D=256 E=8 k=2", dict(T=16384, D=256, E=8, k=2), devices=("cpu",)),
                    *BENCH_CASES)
round_trip = register(Op(
    name="moe.dispatch_combine",
    doc="Dispatch, identity experts, combine: an MoE layer's data movement, against Mixtral's loop.",
    impls=(
        Impl("reference", "course.moe.peer:dispatch_combine", dtypes=FLOATS),
        Impl("mixtral_loop", "course.moe.peer:mixtral_loop", dtypes=FLOATS),
    ),
    make_inputs=round_trip_inputs,
    test_cases=tuple(c for c in TEST_CASES if c.name in {
        "T=64 E=4 k=2", "capacity drops", "k=1 capacity drops", "int32 indices", "T=600 capacity",
        "strided inputs", "NaN row", "no tokens", "empty expert", "T=16384 D=1024 E=64 k=2"}),
    bench_cases=PEER_BENCH_CASES,
    tol=1e-6,
    grad_inputs=("x", "gates"),
    bytes_moved=round_trip_bytes,
))
