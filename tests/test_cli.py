"""The `course` command: list, check, bench, doctor (lab is exercised by the browser test's server)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "course.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_list_shows_every_family_and_the_moe_ops(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 20 and "moe-routing" in out and "tabular-recsys" in out
    assert "op moe.dispatch" in out and "here: reference, token_loop" in out
    assert cli.main(["list", "moe", "--papers"]) == 0
    assert "[A] Outrageously Large Neural Networks" in capsys.readouterr().out


def fake_course(tmp_path: Path, seconds: float, budget: float) -> Path:
    """A course checkout with an index and one notebook that sleeps."""
    (tmp_path / "notebooks").mkdir()
    for name, source in [("00_index.ipynb", "1 + 1"),
                         ("01_moe_routing.ipynb", f"import time; time.sleep({seconds})")]:
        nb = new_notebook(cells=[new_code_cell(source)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["course"] = {"budget_s": budget}
        nbformat.write(nb, tmp_path / "notebooks" / name)
    return tmp_path


def test_check_reports_time_against_budget(tmp_path):
    home = fake_course(tmp_path, seconds=0.1, budget=60)
    done = run("check", "moe", env={"COURSE_HOME": str(home)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "01_moe_routing.ipynb" in done.stdout and "60  ok" in done.stdout


def test_check_fails_a_notebook_over_budget(tmp_path):
    home = fake_course(tmp_path, seconds=2.5, budget=2)
    done = run("check", "1", env={"COURSE_HOME": str(home)})
    assert done.returncode == 1 and "OVER BUDGET" in done.stdout


def test_bench_writes_records(tmp_path):
    assert cli.main(["bench", "moe.dispatch", "--out", str(tmp_path)]) == 0
    [path] = (tmp_path / "benchmarks" / "results").glob("cpu-*.json")
    records = json.loads(path.read_text())["records"]
    backends = {(r["backend"], r["case"]) for r in records}
    assert ("reference", "T=4096 D=512 E=8 k=2") in backends and ("token_loop", "T=4096 D=512 E=64 k=2") in backends
    assert all(r["op"] == "moe.dispatch" and r["ms"] > 0 and r["gbps"] > 0 for r in records)
    assert not any(r["backend"] == "triton" for r in records)  # the interpreter is never timed


def test_doctor_reports_every_check():
    done = run("doctor")
    for name in ("python", "torch build", "lab extension anywidget", "triton", "nvcc", "gpu", "numerics"):
        assert name in done.stdout, done.stdout
    assert "moe.dispatch" in done.stdout
    assert done.returncode == (1 if "FIX" in done.stdout else 0)


def test_unknown_family_and_op_are_reported(capsys):
    assert cli.main(["bench", "nope"]) == 2  # as list and check: stderr, exit 2
    captured = capsys.readouterr()
    assert "no op or family 'nope'" in captured.err and captured.out == ""


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_bench_on_cuda_without_a_gpu_is_one_line(tmp_path):
    done = run("bench", "--device", "cuda", "--no-write", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--device cuda needs a CUDA GPU" in done.stderr and len(done.stderr.strip().splitlines()) == 1



def test_errors_are_one_line_not_a_traceback(tmp_path):
    done = run("list", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "no family 'nope'" in done.stderr and "Traceback" not in done.stderr


def quick_experiment(seed):
    return {"x": float(seed)}


def test_claims_prints_each_seed_and_flags_a_result_the_record_does_not_report(capsys, monkeypatch):
    from course import claims

    claim = claims.Claim(paper="Toy 2026", citation="c", statement="x grows with the seed",
                         kind=claims.REPRODUCTION, experiment=quick_experiment,
                         thresholds=("x >= 1",), summary=lambda m: f"x = {m['x']:g}",
                         held_on=(1, 2), note="seed 0 is too small")
    monkeypatch.setattr(claims, "of_family", lambda package: [claim])
    assert cli.main(["claims", "moe"]) == 0
    out = capsys.readouterr().out
    assert "Toy 2026" in out and "x = 2" in out and "NOT reproduced" in out
    assert "fails" in out and out.count("holds") >= 2 and "!" not in out.split("claim ")[-1]
    wrong = claims.Claim(**{**claim.__dict__, "held_on": (0, 1, 2)})
    monkeypatch.setattr(claims, "of_family", lambda package: [wrong])
    assert cli.main(["claims", "moe", "--seeds", "0"]) == 1
    assert "disagree with what the records report" in capsys.readouterr().err


def test_readme_prints_the_generated_tables(capsys):
    assert cli.main(["readme"]) == 0
    out = capsys.readouterr().out
    assert "<!-- generated: families -->" in out and "`moe.dispatch`" in out
