"""The synthetic COCO archives are valid COCO 2017: pycocotools reads them and every mask agrees."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from pipeline.data.synthetic_coco import write_synthetic_coco
from tests.conftest import coco_api


@pytest.fixture(scope="module")
def train_api(coco_archives, tmp_path_factory):
    return coco_api(coco_archives, "train", tmp_path_factory.mktemp("ann"))


def test_official_archive_names_and_layout(coco_archives):
    assert sorted(p.name for p in coco_archives.iterdir()) == [
        "annotations_trainval2017.zip", "train2017.zip", "val2017.zip"]
    annotations = zipfile.ZipFile(coco_archives / "annotations_trainval2017.zip").namelist()
    assert set(annotations) == {"annotations/instances_train2017.json", "annotations/instances_val2017.json"}
    for split in ("train", "val"):
        names = zipfile.ZipFile(coco_archives / f"{split}2017.zip").namelist()
        assert names and all(n.startswith(f"{split}2017/") and n.endswith(".jpg") for n in names)


def test_every_annotation_decodes_to_its_bbox_and_area(train_api):
    assert train_api.getAnnIds()
    for ann in train_api.loadAnns(train_api.getAnnIds()):
        mask = train_api.annToMask(ann)
        ys, xs = np.nonzero(mask)
        assert mask.sum() == ann["area"]
        assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == pytest.approx(ann["bbox"])


def test_images_match_their_records(train_api, coco_archives):
    archive = zipfile.ZipFile(coco_archives / "train2017.zip")
    modes, sizes = set(), set()
    for record in train_api.loadImgs(train_api.getImgIds()):
        image = Image.open(io.BytesIO(archive.read(f"train2017/{record['file_name']}")))
        assert image.format == "JPEG" and image.size == (record["width"], record["height"])
        assert record["file_name"] == f"{record['id']:012d}.jpg"
        modes.add(image.mode)
        sizes.add(image.size)
    assert {"RGB", "L"} <= modes, "some images must be grayscale"
    assert len(sizes) > 1


def test_variety_crowds_and_overlaps(train_api):
    anns = train_api.loadAnns(train_api.getAnnIds())
    assert len({a["category_id"] for a in anns}) >= 10
    crowds = [a for a in anns if a["iscrowd"]]
    assert crowds and all(isinstance(a["segmentation"]["counts"], list) for a in crowds)
    assert all(isinstance(a["segmentation"], list) for a in anns if not a["iscrowd"])
    assert len(train_api.getCatIds()) == 80

    def boxes_overlap(a, b):
        (ax, ay, aw, ah), (bx, by, bw, bh) = a["bbox"], b["bbox"]
        return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah

    overlapping = sum(
        boxes_overlap(a, b)
        for img in train_api.getImgIds()
        for i, a in enumerate(train_api.loadAnns(train_api.getAnnIds(imgIds=img)))
        for b in train_api.loadAnns(train_api.getAnnIds(imgIds=img))[i + 1:]
    )
    assert overlapping > 0


def test_same_seed_same_bytes(tiny, tmp_path):
    write_synthetic_coco(tmp_path / "a", tiny.download.coco.synthetic, seed=3)
    write_synthetic_coco(tmp_path / "b", tiny.download.coco.synthetic, seed=3)
    for name in ("annotations_trainval2017.zip", "train2017.zip", "val2017.zip"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    json_a = json.loads(zipfile.ZipFile(tmp_path / "a/annotations_trainval2017.zip").read("annotations/instances_val2017.json"))
    assert json_a["images"]
