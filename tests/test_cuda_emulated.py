"""Every CUDA backend runs on the CPU emulator (tests/cuda_emulator): every case of the one harness.

Without a GPU the .cu kernels are otherwise only compiled, never run. Here each family's real
binding and kernels are built with g++ against emulator.h, the backend module's `extension` is
pointed at that build, and its CUDA backend of every op is compared with the reference exactly as
tests/test_ops.py compares a backend: outputs and gradients, NaN-poisoned outputs, on every test case.
"""
import shutil
import subprocess

import pytest

from course import registry
from course.testing import compare
from cuda_emulator import build

CUDA_IMPLS = [(op, impl) for op in registry.all_ops() for impl in op.impls if impl.kind == "cuda"]


@pytest.mark.parametrize("op,impl,case", [
    pytest.param(op, impl, case, id=f"{op.name}-{case.name}")
    for op, impl in CUDA_IMPLS for case in op.test_cases])
def test_cuda_backend_matches_reference_on_the_emulator(op, impl, case, emulate_cuda, harness_log):
    emulate_cuda(impl.target.partition(":")[0])
    result = compare(op, impl.load(), case, device="cpu")
    harness_log.append((op.name, "cuda (emulated)", case.name, result.max_ratio))
    assert result.ok, f"{op.name} / cuda (emulated) / {case.name}:\n" + "\n".join(result.problems)


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
