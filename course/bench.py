"""One benchmark runner over the registry: time every backend of every op, write records as JSON.

`course bench` runs the op's `bench_cases` for the device at hand with every backend that runs there
(the Triton interpreter is a correctness tool and is never timed), prints a table, and merges the
records into `benchmarks/results/<device>.json`. Notebooks and widgets draw speed plots from those files,
so each sentence about speed can point at a measured number and the device it was measured on.
"""
import datetime
import json
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from course import registry

# Peak memory bandwidth (GB/s) from the vendors' data sheets, to report the fraction reached.
PEAK_GBPS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0, "A100-SXM4-80GB": 2039.0,
             "A100-SXM4-40GB": 1555.0, "L4": 300.0}


@dataclass
class Record:
    op: str
    backend: str
    case: str
    device: str
    ms: float  # median wall time of one forward call
    gbps: float | None = None  # bytes moved / time
    peak_fraction: float | None = None  # gbps / the device's peak bandwidth


def device_name(device: str = "cpu") -> str:
    """A file-name-safe description of the machine: GPU model, or CPU model and core count."""
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.exists():
            found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
            name = found.group(1) if found else name
        name = f"cpu {name} {torch.get_num_threads()} threads"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def peak_gbps(device: str) -> float | None:
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_GBPS.items() if k in name), None)


def time_call(fn, kwargs: dict, device: str, min_seconds: float = 0.3, max_calls: int = 200) -> float:
    """Median milliseconds of `fn(**kwargs)` after one warm-up call."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    with torch.no_grad():
        fn(**kwargs)
        sync()
        times, total = [], 0.0
        while total < min_seconds and len(times) < max_calls or len(times) < 3:
            start = time.perf_counter()
            fn(**kwargs)
            sync()
            times.append(time.perf_counter() - start)
            total += times[-1]
    return 1e3 * statistics.median(times)


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
        min_seconds: float = 0.3) -> list[Record]:
    """Time every (op, backend, case) that runs on `device`; one Record each.

    Each is called for at least `min_seconds` (and 3 times) after a warm-up; the median is kept.
    """
    from tqdm.auto import tqdm

    ops = [registry.get(n) for n in op_names] if op_names else registry.all_ops()
    jobs = [(op, impl, case) for op in ops for case in op.bench_cases if device in case.devices
            for impl in runnable(op, device)]
    name, peak = device_name(device), peak_gbps(device)
    records = []
    for op, impl, case in tqdm(jobs, desc=f"bench on {name}", disable=not progress):
        kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                  for k, v in op.make_inputs(case.params, torch.Generator().manual_seed(0)).items()}
        fn = impl.load()
        ms = time_call(fn, kwargs, device, min_seconds=min_seconds)
        gbps = None
        if op.bytes_moved is not None:
            with torch.no_grad():
                gbps = op.bytes_moved(kwargs, fn(**kwargs)) / (ms * 1e-3) / 1e9
        records.append(Record(op.name, impl.backend, case.name, name, ms, gbps,
                              gbps / peak if gbps and peak else None))
    return records


def results_path(device_name_: str, root: Path) -> Path:
    return root / "benchmarks" / "results" / f"{device_name_}.json"


def write(records: list[Record], root: Path) -> list[Path]:
    """Merge records into benchmarks/results/<device>.json (one file per device); return the paths."""
    paths = []
    for device in sorted({r.device for r in records}):
        path = results_path(device, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(path.read_text())["records"] if path.exists() else []
        new = [asdict(r) for r in records if r.device == device]
        keys = {(r["op"], r["backend"], r["case"]) for r in new}
        merged = [r for r in old if (r["op"], r["backend"], r["case"]) not in keys] + new
        path.write_text(json.dumps({
            "device": device,
            "torch": torch.__version__,
            "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "records": sorted(merged, key=lambda r: (r["op"], r["case"], r["backend"])),
        }, indent=1) + "\n")
        paths.append(path)
    return paths


def load(root: Path) -> list[dict]:
    """Every record in benchmarks/results/*.json."""
    out = []
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        out += json.loads(path.read_text())["records"]
    return out


def table(records) -> str:
    """Records (dataclasses or dicts) as an aligned text table."""
    rows = [r if isinstance(r, dict) else asdict(r) for r in records]
    lines = [f"{'op':<16}{'case':<32}{'backend':<12}{'ms':>10}{'GB/s':>9}{'of peak':>9}"]
    for r in rows:
        gbps = f"{r['gbps']:.1f}" if r.get("gbps") else "-"
        peak = f"{100 * r['peak_fraction']:.0f}%" if r.get("peak_fraction") else "-"
        lines.append(f"{r['op']:<16}{r['case']:<32}{r['backend']:<12}{r['ms']:>10.3f}{gbps:>9}{peak:>9}")
    return "\n".join(lines)
