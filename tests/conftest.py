"""Test setup shared by every family: the op-harness log, CUDA backends on the CPU emulator, and on a
GPU, the memory a GPU-sized case leaves cached handed back, and each failure written down as it comes.

(Triton's interpreter is switched on, and the suite's budgets kept, by ../conftest.py.)
"""
import importlib
import os
import shutil
from types import SimpleNamespace

import pytest
import torch

from harness import write_failure

FAILURE_LOG = "COURSE_FAILURE_LOG"  # a file: each failed test's name and message, appended as it fails


HARNESS = []  # (op, backend, case, dtype, max error ratio) of every harness case, on the controller


@pytest.fixture
def harness_log(record_property):
    """Append (op, backend, case, dtype, max error ratio) of a harness case; the rows travel with the
    test report, so the summary sees those of every xdist worker."""

    class Log:
        def append(self, row):
            record_property("harness", row)

    return Log()


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        HARNESS.extend(row for key, row in report.user_properties if key == "harness")
    if report.failed and os.environ.get(FAILURE_LOG) and not os.environ.get("PYTEST_XDIST_WORKER"):
        write_failure(os.environ[FAILURE_LOG], report)


@pytest.fixture(autouse=True)
def gpu_memory_handed_back(request):
    """After a GPU-sized case, empty torch's cache of GPU memory: other processes on the GPU (xdist's
    workers, the next step) cannot use what one process keeps cached, tens of gigabytes here."""
    yield
    if request.node.get_closest_marker("gpu_sized") and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@pytest.fixture
def emulate_cuda(monkeypatch):
    """`emulate_cuda("course.kernels.<family>.cuda_<x>")` points that CUDA backend module at its
    build for the CPU emulator (tests/cuda_emulator; a minute the first time, then cached).
    A module that launches through other modules' extensions (the shared streaming kernels,
    `course.kernels.cuda_streaming`) names them in `CUDA_MODULES`; they are emulated the same way,
    first. A module without SOURCES of its own has no build: only its primitives' device changes."""
    from torch.utils.cpp_extension import is_ninja_available

    from cuda_emulator import build

    if shutil.which("g++") is None or not is_ninja_available():
        pytest.skip("g++ and ninja are needed to build the CUDA kernels for the CPU emulator")

    def use(module_name: str):
        module = importlib.import_module(module_name)
        for other in getattr(module, "CUDA_MODULES", ()):
            use(other)
        if not hasattr(module, "SOURCES"):
            emulated = None
        else:
            emulated = build.build(module_name)
            monkeypatch.setattr(module, "extension", lambda: emulated)
            monkeypatch.setattr(module, "_stream", lambda: 0)  # the emulator runs launches in order
        for prims in vars(module).values():  # the emulator's device memory is the CPU's
            if isinstance(prims, SimpleNamespace) and getattr(prims, "DEVICE", None) == "cuda":
                monkeypatch.setattr(prims, "DEVICE", "cpu")
        return emulated

    return use


def pytest_terminal_summary(terminalreporter, config):
    if not HARNESS or hasattr(config, "workerinput"):
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", "op harness")
    backends = sorted({f"{op}/{backend}" for op, backend, *_ in HARNESS})
    write(f"{len(HARNESS)} cases passed over {len(backends)} op backends: {', '.join(backends)}")
    kernel = lambda row: "triton" in row[1] or "cuda" in row[1]  # noqa: E731
    for dtype in sorted({row[3] for row in HARNESS}):
        rows = [row for row in HARNESS if row[3] == dtype]
        line = f"{dtype:<9} {len(rows):>4} cases; largest RMS-relative error"
        for label, chosen in (("", rows), ("kernels", [r for r in rows if kernel(r)])):
            if chosen:
                worst = max(chosen, key=lambda r: r[4])
                line += (f"{'; ' + label if label else ''} {worst[4]:.2e} "
                         f"({worst[0]} / {worst[1]} / {worst[2]})")
        write(line)
