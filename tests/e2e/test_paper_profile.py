"""The paper profile's dry run: every stage of `configs/paper.yaml` through the real code, on CPU, with only counts
shrunk (images, steps, epochs), so each of its shapes, label mappings and processor paths runs on every commit.

What stays as in the paper profile: `download.source: official` (COCO- and GTSRB-format archives fetched from a
server on 127.0.0.1 and checked against their md5), COCO images at COCO's sizes (480-640 px, so DETR works at
800 px with the 1333 px cap), and the five Hugging Face checkpoints by hub id (tests/hub_standins.py: the published
configs and processors with random weights, HF_HUB_OFFLINE=1). The stages run in one process (tests/run_stages.py)
in an order `dvc repro` could run them. 6½-8½ minutes on 2 CPU cores: marked `paper`, outside the 15-minute suite;
`make test-paper` runs it, and CI runs it after `make test`."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import yaml

from pipeline.config import SyntheticCoco, SyntheticGtsrb
from pipeline.data.coco_categories import COCO_CATEGORIES
from pipeline.data.synthetic_coco import write_synthetic_coco
from pipeline.data.synthetic_gtsrb import write_synthetic_gtsrb
from tests.helpers import copy_project, run, served
from tests.hub_standins import write_hub_cache

pytestmark = pytest.mark.paper

COCO_SIZES = SyntheticCoco(train_images=30, val_images=6, image_side={"min": 480, "max": 640},
                           objects_per_image={"min": 2, "max": 5}, grayscale_share=0.05, crowd_share=0.15,
                           categories=None, object_side={"min": 0.2, "max": 0.5}, max_box_iou=1.0,
                           clutter={"min": 6, "max": 15})
GTSRB_SIZES = SyntheticGtsrb(train_tracks_per_class=1, images_per_track=2, test_images=43,
                             sign_side={"min": 20, "max": 64})


@pytest.fixture(scope="module")
def archive_server(tmp_path_factory):
    """COCO 2017 and GTSRB look-alike archives under their official names, served on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("official")
    write_synthetic_coco(folder, COCO_SIZES, seed=1)
    write_synthetic_gtsrb(folder, GTSRB_SIZES, seed=1)
    with served(folder) as base_url:
        yield base_url, folder


def served_files(params: dict, base_url: str, folder) -> None:
    """Every official archive of the profile fetched from the local server, with the md5 of what it serves."""
    for dataset in ("coco", "gtsrb"):
        for name, remote in params["download"][dataset]["files"].items():
            remote["url"] = f"{base_url}/{name}"
            remote["checksum"] = f"md5:{hashlib.md5((folder / name).read_bytes()).hexdigest()}"


def shrink_counts(params: dict) -> None:
    """Counts only: a few images, 1-2 attack steps, one epoch (or none, as the profile's detectors), one of the
    seed's three DETR patch sides; every model, size, objective, optimiser and placement stays."""
    for dataset in ("coco_ic", "gtsrb"):
        params["prepare"][dataset]["max_samples"] = {"train": 16, "val": 8}
    for entry in params["classifiers"].values():
        entry.update(epochs=1, checkpoint_every=1, val_subset=4)
        entry["adversary"]["steps"] = 1
    attack = params["attack_classifier"]
    attack["num_images"] = 2
    for settings in attack["suite"].values():
        settings.update({key: min(value, 2) for key, value in settings.items() if key in ("steps", "queries")})
    attack["curves"].update(eps_steps=1, steps=[1, 2])
    params["analyze_attention"]["num_images"] = 4
    for entry in params["train_vit"].values():
        entry.update(epochs=1, val_subset=2)
        entry["adversary"]["steps"] = 1
    params["attack_vit"].update(num_images=1, steps=1)
    for entry in params["train_detr"].values():
        entry["max_images"] = {"train": 2, "val": 2}
    params["attack_detr"].update(num_images=1, steps=1, map_at_steps=[0], patch_px=[64])


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory, archive_server):
    """A project on the shrunk paper profile after every stage ran; its stage log."""
    base_url, folder = archive_server
    project = copy_project(tmp_path_factory.mktemp("paper"), profile="paper")
    params = yaml.safe_load((project / "params.yaml").read_text())
    served_files(params, base_url, folder)
    shrink_counts(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    hub = {entry["pretrained"] for section in ("train_vit", "train_detr") for entry in params[section].values()}
    cache = write_hub_cache(tmp_path_factory.mktemp("hub"), sorted(hub))
    run(["dvc", "init", "--no-scm", "-q"], project)
    log = run([sys.executable, "-m", "tests.run_stages"], project, HF_HUB_CACHE=str(cache),
              ATTNROBUST_DEVICE="cpu").stderr
    return project, log


def test_every_stage_of_the_paper_profile_runs(paper_project):
    project, log = paper_project
    planned = len(run(["dvc", "stage", "list", "--name-only"], project).stdout.split())
    finished = [line for line in log.splitlines() if line.startswith("stage ")]
    assert planned > 60 and len(finished) == planned and finished[-1].startswith("stage report: "), log[-3000:]


def test_hub_detectors_score_official_coco_ids(paper_project):
    project, _ = paper_project
    official = {c["id"] for c in COCO_CATEGORIES}
    for name in ("detr_resnet50", "detr_resnet101", "rtdetr_r50vd"):
        detections = json.loads((project / f"data/attack_detr/{name}/detections/clean.json").read_text())
        assert detections and {d["category_id"] for d in detections} <= official, name
        metrics = json.loads((project / f"data/attack_detr/{name}/metrics.json").read_text())
        assert metrics["num_images"] == 1 and "64px" in metrics["patches"]


def test_detr_works_at_the_checkpoints_800_px_size(paper_project):
    project, _ = paper_project
    processor = json.loads((project / "data/train_detr/detr_resnet50/model/preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 800, "longest_edge": 1333}
    metrics = json.loads((project / "data/attack_detr/detr_resnet50/metrics.json").read_text())
    assert metrics["attention_layer"] == "model.encoder.layers.0.self_attn"


def test_vit_patches_are_one_16_px_token_at_224_px(paper_project):
    project, _ = paper_project
    for name in ("gtsrb_vit_base", "gtsrb_deit_base"):
        metrics = json.loads((project / f"data/attack_vit/{name}/metrics.json").read_text())
        assert metrics["patch_px"] == 16 and metrics["patch_area_share"] == pytest.approx(1 / 14 ** 2), name
