"""What every stage does first: logging, reading and validating params.yaml, naming its outputs."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from pipeline.config import Classifier, Params, ParamsError, validate_params
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


def pick_device() -> torch.device:
    """ATTNROBUST_DEVICE = auto (default: CUDA when present) | cpu | cuda | cuda:N."""
    choice = os.environ.get("ATTNROBUST_DEVICE", "auto")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError:
        sys.exit(f"ATTNROBUST_DEVICE={choice!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"ATTNROBUST_DEVICE={choice!r} but CUDA is not available on this machine")
    log.info("device: %s", device)
    return device


def evaluated_model(entry: Classifier, model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The model as attacked and its mask mode: without its mask when `remask_at_test` is off (the ablation
    where the attacker's full image reaches the unmasked network)."""
    if entry.mask != "none" and not entry.remask_at_test:
        return model.model, "none"
    return model, entry.mask
