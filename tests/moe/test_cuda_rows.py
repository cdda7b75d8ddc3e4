"""The MoE CUDA kernels: tile sizes agree with the header, and the row kernels in half precision
on the CPU emulator (tests/cuda_emulator)."""
from pathlib import Path

import pytest
import torch

from course import registry
from course.kernels.moe import cuda_moe

HEADER = Path(cuda_moe.HERE) / "moe_kernels.h"


def test_tile_sizes_match_the_header():
    header = HEADER.read_text()
    assert f"kRoutingBlock = {cuda_moe.ROUTING_BLOCK};" in header
    assert f"kGemmTile = {cuda_moe.GEMM_TILE};" in header


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_rows_on_the_emulator(dtype, emulate_cuda):
    """The __half and __nv_bfloat16 instances of the row kernels (dispatch and combine)."""
    emulate_cuda(cuda_moe.__name__)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 24, generator=g).to(dtype)
    expert_index = torch.randn(40, 4, generator=g).topk(2, dim=-1).indices
    gates = torch.rand(40, 2, generator=g).to(dtype)
    routed = cuda_moe.dispatch(x, expert_index, 4, capacity=15)
    expected = registry.get("moe.dispatch").reference.load()(x, expert_index, 4, capacity=15)
    assert torch.equal(routed.slot, expected.slot) and torch.equal(routed.x, expected.x)
    out = cuda_moe.combine(routed.x, routed.slot, gates)
    reference = registry.get("moe.combine").reference.load()
    expected = reference(routed.x.float(), routed.slot, gates.float())
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-2)
