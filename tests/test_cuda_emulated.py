"""The CUDA kernels run on the CPU emulator (tests/cuda_emulator): every case of the one harness.

Without a GPU the .cu kernels are otherwise only compiled, never run. Here the real binding and the
kernels are built with g++ against emulator.h, `cuda_moe.extension` is pointed at that build, and the
CUDA backend of every op in `cuda_moe` is compared with the reference exactly as tests/test_ops.py
compares a backend: outputs and gradients, NaN-poisoned outputs, on every test case.
"""
import shutil
import subprocess

import pytest
import torch

from course import registry
from course.kernels.moe import cuda_moe
from course.testing import compare
from cuda_emulator import build

CUDA_MOE = cuda_moe.__name__ + ":"
OPS = [op for op in registry.all_ops() for impl in op.impls
       if impl.kind == "cuda" and impl.target.startswith(CUDA_MOE)]


@pytest.fixture(scope="module")
def emulated():
    """The extension built for the emulator (about a minute the first time, then cached)."""
    from torch.utils.cpp_extension import is_ninja_available

    if shutil.which("g++") is None or not is_ninja_available():
        pytest.skip("g++ and ninja are needed to build the CUDA kernels for the CPU emulator")
    return build.build()


@pytest.fixture
def on_emulator(monkeypatch, emulated):
    monkeypatch.setattr(cuda_moe, "extension", lambda: emulated)
    monkeypatch.setattr(cuda_moe, "_stream", lambda: 0)  # the emulator runs every launch in order


def test_the_emulated_module_has_the_interface_of_the_real_one(emulated):
    assert {"expert_histogram", "dispatch_slot", "scatter_rows", "gather_rows", "row_dot",
            "grouped_matmul", "grouped_weight_grad"} <= set(dir(emulated))


@pytest.mark.parametrize("op,case", [pytest.param(op, case, id=f"{op.name}-{case.name}")
                                     for op in OPS for case in op.test_cases])
def test_cuda_backend_matches_reference_on_the_emulator(op, case, on_emulator, harness_log):
    result = compare(op, op.impl("cuda").load(), case, device="cpu")
    harness_log.append((op.name, "cuda (emulated)", case.name, result.max_ratio))
    assert result.ok, f"{op.name} / cuda (emulated) / {case.name}:\n" + "\n".join(result.problems)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_rows_on_the_emulator(dtype, on_emulator):
    """The __half and __nv_bfloat16 instances of the row kernels (dispatch and combine)."""
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


def test_emulator_selftest(tmp_path):
    """The emulator's model: barriers, early returns, atomics, shared memory poisoning, launch limits."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to build the emulator's self-test")
    program = build.compile_program(build.SELFTEST, tmp_path)
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_launch_rewrite():
    source = ("  kern<T><<<grid, dim3(32, 8), n * sizeof(int), stream>>>(a, (int)b,\n"
              "                                                 c);\n"
              "  extern __shared__ int counts[];\n"
              "  __shared__ float tile[32][33];\n")
    emulated = build.emulated_source(source)
    assert "emu::launch(kern<T>, emu::config(grid, dim3(32, 8), n * sizeof(int), stream), a, (int)b," \
        in emulated
    assert "int* counts = emu::dynamic_shared<int>();" in emulated
    assert "__shared__ float tile[32][33]; [[maybe_unused]] static const bool tile_in_shared_memory" \
        " = emu::shared_memory(tile, sizeof(tile));" in emulated
    assert "<<<" not in emulated and "extern __shared__" not in emulated
