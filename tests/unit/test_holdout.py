"""The tuning hold-out: whole sources held out, a share per class, never the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.holdout import holdout_indices, source_group


def gtsrb_index(classes: int, tracks: int, frames: int) -> tuple[list[dict], np.ndarray]:
    index, labels = [], []
    for c in range(classes):
        for t in range(tracks):
            for f in range(frames):
                index.append({"source_file": f"GTSRB/Final_Training/Images/{c:05d}/{t:05d}_{f:05d}.ppm"})
                labels.append(c)
    return index, np.array(labels)


def test_gtsrb_tracks_are_held_out_whole_and_per_class():
    index, labels = gtsrb_index(classes=4, tracks=6, frames=5)
    held = holdout_indices(index, labels, "gtsrb", 0.2, seed=0)
    # round(0.2 · 6) = 1 track of 5 frames per class
    assert len(held) == 4 * 5 and np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    for c in range(4):
        tracks = {index[i]["source_file"].rsplit("/", 1)[1][:5] for i in held if labels[i] == c}
        assert len(tracks) == 1
    assert held.tolist() == holdout_indices(index, labels, "gtsrb", 0.2, seed=0).tolist()
    assert held.tolist() != holdout_indices(index, labels, "gtsrb", 0.2, seed=1).tolist()


def test_same_track_number_in_two_classes_are_two_sources():
    a = {"source_file": "GTSRB/Final_Training/Images/00000/00003_00001.ppm"}
    b = {"source_file": "GTSRB/Final_Training/Images/00001/00003_00001.ppm"}
    assert source_group(a, "gtsrb") != source_group(b, "gtsrb")


def test_coco_crops_of_one_image_stay_together_and_single_source_classes_are_kept():
    index = [{"source_file": f"train2017/{i // 3:012d}.jpg"} for i in range(12)]   # 4 images × 3 crops
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 1])       # image 2 has a crop of class 2; class 1: image 3 only
    held = holdout_indices(index, labels, "coco_ic", 0.5, seed=3)
    images = {index[i]["source_file"] for i in held}
    assert len(held) == 3 * len(images)                           # whole images, the class-2 crop included if held
    assert len(images) == 2 and "train2017/000000000003.jpg" not in images   # round(0.5 · 3) = 2 of class 0's 3


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_share_out_of_range_is_refused(share):
    index, labels = gtsrb_index(1, 2, 1)
    with pytest.raises(ValueError, match="holdout share"):
        holdout_indices(index, labels, "gtsrb", share, seed=0)
