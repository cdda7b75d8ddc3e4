"""Build the project's CUDA kernels as a CPU extension that runs them on the emulator of emulator.h.

A family's CUDA backend module (e.g. `course.kernels.moe.cuda_moe`) names its sources in SOURCES,
beside it in HERE, and loads them in `extension()`. Each .cu source is copied to a build folder as
C++, rewritten where C++ cannot parse CUDA:
  kernel<<<grid, block, shmem, stream>>>(args);  ->  emu::launch(kernel, emu::config(grid, block,
                                                     shmem, stream), args);
  extern __shared__ T name[];                     ->  T* name = emu::dynamic_shared<T>();
  __shared__ T name[N];                           ->  kept, plus a registration that lets the emulator
                                                     poison it before every block
Then `torch.utils.cpp_extension.load` compiles the real binding (its *_binding.cpp, unchanged) and the
rewritten sources with g++ as a CPU extension, the fake CUDA headers of include/ first on the include
path and emulator.h force-included. The module it returns has the interface of the backend module's
`extension()`.
The build is cached by PyTorch (in its extension folder) and redone only when a source changes.
"""
import functools
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMULATOR_HEADER = HERE / "emulator.h"
FAKE_CUDA_INCLUDE = HERE / "include"
SELFTEST = HERE / "selftest.cu"
KERNELS = HERE.parents[1] / "kernels"  # kernels/binding.h, which every binding includes
def processor_has_fma() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " fma " in cpuinfo.read_text()


# -mfma -ffp-contract=fast (with -fexpensive-optimizations, which runs the contraction at -O1): g++
# fuses a * b + c into one fma as nvcc does by default (--fmad=true), so a kernel whose result depends on
# that rounding fails here as it fails on a GPU (the H200 run found heun_step's zero churn that way)
NVCC_LIKE_FMA = (["-mfma", "-ffp-contract=fast", "-fexpensive-optimizations"] if processor_has_fma()
                 else [])
EMULATOR_FLAGS = ["-std=c++20", "-pthread", *NVCC_LIKE_FMA, "-include", str(EMULATOR_HEADER)]

LAUNCH = re.compile(
    r"(?P<kernel>(?:\w+::)*\w+(?:<[^<>;]*>)?)\s*"  # a kernel, maybe a template instance
    r"<<<(?P<config>.*?)>>>\s*"
    r"\((?P<args>.*?)\)\s*;",  # arguments cannot hold a ';', so the first ');' ends the launch
    re.S)
DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?P<type>[\w:<>\s]+?)\s*(?P<name>\w+)\s*\[\s*\]\s*;")
STATIC_SHARED = re.compile(
    r"(?P<decl>__shared__\s+[\w:<>\s]+?\s(?P<name>\w+)\s*(?:\[[^\]]*\]\s*)*;)")


def rewrite_launches(source: str) -> str:
    """`kernel<<<config>>>(args);` -> `emu::launch(kernel, emu::config(config), args);`."""
    def launch(m: re.Match) -> str:
        args = m["args"].strip()
        return (f"emu::launch({m['kernel']}, emu::config({m['config'].strip()})"
                f"{', ' + args if args else ''});")
    return LAUNCH.sub(launch, source)


def rewrite_shared_memory(source: str) -> str:
    """Dynamic shared arrays become the launch's buffer; static ones are registered for poisoning."""
    source = DYNAMIC_SHARED.sub(
        lambda m: f"{m['type'].strip()}* {m['name']} = emu::dynamic_shared<{m['type'].strip()}>();",
        source)
    return STATIC_SHARED.sub(
        lambda m: (f"{m['decl']} [[maybe_unused]] static const bool {m['name']}_in_shared_memory = "
                   f"emu::shared_memory({m['name']}, sizeof({m['name']}));"),
        source)


def emulated_source(cuda_source: str) -> str:
    """A .cu file's text as C++ for the emulator."""
    return rewrite_shared_memory(rewrite_launches(cuda_source))


def write_if_changed(path: Path, text: str) -> Path:
    """Keep the file (and its timestamp, so ninja keeps its object) when the text is the same."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


@functools.cache
def build(module_name: str, kernel_dir: Path | None = None, name: str | None = None,
          verbose: bool = False):
    """Compile (once, cached by PyTorch) and load a CUDA backend's extension on the emulator.

    `module_name` is the backend module (e.g. "course.kernels.moe.cuda_moe"); `kernel_dir` holds the
    sources its SOURCES name (default: the module's own HERE); give another folder a new `name`, so
    the two builds do not replace each other in the cache.
    """
    import importlib

    from torch.utils.cpp_extension import get_default_build_root, load

    backend = importlib.import_module(module_name)
    kernel_dir = Path(kernel_dir or backend.HERE)
    name = name or module_name.replace(".", "_") + "_emulated"
    sources_dir = Path(get_default_build_root()) / f"{name}_sources"
    sources_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for file_name in backend.SOURCES:
        source = kernel_dir / file_name
        if source.suffix != ".cu":
            sources.append(source)  # the binding: compiled as it is
            continue
        emulated = emulated_source(source.read_text())
        sources.append(write_if_changed(sources_dir / f"{source.stem}_emulated.cpp", emulated))
    return load(name=name, sources=[str(s) for s in sources],
                extra_include_paths=[str(FAKE_CUDA_INCLUDE), str(kernel_dir), str(KERNELS)],
                extra_cflags=["-O1", *EMULATOR_FLAGS],
                extra_ldflags=["-pthread"], verbose=verbose)


def compile_program(cuda_file: Path, out_dir: Path) -> Path:
    """Compile a self-contained .cu program (no PyTorch, e.g. selftest.cu) for the emulator with g++.

    Returns the executable; a compile error raises subprocess.CalledProcessError with g++'s message.
    """
    source = write_if_changed(Path(out_dir) / f"{cuda_file.stem}_emulated.cpp",
                              emulated_source(Path(cuda_file).read_text()))
    program = Path(out_dir) / cuda_file.stem
    subprocess.run(["g++", "-O1", *EMULATOR_FLAGS, f"-I{FAKE_CUDA_INCLUDE}", str(source), "-o",
                    str(program)], check=True, capture_output=True, text=True)
    return program
