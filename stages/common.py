"""What every stage does first: logging, reading and validating params.yaml, naming its outputs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from pipeline.config import Params, ParamsError, validate_params

PARAMS_FILE = Path("params.yaml")
DATA = Path("data")
log = logging.getLogger("attnrobust")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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


def stage_args(description: str, choices: tuple[str, ...]) -> tuple[argparse.Namespace, Params]:
    """Parse `python -m stages.<name> <item>` and load params; `item` must be one of `choices`."""
    setup_logging()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("item", choices=choices)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = parser.parse_args()
    return args, load_params(args.params)
