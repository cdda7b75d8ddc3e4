"""The GPU run's one command (.ci/gpu-run): its dry run on this machine, its failure log and --only.

The dry run collects the GPU test selection and imports the kernels, the benchmark runner and the
command line with JupyterLab, plotly and ipywidgets made unimportable, as on the GPU machine, and
writes the plan where the real run writes its records.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_plans_every_step_and_the_gpu_tests_import_without_the_notebook_stack(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "gpu_run.py"), str(tmp_path), "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "gpu-run.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["collect", "collect-gpu-sized", "imports", "compile-sm90", "install", "build",
                           "harness", "bench", "gpu-sized", "beyond-int32", "memcheck", "racecheck"]
    assert all(steps[name]["rc"] == 0 for name in ("collect", "collect-gpu-sized", "imports", "compile-sm90"))
    assert "--no-deps" in steps["install"]["command"] and "--no-index" in steps["install"]["command"]
    built = steps["build"]["command"][-1]
    for family in ("moe", "gnn", "diffusion", "landscape", "ssm", "neurons"):  # hopfield: cuda_streaming
        assert f"course.kernels.{family}.cuda_{family}" in built, family
    assert "course.kernels.cuda_streaming" in built
    assert steps["memcheck"]["command"][:3][1:] == ["--tool", "memcheck"]
    assert steps["racecheck"]["command"][:3][1:] == ["--tool", "racecheck"]
    assert steps["bench"]["command"][-4:] == ["--device", "cuda", "--out", str(tmp_path)]
    assert sum(s["timeout_s"] for s in summary["steps"][4:]) >= summary["budget_s"] == 480
    small, gpu_sized = ((tmp_path / name).read_text()
                        for name in ("0-collect.log", "1-collect-gpu-sized.log"))
    for words in ("moe.combine-triton-T=64 E=4 k=2-bfloat16", "refuses_an_undeclared_dtype", "test_auto"):
        assert words in small and words not in gpu_sized, words
    for words in ("moe.dispatch-cuda-beyond int32 offsets-float32",
                  "moe.expert_mlp-cuda-T=16384 D=1024 E=64 k=2-float32"):
        assert words in gpu_sized and words not in small, words  # one at a time, in a step of their own
    everything = small + gpu_sized
    assert "token_loop" not in everything and "padded_bmm" not in everything  # CPU backends stay home
    assert steps["beyond-int32"]["command"][-2].endswith(") and beyond")
    assert steps["gpu-sized"]["command"][-2].endswith("and not beyond")
    for step in ("harness", "gpu-sized", "beyond-int32", "memcheck", "racecheck"):  # failures, as they come
        assert steps[step]["env"]["COURSE_FAILURE_LOG"] == str(tmp_path / "failures.txt"), step
    compiled = json.loads((tmp_path / "sm90.json").read_text())  # every Triton kernel, for the GPU
    kernels = {r["kernel"].split(":")[1] for r in compiled}
    for kernel in ("spmm_fwd_kernel", "streaming_bwd_patterns_kernel", "sparsemax_threshold_kernel",
                   "scan_fwd_kernel", "kan_linear_bwd_x_kernel", "expert_mlp_fwd_kernel",
                   "heun_step_fwd_kernel"):
        assert kernel in kernels, kernel
    assert all("error" not in r and r["shared"] <= 227 * 1024 for r in compiled)
    assert any(r["signature"].get("x_ptr") == "*bf16" for r in compiled)  # every dtype run here


def test_each_failure_is_written_down_with_its_message_as_it_comes(tmp_path):
    from types import SimpleNamespace

    from harness import write_failure

    log = tmp_path / "failures.txt"
    report = SimpleNamespace(nodeid="tests/test_ops.py::test_backend_matches_reference[gnn.spmm-cuda-D=1]",
                             when="call", longreprtext="    run_case(...)\n>   assert result.ok\n"
                             "E   AssertionError: gnn.spmm / cuda / D=1:\n"
                             "E   output: RMS-relative error 3e-02")
    write_failure(str(log), report)
    write_failure(str(log), SimpleNamespace(nodeid="t::x", when="setup", longreprtext="no E lines\nlast"))
    assert log.read_text() == ("tests/test_ops.py::test_backend_matches_reference[gnn.spmm-cuda-D=1] (call)\n"
                               "    E   AssertionError: gnn.spmm / cuda / D=1:\n"
                               "    E   output: RMS-relative error 3e-02\n"
                               "t::x (setup)\n    no E lines\n    last\n")


def test_only_runs_install_build_and_the_steps_it_names(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / ".ci" / "gpu_run.py")
    gpu_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_run)
    steps = gpu_run.plan(tmp_path)
    chosen = gpu_run.chosen_steps(steps, "gpu-sized,harness")
    assert [s.name for s in chosen] == ["install", "build", "harness", "gpu-sized"]
    assert gpu_run.chosen_steps(steps, None) == steps
    with pytest.raises(SystemExit, match=r"--only must name steps of .*'harnes'"):
        gpu_run.chosen_steps(steps, "harnes")
