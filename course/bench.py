"""One benchmark runner over the registry: time every backend of every op, write records as JSON.

`course bench` runs the op's `bench_cases` for the device at hand with every backend that runs there
(the Triton interpreter is a correctness tool and is never timed), in each dtype the case names,
prints a table, and merges the records into `benchmarks/results/<device>.json`. Matmul-like ops (those
that count their `flops`) are reported in TFLOP/s, memory-bound ones in GB/s, each with its fraction of
the device's peak for that dtype. Notebooks draw speed plots from those files, `auto` picks backends
by them, and each sentence about speed can point at a measured number and the device it was measured on.
"""
import datetime
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from course import numerics, registry
from course.records import device_name, results_path

# Peaks from the vendors' data sheets, to report the fraction reached: memory bandwidth (GB/s), and
# dense arithmetic (TFLOP/s) in float32 without tensor cores and in 16-bit floats with them.
PEAKS = {  # name part -> (GB/s, {dtype: TFLOP/s})
    "H200": (4800.0, {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0, "float64": 34.0}),
    "H100 80GB HBM3": (3350.0, {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0, "float64": 34.0}),
    "H100 PCIe": (2000.0, {"float32": 51.0, "float16": 756.0, "bfloat16": 756.0, "float64": 26.0}),
    "A100-SXM4-80GB": (2039.0, {"float32": 19.5, "float16": 312.0, "bfloat16": 312.0, "float64": 9.7}),
    "A100-SXM4-40GB": (1555.0, {"float32": 19.5, "float16": 312.0, "bfloat16": 312.0, "float64": 9.7}),
    "L4": (300.0, {"float32": 30.0, "float16": 121.0, "bfloat16": 121.0}),
}


@dataclass
class Record:
    op: str
    backend: str
    case: str
    device: str
    ms: float  # median wall time of one forward call
    gbps: float | None = None  # bytes moved / time
    peak_fraction: float | None = None  # tflops / peak TFLOP/s where the op counts flops, else GB/s
    dtype: str = "float32"
    tflops: float | None = None  # floating-point operations / time
    numerics: str = "native"  # "pinned" where timed on course.numerics' reproducible code paths


def peaks(device: str) -> tuple[float | None, dict]:
    """(peak GB/s, {dtype: peak TFLOP/s}) of `device`, (None, {}) where the data sheet is not known."""
    if torch.device(device).type != "cuda":
        return None, {}
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), (None, {}))


def time_calls(fns: dict, kwargs: dict, device: str, min_seconds: float = 0.3,
               max_rounds: int = 200, failed: dict | None = None) -> dict:
    """Median milliseconds of each `fn(**kwargs)`, timed in interleaved rounds after a warm-up.

    Round r calls every function that still needs time once, so a slow stretch of the machine (other
    load, page faults, clock changes) falls on all of them alike and their ratio stays fair. A
    function leaves the rounds once it has run for `min_seconds` in total, and 3 times. A function
    that raises in its warm-up raises here, or, given `failed`, is left out and its error kept there.
    """
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = {}
    with torch.no_grad():
        for name, fn in fns.items():
            try:
                fn(**kwargs)
                sync()
            except Exception as error:
                if failed is None:
                    raise
                failed[name] = error
                continue
            times[name] = []
        for _ in range(max_rounds):
            waiting = [n for n, t in times.items() if len(t) < 3 or sum(t) < min_seconds]
            if not waiting:
                break
            for name in waiting:
                start = time.perf_counter()
                fns[name](**kwargs)
                sync()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def runnable(op: registry.Op, device: str) -> list[registry.Impl]:
    """The backends of `op` worth timing on `device`."""
    out = []
    for impl in op.impls:
        if device not in impl.devices or not impl.availability(device)[0]:
            continue
        if impl.kind == "triton" and registry.triton_mode() != "compiled":
            continue
        out.append(impl)
    return out


