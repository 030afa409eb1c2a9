"""The synthetic GTSRB archives follow the official layout: PPM files, `;`-separated GT CSVs, ROIs inside."""

import csv
import io
import re
import zipfile

from PIL import Image

from pipeline.data.synthetic_gtsrb import write_synthetic_gtsrb

HEADER = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"]


def _rows(archive, name):
    return list(csv.reader(io.StringIO(archive.read(name).decode()), delimiter=";"))


def _check_rows(archive, rows, folder, with_class):
    assert rows[0] == HEADER + (["ClassId"] if with_class else [])
    for row in rows[1:]:
        data = archive.read(f"{folder}/{row[0]}")
        assert data[:2] == b"P6"
        width, height, x1, y1, x2, y2 = map(int, row[1:7])
        assert Image.open(io.BytesIO(data)).size == (width, height)
        assert 0 <= x1 < x2 < width and 0 <= y1 < y2 < height
        assert min(x1, y1, width - 1 - x2, height - 1 - y2) >= 3  # a border around the sign, as in GTSRB


def test_training_archive(gtsrb_archives, tiny):
    archive = zipfile.ZipFile(gtsrb_archives / "GTSRB_Final_Training_Images.zip")
    csvs = sorted(n for n in archive.namelist() if n.endswith(".csv"))
    assert csvs == [f"GTSRB/Final_Training/Images/{c:05d}/GT-{c:05d}.csv" for c in range(43)]
    cfg = tiny.download.gtsrb.synthetic
    for name in csvs:
        rows = _rows(archive, name)
        folder = name.rsplit("/", 1)[0]
        class_id = int(folder[-5:])
        assert len(rows) - 1 == cfg.train_tracks_per_class * cfg.images_per_track
        assert all(int(r[7]) == class_id and re.fullmatch(r"\d{5}_\d{5}\.ppm", r[0]) for r in rows[1:])
        _check_rows(archive, rows, folder, with_class=True)


def test_test_archives(gtsrb_archives, tiny):
    images = zipfile.ZipFile(gtsrb_archives / "GTSRB_Final_Test_Images.zip")
    unlabelled = _rows(images, "GTSRB/Final_Test/Images/GT-final_test.test.csv")
    labelled = _rows(zipfile.ZipFile(gtsrb_archives / "GTSRB_Final_Test_GT.zip"), "GT-final_test.csv")
    assert len(labelled) - 1 == tiny.download.gtsrb.synthetic.test_images
    assert [r[:7] for r in labelled[1:]] == unlabelled[1:]
    _check_rows(images, unlabelled, "GTSRB/Final_Test/Images", with_class=False)
    assert {int(r[7]) for r in labelled[1:]} == set(range(43))


def test_same_seed_same_bytes(tiny, tmp_path):
    for folder in ("a", "b"):
        write_synthetic_gtsrb(tmp_path / folder, tiny.download.gtsrb.synthetic, seed=5)
    for name in ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip", "GTSRB_Final_Test_GT.zip"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
