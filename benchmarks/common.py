"""Timing helpers shared by the benchmarks: best-of-n wall time, the machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.io.atomic import write_json

RESULTS = Path(__file__).parent / "results"


def device() -> torch.device:
    choice = os.environ.get("ATTNROBUST_DEVICE", "auto")
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice)


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def best_time(fn: Callable[[], object], dev: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """The fastest of `repeats` timed calls (after `warmup` untimed ones), in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(dev)
        start = time.perf_counter()
        fn()
        synchronize(dev)
        times.append(time.perf_counter() - start)
    return min(times)


def machine(dev: torch.device) -> dict:
    info = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def save(name: str, result: dict) -> Path:
    path = RESULTS / f"{name}.json"
    write_json(path, result)
    print(json.dumps(result, indent=2))
    return path
