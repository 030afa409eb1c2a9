"""MS-COCO-IC: prepared masks are the pycocotools decoding of the recorded annotation and crop."""

import json
import zipfile

import cv2
import numpy as np
import pytest

from pipeline.data import coco_ic
from pipeline.data.images import TooManyCorruptImagesError
from pipeline.io.archive import SafeZip
from tests.conftest import coco_api


@pytest.fixture(scope="module")
def val_api(coco_archives, tmp_path_factory):
    return coco_api(coco_archives, "val", tmp_path_factory.mktemp("ann"))


def _build(coco_archives, cfg, images_zip=None, max_corrupt_share=0.0):
    with SafeZip(coco_archives / "annotations_trainval2017.zip") as annotations:
        categories = coco_ic.select_categories(coco_ic.load_instances(annotations, "train"), cfg)
        with SafeZip(images_zip or coco_archives / "val2017.zip") as images:
            return categories, coco_ic.build_split(annotations, images, "val", categories, cfg,
                                                   np.random.default_rng(0), max_corrupt_share)


@pytest.fixture(scope="module")
def prepared(coco_archives, tiny):
    return _build(coco_archives, tiny.prepare.coco_ic)


def test_masks_equal_pycocotools_decoding(prepared, val_api, tiny):
    categories, split = prepared
    size = tiny.prepare.coco_ic.image_size
    assert len(split.labels) > 0
    assert split.images.shape == (len(split.labels), size, size, 3) and split.images.dtype == np.uint8
    for record, mask, label in zip(split.records, split.masks, split.labels):
        ann = val_api.loadAnns(record["annotation_id"])[0]
        x0, y0, x1, y1 = record["crop_box"]
        expected = cv2.resize(val_api.annToMask(ann)[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(mask, expected)
        assert categories[label]["id"] == ann["category_id"] == val_api.getCatIds(catNms=[record["class_name"]])[0]
        assert record["image_id"] == ann["image_id"]


def test_filters_hold_on_every_sample(prepared, val_api, tiny):
    cfg = tiny.prepare.coco_ic
    categories, split = prepared
    kept = {c["id"] for c in categories}
    for record in split.records:
        ann = val_api.loadAnns(record["annotation_id"])[0]
        assert ann["iscrowd"] == 0 and ann["area"] >= cfg.min_area
        x0, y0, x1, y1 = record["crop_box"]
        x, y, w, h = ann["bbox"]
        assert x0 <= x and y0 <= y and x + w <= x1 + 1 and y + h <= y1 + 1  # the instance lies in its crop
        crop_area = (x1 - x0) * (y1 - y0)
        for other in val_api.loadAnns(val_api.getAnnIds(imgIds=ann["image_id"])):
            if other["category_id"] in kept and other["category_id"] != ann["category_id"]:
                covered = val_api.annToMask(other)[y0:y1, x0:x1].sum()
                assert covered <= cfg.max_other_overlap * crop_area


def test_top_categories_by_frequency(coco_archives, tiny):
    train = json.loads(zipfile.ZipFile(coco_archives / "annotations_trainval2017.zip").read(
        "annotations/instances_train2017.json"))
    counts = {}
    for ann in train["annotations"]:
        if not ann["iscrowd"]:
            counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
    chosen = coco_ic.select_categories(train, tiny.prepare.coco_ic)
    assert len(chosen) == tiny.prepare.coco_ic.num_categories
    threshold = min(counts[c["id"]] for c in chosen)
    assert all(count <= threshold for cid, count in counts.items() if cid not in {c["id"] for c in chosen})


def test_unknown_category_name_is_named(coco_archives, tiny):
    cfg = tiny.prepare.coco_ic.model_copy(update={"categories": ["person", "unicorn"]})
    with pytest.raises(ValueError, match="unicorn"):
        _build(coco_archives, cfg)


def test_category_scope_contains_instance_mask(coco_archives, tiny):
    cfg = tiny.prepare.coco_ic.model_copy(update={"mask_scope": "category"})
    _, by_category = _build(coco_archives, cfg)
    _, by_instance = _build(coco_archives, tiny.prepare.coco_ic)
    assert [r["annotation_id"] for r in by_category.records] == [r["annotation_id"] for r in by_instance.records]
    assert np.all(by_category.masks >= by_instance.masks)


def _with_truncated_images(coco_archives, tmp_path, truncate):
    """A copy of val2017.zip whose members named in `truncate` (or all, for None) lose two thirds."""
    source = zipfile.ZipFile(coco_archives / "val2017.zip")
    broken = tmp_path / "val2017.zip"
    with zipfile.ZipFile(broken, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(name, data[: len(data) // 3] if truncate is None or name in truncate else data)
    return broken


def test_truncated_image_is_skipped_and_named(coco_archives, tiny, tmp_path, caplog, prepared):
    _, clean = prepared
    victim = clean.records[0]["source_file"]
    broken = _with_truncated_images(coco_archives, tmp_path, {victim})
    _, split = _build(coco_archives, tiny.prepare.coco_ic, images_zip=broken, max_corrupt_share=0.5)
    assert [s["file"] for s in split.skipped] == [victim] and victim in caplog.text
    lost = sum(r["source_file"] == victim for r in clean.records)
    assert len(split.labels) == len(clean.labels) - lost


def test_too_many_corrupt_images_fail(coco_archives, tiny, tmp_path):
    broken = _with_truncated_images(coco_archives, tmp_path, None)
    with pytest.raises(TooManyCorruptImagesError, match="max_corrupt_share"):
        _build(coco_archives, tiny.prepare.coco_ic, images_zip=broken, max_corrupt_share=0.1)
