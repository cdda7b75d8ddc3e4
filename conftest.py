"""What the whole suite holds to, besides each test: budgets, and a checkout left as it was.

- Notebooks: a budget item after each notebook's last cell fails a notebook that ran longer than its
  time budget (metadata.course.budget_s, 120 s by default) or whose kernel grew past its memory
  budget (metadata.course.memory_mb: Binder gives 1-2 GB).
- Families: every item belongs to a family (tests/<family>/, its notebook, or an op, claim, family
  or kernel source of the family as a parameter) or to the fixed part (the foundation's tests and
  the browser test). At the end a table gives each family's work (the seconds its notebook and tests
  took, summed) and its share of CI's wall time (the work over the number of workers that ran it in
  parallel) against FAMILY_SHARE_S; a family over its share fails the run, with its number. The
  course's notebooks together must fit a learner's COURSE_S.
- The checkout: the suite must leave `git status` as it found it.

Under pytest-xdist (`--dist loadfile`) the items of a file run in one worker: a notebook's cells in
order, and a family's claims (tests/<family>/test_claims.py) where their shared models are cached.
"""
import os
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from course import numerics  # pins the floating-point code paths before torch first computes

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module defines its kernels
os.environ["COURSE_PROGRESS"] = "0"  # no progress bars in outputs that are compared or committed
if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: one thread each, kernels too
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent
FAMILY_SHARE_S = 120.0  # a family's notebook and tests together, on CI's 2-core machine
FIXED_PART_S = 360.0  # install, the foundation's tests and the browser test
COURSE_S = 1800.0  # every notebook of the course, run by a learner one after the other
PEAK_RSS = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss"

SECONDS = defaultdict(float)  # notebook path -> seconds spent in its cells (kernel start included)
SPENT = defaultdict(lambda: defaultdict(float))  # family -> "notebook" | "tests" -> seconds
NOTEBOOKS = {}  # notebook name -> (seconds, peak MB, budget s)
STATE = {}


def family_packages() -> set[str]:
    from course import families

    return {f.package for f in families.discovered()}


def notebook_family(path: Path) -> str:
    from course import catalog

    for f in catalog.families():
        if f.notebook_name == path.name:
            return catalog.package_of(f.id) or f.id
    return "foundation"


def family_of(item) -> str:
    """The family an item's time counts against, or 'foundation' / 'browser' (the fixed part)."""
    path = Path(str(item.fspath)).resolve()
    parts = path.relative_to(ROOT).parts if path.is_relative_to(ROOT) else path.parts[-1:]
    if parts[0] == "notebooks":
        return notebook_family(Path(parts[-1]))
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in family_packages():
        return parts[1]
    if item.get_closest_marker("browser"):
        return "browser"
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        family = getattr(value, "family", None)  # an op, a claim, a family folder
        if isinstance(value, Path) and value.is_relative_to(ROOT / "kernels"):
            family = value.relative_to(ROOT / "kernels").parts[0]  # a kernel source
        if isinstance(family, str) and family in family_packages():
            return family
    return "foundation"


class NotebookBudget(pytest.Item):
    """Passes when the notebook ran within its time budget and its kernel within its memory budget."""

    def runtest(self):
        from course.notebooks import budget_s, memory_budget_mb

        path = Path(str(self.parent.fspath))
        reply = self.parent.kernel.kc.execute_interactive("", user_expressions={"rss": PEAK_RSS},
                                                          timeout=30)
        peak_mb = int(reply["content"]["user_expressions"]["rss"]["data"]["text/plain"]) / 1024
        spent, budget = SECONDS[str(path)], budget_s(path)
        self.user_properties.append(("notebook", (path.name, spent, peak_mb, budget)))
        assert spent <= budget, f"{path.name} ran {spent:.1f} s, over its {budget:.0f} s budget"
        memory = memory_budget_mb(path)
        assert peak_mb <= memory, f"{path.name} peaked at {peak_mb:.0f} MB, over its {memory:.0f} MB"

    def reportinfo(self):
        return self.parent.fspath, None, f"{Path(str(self.parent.fspath)).name}: time budget"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # a machine without the notebook tools (the GPU run): no notebook items
        IPyNbCell = ()
    out = []
    for i, item in enumerate(items):
        out.append(item)
        last_cell = isinstance(item, IPyNbCell) and (
            i + 1 == len(items) or items[i + 1].parent is not item.parent)
        if last_cell:
            out.append(NotebookBudget.from_parent(item.parent, name="time budget"))
    items[:] = out
    for item in items:
        item.user_properties.append(("family", family_of(item)))