def run(op_names=None, device: str = "cpu", progress: bool = True,
        min_seconds: float = 0.3, cases=None, backends=None, errors: list | None = None) -> list[Record]:
    """Time every backend of every (op, case, dtype) that runs on `device`; one Record each.

    `cases`, if given, names the benchmark cases to time (a notebook times its smallest live and
    reads the others from the records); `backends`, if given, the backends (a notebook leaves a slow
    loop to the records). The backends of one case are timed together, in interleaved rounds
    (`time_calls`). A backend that raises stops the run, or, given `errors` (`course bench`), is
    named there with its error ("op / case / dtype / backend: error") and the run goes on.
    """
    from tqdm.auto import tqdm

    from course.testing import cast_floats

    ops = [registry.get(n) for n in op_names] if op_names else registry.all_ops()
    known = {case.name for op in ops for case in op.bench_cases}
    if cases is not None and not set(cases) <= known:
        raise ValueError(f"bench.run: `cases` must name benchmark cases of these ops "
                         f"({', '.join(sorted(known))}); got {', '.join(sorted(set(cases) - known))}.")
    named = {impl.backend for op in ops for impl in op.impls}
    if backends is not None and not set(backends) <= named:
        raise ValueError(f"bench.run: `backends` must name backends of these ops "
                         f"({', '.join(sorted(named))}); got {', '.join(sorted(set(backends) - named))}.")
    groups = [(op, case, dtype) for op in ops for case in op.bench_cases if case.runs_on(device)
              and (cases is None or case.name in cases) for dtype in case.dtypes or (torch.float32,)]
    name, (peak_gbps, peak_tflops) = device_name(device), peaks(device)
    code_paths = "pinned" if numerics.pinned()[0] else "native"
    records = []
    for op, case, dtype in tqdm(groups, desc=f"bench on {name}", disable=not progress):
        impls = [impl for impl in runnable(op, device) if dtype in impl.supported_dtypes()
                 and impl.backend not in case.skip_backends
                 and (backends is None or impl.backend in backends)]
        made = op.make_inputs(case.params, torch.Generator().manual_seed(0))
        kwargs = cast_floats({k: v.to(device) if isinstance(v, torch.Tensor) else v
                              for k, v in made.items()}, dtype)
        dtype_name = str(dtype).removeprefix("torch.")
        fns = {impl.backend: impl.load() for impl in impls}
        failed = None if errors is None else {}
        timed = time_calls(fns, kwargs, device, min_seconds=min_seconds, failed=failed)
        for backend, error in (failed or {}).items():
            errors.append(f"{op.name} / {case.name} / {dtype_name} / {backend}: "
                          f"{type(error).__name__}: {error}")
        for backend, ms in timed.items():
            record = Record(op.name, backend, case.name, name, ms, dtype=dtype_name, numerics=code_paths)
            if op.bytes_moved is not None:
                with torch.no_grad():
                    record.gbps = op.bytes_moved(kwargs, fns[backend](**kwargs)) / (ms * 1e-3) / 1e9
                record.peak_fraction = record.gbps / peak_gbps if peak_gbps else None
            if op.flops is not None:
                record.tflops = op.flops(kwargs) / (ms * 1e-3) / 1e12
                peak = peak_tflops.get(dtype_name)
                record.peak_fraction = record.tflops / peak if peak else None
            records.append(record)
    return records


def write(records: list[Record], root: Path) -> list[Path]:
    """Merge records into benchmarks/results/<device>.json (one file per device); return the paths."""
    paths = []
    for device in sorted({r.device for r in records}):
        path = results_path(device, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(path.read_text())["records"] if path.exists() else []
        new = [asdict(r) for r in records if r.device == device]
        key = lambda r: (r["op"], r["backend"], r["case"], r.get("dtype", "float32"))  # noqa: E731
        keys = {key(r) for r in new}
        merged = [r for r in old if key(r) not in keys] + new
        path.write_text(json.dumps({
            "device": device,
            "torch": torch.__version__,
            "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "records": sorted(merged, key=lambda r: (r["op"], r["case"], r.get("dtype", "float32"),
                                                     r["backend"])),
        }, indent=1) + "\n")
        paths.append(path)
    return paths


def table(records) -> str:
    """Records (dataclasses or dicts) as an aligned text table; a row timed on the pinned numerics
    (slower matmuls: MKL's compatible branch) is marked, with a footnote."""
    rows = [r if isinstance(r, dict) else asdict(r) for r in records]
    op_width = max([18] + [len(r["op"]) + 1 for r in rows])
    case_width = max([32] + [len(r["case"]) + 1 for r in rows])
    lines = [f"{'op':<{op_width}}{'case':<{case_width}}{'dtype':<10}{'backend':<16}{'ms':>10}{'GB/s':>9}"
             f"{'TFLOP/s':>9}{'of peak':>9}"]
    for r in rows:
        gbps = f"{r['gbps']:.1f}" if r.get("gbps") else "-"
        tflops = f"{r['tflops']:.2f}" if r.get("tflops") else "-"
        peak = f"{100 * r['peak_fraction']:.0f}%" if r.get("peak_fraction") else "-"
        backend = r["backend"] + (" *" if r.get("numerics") == "pinned" else "")
        lines.append(f"{r['op']:<{op_width}}{r['case']:<{case_width}}{r.get('dtype', 'float32'):<10}"
                     f"{backend:<16}"
                     f"{r['ms']:>10.3f}{gbps:>9}{tflops:>9}{peak:>9}")
    if any(r.get("numerics") == "pinned" for r in rows):
        lines.append("* timed on the pinned numerics (course.numerics: MKL's compatible branch, slower "
                     "matmuls); `course bench` times without them")
    return "\n".join(lines)
