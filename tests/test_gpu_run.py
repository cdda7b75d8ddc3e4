"""The GPU run's one command (.ci/gpu-run): its dry run on this machine.

The dry run collects the GPU test selection and imports the kernels, the benchmark runner and the
command line with JupyterLab, plotly and ipywidgets made unimportable, as on the GPU machine, and
writes the plan where the real run writes its records.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_plans_every_step_and_the_gpu_tests_import_without_the_notebook_stack(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "gpu_run.py"), str(tmp_path), "--dry-run"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "gpu-run.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["collect", "imports", "install", "build", "harness", "bench", "memcheck",
                           "racecheck"]
    assert steps["collect"]["rc"] == 0 and steps["imports"]["rc"] == 0
    assert "--no-deps" in steps["install"]["command"] and "--no-index" in steps["install"]["command"]
    built = steps["build"]["command"][-1]
    for family in ("moe", "gnn", "diffusion", "landscape", "ssm", "neurons"):  # hopfield: cuda_streaming
        assert f"course.kernels.{family}.cuda_{family}" in built, family
    assert "course.kernels.cuda_streaming" in built
    assert steps["memcheck"]["command"][:3][1:] == ["--tool", "memcheck"]
    assert steps["racecheck"]["command"][:3][1:] == ["--tool", "racecheck"]
    assert steps["bench"]["command"][-4:] == ["--device", "cuda", "--out", str(tmp_path)]
    assert sum(s["timeout_s"] for s in summary["steps"][2:]) >= summary["budget_s"] == 480
    collected = (tmp_path / "0-collect.log").read_text()
    for words in ("moe.combine-triton-T=64 E=4 k=2-bfloat16",
                  "moe.dispatch-cuda-beyond int32 offsets-float32",
                  "moe.expert_mlp-cuda-T=16384 D=1024 E=64 k=2-float32", "refuses_an_undeclared_dtype",
                  "test_auto"):
        assert words in collected, words
    assert "token_loop" not in collected and "padded_bmm" not in collected  # CPU backends stay home
