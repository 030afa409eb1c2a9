"""`python -m stages.download` and `stages.prepare` on the tiny profile: outputs a user relies on."""

import json
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import run


def test_download_writes_official_names(workdir):
    assert sorted(p.name for p in (workdir / "data/download/coco").iterdir()) == [
        "annotations_trainval2017.zip", "source.json", "train2017.zip", "val2017.zip"]
    assert sorted(p.name for p in (workdir / "data/download/gtsrb").iterdir()) == [
        "GTSRB_Final_Test_GT.zip", "GTSRB_Final_Test_Images.zip", "GTSRB_Final_Training_Images.zip", "source.json"]
    record = json.loads((workdir / "data/download/coco/source.json").read_text())
    assert {entry["source"] for entry in record.values()} == {"synthetic"}


@pytest.mark.parametrize("dataset", ["coco_ic", "gtsrb"])
def test_prepare_outputs(workdir, dataset):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    size = params["prepare"][dataset]["image_size"]
    for split in ("train", "val"):
        folder = workdir / "data/prepare" / dataset / split
        images, masks = np.load(folder / "images.npy"), np.load(folder / "masks.npy")
        randoms, labels = np.load(folder / "random_masks.npy"), np.load(folder / "labels.npy")
        count = len(labels)
        assert count > 0 and images.shape == (count, size, size, 3) and images.dtype == np.uint8
        assert masks.shape == randoms.shape == (count, size, size) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1} and labels.dtype == np.int64
        np.testing.assert_array_equal(masks.reshape(count, -1).sum(1), randoms.reshape(count, -1).sum(1))
        index = json.loads((folder / "index.json").read_text())
        meta = json.loads((folder / "meta.json").read_text())
        assert len(index) == count and all({"source_file", "class_name"} <= set(r) for r in index)
        assert [meta["class_names"][label] for label in labels] == [r["class_name"] for r in index]
        assert sum(meta["counts_per_class"].values()) == count and meta["num_skipped"] == 0
        assert meta["mean_mask_coverage"] == pytest.approx(masks.mean())
    preview = Image.open(workdir / "data/prepare" / dataset / "preview.png")
    assert preview.format == "PNG" and preview.width > 4 * size


def test_bad_params_fail_with_the_key_path(workdir, tmp_path):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["prepare"]["gtsrb"]["image_size"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(params))
    result = run([sys.executable, "-m", "stages.prepare", "gtsrb", "--params", str(tmp_path / "bad.yaml")],
                 workdir, check=False)
    assert result.returncode != 0 and "prepare.gtsrb.image_size" in result.stderr


def test_unknown_dataset_argument(workdir):
    result = run([sys.executable, "-m", "stages.prepare", "cifar10"], workdir, check=False)
    assert result.returncode != 0 and "cifar10" in result.stderr
