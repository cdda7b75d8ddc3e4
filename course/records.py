"""Benchmark records on disk: benchmarks/results/<device>.json, one file per machine and device.

`course bench` writes them (course.bench); `auto` reads this machine's (course.registry) and the
notebooks draw from them.
"""
import functools
import json
import platform
import re
from pathlib import Path

import torch


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (read once: `auto` asks for this machine's records at every op call)."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        name = found.group(1) if found else name
    return name


def device_name(device: str = "cpu") -> str:
    """A file-name-safe description of the machine: GPU model, or CPU model and core count."""
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = f"cpu {cpu_model()} {torch.get_num_threads()} threads"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def results_path(device_name_: str, root: Path) -> Path:
    return root / "benchmarks" / "results" / f"{device_name_}.json"


def load(root: Path) -> list[dict]:
    """Every record in benchmarks/results/*.json."""
    out = []
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        out += json.loads(path.read_text())["records"]
    return out


def load_device(root: Path, device_name_: str) -> list[dict]:
    """The records of one device (`device_name`), [] where it has none (parsed again only when the
    file changes; callers must not modify the list)."""
    path = results_path(device_name_, root)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return []
    if _PARSED.get(path, (None,))[0] != stamp:
        _PARSED[path] = stamp, json.loads(path.read_text())["records"]
    return _PARSED[path][1]


_PARSED: dict = {}  # path -> (mtime_ns, records)
