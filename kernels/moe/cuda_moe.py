"""MoE dispatch, combine and experts with CUDA kernels: the contracts of `course.moe.dispatch` and
`course.moe.experts`.

The kernels (`moe_routing.cu`, `moe_rows.cu`, `moe_grouped_gemm.cu`) implement the algorithms of the
Triton backend in CUDA C++; `moe_binding.cpp` exposes them to PyTorch. The extension is compiled by
`torch.utils.cpp_extension` on first use, which needs a CUDA build of PyTorch, nvcc and a GPU.
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.kernels.build import cuda_extension
from course.kernels.moe.host import combine_with, dispatch_with, expert_mlp_with, scan_chunk_histogram
from course.moe.dispatch import Dispatched
from course.moe.experts import ExpertTiles

HERE = Path(__file__).parent
SOURCES = ("moe_binding.cpp", "moe_routing.cu", "moe_rows.cu", "moe_grouped_gemm.cu")
ROUTING_BLOCK = 256  # kRoutingBlock in moe_kernels.h
MAX_EXPERTS = 48 * 1024 // 4  # the histogram's int counters [E] in 48 KiB of shared memory
GEMM_TILE = 32  # kGemmTile in moe_kernels.h: rows per tile of the grouped GEMM


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_moe_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def route_slots(expert_index, num_experts: int, capacity: int | None):
    """expert_index [T, k] -> slot [T, k] (-1 where dropped), counts [E] kept per expert."""
    T, k = expert_index.shape
    index = expert_index.long().contiguous()
    n_chunks = -(-T * k // ROUTING_BLOCK)
    hist = outputs.empty((n_chunks, num_experts), dtype=torch.long, device=index.device)
    extension().expert_histogram(index, num_experts, hist, _stream())
    base, counts, offsets = scan_chunk_histogram(hist, capacity)
    slot = outputs.empty((T, k), dtype=torch.long, device=index.device)
    extension().dispatch_slot(index, base.contiguous(), counts.contiguous(), offsets.contiguous(),
                              slot, _stream())
    return slot, counts


def scatter_rows(src, slot, weight, num_rows: int):
    out = outputs.empty((num_rows, src.shape[1]), dtype=src.dtype, device=src.device)
    return extension().scatter_rows(src, slot, weight, out, _stream())


def gather_rows(src, slot, weight):
    out = outputs.empty((slot.shape[0], src.shape[1]), dtype=src.dtype, device=src.device)
    return extension().gather_rows(src, slot, weight, out, _stream())


def row_dot(a, src, slot):
    out = outputs.empty(tuple(slot.shape), dtype=a.dtype, device=a.device)
    return extension().row_dot(a, src, slot, out, _stream())


PRIMITIVES = SimpleNamespace(route_slots=route_slots, scatter_rows=scatter_rows,
                             gather_rows=gather_rows, row_dot=row_dot, BACKEND="cuda",
                             MAX_EXPERTS=MAX_EXPERTS, DEVICE="cuda")


def dispatch(x, expert_index, num_experts: int, capacity: int | None = None) -> Dispatched:
    """GShard Algorithm 1 dispatch as a CUDA counting sort and row scatter.

    x [T, D], expert_index [T, k] -> Dispatched(x [S, D], slot [T, k], counts [E]).
    """
    return dispatch_with(PRIMITIVES, x, expert_index, num_experts, capacity)


def combine(y, slot, gates):
    """Shazeer et al. 2017 eq. 1 as a CUDA row gather-sum.

    y [S, D], slot [T, k], gates [T, k] -> [T, D].
    """
    return combine_with(PRIMITIVES, y, slot, gates)


def grouped_matmul(a, w, tiles: ExpertTiles, epilogue: str = "none", gate=None):
    """a [S, K] grouped by expert, w [E, K, N] (any strides), gate [S, N] -> epilogue(a_e w_e) [S, N]."""
    out = outputs.empty((a.shape[0], w.shape[2]), dtype=a.dtype, device=a.device)
    return extension().grouped_matmul(a, w, gate, tiles.expert, tiles.start, tiles.end, epilogue, out,
                                      _stream())


def grouped_weight_grad(a, b, offsets):
    """a [S, K], b [S, N] grouped by expert, offsets [E + 1] -> grad_w [E, K, N], grad_w[e] = a_e^T b_e."""
    grad_w = outputs.empty((offsets.numel() - 1, a.shape[1], b.shape[1]), dtype=a.dtype,
                           device=a.device)
    return extension().grouped_weight_grad(a, b, offsets, grad_w, _stream())


EXPERT_PRIMITIVES = SimpleNamespace(grouped_matmul=grouped_matmul, grouped_weight_grad=grouped_weight_grad,
                                    TILE_M=GEMM_TILE, BACKEND="cuda", DEVICE="cuda")


def expert_mlp(x, counts, w1, w2):
    """Shazeer et al. 2017 experts, ReLU(x W1_e) W2_e, as CUDA grouped GEMMs (MegaBlocks, no padding).

    x [S, D] grouped by expert, counts [E], w1 [E, D, H], w2 [E, H, D] -> [S, D]; float32 only.
    """
    return expert_mlp_with(EXPERT_PRIMITIVES, x, counts, w1, w2)
