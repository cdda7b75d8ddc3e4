"""`course doctor`: what this machine can run, and a fix for every problem found."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from course import numerics, registry

PACKAGES = ("torch", "einops", "numpy", "matplotlib", "plotly", "anywidget", "ipywidgets",
            "jupyterlab", "tqdm")
LAB_EXTENSIONS = {"@jupyter-widgets/jupyterlab-manager": "ipywidgets", "anywidget": "anywidget"}
TRITON_PROBE = """
import torch, triton, triton.language as tl
@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)
x, y = torch.arange(10.0), torch.ones(10)
out = torch.empty(10)
add_kernel[(1,)](x, y, out, 10, BLOCK=16)
assert torch.equal(out, x + y)
"""


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"{'ok ' if self.ok else 'FIX'} {self.name:<22} {self.detail}"
        return line + (f"\n    -> {self.fix}" if self.fix and not self.ok else "")


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_packages() -> list[Finding]:
    out = [Finding("python", sys.version_info >= (3, 11), sys.version.split()[0],
                   "use Python 3.11 or newer")]
    for package in PACKAGES:
        v = version(package)
        out.append(Finding(package, v is not None, v or "not installed", "pip install -e ."))
    build = "CUDA " + torch.version.cuda if torch.version.cuda else "CPU"
    wasted = torch.version.cuda is not None and not torch.cuda.is_available()
    out.append(Finding("torch build", not wasted, f"{build} build",
                       "this machine has no GPU: pip install torch==2.13.0 (the CPU build) saves GBs"))
    return out


def check_lab_extensions() -> list[Finding]:
    roots = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    out = []
    for extension, package in LAB_EXTENSIONS.items():
        found = any((root / extension).exists() for root in roots)
        out.append(Finding(f"lab extension {package}", found,
                           "installed" if found else f"{extension} missing: widgets will not render",
                           f"pip install --force-reinstall {package}"))
    return out


def check_triton() -> Finding:
    v = version("triton")
    if v is None:
        return Finding("triton", False, "not installed: kernels are shown but not run",
                       "pip install -e '.[triton]' (Linux)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", TRITON_PROBE], env=env, capture_output=True,
                          text=True, timeout=120)
    mode = registry.triton_mode() or "off (set TRITON_INTERPRET=1 before importing kernels)"
    return Finding("triton", done.returncode == 0,
                   f"{v}; interpreter {'works' if done.returncode == 0 else 'FAILED'}; mode here: {mode}",
                   "reinstall triton; the interpreter error was: " + done.stderr.strip()[-300:])


def check_nvcc() -> Finding:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return Finding("nvcc", True, "not found (needed only to build the CUDA kernels on a GPU machine)")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.cu"
        source.write_text("__global__ void probe(float* x) { x[threadIdx.x] += 1.0f; }\n")
        done = subprocess.run([nvcc, "-arch=sm_90", "-ptx", str(source), "-o", str(Path(tmp) / "p.ptx")],
                              capture_output=True, text=True, timeout=120)
    release = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip()
    return Finding("nvcc", done.returncode == 0, release.splitlines()[-1] if release else nvcc,
                   "nvcc failed to compile a probe kernel: " + done.stderr.strip()[-300:])


def check_gpu() -> Finding:
    if torch.cuda.is_available():
        return Finding("gpu", True, torch.cuda.get_device_name())
    return Finding("gpu", True, "none: kernels run under the Triton interpreter, CUDA kernels are skipped")


def check_numerics() -> Finding:
    """Whether this process computes on the pinned code paths (informative: another path is no fault)."""
    same, why = numerics.pinned()
    return Finding("numerics", True, why if same else f"not pinned: {why}")


def backends_here() -> list[str]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = []
    for op in registry.all_ops():
        parts = []
        for impl in op.impls:
            ok, why = impl.availability(device)
            parts.append(impl.backend if ok else f"({impl.backend}: {why})")
        lines.append(f"    {op.name:<20} {', '.join(parts)}")
    return lines


def auto_choices() -> list[str]:
    """What `auto` picks for each op here, in float32 and (on a GPU) bfloat16, and why."""
    device = registry.default_device()
    dtypes = (torch.float32, torch.bfloat16) if device == "cuda" else (torch.float32,)
    lines = []
    for op in registry.all_ops():
        for dtype in dtypes:
            try:
                choice = str(op.choose("auto", device, dtype))
            except TypeError as error:
                choice = f"none ({error})"
            lines.append(f"    {op.name:<20} {str(dtype).removeprefix('torch.'):<9} -> {choice}")
    return lines


def run() -> int:
    """Print every finding, the backends available here and what auto picks; return 1 if something
    needs fixing."""
    findings = [*check_packages(), *check_lab_extensions(), check_triton(), check_nvcc(), check_gpu(),
                check_numerics()]
    for finding in findings:
        print(finding)
    print("backends here:")
    print("\n".join(backends_here()))
    print("auto picks:")
    print("\n".join(auto_choices()))
    problems = [f for f in findings if not f.ok]
    print(f"{len(problems)} problem(s) found" if problems else "everything needed is here")
    return 1 if problems else 0
