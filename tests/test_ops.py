"""The one harness: every backend of every op against its reference, outputs and gradients, in
every dtype the backend declares; a dtype it does not declare must be refused with a clear error.

Same inputs and seed, same upstream gradient, outputs NaN-poisoned, RMS-relative error against the
reference in float64 (see course.testing). Triton runs compiled on a GPU and under TRITON_INTERPRET=1
on the CPU; CUDA kernels run where a GPU is (and on the CPU emulator, tests/test_cuda_emulated.py),
and their sources are compiled by nvcc wherever nvcc is. Cases sized for a GPU run only there.
"""
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

from course import registry
from course.testing import case_inputs
from harness import dtype_name, harness_params, run_case

ROOT = Path(__file__).resolve().parents[1]
OPS = registry.all_ops()


def device_for(impl: registry.Impl) -> str:
    """Where a backend runs: the GPU for CUDA and compiled Triton, else the CPU."""
    if impl.kind == "cuda" or (impl.kind == "triton" and registry.triton_mode() == "compiled"):
        return "cuda"
    return "cpu"


@pytest.mark.parametrize("op,impl,case,dtype", harness_params())
def test_backend_matches_reference(op, impl, case, dtype, harness_log):
    device = device_for(impl)
    available, why = impl.availability(device)
    if not available:
        pytest.skip(f"{impl.backend}: {why}")
    run_case(op, impl, impl.load(), case, dtype, device, harness_log)


def refusal_params():
    return [pytest.param(op, impl, dtype, id=f"{op.name}-{impl.backend}-{dtype_name(dtype)}")
            for op in OPS for impl in op.impls for dtype in registry.FLOATS
            if dtype not in impl.dtypes or (impl.interpreted_dtypes is not None
                                            and dtype not in impl.interpreted_dtypes)]


@pytest.mark.parametrize("op,impl,dtype", refusal_params())
def test_backend_refuses_an_undeclared_dtype(op, impl, dtype):
    device = device_for(impl)
    available, why = impl.availability(device)
    if not available:
        pytest.skip(f"{impl.backend}: {why}")
    if dtype in impl.supported_dtypes():
        pytest.skip(f"{impl.backend} runs {dtype} here (compiled)")
    case = op.test_cases[0]
    kwargs = case_inputs(op, case, device, 0, dtype)
    with pytest.raises(TypeError, match=f"{impl.backend}.*{dtype}"):
        impl.load()(**kwargs)


@pytest.mark.parametrize("op,impl", [pytest.param(op, impl, id=f"{op.name}-{impl.backend}")
                                     for op in OPS for impl in op.impls[1:]])
def test_backends_share_the_reference_signature(op, impl):
    if impl.kind == "triton" and registry.triton_mode() is None:
        pytest.skip("Triton is not importable here")
    assert registry.signature_of(impl) == registry.signature_of(op.reference)


def test_every_op_has_awkward_cases():
    for op in OPS:
        assert len(op.test_cases) >= 5, op.name
        assert op.reference.backend == "reference" and op.reference.kind == "torch", op.name


CU_SOURCES = sorted((ROOT / "kernels").rglob("*.cu"))


@pytest.mark.parametrize("source", CU_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles_with_nvcc(source, tmp_path):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not found: the CUDA sources cannot be compiled on this machine")
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS  # what load() gives nvcc before our flags

    from course.kernels.build import CUDA_FLAGS

    done = subprocess.run(["nvcc", "-arch=sm_90", "-ptx", *COMMON_NVCC_FLAGS, *CUDA_FLAGS,
                           f"-I{ROOT / 'kernels'}", str(source), "-o", str(tmp_path / "k.ptx")],
                          capture_output=True, text=True, cwd=source.parent)
    assert done.returncode == 0, done.stderr
    assert ".entry" in (tmp_path / "k.ptx").read_text()  # at least one kernel was emitted


@pytest.mark.parametrize("binding", sorted((ROOT / "kernels").rglob("*_binding.cpp")),
                         ids=lambda p: p.name)
def test_cuda_binding_compiles_against_torch_headers(binding):
    """Where the CPU emulator builds, it compiles every binding unchanged (tests/test_cuda_emulated.py);
    only elsewhere is the binding compiled here, against the real CUDA headers."""
    from torch.utils.cpp_extension import include_paths, is_ninja_available

    nvcc = shutil.which("nvcc")
    if nvcc is None or shutil.which("g++") is None:
        pytest.skip("nvcc or g++ not found: the binding cannot be checked on this machine")
    if is_ninja_available():
        pytest.skip("compiled by the CPU emulator's build of the kernels (tests/test_cuda_emulated.py)")
    cuda_include = Path(nvcc).resolve().parents[1] / "include"
    if not (cuda_include / "cuda_runtime.h").exists():
        cuda_include = Path("/usr/local/cuda/include")
    includes = [*include_paths(), str(cuda_include), sysconfig.get_paths()["include"],
                str(binding.parent), str(ROOT / "kernels")]  # kernels/binding.h
    done = subprocess.run(["g++", "-std=c++20", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=check",
                           *[f"-I{p}" for p in includes], str(binding)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_auto_picks_the_reference_on_cpu_tensors():
    """Without records the CPU gets the reference: the interpreter checks kernels, it is never fast."""
    for op in OPS:
        assert op.choose("auto", "cpu", torch.float32, records=[]).impl.backend == "reference"
        with pytest.raises(ValueError, match="unknown backend"):
            op.resolve("no-such-backend")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_auto_picks_a_kernel_on_gpu_tensors_in_every_dtype_one_runs():
    for op in OPS:
        kernels = [i for i in op.impls if i.kind in ("cuda", "triton")]
        for dtype in registry.FLOATS:
            if any(dtype in i.supported_dtypes() for i in kernels):
                choice = op.choose("auto", "cuda", dtype, records=[])
                assert choice.impl.kind in ("cuda", "triton"), (op.name, dtype, str(choice))
                assert dtype in choice.impl.supported_dtypes()
