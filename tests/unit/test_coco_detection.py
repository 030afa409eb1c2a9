"""COCO detection images streamed from the archive (train_detr): the pixels PIL decodes, in DataLoader workers too,
and an unreadable image skipped, named once and counted against prepare.max_corrupt_share."""

import io
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pipeline.data.coco_detection import ArchiveImages, load_detection_index, readable_images
from pipeline.data.images import SkipLog, TooManyCorruptImagesError


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_images_are_the_archive_pixels_at_the_annotated_size(coco_archives, workers):
    index = load_detection_index(coco_archives, "train", None, 0)
    loader = DataLoader(ArchiveImages(index), batch_size=5, collate_fn=list, num_workers=workers)
    streamed = [image for batch in loader for image in batch]
    archive = zipfile.ZipFile(coco_archives / "train2017.zip")
    assert [image.position for image in streamed] == list(range(len(index.records))) and streamed
    for image, record in zip(streamed, index.records):
        expected = np.array(Image.open(io.BytesIO(archive.read(record.member))).convert("RGB"))
        assert image.problem == "" and image.member == record.member
        assert torch.equal(image.pixels, torch.from_numpy(expected).permute(2, 0, 1))
        assert image.pixels.shape[1:] == record.size


def test_an_unreadable_training_image_is_skipped_and_counted_once(coco_archives, tmp_path):
    folder = tmp_path / "coco"
    shutil.copytree(coco_archives, folder)
    index = load_detection_index(folder, "train", None, 0)
    broken = index.records[1].member
    with zipfile.ZipFile(coco_archives / "train2017.zip") as source, \
            zipfile.ZipFile(folder / "train2017.zip", "w") as target:
        for name in source.namelist():
            target.writestr(name, b"not a jpeg" if name == broken else source.read(name))
    images, total = ArchiveImages(index), len(index.records)
    skips = SkipLog("train")
    for _ in range(2):                                                    # two epochs meet it twice
        kept = readable_images([images[0], images[1], images[2]], skips, total, max_share=0.5)
        assert [image.position for image in kept] == [0, 2]
    assert [skipped["file"] for skipped in skips.skipped] == [broken]
    with pytest.raises(TooManyCorruptImagesError, match=broken):
        readable_images([images[1]], SkipLog("train"), total, max_share=0.0)
