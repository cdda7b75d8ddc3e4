"""Where the course's notebooks are, their time budgets, and headless execution.

A notebook's budgets are `metadata.course.budget_s` (seconds on a 2-core CPU; 120 unless it says
otherwise) and `metadata.course.memory_mb` (peak kernel memory; Binder gives 1-2 GB, so 1200 unless
it says otherwise). `course check` and the notebook tests both read them from here.
"""
import os
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BUDGET_S = 120.0
DEFAULT_MEMORY_MB = 1200.0
# What JupyterLab writes into a notebook it opens; committed as is, opening a notebook changes nothing.
# The kernel computes as in the test suite's workers: no progress bars, one thread (a reduction's
# rounding, and the benchmark records `auto` reads, depend on the thread count), and the numerics
# that `course` pins at import (course.numerics), inherited from this process.
KERNEL_ENV = {"COURSE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def course_root() -> Path:
    """The checkout holding `notebooks/`: $COURSE_HOME, the current directory or a parent of it,
    or the source tree of an editable install."""
    candidates = []
    if os.environ.get("COURSE_HOME"):
        candidates.append(Path(os.environ["COURSE_HOME"]))
    here = Path.cwd().resolve()
    candidates += [here, *here.parents, Path(__file__).resolve().parents[1]]
    for root in candidates:
        if (root / "notebooks" / "00_index.ipynb").exists():
            return root
    raise FileNotFoundError(
        "the course notebooks were not found: run this from the course checkout (the folder that "
        "holds notebooks/00_index.ipynb), or set COURSE_HOME to it")


def notebook_paths(root: Path | None = None) -> list[Path]:
    return sorted((root or course_root()).joinpath("notebooks").glob("[0-9][0-9]_*.ipynb"))


def _course_metadata(path: Path) -> dict:
    import nbformat

    return nbformat.read(str(path), as_version=4).metadata.get("course", {})


def budget_s(path: Path) -> float:
    """The notebook's time budget in seconds."""
    return float(_course_metadata(path).get("budget_s", DEFAULT_BUDGET_S))


def memory_budget_mb(path: Path) -> float:
    """The notebook's memory budget (peak resident memory of its kernel) in MB."""
    return float(_course_metadata(path).get("memory_mb", DEFAULT_MEMORY_MB))


@dataclass
class Execution:
    path: Path
    seconds: float
    budget_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds <= self.budget_s


def execute(path: Path, timeout_s: float | None = None, write: bool = False) -> Execution:
    """Run a notebook top to bottom in a fresh kernel.

    With `write`, store the new outputs in the file (without the widget state, which holds the whole
    plotly.js bundle, ~5 MB, and with JupyterLab's kernelspec): how the committed outputs are
    refreshed. The kernel runs with KERNEL_ENV, as the notebook tests run it, so the stored outputs
    are the ones the tests compare.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    budget = budget_s(path)
    client = NotebookClient(nb, timeout=int(timeout_s or 4 * budget), kernel_name="python3",
                            record_timing=False, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    before = {name: os.environ.get(name) for name in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)  # the kernel inherits this process's environment
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1]
    except Exception as e:  # a timeout or a dead kernel: report, keep checking the others
        error = f"{type(e).__name__}: {e}"
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    seconds = time.perf_counter() - start
    if write and error is None:
        nb.metadata.pop("widgets", None)
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        nbformat.write(nb, str(path))
    return Execution(path, seconds, budget, error)
