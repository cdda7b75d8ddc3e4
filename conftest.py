"""Notebook tests: nbval compares each cell's outputs; a budget item after each notebook's last cell
fails a notebook that ran longer than its time budget (metadata.course.budget_s, 120 s by default) or
whose kernel grew past its memory budget (metadata.course.memory_mb: Binder gives 1-2 GB)."""
import os
from collections import defaultdict
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module defines its kernels

SECONDS = defaultdict(float)  # notebook path -> seconds spent in its cells (kernel start included)


PEAK_MB = {}  # notebook path -> the kernel's peak resident memory
PEAK_RSS = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss"


class NotebookBudget(pytest.Item):
    """Passes when the notebook ran within its time budget and its kernel within its memory budget."""

    def runtest(self):
        from course.notebooks import budget_s, memory_budget_mb

        path = Path(str(self.parent.fspath))
        reply = self.parent.kernel.kc.execute_interactive("", user_expressions={"rss": PEAK_RSS},
                                                          timeout=30)
        peak_mb = int(reply["content"]["user_expressions"]["rss"]["data"]["text/plain"]) / 1024
        PEAK_MB[str(path)] = peak_mb
        spent, budget = SECONDS[str(path)], budget_s(path)
        assert spent <= budget, f"{path.name} ran {spent:.1f} s, over its {budget:.0f} s budget"
        memory = memory_budget_mb(path)
        assert peak_mb <= memory, f"{path.name} peaked at {peak_mb:.0f} MB, over its {memory:.0f} MB"

    def reportinfo(self):
        return self.parent.fspath, None, f"{Path(str(self.parent.fspath)).name}: time budget"


def pytest_collection_modifyitems(session, config, items):
    from nbval.plugin import IPyNbCell

    out = []
    for i, item in enumerate(items):
        out.append(item)
        last_cell = isinstance(item, IPyNbCell) and (
            i + 1 == len(items) or items[i + 1].parent is not item.parent)
        if last_cell:
            out.append(NotebookBudget.from_parent(item.parent, name="time budget"))
    items[:] = out


def pytest_runtest_logreport(report):
    if "ipynb::Cell" in report.nodeid:
        SECONDS[str(Path(report.fspath).resolve())] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not SECONDS:
        return
    from course.notebooks import budget_s

    terminalreporter.write_sep("-", "notebook time and peak memory (budgets for a 2-core CPU)")
    for path, spent in sorted(SECONDS.items()):
        peak = f"{PEAK_MB[path]:6.0f} MB" if path in PEAK_MB else "       -"
        terminalreporter.write_line(f"{Path(path).name:<40} {spent:6.1f} s of {budget_s(Path(path)):.0f} s"
                                    f"   {peak}")
