"""Test setup shared by every family: the op-harness log, and CUDA backends on the CPU emulator.

(Triton's interpreter is switched on, and the suite's budgets kept, by ../conftest.py.)
"""
import importlib
import shutil

import pytest


@pytest.fixture(scope="session")
def harness_log(pytestconfig):
    """(op, backend, case, max error ratio) of every harness case that ran."""
    if not hasattr(pytestconfig, "harness_log"):
        pytestconfig.harness_log = []
    return pytestconfig.harness_log


@pytest.fixture
def emulate_cuda(monkeypatch):
    """`emulate_cuda("course.kernels.<family>.cuda_<x>")` points that CUDA backend module at its
    build for the CPU emulator (tests/cuda_emulator; a minute the first time, then cached)."""
    from torch.utils.cpp_extension import is_ninja_available

    from cuda_emulator import build

    if shutil.which("g++") is None or not is_ninja_available():
        pytest.skip("g++ and ninja are needed to build the CUDA kernels for the CPU emulator")

    def use(module_name: str):
        emulated = build.build(module_name)
        module = importlib.import_module(module_name)
        monkeypatch.setattr(module, "extension", lambda: emulated)
        monkeypatch.setattr(module, "_stream", lambda: 0)  # the emulator runs launches in order
        return emulated

    return use


def pytest_terminal_summary(terminalreporter, config):
    log = getattr(config, "harness_log", [])
    if not log:
        return
    worst = max(log, key=lambda r: r[3])
    backends = sorted({f"{op}/{backend}" for op, backend, _, _ in log})
    terminalreporter.write_sep("-", "op harness")
    terminalreporter.write_line(f"{len(log)} cases over {len(backends)} op backends: "
                                f"{', '.join(backends)}")
    terminalreporter.write_line(f"largest RMS-relative error: {worst[3]:.2e} "
                                f"({worst[0]} / {worst[1]} / {worst[2]})")
