"""Shared fixtures: the tiny profile and synthetic archives generated once per session."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.config import Params, validate_params
from pipeline.data.synthetic_coco import write_synthetic_coco
from pipeline.data.synthetic_gtsrb import write_synthetic_gtsrb

ROOT = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):       # one worker per core: one thread each, in the stages it starts too,
    os.environ["OMP_NUM_THREADS"] = "1"          # as two threads per worker oversubscribe the cores (3× slower tests)
    torch.set_num_threads(1)


def load_profile(name: str) -> dict:
    path = ROOT / ("params.yaml" if name == "params" else f"configs/{name}.yaml")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def tiny_raw() -> dict:
    return load_profile("tiny")


@pytest.fixture(scope="session")
def tiny(tiny_raw) -> Params:
    return validate_params(tiny_raw, "configs/tiny.yaml")


@pytest.fixture(scope="session")
def coco_archives(tmp_path_factory, tiny) -> Path:
    folder = tmp_path_factory.mktemp("coco")
    write_synthetic_coco(folder, tiny.download.coco.synthetic, seed=0)
    return folder


def coco_api(archives: Path, split: str, folder: Path):
    """pycocotools' COCO over `instances_<split>2017.json` from a (synthetic) annotations archive."""
    from pycocotools.coco import COCO

    raw = zipfile.ZipFile(archives / "annotations_trainval2017.zip").read(f"annotations/instances_{split}2017.json")
    path = folder / f"instances_{split}2017.json"
    path.write_bytes(raw)
    return COCO(str(path))


@pytest.fixture(scope="session")
def gtsrb_archives(tmp_path_factory, tiny) -> Path:
    folder = tmp_path_factory.mktemp("gtsrb")
    write_synthetic_gtsrb(folder, tiny.download.gtsrb.synthetic, seed=0)
    return folder
