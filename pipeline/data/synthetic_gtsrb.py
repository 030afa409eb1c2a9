"""Synthetic GTSRB: the three official archives with the official layout, file formats and CSVs.

Each of the 43 classes is drawn in the outline and colours of its family (gtsrb_signs.py) with a
per-class glyph (the speed for speed limits, class-seeded strokes otherwise), at varied size, lighting,
blur and background. As in GTSRB, the ROI leaves a border of 10% of the sign (at least 5 px) and
training images come in tracks of one sign seen growing nearer.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from pipeline.config import SyntheticGtsrb
from pipeline.data.gtsrb_signs import GTSRB_CLASS_NAMES, GTSRB_FAMILY, NUM_GTSRB_CLASSES, sign_shape
from pipeline.data.shapes import Box, shape_polygon, shrink_box
from pipeline.data.textures import cluttered_background, relight
from pipeline.io.archive import add_member
from pipeline.io.atomic import atomic_path

CSV_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2"
TRAIN_ROOT = "GTSRB/Final_Training/Images"
TEST_ROOT = "GTSRB/Final_Test/Images"
TEST_CSV = "GT-final_test.test.csv"
TEST_GT_CSV = "GT-final_test.csv"

RED, WHITE, BLUE, YELLOW, BLACK, GRAY = (200, 20, 30), (235, 235, 235), (20, 60, 170), (240, 190, 20), (20, 20, 20), (120, 120, 120)
# family -> (outer colour, inner colour, glyph colour, inner shrink)
FAMILY_COLOURS = {
    "prohibitory": (RED, WHITE, BLACK, 0.22), "derestriction": (GRAY, WHITE, GRAY, 0.08),
    "no_entry": (RED, RED, WHITE, 0.0), "mandatory": (WHITE, BLUE, WHITE, 0.08),
    "danger": (RED, WHITE, BLACK, 0.3), "yield": (RED, WHITE, WHITE, 0.3),
    "stop": (WHITE, RED, WHITE, 0.08), "priority": (WHITE, YELLOW, YELLOW, 0.3),
}


def _draw_glyph(draw: ImageDraw.ImageDraw, class_id: int, box: Box, colour: tuple[int, int, int]) -> None:
    """The class's own mark inside `box`: its speed as digits, or strokes seeded by the class id."""
    x1, y1, x2, y2 = shrink_box(box, 0.35)
    side = max(x2 - x1, 1.0)
    speed = re.fullmatch(r"speed limit (\d+)", GTSRB_CLASS_NAMES[class_id])
    if speed:
        font = ImageFont.load_default(size=max(int(side * 0.8), 6))
        draw.text(((x1 + x2) / 2, (y1 + y2) / 2), speed.group(1), fill=colour, font=font, anchor="mm")
        return
    strokes = np.random.default_rng(1000 + class_id).uniform(0, 1, size=(3, 4))
    width = max(int(side / 6), 1)
    for sx0, sy0, sx1, sy1 in strokes:
        draw.line((x1 + sx0 * side, y1 + sy0 * side, x1 + sx1 * side, y1 + sy1 * side), fill=colour, width=width)


def draw_sign(image: Image.Image, class_id: int, roi: Box) -> None:
    """Draw the sign of `class_id` so that its outline fills `roi` exactly (shapes.shape_polygon)."""
    family = GTSRB_FAMILY[class_id]
    outer, inner, glyph, shrink = FAMILY_COLOURS[family]
    shape = sign_shape(class_id)
    draw = ImageDraw.Draw(image)
    draw.polygon(shape_polygon(shape, roi), fill=outer)
    draw.polygon(shape_polygon(shape, shrink_box(roi, shrink)), fill=inner)
    if family == "derestriction":
        x1, y1, x2, y2 = shrink_box(roi, 0.3)
        draw.line((x1, y2, x2, y1), fill=BLACK, width=max(int((x2 - x1) / 8), 1))
    if family == "no_entry":
        x1, y1, x2, y2 = shrink_box(roi, 0.3)
        cy = (y1 + y2) / 2
        draw.rectangle((x1, cy - (y2 - y1) / 8, x2, cy + (y2 - y1) / 8), fill=glyph)
    elif family not in ("yield", "priority"):
        _draw_glyph(draw, class_id, shrink_box(roi, shrink), glyph)


