"""The MoE CUDA kernels: tile sizes agree with the header. (Every CUDA kernel runs every harness case
in each dtype it declares on the CPU emulator: tests/test_cuda_emulated.py.)"""
from pathlib import Path

from course.kernels.moe import cuda_moe

HEADER = Path(cuda_moe.HERE) / "moe_kernels.h"


def test_tile_sizes_match_the_header():
    header = HEADER.read_text()
    assert f"kRoutingBlock = {cuda_moe.ROUTING_BLOCK};" in header
    assert f"kGemmTile = {cuda_moe.GEMM_TILE};" in header

