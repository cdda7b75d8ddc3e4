"""Test setup: the Triton interpreter on machines without a GPU, and a summary of the harness."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module defines its kernels

HARNESS = []  # (op, backend, case, max error ratio) of every harness case that ran


def pytest_terminal_summary(terminalreporter):
    if not HARNESS:
        return
    worst = max(HARNESS, key=lambda r: r[3])
    backends = sorted({f"{op}/{backend}" for op, backend, _, _ in HARNESS})
    terminalreporter.write_sep("-", "op harness")
    terminalreporter.write_line(f"{len(HARNESS)} cases over {len(backends)} op backends: "
                                f"{', '.join(backends)}")
    terminalreporter.write_line(f"largest RMS-relative error: {worst[3]:.2e} "
                                f"({worst[0]} / {worst[1]} / {worst[2]})")