def render_sample(rng: np.random.Generator, class_id: int, sign_side: int) -> tuple[Image.Image, Box]:
    """One photo of a sign: image and ROI (x1, y1, x2, y2, inclusive) in GTSRB's convention."""
    margin = max(5, round(0.1 * sign_side))
    width = sign_side + 2 * margin + int(rng.integers(0, 4))
    height = sign_side + 2 * margin + int(rng.integers(0, 4))
    x1, y1 = margin + int(rng.integers(-1, 2)), margin + int(rng.integers(-1, 2))
    roi = (x1, y1, x1 + sign_side - 1, y1 + sign_side - 1)
    image = cluttered_background(rng, height, width, clutter=int(rng.integers(2, 8)))
    draw_sign(image, class_id, roi)
    return relight(rng, image, brightness=(0.35, 1.3), blur_radius=1.2), roi


def _ppm(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    return buffer.getvalue()


def _row(name: str, image: Image.Image, roi: Box) -> str:
    return ";".join(str(v) for v in (name, image.width, image.height, *roi))


def write_training_archive(dest: Path, cfg: SyntheticGtsrb, seed: int) -> None:
    """GTSRB_Final_Training_Images.zip: Images/<class>/<track>_<image>.ppm and GT-<class>.csv."""
    rng = np.random.default_rng([seed, 0])
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for class_id in tqdm(range(NUM_GTSRB_CLASSES), desc="GTSRB train", unit="class"):
            folder = f"{TRAIN_ROOT}/{class_id:05d}"
            rows = [f"{CSV_HEADER};ClassId"]
            for track in range(cfg.train_tracks_per_class):
                near = int(rng.integers(cfg.sign_side.min, cfg.sign_side.max + 1))
                sides = np.linspace(max(cfg.sign_side.min, near * 0.6), near, cfg.images_per_track).round().astype(int)
                for index, side in enumerate(sides):
                    name = f"{track:05d}_{index:05d}.ppm"
                    image, roi = render_sample(rng, class_id, int(side))
                    add_member(archive, f"{folder}/{name}", _ppm(image))
                    rows.append(f"{_row(name, image, roi)};{class_id}")
            add_member(archive, f"{folder}/GT-{class_id:05d}.csv", "\r\n".join(rows) + "\r\n")


def write_test_archives(images_dest: Path, gt_dest: Path, cfg: SyntheticGtsrb, seed: int) -> None:
    """GTSRB_Final_Test_Images.zip (images + unlabelled CSV) and GTSRB_Final_Test_GT.zip (labels)."""
    rng = np.random.default_rng([seed, 1])
    rows, gt_rows = [CSV_HEADER], [f"{CSV_HEADER};ClassId"]
    with atomic_path(images_dest) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for index in tqdm(range(cfg.test_images), desc="GTSRB test", unit="img"):
            class_id = index % NUM_GTSRB_CLASSES if index < NUM_GTSRB_CLASSES else int(rng.integers(NUM_GTSRB_CLASSES))
            name = f"{index:05d}.ppm"
            image, roi = render_sample(rng, class_id, int(rng.integers(cfg.sign_side.min, cfg.sign_side.max + 1)))
            add_member(archive, f"{TEST_ROOT}/{name}", _ppm(image))
            rows.append(_row(name, image, roi))
            gt_rows.append(f"{_row(name, image, roi)};{class_id}")
        add_member(archive, f"{TEST_ROOT}/{TEST_CSV}", "\r\n".join(rows) + "\r\n")
    with atomic_path(gt_dest) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        add_member(archive, TEST_GT_CSV, "\r\n".join(gt_rows) + "\r\n")


def write_synthetic_gtsrb(folder: Path, cfg: SyntheticGtsrb, seed: int) -> None:
    write_training_archive(folder / "GTSRB_Final_Training_Images.zip", cfg, seed)
    write_test_archives(folder / "GTSRB_Final_Test_Images.zip", folder / "GTSRB_Final_Test_GT.zip", cfg, seed)
