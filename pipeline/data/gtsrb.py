"""GTSRB with foreground masks: the sign's outline (or its ROI box) drawn in the ROI (methods.md P1).

train = GTSRB_Final_Training_Images.zip (Images/<class>/GT-<class>.csv); val = the official test set,
images from GTSRB_Final_Test_Images.zip and labels from GT-final_test.csv in GTSRB_Final_Test_GT.zip.
The whole image (sign and its border) is resized to S×S; the mask is drawn at source resolution, then
resized with nearest neighbour like every other mask.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from pipeline.config import GtsrbPrepare
from pipeline.data.gtsrb_signs import GTSRB_CLASS_NAMES, NUM_GTSRB_CLASSES, sign_shape
from pipeline.data.images import SkipLog, resize_pair
from pipeline.data.prepared import PreparedSplit, subsample
from pipeline.data.shapes import shape_mask
from pipeline.io.archive import SafeZip

TRAIN_CSV = re.compile(r"(?:.*/)?Final_Training/Images/(\d{5})/GT-\1\.csv$")
TEST_IMAGES = "GTSRB/Final_Test/Images"
TEST_GT_CSV = "GT-final_test.csv"
ROI_FIELDS = ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2")


@dataclass(frozen=True)
class GtsrbRow:
    """One CSV row: the image member in its archive, its size, its ROI (inclusive) and its class."""

    member: str
    width: int
    height: int
    roi: tuple[int, int, int, int]
    class_id: int


def parse_csv(text: str, folder: str, where: str) -> list[GtsrbRow]:
    """Rows of a GTSRB `GT-*.csv` (semicolon-separated); a malformed row is an error naming it."""
    rows = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text), delimiter=";"), start=2):
        try:
            roi = tuple(int(row[key]) for key in ROI_FIELDS)
            parsed = GtsrbRow(f"{folder}/{row['Filename']}", int(row["Width"]), int(row["Height"]), roi,
                              int(row["ClassId"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where} line {line}: malformed GTSRB row {row} ({exc})") from exc
        if not 0 <= parsed.class_id < NUM_GTSRB_CLASSES:
            raise ValueError(f"{where} line {line}: ClassId {parsed.class_id} outside 0..{NUM_GTSRB_CLASSES - 1}")
        rows.append(parsed)
    return rows


def training_rows(archive: SafeZip) -> list[GtsrbRow]:
    rows = []
    for name in sorted(archive.names()):
        if TRAIN_CSV.match(name):
            rows += parse_csv(archive.read(name).decode(), name.rsplit("/", 1)[0], f"{archive.path}:{name}")
    if not rows:
        raise ValueError(f"{archive.path}: no Final_Training/Images/<class>/GT-<class>.csv found")
    return rows


def test_rows(ground_truth: SafeZip) -> list[GtsrbRow]:
    return parse_csv(ground_truth.read(TEST_GT_CSV).decode(), TEST_IMAGES, f"{ground_truth.path}:{TEST_GT_CSV}")


def roi_problem(row: GtsrbRow, height: int, width: int) -> str | None:
    x1, y1, x2, y2 = row.roi
    if (height, width) != (row.height, row.width):
        return f"size {width}x{height} differs from the CSV's {row.width}x{row.height}"
    if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
        return f"ROI {row.roi} outside the {width}x{height} image"
    return None


def build_split(images: SafeZip, rows: list[GtsrbRow], split: str, cfg: GtsrbPrepare, rng: np.random.Generator,
                max_corrupt_share: float) -> PreparedSplit:
    """Resized images, sign masks and labels for `rows`, reading each image from `images`."""
    rows = subsample(rows, getattr(cfg.max_samples, split), rng)
    skips, samples = SkipLog(f"gtsrb/{split}"), []
    for row in tqdm(rows, desc=f"GTSRB {split}", unit="img"):
        pixels = skips.read_rgb(images, row.member)
        if pixels is None:
            continue
        height, width = pixels.shape[:2]
        problem = roi_problem(row, height, width)
        if problem:
            skips.add(row.member, problem)
            continue
        shape = sign_shape(row.class_id) if cfg.mask == "shape" else "box"
        mask = shape_mask(shape, row.roi, height, width)
        image, mask = resize_pair(pixels, mask, cfg.image_size)
        record = {"source_file": row.member, "roi": list(row.roi), "class_name": GTSRB_CLASS_NAMES[row.class_id]}
        samples.append((image, mask, row.class_id, record))
    skips.check(len(rows), max_corrupt_share)
    return PreparedSplit.from_samples(samples, cfg.image_size, GTSRB_CLASS_NAMES, skips.skipped)
