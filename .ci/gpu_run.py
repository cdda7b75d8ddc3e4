"""The GPU run: one command on a machine with an NVIDIA GPU, its own torch and Triton, and no network.

    python3 .ci/gpu_run.py OUT            # or: bash .ci/gpu-run OUT
    python3 .ci/gpu_run.py OUT --dry-run  # on any machine: the plan, the GPU tests collected, and
                                          # every Triton kernel compiled for sm_90 (.ci/compile_sm90.py)
    python3 .ci/gpu_run.py OUT --only harness,gpu-sized  # install, build and the steps named

Steps, each with its log in OUT and its result in OUT/gpu-run.json:
  install    pip install -e . with --no-deps --no-index: the machine's torch and Triton stay as they are
  build      compile every family's CUDA extension once, side by side (later steps reuse torch's cache)
  harness    the one harness on compiled Triton and CUDA: every case that also runs on the CPU, in
             every dtype each backend declares (fp32, fp16, bf16, fp64); and auto's choices
             (pytest-xdist's workers share the GPU: Triton's compilations are the CPU's work)
  bench      course bench --device cuda: records in OUT/benchmarks/results/<device>.json
  gpu-sized  the harness's cases sized for a GPU only (the benchmarks' sizes: gigabytes a case), one at
             a time in one process, whose cache is emptied after each
  beyond-int32  the same for the cases of more than 2^31 elements a tensor (int64 offsets: up to ~80 GB)
  memcheck   compute-sanitizer --tool memcheck on the CUDA backends' float32 cases (not GPU-sized)
  racecheck  compute-sanitizer --tool racecheck on the same
The whole run is held to BUDGET_S (GPU_RUN_BUDGET_S overrides it, for a shorter lease); a step gets
what is left of it. Every pytest step prints each result with its name as it comes (-vv) and appends
each failure's name and message to OUT/failures.txt as it fails, so a step cut off by its time still
says what failed and why. The GPU test selection needs pytest and torch only: no JupyterLab, plotly
or ipywidgets (the dry run checks that on the CPU).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = int(os.environ.get("GPU_RUN_BUDGET_S", 8 * 60))
NOT_ON_THE_GPU_MACHINE = ("jupyterlab", "plotly", "ipywidgets", "anywidget", "nbval", "nbclient",
                          "playwright")
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
          "--import-mode=importlib", "-q", "-rfE"]
GPU_TESTS = ["tests/test_ops.py", "tests/test_registry.py"]
KERNELS = "triton or cuda or auto"  # the compiled backends, and what auto picks among them
# One process keeps what it once allocated in torch's cache, and the others cannot use it: with the
# GPU-sized cases among xdist's 8 workers, the first GPU run failed in a burst (unnamed: its log was
# cut off; most likely out of memory). Those cases get a step of their own, one at a time.
SMALL, GPU_SIZED = "not gpu_sized", "gpu_sized"
BEYOND = "beyond"  # the cases of more than 2^31 elements a tensor ("beyond int32 offsets")
# Every module that compiles a CUDA extension (it calls kernels/build.py's cuda_extension), built side
# by side in the build step: kernels/<family>/cuda_<family>.py is course.kernels.<family>.cuda_<family>.
EXTENSIONS = tuple("course." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
                   for path in sorted((ROOT / "kernels").rglob("cuda_*.py"))
                   if "cuda_extension(" in path.read_text())
BUILD = ("import subprocess, sys\n"
         f"modules = {EXTENSIONS!r}\n"
         "jobs = [subprocess.Popen([sys.executable, '-c', f'import {m} as m; m.extension()'])\n"
         "        for m in modules]\n"
         "sys.exit(max(job.wait() for job in jobs))\n")
# What the GPU steps import besides the tests: the kernels, the benchmark runner, the command line.
DRY_IMPORTS = ("import course, course.bench, course.cli, course.doctor\n"
               "from course.kernels.moe import triton_moe, triton_experts\n"
               "from course.kernels.gnn import triton_gnn\n"
               "from course.kernels.diffusion import triton_diffusion\n"
               "from course.kernels.hopfield import cuda_hopfield\n"
               + "".join(f"import {m}\n" for m in EXTENSIONS) +
               "assert course.cli.main(['bench', '--help']) == 0\n")


@dataclass
class Step:
    name: str
    command: list
    timeout_s: int
    env: dict = field(default_factory=dict)
    rc: int | None = None
    seconds: float = 0.0


def plan(out: Path) -> list[Step]:
    sanitizer = shutil.which("compute-sanitizer") or "compute-sanitizer"
    tests = [*PYTEST, "-vv"]  # -vv: each result named as it comes
    failures = {"COURSE_FAILURE_LOG": str(out / "failures.txt")}  # and each failure's message
    small_cuda = [*tests, "tests/test_ops.py", "-m", SMALL, "-k", "cuda and float32"]
    return [
        Step("install", [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                         "--no-build-isolation", "-q", "-e", "."], 120),
        Step("build", [sys.executable, "-c", BUILD], 240, {"MAX_JOBS": "4"}),
        Step("harness", [*tests, "-n", "8", *GPU_TESTS, "-m", SMALL, "-k", KERNELS,
                         f"--junitxml={out / 'harness.xml'}"], 240, failures),
        Step("bench", [sys.executable, "-m", "course.cli", "bench", "--device", "cuda", "--out", str(out)],
             120),
        Step("gpu-sized", [*tests, "tests/test_ops.py", "-m", GPU_SIZED,
                           "-k", f"({KERNELS}) and not {BEYOND}",
                           f"--junitxml={out / 'gpu-sized.xml'}"], 150, failures),
        # last of the harness: 2^31 elements a tensor, drawn on the CPU (some 10-25 s each input)
        Step("beyond-int32", [*tests, "tests/test_ops.py", "-m", GPU_SIZED, "-k", f"({KERNELS}) and {BEYOND}",
                              f"--junitxml={out / 'beyond-int32.xml'}"], 150, failures),
        Step("memcheck", [sanitizer, "--tool", "memcheck", "--error-exitcode", "99", *small_cuda], 90,
             failures),
        Step("racecheck", [sanitizer, "--tool", "racecheck", "--error-exitcode", "99", *small_cuda], 60,
             failures),
    ]


def import_blocker(folder: Path) -> dict:
    """Environment under which the packages the GPU machine lacks cannot be imported."""
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"MISSING = {NOT_ON_THE_GPU_MACHINE!r}\n"
        "class NotOnTheGPUMachine:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in MISSING:\n"
        "            raise ImportError(f'{name} is not installed on the GPU machine')\n"
        "sys.meta_path.insert(0, NotOnTheGPUMachine())\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def run_step(step: Step, out: Path, number: int, left_s: float) -> None:
    log = out / f"{number}-{step.name}.log"
    start = time.monotonic()
    with log.open("w") as f:
        f.write("$ " + " ".join(step.command) + "\n")
        f.flush()
        try:
            done = subprocess.run(step.command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                  env={**os.environ, **step.env}, timeout=max(1, min(step.timeout_s, left_s)))
            step.rc = done.returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n(timed out after {min(step.timeout_s, left_s):.0f} s)\n")
            step.rc = 124
        except FileNotFoundError as error:
            f.write(f"\n(not found: {error})\n")
            step.rc = 127
    step.seconds = time.monotonic() - start


def environment() -> dict:
    probe = ("import json, sys, torch\n"
             "try:\n    import triton; t = triton.__version__\nexcept ImportError:\n    t = None\n"
             "print(json.dumps(dict(python=sys.version.split()[0], torch=torch.__version__, triton=t,"
             " gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}


ALWAYS = ("install", "build")  # what every other step needs


def chosen_steps(steps: list[Step], only: str | None) -> list[Step]:
    """The steps to run: all, or install, build and those named in `only` (comma-separated), in order."""
    if only is None:
        return steps
    names = only.split(",")
    unknown = [n for n in names if n not in {s.name for s in steps}]
    if unknown:
        raise SystemExit(f"gpu_run: --only must name steps of {[s.name for s in steps]}; got {unknown}")
    return [s for s in steps if s.name in ALWAYS or s.name in names]


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    dry = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    only = None
    if "--only" in args:  # --only harness,gpu-sized: a second, shorter lease reruns what it needs
        at = args.index("--only")
        only, args = args[at + 1], args[:at] + args[at + 2:]
    out = Path(args[0] if args else os.environ.get("OUT", "gpu-run")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps = chosen_steps(plan(out), only)
    summary = dict(dry_run=dry, environment=environment(), budget_s=BUDGET_S)
    if dry:
        with tempfile.TemporaryDirectory() as folder:
            env = import_blocker(Path(folder))
            collect = [*PYTEST, *GPU_TESTS, "-k", KERNELS, "--collect-only", "-m"]
            checks = [Step("collect", [*collect, SMALL], 300, env),
                      Step("collect-gpu-sized", [*collect, GPU_SIZED], 300, env),
                      Step("imports", [sys.executable, "-c", DRY_IMPORTS], 300, env),
                      # every Triton kernel, as the harness launches it, compiled for sm_90 offline
                      Step("compile-sm90", [sys.executable, str(ROOT / ".ci" / "compile_sm90.py"),
                                            str(out)], 600)]
            for number, check in enumerate(checks):
                run_step(check, out, number, BUDGET_S)
        summary["steps"] = [asdict(c) for c in checks] + [asdict(s) for s in steps]
        print("\n".join(f"{s.name:<10} {' '.join(s.command)}" for s in steps))
        print(f"(collect and imports run without {', '.join(NOT_ON_THE_GPU_MACHINE)})")
        for number, check in enumerate(checks):
            log = out / f"{number}-{check.name}.log"
            print(f"{check.name}: " + ("ok" if check.rc == 0 else f"FAILED (rc {check.rc}), see {log}"))
        ok = all(c.rc == 0 for c in checks)
    else:
        start = time.monotonic()
        for number, step in enumerate(steps, 1):
            left = BUDGET_S - (time.monotonic() - start)
            if left < 10:
                step.rc = 124
                continue
            run_step(step, out, number, left)
            print(f"{step.name:<10} rc {step.rc} in {step.seconds:.0f} s", flush=True)
            if step.name in ("install", "build") and step.rc != 0:
                break
        summary["steps"] = [asdict(s) for s in steps]
        summary["seconds"] = time.monotonic() - start
        ok = all(s.rc == 0 for s in steps)
    (out / "gpu-run.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
