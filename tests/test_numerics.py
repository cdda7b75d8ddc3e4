"""The pinned floating-point code paths (course.numerics): set before torch computes, and reported."""
import os
import subprocess
import sys

import pytest

from course import numerics

pytestmark = pytest.mark.skipif(not numerics.applies(), reason="the pins are for x86-64")


def run(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in numerics.PINS}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_test_suite_computes_on_the_pinned_path():
    same, why = numerics.pinned()
    assert same, why


def test_importing_course_first_pins_torch_mkl_and_numpy():
    out = run("import course, torch; torch.ones(4, 4) @ torch.ones(4, 4); "
              "from course import numerics; print(numerics.pinned())")
    assert out.startswith("(True,"), out


def test_a_torch_that_computed_before_course_is_reported_with_the_way_out():
    out = run("import torch; torch.ones(64, 64) @ torch.ones(64, 64); import course; print(course.setup())")
    assert "MKL chooses its kernels by processor" in out and "import `course` before torch" in out


def test_a_variable_the_environment_sets_is_left_as_it_is():
    out = run("import os, course; print(os.environ['MKL_CBWR'], os.environ['ATEN_CPU_CAPABILITY'])",
              MKL_CBWR="AUTO")
    assert out == "AUTO avx2"


def test_a_benchmark_process_runs_unpinned():
    env = numerics.native_environment()
    assert env["COURSE_NUMERICS"] == "native"
    assert not set(numerics.SET_HERE) & set(env)  # what pin() set here is gone
    out = run("import os, course; print([n for n in course.numerics.PINS if n in os.environ])",
              COURSE_NUMERICS="native")
    assert out == "[]"
