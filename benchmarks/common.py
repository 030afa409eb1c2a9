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
from stages.common import pick_device

RESULTS = Path(__file__).parent / "results"


def device() -> torch.device:
    """The stages' device and settings (ATTNROBUST_DEVICE; on CUDA TF32 and deterministic kernels): what a stage runs
    with is what the benchmark measures."""
    return pick_device()


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


def result_path(name: str, dev: torch.device | None = None) -> Path:
    """`benchmarks/results/<name>.json`, or `<name>_cuda.json` for a GPU's measurement (the CPU's file stays)."""
    return RESULTS / f"{name}{'_cuda' if dev is not None and dev.type == 'cuda' else ''}.json"


def save(name: str, result: dict, dev: torch.device | None = None) -> Path:
    """Writes and prints `result` at `result_path(name, dev)`: `dev`, the device a benchmark measured."""
    path = result_path(name, dev)
    write_json(path, result)
    print(json.dumps(result, indent=2))
    return path
