"""Benchmark records on disk: benchmarks/results/<device>.json, one file per machine and device.

`course bench` writes them (course.bench); `auto` reads this machine's (course.registry) and the
notebooks draw from them.
"""
import json
import platform
import re
from pathlib import Path

import torch


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


def results_path(device_name_: str, root: Path) -> Path:
    return root / "benchmarks" / "results" / f"{device_name_}.json"


def load(root: Path) -> list[dict]:
    """Every record in benchmarks/results/*.json."""
    out = []
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        out += json.loads(path.read_text())["records"]
    return out


def load_device(root: Path, device_name_: str) -> list[dict]:
    """The records of one device (`device_name`), [] where it has none."""
    path = results_path(device_name_, root)
    return json.loads(path.read_text())["records"] if path.exists() else []