def pytest_runtest_logreport(report):
    properties = dict(report.user_properties)
    if "ipynb::Cell" in report.nodeid:
        SECONDS[str(Path(report.fspath).resolve())] += report.duration
    if "family" in properties:
        kind = "notebook" if ".ipynb::" in report.nodeid else "tests"
        SPENT[properties["family"]][kind] += report.duration
    if report.when == "call" and "notebook" in properties:
        name, spent, peak, budget = properties["notebook"]
        NOTEBOOKS[name] = (spent, peak, budget)


def git_state() -> str | None:
    """`git status --porcelain` of the checkout, None outside a git checkout."""
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def pytest_sessionstart(session):
    STATE["start"] = time.monotonic()
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        STATE["git"] = git_state()


def workers(config) -> int:
    """How many processes ran the items side by side (pytest-xdist's -n), 1 without xdist."""
    n = getattr(config.option, "numprocesses", None)
    return n if isinstance(n, int) and n > 0 else 1


def fixed_part(n_workers: int) -> float:
    """CI seconds of the install (COURSE_CI_INSTALL_S, given by .ci/run), the foundation and the browser."""
    install = float(os.environ.get("COURSE_CI_INSTALL_S", "0"))
    return install + sum(sum(SPENT[p].values()) for p in ("foundation", "browser")) / n_workers


def over_budget(n_workers: int) -> list[str]:
    problems = [f"family {family}: its notebook and tests took {sum(kinds.values()):.0f} s of work, "
                f"{sum(kinds.values()) / n_workers:.0f} s of CI time on {n_workers} workers, over its "
                f"{FAMILY_SHARE_S:.0f} s share" for family, kinds in sorted(SPENT.items())
                if family not in ("foundation", "browser")
                and sum(kinds.values()) / n_workers > FAMILY_SHARE_S]
    fixed = fixed_part(n_workers)
    if fixed > FIXED_PART_S:
        problems.append(f"the fixed part (install, foundation, browser) took {fixed:.0f} s of CI time, "
                        f"over its {FIXED_PART_S:.0f} s")
    course_total = sum(s for s, _, _ in NOTEBOOKS.values())
    if course_total > COURSE_S:
        problems.append(f"the course's notebooks take {course_total:.0f} s together, over the "
                        f"{COURSE_S:.0f} s a learner should wait")
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return
    problems = over_budget(workers(session.config))
    before = STATE.get("git")
    after = git_state() if before is not None else None
    if before is not None and after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        problems.append("the suite changed the checkout (git status): " + "; ".join(changed))
    STATE["problems"] = problems
    if problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    write = terminalreporter.write_line
    if NOTEBOOKS:
        terminalreporter.write_sep("-", "notebook time and peak memory (budgets for a 2-core CPU)")
        for name, (spent, peak, budget) in sorted(NOTEBOOKS.items()):
            write(f"{name:<40} {spent:6.1f} s of {budget:.0f} s   {peak:6.0f} MB")
        write(f"{'all notebooks, one after the other':<40} "
              f"{sum(s for s, _, _ in NOTEBOOKS.values()):6.1f} s of {COURSE_S:.0f} s")
    if SPENT:
        n = workers(config)
        terminalreporter.write_sep("-", f"CI time by family (work: seconds summed; CI share: work / "
                                        f"{n} worker{'s' if n > 1 else ''})")
        write(f"{'part':<16}{'notebook':>10}{'tests':>10}{'work':>10}{'CI share':>10}{'budget':>10}")
        install = float(os.environ.get("COURSE_CI_INSTALL_S", "0"))
        fixed = fixed_part(n)
        for family in sorted(SPENT, key=lambda f: (f in ("foundation", "browser"), f)):
            kinds = SPENT[family]
            budget = "" if family in ("foundation", "browser") else f"{FAMILY_SHARE_S:.0f}"
            work = sum(kinds.values())
            write(f"{family:<16}{kinds['notebook']:>10.1f}{kinds['tests']:>10.1f}{work:>10.1f}"
                  f"{work / n:>10.1f}{budget:>10}")
        if install:
            write(f"{'install':<16}{'':>30}{install:>10.1f}")
        write(f"{'fixed part':<16}{'':>30}{fixed:>10.1f}{FIXED_PART_S:>10.0f}  "
              "(install, foundation, browser)")
        wall = time.monotonic() - STATE["start"]
        write(f"{'pytest wall':<16}{'':>30}{wall:>10.1f}")
        if install:
            write(f"{'CI total':<16}{'':>30}{install + wall:>10.1f}  (install + pytest)")
    for problem in STATE.get("problems", []):
        terminalreporter.write_line(f"FAILED {problem}", red=True, bold=True)
