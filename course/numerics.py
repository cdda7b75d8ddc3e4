"""One floating-point code path on every x86-64 CPU, so that the course's numbers are the same everywhere.

PyTorch picks its vectorised CPU kernels by the processor (AVX2, AVX-512), MKL picks its matrix
kernels by the processor and its vendor, and NumPy (which runs Triton's interpreter) does the same.
Each choice rounds differently in the last bit, and a toy network trained for a few hundred steps
turns a last-bit difference into a different second digit: the same seed then gives another accuracy,
and a claim near its threshold another verdict, on another machine (SMEAR's error ratio on seed 0
came out 2.19, 2.17, 2.39 and 2.45 on one machine under four of these choices). `pin()` asks all of
them for a code path that every x86-64 processor with AVX2 runs the same way:

- ATEN_CPU_CAPABILITY=avx2: PyTorch's AVX2 kernels, not its AVX-512 ones;
- MKL_CBWR=COMPATIBLE: MKL's conditional numerical reproducibility, the one branch that gives the
  same results on Intel and AMD processors (its AVX2 branch is refused on AMD);
- ONEDNN_MAX_CPU_ISA=AVX2: oneDNN (convolutions) without AVX-512;
- NPY_DISABLE_CPU_FEATURES: NumPy without its AVX-512 loops.

Each variable is read once, when its library first computes, so `course` pins at import, before its
first tensor operation; `pinned()` says whether it took effect. A variable already set in the
environment is left as it is, and COURSE_NUMERICS=native leaves all of them unset: `course bench`
times the backends that way (`native_environment`), on the code paths the machine picks for speed.
The cost, measured on a 2-core AMD EPYC: MKL's compatible branch runs a 512 x 512 x 512 matmul in
10 ms instead of 3 ms; the graph-network claim (many small matmuls) trains 1.6x as long, the MoE
claims 5-20% longer.
"""
import ctypes
import os
import platform
from pathlib import Path

PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
MKL_CBWR_BRANCH, MKL_CBWR_COMPATIBLE = 1, 3  # mkl_service.h


def applies() -> bool:
    """Whether the pins apply here: on x86-64, where the committed notebooks were computed."""
    return platform.machine().lower() in ("x86_64", "amd64")


SET_HERE: list[str] = []  # the variables pin() set in this process


def pin() -> None:
    """Set the variables of `PINS` that the environment does not set (call before torch computes)."""
    if not applies() or os.environ.get("COURSE_NUMERICS") == "native":
        return
    for name, value in PINS.items():
        if name not in os.environ:
            os.environ[name] = value
            SET_HERE.append(name)


def native_environment() -> dict:
    """This process's environment without the pins it set, and with COURSE_NUMERICS=native: for a
    process that should compute on the machine's fastest code paths (a benchmark)."""
    env = {name: value for name, value in os.environ.items() if name not in SET_HERE}
    return {**env, "COURSE_NUMERICS": "native"}


def _mkl_branch() -> int | None:
    """MKL's reproducibility branch in this process (3 = COMPATIBLE), None where MKL is not found."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return int(ctypes.CDLL(str(library)).mkl_serv_cbwr_get(MKL_CBWR_BRANCH))
    except (OSError, AttributeError):  # another platform's build, or a torch without MKL
        return None


def _numpy_features() -> dict:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return __cpu_features__


def pinned() -> tuple[bool, str]:
    """Whether this process computes on the pinned code path, and if not, what differs and why."""
    import torch

    if not applies():
        return False, (f"this is {platform.machine()}, the committed notebooks were computed on x86-64: "
                       "late digits can differ")
    capability = torch.backends.cpu.get_cpu_capability()
    branch = _mkl_branch()
    off = []
    if capability != "AVX2":
        off.append(f"PyTorch's kernels run {capability}"
                   + (" (this CPU has no AVX2)" if capability == "DEFAULT" else ""))
    if branch is not None and branch != MKL_CBWR_COMPATIBLE:
        off.append("MKL chooses its kernels by processor")
    if _numpy_features().get("X86_V4"):
        off.append("NumPy's loops run AVX-512")
    if off:
        return False, ("; ".join(off) + " (import `course` before torch computes and before NumPy is "
                       "imported, or leave these variables unset): late digits can differ from the "
                       "committed notebooks")
    return True, "pinned to AVX2 and MKL's compatible branch (the committed notebooks' numbers)"
