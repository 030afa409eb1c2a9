"""GTSRB masks: sign outlines of the right area in the ROI, resized with the image."""

import math

import numpy as np
import pytest

from pipeline.data import gtsrb
from pipeline.data.gtsrb_signs import GTSRB_CLASS_NAMES, sign_shape
from pipeline.data.shapes import shape_mask
from pipeline.io.archive import SafeZip

# Area of each outline as a share of its bounding box (closed forms).
AREA_SHARE = {"circle": math.pi / 4, "triangle": 0.5, "inverted_triangle": 0.5, "diamond": 0.5,
              "octagon": 2 * (math.sqrt(2) - 1), "box": 1.0}


@pytest.mark.parametrize("shape", sorted(AREA_SHARE))
def test_shape_mask_area_matches_closed_form(shape):
    side = 400
    mask = shape_mask(shape, (50, 60, 50 + side - 1, 60 + side - 1), 520, 520)
    ys, xs = np.nonzero(mask)
    assert (ys.min(), xs.min(), ys.max(), xs.max()) == (60, 50, 60 + side - 1, 50 + side - 1)
    assert mask.sum() / side**2 == pytest.approx(AREA_SHARE[shape], abs=0.01)


def test_sign_families():
    assert sign_shape(14) == "octagon" and sign_shape(13) == "inverted_triangle" and sign_shape(12) == "diamond"
    assert sign_shape(18) == "triangle" and sign_shape(1) == "circle" and sign_shape(38) == "circle"
    assert len(GTSRB_CLASS_NAMES) == 43


@pytest.mark.parametrize("mask_kind", ["shape", "box"])
def test_prepared_masks_follow_the_roi(gtsrb_archives, tiny, mask_kind):
    cfg = tiny.prepare.gtsrb.model_copy(update={"mask": mask_kind})
    with SafeZip(gtsrb_archives / "GTSRB_Final_Training_Images.zip") as images:
        rows = gtsrb.training_rows(images)
        split = gtsrb.build_split(images, rows, "train", cfg, np.random.default_rng(0), 0.0)
    size = cfg.image_size
    assert split.images.shape == (len(rows), size, size, 3) and set(np.unique(split.masks)) <= {0, 1}
    by_file = {row.member: row for row in rows}
    for record, mask, label in zip(split.records, split.masks, split.labels):
        row = by_file[record["source_file"]]
        assert label == row.class_id and record["roi"] == list(row.roi)
        x1, y1, x2, y2 = row.roi
        share = AREA_SHARE[sign_shape(label) if mask_kind == "shape" else "box"]
        expected = share * (x2 - x1 + 1) * (y2 - y1 + 1) * size**2 / (row.width * row.height)
        assert mask.sum() == pytest.approx(expected, rel=0.3)  # nearest-neighbour resize of a small mask


def test_test_split_labels_come_from_the_ground_truth(gtsrb_archives, tiny):
    with SafeZip(gtsrb_archives / "GTSRB_Final_Test_GT.zip") as truth, \
            SafeZip(gtsrb_archives / "GTSRB_Final_Test_Images.zip") as images:
        rows = gtsrb.test_rows(truth)
        split = gtsrb.build_split(images, rows, "val", tiny.prepare.gtsrb, np.random.default_rng(0), 0.0)
    assert list(split.labels) == [row.class_id for row in rows]
    assert all(r["source_file"].startswith("GTSRB/Final_Test/Images/") for r in split.records)


def test_malformed_csv_row_is_named():
    text = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n00000.ppm;30;30;5;5;x;24;3\r\n"
    with pytest.raises(ValueError, match="GT-final_test.csv line 2"):
        gtsrb.parse_csv(text, "GTSRB/Final_Test/Images", "GT-final_test.csv")
