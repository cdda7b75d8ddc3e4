"""Every Triton kernel compiled for the GPU's architecture, sm_90 (H100, H200), on a machine without one.

    python3 .ci/compile_sm90.py OUT               # OUT/sm90.json: each launch's shared memory, registers,
                                                  # stack (about 80 s on one core, a minute of it compiling)
    python3 .ci/compile_sm90.py OUT --all-cases   # and every case's constants in float32 (2-3 minutes)

1. capture: each Triton op's first case that runs with the GPU's tiles (COURSE_GPU_TILES=1,
   tests/test_gpu_tiles.py), in every dtype its backend runs here (with --all-cases, every such case
   in float32 too: their shapes set the kernels' constants, D = 128's tiles among them), goes through
   the interpreter, and every launch is recorded: the kernel, its signature (pointer and scalar
   types), its constants and launch options, exactly what a GPU would compile for that call.
2. compile: a second process, without the interpreter, compiles each distinct launch with Triton's own
   compiler and the ptxas it ships, for sm_90, and reads ptxas's registers and stack a thread.
It fails where a kernel does not compile, or needs more shared memory than sm_90 gives a block. What it
cannot show is the GPU's numbers: compiled arithmetic, speed, memory (the GPU run's, .ci/gpu-run).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_LIMIT = 227 * 1024  # bytes of shared memory a block may have on sm_90
TORCH_TYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64", "int32": "i32",
               "int64": "i64", "bool": "i1", "uint8": "u8", "int8": "i8", "int16": "i16"}


def launch_spec(fn, arg_names, values: dict, options: dict) -> str:
    """One launch as JSON: [module, kernel, signature, constants, options]."""
    import inspect

    import torch
    import triton.language as tl

    annotations = inspect.get_annotations(fn)
    defaults = {n: p.default for n, p in inspect.signature(fn).parameters.items()}
    signature, constants = {}, {}
    for name in arg_names:
        value, annotation = values.get(name, defaults.get(name)), str(annotations.get(name, ""))
        if "constexpr" in annotation or value is None:
            signature[name] = "constexpr"
            constants[name] = ["dtype", value.name] if isinstance(value, tl.dtype) else value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + TORCH_TYPES[str(value.dtype).removeprefix("torch.")]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -2 ** 31 <= value < 2 ** 31 else "i64"
        elif isinstance(value, float):
            signature[name] = "fp64" if annotation in ("fp64", "float64") else "fp32"  # as Triton types them
        else:
            raise TypeError(f"{fn.__name__}: argument {name} of type {type(value).__name__}")
    return json.dumps([fn.__module__, fn.__qualname__, signature, constants, options], sort_keys=True)


def capture(all_cases: bool = False) -> list[str]:
    """The distinct launches of every Triton op's first GPU-tiled case in every dtype (all_cases: and of
    all of them in float32)."""
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ["COURSE_GPU_TILES"] = "1"
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    import triton.runtime.interpreter as interpreter

    from course import registry
    from course.testing import compare
    from harness import gpu_tiled_cases

    specs = {}
    run = interpreter.InterpretedFunction.run

    def recording(self, *args, grid, warmup, **kwargs):
        values = {**dict(zip(self.arg_names, args)), **kwargs}
        options = {k: v for k, v in kwargs.items() if k in ("num_warps", "num_stages")}
        specs[launch_spec(self.fn, self.arg_names, values, options)] = None
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    interpreter.InterpretedFunction.run = recording
    for op in registry.all_ops():
        for impl in (i for i in op.impls if i.kind == "triton"):
            for dtype in impl.supported_dtypes():
                every = all_cases and dtype == torch.float32
                for case in gpu_tiled_cases(op, dtype)[:None if every else 1]:
                    result = compare(op, impl.load(), case, dtype=dtype)
                    if not result.ok:
                        raise AssertionError(f"{op.name} / triton / {case.name}: "
                                             + "; ".join(result.problems))
    interpreter.InterpretedFunction.run = run
    return list(specs)


def compile_all(specs: list[str]) -> list[dict]:
    """Compile each launch for sm_90 (in this process, started with TRITON_INTERPRET=0: the kernel
    modules then leave the interpreter off, and their kernels are Triton's own JIT functions)."""
    import importlib

    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    results = []
    for spec in specs:
        module, kernel, signature, constants, options = json.loads(spec)
        constants = {k: tl.dtype(v[1]) if isinstance(v, list) else v for k, v in constants.items()}
        start = time.perf_counter()
        row = dict(kernel=f"{module}:{kernel}", signature=signature, options=options,
                   constants={k: str(v) for k, v in constants.items()})
        try:
            source = ASTSource(fn=getattr(importlib.import_module(module), kernel), signature=signature,
                               constexprs=constants)
            compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
            with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
                cubin.write(compiled.asm["cubin"])
                cubin.flush()
                usage = subprocess.run([str(cuobjdump), "--dump-resource-usage", cubin.name],
                                       capture_output=True, text=True).stdout
            fields = dict(f.split(":") for f in next(line for line in usage.splitlines()
                                                      if "REG:" in line).split() if ":" in f)
            row.update(shared=compiled.metadata.shared, registers=int(fields["REG"]),
                       stack=int(fields["STACK"]))
        except Exception as error:  # reported with the launch that raised it
            row["error"] = f"{type(error).__name__}: {str(error)[-2000:]}"
        row["seconds"] = round(time.perf_counter() - start, 2)
        results.append(row)
    return results


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--compile"]:  # the second process: launches on stdin, results on stdout
        os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # nvcc's default, and Triton's so far
        print(json.dumps(compile_all(json.loads(sys.stdin.read()))))
        return 0
    all_cases = "--all-cases" in args
    args = [a for a in args if a != "--all-cases"]
    out = Path(args[0] if args else "sm90").resolve()
    out.mkdir(parents=True, exist_ok=True)
    specs = capture(all_cases)
    env = {**{k: v for k, v in os.environ.items() if k != "COURSE_GPU_TILES"}, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, __file__, "--compile"], input=json.dumps(specs), text=True,
                          capture_output=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        print(done.stderr[-5000:], file=sys.stderr)
        return 1
    results = json.loads(done.stdout)
    (out / "sm90.json").write_text(json.dumps(results, indent=1) + "\n")
    failed = [r for r in results if "error" in r or r["shared"] > SHARED_LIMIT]
    for r in results:
        figures = r.get("error") or (f"shared {r['shared']} B, {r['registers']} registers, "
                                     f"stack {r['stack']} B a thread")
        print(f"{r['kernel']} {r['options'] or ''} {r['seconds']} s: {figures}")
    kernels = {r["kernel"] for r in results}
    print(f"{len(results)} launches of {len(kernels)} kernels compiled for sm_90; {len(failed)} failed "
          f"(an error, or more than {SHARED_LIMIT} B of shared memory)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
