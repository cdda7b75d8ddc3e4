"""How every family's CUDA extension is compiled: `torch.utils.cpp_extension.load` with the course's flags.

PyTorch compiles .cu files with `-D__CUDA_NO_HALF_CONVERSIONS__`, `-D__CUDA_NO_BFLOAT16_CONVERSIONS__`
and the half operators switched off (its own headers define competing conversions). The course's .cu
files include no PyTorch header, and their kernels load float16 and bfloat16 storage with
`static_cast<float>` and store with `static_cast<scalar_t>`, so the extensions undo those four
definitions (`HALF_CONVERSIONS`); tests/test_ops.py compiles every .cu with PyTorch's flags and these.
"""
from pathlib import Path

HALF_CONVERSIONS = ("-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__")
CUDA_FLAGS = ("-O3", *HALF_CONVERSIONS)
CXX_FLAGS = ("-O3", "-std=c++20")
KERNELS = Path(__file__).parent  # binding.h, streaming_kernels.h


def cuda_extension(name: str, folder: Path, sources: tuple[str, ...]):
    """Compile (once, cached by PyTorch in its extension folder) and load the extension `name` from
    `sources` in `folder`; a family's headers and kernels/ are on the include path."""
    from torch.utils.cpp_extension import load

    return load(name=name, sources=[str(folder / s) for s in sources],
                extra_include_paths=list(dict.fromkeys([str(folder), str(KERNELS)])),
                extra_cflags=list(CXX_FLAGS), extra_cuda_cflags=list(CUDA_FLAGS))
