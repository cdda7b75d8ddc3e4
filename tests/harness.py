"""The harness's parameters and its one case runner, shared by tests/test_ops.py (every backend
where it runs) and tests/test_cuda_emulated.py (the CUDA backends on the CPU emulator)."""
import pytest
import torch

from course import registry
from course.testing import compare

OPS = registry.all_ops()


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


MANY_TOKENS = 300  # on the CPU, cases this large run in float32 only (every dtype on a GPU)


def harness_params(impls_of=lambda op: op.impls[1:]):
    """(op, impl, case, dtype) for every backend, case and dtype of the axis (FLOATS); the cases sized
    for a GPU only are marked `gpu_sized` (the GPU run gives them the GPU one at a time)."""
    return [pytest.param(op, impl, case, dtype,
                         id=f"{op.name}-{impl.backend}-{case.name}-{dtype_name(dtype)}",
                         marks=() if case.runs_on("cpu") else pytest.mark.gpu_sized)
            for op in OPS for impl in impls_of(op) for case in op.test_cases
            for dtype in registry.FLOATS if case.runs_in(dtype)]


def heavy(case) -> bool:
    """A case whose point is a shape, a layout or a length, costly under the CPU's interpreter and
    emulator: `heavy=True` in its params, or T >= MANY_TOKENS."""
    return case.params.get("T", 0) >= MANY_TOKENS or case.params.get("heavy", False)


def gpu_tiled_cases(op, dtype: torch.dtype) -> list:
    """The op's cases that run with the GPU's tiles under the interpreter (tests/test_gpu_tiles.py,
    .ci/compile_sm90.py): those on the CPU in `dtype`, not `heavy`, and not `gpu_tiles=False`."""
    return [case for case in op.test_cases if case.runs_on("cpu") and case.runs_in(dtype)
            and not heavy(case) and case.params.get("gpu_tiles", True)]


def run_case(op, impl, fn, case, dtype, device, harness_log, backend=None):
    """One harness case on `device`: skipped where the case or the dtype does not run there."""
    if not case.runs_on(device):
        pytest.skip(f"case {case.name!r} is sized for {', '.join(case.devices)}")
    if impl.backend in case.skip_backends:
        pytest.skip(f"case {case.name!r} does not hold {impl.backend} to the tolerance (the case says why)")
    if dtype not in impl.supported_dtypes():
        pytest.skip(f"{impl.backend} does not declare {dtype} here (refusal checked separately)")
    if device == "cpu" and dtype != torch.float32 and heavy(case):
        # The interpreter and the emulator take seconds a case here; what depends on the dtype
        # (loads, sums, rounding, stores) runs on every smaller case, and all of it on a GPU.
        pytest.skip(f"{case.name}: float32 only on the CPU")
    result = compare(op, fn, case, device=device, dtype=dtype)
    harness_log.append((op.name, backend or impl.backend, case.name, dtype_name(dtype), result.max_ratio))
    assert result.ok, f"{op.name} / {impl.backend} / {result.case}:\n" + "\n".join(result.problems)


def write_failure(path: str, report) -> None:
    """Append the test's name and its message (pytest's E lines, else the end of the report) to `path`,
    on the controller, as the failure comes: a run cut off by its time still says why each failed."""
    lines = report.longreprtext.splitlines()
    message = [line for line in lines if line.startswith("E ")][:12] or lines[-8:]
    with open(path, "a") as f:
        f.write(f"{report.nodeid} ({report.when})\n" + "".join(f"    {line}\n" for line in message))
