"""The GPU's tiles under the interpreter: every Triton op's cases in float32, launched with the tile
sizes and the code paths a GPU compiles (COURSE_GPU_TILES=1; `course.kernels.launch.gpu_tiles`): one
destination row a program in gnn, 32 x 32 tiles of 8 warps and tl.sort in the Hopfield retrievals,
tl.associative_scan in ssm, 8 warps' tiles in the landscape grid. The CPU's own tiles are larger and
never run those paths; what the interpreter cannot show (compiled numerics, memory, races) is the GPU
run's (.ci/gpu-run). Cases whose point is a shape or a length (`heavy`) run with the CPU's tiles only,
and a case may say `gpu_tiles=False` where the interpreter is too slow for the GPU's path (tl.sort).
"""
import pytest
import torch

from course import registry
from course.kernels import launch
from harness import gpu_tiled_cases, run_case

TRITON_OPS = [(op, impl) for op in registry.all_ops() for impl in op.impls if impl.kind == "triton"]


def tiled_cases(op) -> list:
    return gpu_tiled_cases(op, torch.float32)


@pytest.mark.parametrize("op,impl,case", [pytest.param(op, impl, case, id=f"{op.name}-{case.name}")
                                          for op, impl in TRITON_OPS for case in tiled_cases(op)])
def test_triton_with_the_gpus_tiles_matches_the_reference(op, impl, case, monkeypatch, harness_log):
    available, why = impl.availability("cpu")
    if not available:
        pytest.skip(f"{impl.backend}: {why}")
    monkeypatch.setenv(launch.GPU_TILES, "1")
    assert launch.gpu_tiles("cpu")
    run_case(op, impl, impl.load(), case, torch.float32, "cpu", harness_log, backend="triton (GPU tiles)")


@pytest.mark.parametrize("op,impl", [pytest.param(op, impl, id=op.name) for op, impl in TRITON_OPS])
def test_every_triton_op_runs_some_cases_with_the_gpus_tiles(op, impl):
    assert len([c for c in tiled_cases(op) if "empty" not in c.name and "no " not in c.name]) >= 2, op.name


def test_the_gpus_tiles_are_the_cpus_only_when_asked(monkeypatch):
    monkeypatch.delenv(launch.GPU_TILES, raising=False)
    assert not launch.gpu_tiles("cpu") and launch.gpu_tiles(torch.device("cuda"))
    monkeypatch.setenv(launch.GPU_TILES, "1")
    assert launch.gpu_tiles(torch.device("cpu"))
