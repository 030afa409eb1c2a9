"""What every stage does first: logging, reading and validating params.yaml, naming its outputs."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.config import Classifier, Params, ParamsError, validate_params
from pipeline.errors import InputError
from stages.distributed import claim_gpu
from stages.logs import log, setup_logging

PARAMS_FILE = Path("params.yaml")
DATA = Path("data")


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate the params file; exit with the list of bad keys if it is invalid."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        sys.exit(f"{path}: cannot read params ({exc})")
    try:
        return validate_params(raw, str(path))
    except ParamsError as exc:
        sys.exit(str(exc))


def stage_args(description: str, choices: tuple[str, ...] | None = None,
               item: bool = True) -> tuple[argparse.Namespace, Params]:
    """Parse `python -m stages.<name> [<item>] [--params FILE]` and load params; `item` must be one of
    `choices` if given."""
    setup_logging()
    parser = argparse.ArgumentParser(description=description)
    if item:
        parser.add_argument("item", choices=choices)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = parser.parse_args()
    return args, load_params(args.params)


def entry_args(description: str, section: str = "classifiers") -> tuple[str, Any, Params]:
    """`python -m stages.<name> <entry>`: the entry's name, its `<section>.<entry>` params and all params;
    `section` may be dotted (`attack_vit.targets`)."""
    args, params = stage_args(description)
    entries = functools.reduce(getattr, section.split("."), params)
    if args.item not in entries:
        sys.exit(f"{args.params}: no entry {args.item!r} under `{section}:` (have {sorted(entries)})")
    return args.item, entries[args.item], params


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage: an InputError (pipeline/errors.py) ends it with its message and exit status 2 instead of a
    traceback; `--debug` on the command line or ATTNROBUST_DEBUG=1 shows the traceback."""
    debug = "--debug" in sys.argv or os.environ.get("ATTNROBUST_DEBUG", "0") not in ("", "0")
    sys.argv = [arg for arg in sys.argv if arg != "--debug"]
    try:
        main()
    except InputError as exc:
        if debug:
            raise
        print(f"error: {exc}\n(for the traceback: rerun with --debug or ATTNROBUST_DEBUG=1)", file=sys.stderr)
        sys.exit(2)


def _cuda_status() -> tuple[bool, str]:
    """(is CUDA usable, why not): torch's own warning when it finds a GPU it cannot use (an old driver)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    if usable:
        return True, ""
    build = (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} and needs an NVIDIA driver that "
             f"supports it (`nvidia-smi` shows the driver's CUDA version)" if torch.version.cuda
             else f"torch {torch.__version__} is a CPU-only build")
    said = "; ".join(str(w.message).strip().splitlines()[0] for w in caught)
    return False, build + (f"; torch says: {said}" if said else "")


def pick_device(accelerator: str = "optional") -> torch.device:
    """ATTNROBUST_DEVICE = auto (default: CUDA when usable) | cpu | cuda | cuda:N. On several GPUs, `auto` and `cuda`
    mean the GPU of the rank's LOCAL_RANK under torchrun, else the first GPU no other stage process holds
    (stages/distributed.claim_gpu). With params `accelerator: required` (the paper profile), `auto` stops when no GPU
    is usable instead of running on the CPU for days."""
    choice = os.environ.get("ATTNROBUST_DEVICE", "auto")
    usable, why_not = _cuda_status()
    if choice == "auto":
        if not usable and accelerator == "required":
            raise InputError(f"no usable GPU, and params.yaml sets `accelerator: required`: {why_not}. Install the "
                             f"torch build for your driver, or set ATTNROBUST_DEVICE=cpu to run on the CPU anyway")
        choice = "cuda" if usable else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise InputError(f"ATTNROBUST_DEVICE={choice!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:    # torchrun: a GPU per rank
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    elif device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", claim_gpu(torch.cuda.device_count()))      # a GPU no other stage holds
    if device.type == "cuda" and not usable:
        raise InputError(f"ATTNROBUST_DEVICE={choice!r} but there is no usable GPU: {why_not}")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InputError(f"ATTNROBUST_DEVICE={choice!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"ATTNROBUST_DEVICE={choice!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        configure_cuda()
    log.info("device: %s", device)
    return device


def configure_cuda() -> None:
    """TF32 matmuls and convolutions (Ampere and later), and deterministic kernels where they exist, with the cuBLAS
    workspace they need: a resumed training then equals an uninterrupted one on the GPU too (docs/performance.md)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def evaluated_model(entry: Classifier, model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The model as attacked and its mask mode: without its mask when `remask_at_test` is off (the ablation
    where the attacker's full image reaches the unmasked network)."""
    if entry.mask != "none" and not entry.remask_at_test:
        return model.model, "none"
    return model, entry.mask
