"""Every CUDA backend runs on the CPU emulator (tests/cuda_emulator): every case of the one harness.

Without a GPU the .cu kernels are otherwise only compiled, never run. Here each family's real
binding and kernels are built with g++ against emulator.h, the backend module's `extension` is
pointed at that build, and its CUDA backend of every op is compared with the reference exactly as
tests/test_ops.py compares a backend: outputs and gradients, NaN-poisoned outputs, on every test case.
"""
import shutil
import subprocess

import pytest

from cuda_emulator import build
from harness import harness_params, run_case


# The emulator runs each block's threads as OS threads, so a case of hundreds of tokens takes seconds:
# T = 300 (three routing chunks of 256) runs in float32 (tests/harness.py), and T = 600 (for code that
# breaks past 512 tokens) on a GPU only.
CASES = [p for p in harness_params(lambda op: [i for i in op.impls if i.kind == "cuda"])
         if p.values[2].params.get("T", 0) < 512]


@pytest.mark.parametrize("op,impl,case,dtype", CASES)
def test_cuda_backend_matches_reference_on_the_emulator(op, impl, case, dtype, emulate_cuda,
                                                        harness_log):
    emulate_cuda(impl.target.partition(":")[0])
    run_case(op, impl, impl.load(), case, dtype, "cpu", harness_log, backend="cuda (emulated)")


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
