"""Notebook hygiene, and the budget check of ../conftest.py failing a notebook that runs too long."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course import catalog, families

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_and_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code), "execute it: course check --write"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert "widgets" not in nb["metadata"], "widget state must be stripped"
    assert path.stat().st_size < 1_500_000
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts), "outputs come from one top-to-bottom run"
    # what JupyterLab writes when it opens a notebook: committing it makes opening one no change
    assert nb["metadata"]["kernelspec"] == {"display_name": "Python 3 (ipykernel)",
                                            "language": "python", "name": "python3"}
    for c in code:  # nbval honours the marker only alone on its first line
        assert "NBVAL_IGNORE_OUTPUT" not in "".join(c["source"]).partition("\n")[2]


def test_budget_check_fails_a_slow_notebook(tmp_path):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    nb = new_notebook(cells=[new_code_cell("import time; time.sleep(2)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["course"] = {"budget_s": 1}
    nbformat.write(nb, tmp_path / "slow.ipynb")
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                           "-p", "no:cacheprovider", "slow.ipynb"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout
    assert "over its 1 s budget" in done.stdout
    assert "slow.ipynb" in done.stdout and "of 1 s" in done.stdout  # the time is reported


KERNEL_FAMILIES = [f for f in families.discovered() if f.kernels]


def triton_cells(family) -> list:
    """A family notebook's first code cell (its setup) and its cells tagged `triton`, each cell
    tagged with the family's package."""
    nb = nbformat.read(ROOT / "notebooks" / catalog.family(family.id).notebook_name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = [code[0]] + [c for c in code[1:] if "triton" in c.metadata.get("tags", [])]
    assert len(cells) > 1, f"{catalog.family(family.id).notebook_name} has no cell tagged 'triton'"
    for c in cells:
        c.metadata["family"] = family.package
    return cells


def test_kernel_cells_run_where_triton_is_missing(tmp_path):
    """As on a machine without Triton: the kernels are shown, each notebook says why they did not run.

    Only each family notebook's setup cell and its cells tagged `triton` run here, all in one kernel
    (one start for the whole course), family after family.
    """
    nb = new_notebook(cells=[c for f in KERNEL_FAMILIES for c in triton_cells(f)],
                      metadata=nbformat.read(NOTEBOOKS[0], as_version=4).metadata)
    copy = tmp_path / "kernel_cells.ipynb"
    nbformat.write(nb, copy)
    hidden = tmp_path / "hide"
    (hidden / "triton").mkdir(parents=True)
    (hidden / "triton" / "__init__.py").write_text("raise ImportError('Triton is hidden for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(hidden), "COURSE_HOME": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)
    done = subprocess.run([sys.executable, "-c",
                           "import sys; from pathlib import Path; from course.notebooks import execute; "
                           "r = execute(Path(sys.argv[1]), write=True); print(r.error or 'ok')",
                           str(copy)], env=env, capture_output=True, text=True, timeout=600)
    assert done.stdout.strip().endswith("ok"), done.stdout + done.stderr
    for family in KERNEL_FAMILIES:
        outputs = [o for c in nbformat.read(copy, 4).cells if c.cell_type == "code"
                   and c.metadata["family"] == family.package for o in c.outputs]
        text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
        assert "the Triton kernel was not run here: Triton is not installed" in text, family.package
        assert "@triton.jit" in text, family.package
