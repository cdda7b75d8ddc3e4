"""Exercises: the learner writes a function with an op's signature, `course.check` grades it.

A family declares its exercises in `course/<family>/exercises.py` (EXERCISES). The notebook shows a
first attempt with a planted bug, or the task alone; the solution is library code, shown only when
the learner asks for it with `course.solution("<op>")`.
"""
import importlib
from dataclasses import dataclass

from course.show import Source, show


@dataclass(frozen=True)
class Exercise:
    """An exercise: the op whose reference grades it, the task in one sentence, the solution."""

    op: str  # e.g. "moe.dispatch"
    task: str
    solution: str  # "module:function" of the library code that solves it


def of_family(package: str) -> tuple[Exercise, ...]:
    """The exercises of `course/<package>/exercises.py`, in notebook order."""
    try:
        module = importlib.import_module(f"course.{package}.exercises")
    except ModuleNotFoundError:
        return ()
    return tuple(module.EXERCISES)


def all_exercises() -> list[Exercise]:
    from course import families

    return [e for f in families.discovered() for e in of_family(f.package)]


def solution(op: str, number: int = 1) -> Source:
    """The library's solution of the exercise graded by `op` (e.g. "moe.dispatch"), as source; where
    several exercises share an op, `number` says which (1 for the first in the notebook)."""
    graded = [e for e in all_exercises() if e.op == op]
    if not graded:
        known = ", ".join(sorted({e.op for e in all_exercises()}))
        raise KeyError(f"solution: no exercise is graded by {op!r}; exercises: {known}")
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(graded):
        raise ValueError(f"solution: `number` must be an int from 1 to {len(graded)} (the exercises "
                         f"graded by {op!r}); got {number!r}.")
    return show(graded[number - 1].solution)
