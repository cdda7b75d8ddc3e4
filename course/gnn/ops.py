"""The graph ops in the registry: CSR sparse-dense products and GAT's fused neighbourhood attention,
their backends, dtypes and test cases (power-law hubs of degree 10^4 among them)."""
import torch

from course.gnn.datasets import power_law
from course.registry import FLOATS, Case, Impl, Op, register

SINGLE_AND_DOUBLE = (torch.float32, torch.float64)


def case_graph(params: dict, generator: torch.Generator):
    """The CSR of a case's graph: a power-law graph of N nodes and E edges (hubs capped at `hub`),
    plus `star` extra edges into node 0 from distinct sources; `isolated` nodes appended with no
    edges; `sources` S > N makes the product rectangular.
    -> rowptr [N + 1], col [E] (in the case's index dtype)."""
    N, E = params["N"], params["E"]
    S = params.get("sources", N)
    seed = int(torch.randint(2 ** 31, (1,), generator=generator))
    g = power_law(max(S, 1), E, max_degree=params.get("hub", 10_000), seed=seed)
    src, dst = g.edge_index
    dst = dst % max(N, 1)
    if params.get("star"):
        src = torch.cat([src, torch.randperm(S, generator=generator)[:params["star"]]])
        dst = torch.cat([dst, torch.zeros(params["star"], dtype=torch.long)])
    n = N + params.get("isolated", 0)
    key = dst * max(S, 1) + src  # coalesced: each (destination, source) pair once, as in real datasets
    first = torch.ones_like(key, dtype=torch.bool)
    sorted_key, at = torch.sort(key, stable=True)
    first[at[1:]] = sorted_key[1:] != sorted_key[:-1]
    order = at[first[at]]  # sorted by destination, then source: the CSR order
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:N + 1] = torch.cumsum(torch.bincount(dst[order], minlength=N), 0)[:N] if N else rowptr[1:1]
    rowptr[N + 1:] = rowptr[N]
    index_dtype = params.get("index_dtype", torch.long)
    return rowptr.to(index_dtype), src[order].to(index_dtype), S


def rows(n: int, shape: tuple, params: dict, generator: torch.Generator) -> torch.Tensor:
    """[n, *shape] random rows; `strided`: a transposed view; `nan_row`: that source row NaN."""
    if params.get("strided"):
        x = torch.randn(*reversed(shape), n, generator=generator).permute(*range(len(shape), -1, -1))
    else:
        x = torch.randn(n, *shape, generator=generator)
    if params.get("nan_row") is not None and params["nan_row"] < n:
        x[params["nan_row"]] = float("nan")
    return x


def spmm_inputs(params: dict, generator: torch.Generator) -> dict:
    rowptr, col, S = case_graph(params, generator)
    x = rows(S, (params["D"],), params, generator)
    weight = torch.rand(col.shape[0], generator=generator) if params.get("weighted", True) else None
    return dict(rowptr=rowptr, col=col, x=x, weight=weight)


def gat_inputs(params: dict, generator: torch.Generator) -> dict:
    rowptr, col, S = case_graph(params, generator)
    H, C = params.get("H", 2), params["D"]
    h = rows(S, (H, C), params, generator)
    spread = params.get("spread", 1.0)  # large: attention near one-hot, the softmax's hard case
    a_src = spread * torch.randn(S, H, generator=generator)
    a_dst = spread * torch.randn(rowptr.numel() - 1, H, generator=generator)
    return dict(rowptr=rowptr, col=col, h=h, a_src=a_src, a_dst=a_dst,
                negative_slope=params.get("negative_slope", 0.2))


def spmm_bytes(kwargs: dict, out) -> int:
    """The source row of every edge gathered (E D, from cache or memory), indices and weights read,
    the output written once."""
    x, col, w = kwargs["x"], kwargs["col"], kwargs["weight"]
    edges = col.numel()
    per_edge = x.shape[1] * x.element_size() + col.element_size() + (0 if w is None else w.element_size())
    return edges * per_edge + out.numel() * out.element_size() + kwargs["rowptr"].numel() * 8


def gat_bytes(kwargs: dict, out) -> int:
    """Every edge's source row and attention half gathered, the destinations' halves read, the output
    written: what the fused kernel moves (the reference also writes and reads e and alpha, [E, H])."""
    h, col = kwargs["h"], kwargs["col"]
    H, C = h.shape[1:]
    edges = col.numel()
    return (edges * ((H * C + H) * h.element_size() + col.element_size())
            + out.numel() * out.element_size() + kwargs["a_dst"].numel() * h.element_size())


TEST_CASES = (
    Case("N=50 E=300 D=8", dict(N=50, E=300, D=8)),
    Case("unweighted", dict(N=40, E=200, D=5, weighted=False)),
    Case("D=1", dict(N=31, E=90, D=1)),
    Case("D=160", dict(N=30, E=150, D=160, heavy=True)),  # wider than one block of columns
    Case("isolated nodes", dict(N=20, E=40, D=8, isolated=7, heavy=True)),
    Case("zero edges", dict(N=12, E=0, D=4)),
    Case("empty graph", dict(N=0, E=0, D=4)),
    Case("one node", dict(N=1, E=3, D=4)),
    Case("rectangular S=70 N=25", dict(N=25, E=200, D=6, sources=70, heavy=True)),
    Case("hub of degree 10^4", dict(N=64, E=200, D=8, sources=12_000, star=10_000, heavy=True)),
    Case("power-law N=500 E=5000", dict(N=500, E=5_000, D=16, hub=1000, heavy=True)),  # mixed degrees
    Case("int32 indices", dict(N=40, E=250, D=8, index_dtype=torch.int32, heavy=True)),
    Case("strided inputs", dict(N=40, E=250, D=12, strided=True, heavy=True)),
    Case("NaN row", dict(N=30, E=200, D=8, nan_row=3)),
    Case("1M nodes 10M edges D=64", dict(N=1_000_000, E=10_000_000, D=64), devices=("cuda",),
         dtypes=(torch.float32, torch.bfloat16)),  # the GPU benchmark's shape
)

GPU_DTYPES = (torch.float32, torch.bfloat16)
BENCH_CASES = (
    Case("power-law N=10k E=100k D=32", dict(N=10_000, E=100_000, D=32), devices=("cpu",)),  # the loop's
    Case("power-law N=100k E=1M D=32", dict(N=100_000, E=1_000_000, D=32), devices=("cpu",),
         skip_backends=("node_loop",)),  # 100k Python iterations a call
    Case("power-law N=1M E=10M D=64", dict(N=1_000_000, E=10_000_000, D=64), devices=("cuda",),
         dtypes=GPU_DTYPES),
)
GAT_TEST_CASES = tuple(Case(c.name.replace("D=", "C="), {**c.params, "H": 2}, c.devices, c.dtypes)
                       for c in TEST_CASES if c.name not in ("unweighted", "1M nodes 10M edges D=64")) + (
    # heads and the slope are not dtype questions: every dtype runs them on a GPU, float32 on the CPU
    Case("H=4 C=16", dict(N=60, E=400, D=16, H=4, heavy=True)),
    Case("peaked attention", dict(N=50, E=400, D=8, H=3, spread=30.0)),  # near one-hot softmax
    Case("negative_slope=0", dict(N=40, E=200, D=8, negative_slope=0.0, heavy=True)),
    Case("1M nodes 10M edges H=4 C=16", dict(N=1_000_000, E=10_000_000, D=16, H=4), devices=("cuda",),
         dtypes=GPU_DTYPES),
)
GAT_BENCH_CASES = (
    Case("power-law N=100k E=1M H=4 C=8", dict(N=100_000, E=1_000_000, D=8, H=4), devices=("cpu",),
         skip_backends=("online_softmax",)),  # a Python loop of degree / 16 steps: minutes at a hub
    Case("power-law N=1M E=10M H=4 C=16", dict(N=1_000_000, E=10_000_000, D=16, H=4), devices=("cuda",),
         dtypes=GPU_DTYPES),
)

spmm = register(Op(
    name="gnn.spmm",
    doc="A @ X with A in CSR form: segment-sum aggregation with optional edge weights (GCN, SGC).",
    impls=(
        Impl("reference", "course.gnn.spmm:spmm", dtypes=FLOATS),
        Impl("index_add", "course.gnn.spmm:spmm_index_add", dtypes=FLOATS),
        Impl("node_loop", "course.gnn.spmm:spmm_node_loop", devices=("cpu",), dtypes=FLOATS),
        Impl("torch_sparse", "course.gnn.spmm:spmm_torch_sparse", dtypes=SINGLE_AND_DOUBLE),
        Impl("pyg", "course.gnn.spmm:spmm_pyg", dtypes=FLOATS, requires="torch_geometric"),
        Impl("triton", "course.kernels.gnn.triton_gnn:spmm", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.gnn.cuda_gnn:spmm", kind="cuda",
             dtypes=(torch.float32, torch.float16, torch.bfloat16)),
    ),
    make_inputs=spmm_inputs,
    test_cases=TEST_CASES,
    bench_cases=BENCH_CASES,
    tol=5e-6,  # float32 sums of up to 10^4 terms in another order (the hub) stay near 2e-6
    grad_inputs=("x", "weight"),
    bytes_moved=spmm_bytes,
))

gat_aggregate = register(Op(
    name="gnn.gat_aggregate",
    doc="GAT's edge softmax and weighted aggregation, multi-head (Velickovic et al. 2018, eq. 1-4).",
    impls=(
        Impl("reference", "course.gnn.attention:gat_aggregate", dtypes=FLOATS),
        Impl("online_softmax", "course.gnn.attention:gat_aggregate_online", dtypes=FLOATS),
        # PyG's edge softmax runs in the input's dtype: its half-precision gradients miss the tolerances
        Impl("pyg", "course.gnn.attention:gat_aggregate_pyg", dtypes=SINGLE_AND_DOUBLE,
             requires="torch_geometric"),
        Impl("triton", "course.kernels.gnn.triton_gnn:gat_aggregate", kind="triton", dtypes=FLOATS),
        Impl("cuda", "course.kernels.gnn.cuda_gnn:gat_aggregate", kind="cuda",
             dtypes=(torch.float32, torch.float16, torch.bfloat16)),
    ),
    make_inputs=gat_inputs,
    test_cases=GAT_TEST_CASES,
    bench_cases=GAT_BENCH_CASES,
    # Peaked attention: d e_ij = alpha_ij (<g_i, h_j> - <g_i, out_i>) cancels to ~1e-7 where alpha is
    # near one-hot, and the reference itself is 1.9e-5 from float64 there (the online softmax 3.1e-5).
    tol=1e-4,
    grad_inputs=("h", "a_src", "a_dst"),
    bytes_moved=gat_bytes,
))
