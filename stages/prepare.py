"""Stage `prepare@<coco_ic|gtsrb>`: crops, foreground masks, random masks and a preview per dataset.

Writes `data/prepare/<ds>/{train,val}/` (images.npy, masks.npy, random_masks.npy, labels.npy,
index.json, meta.json) and `data/prepare/<ds>/preview.png`.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import PREPARED_DATASETS, Params
from pipeline.data import coco_ic, gtsrb
from pipeline.data.masks import random_masks
from pipeline.data.prepared import SPLITS, PreparedSplit
from pipeline.data.preview import preview_figure
from pipeline.evaluation.plotting import png
from pipeline.io.archive import SafeZip
from pipeline.io.atomic import write_bytes
from stages.common import DATA, log, run_stage, stage_args


def build_coco_ic(params: Params, rngs: dict[str, np.random.Generator]) -> dict[str, PreparedSplit]:
    cfg, folder = params.prepare.coco_ic, DATA / "download" / "coco"
    with SafeZip(folder / "annotations_trainval2017.zip") as annotations:
        categories = coco_ic.select_categories(coco_ic.load_instances(annotations, "train"), cfg)
        log.info("COCO-IC categories: %s", [c["name"] for c in categories])
        splits = {}
        for split in SPLITS:
            with SafeZip(folder / f"{split}2017.zip") as images:
                splits[split] = coco_ic.build_split(annotations, images, split, categories, cfg, rngs[split],
                                                    params.prepare.max_corrupt_share)
    return splits


def build_gtsrb(params: Params, rngs: dict[str, np.random.Generator]) -> dict[str, PreparedSplit]:
    cfg, folder = params.prepare.gtsrb, DATA / "download" / "gtsrb"
    share = params.prepare.max_corrupt_share
    with SafeZip(folder / "GTSRB_Final_Training_Images.zip") as train_images:
        train = gtsrb.build_split(train_images, gtsrb.training_rows(train_images), "train", cfg, rngs["train"], share)
    with SafeZip(folder / "GTSRB_Final_Test_GT.zip") as truth, SafeZip(folder / "GTSRB_Final_Test_Images.zip") as images:
        val = gtsrb.build_split(images, gtsrb.test_rows(truth), "val", cfg, rngs["val"], share)
    return {"train": train, "val": val}


def main() -> None:
    args, params = stage_args(__doc__.splitlines()[0], PREPARED_DATASETS)
    rngs = {split: np.random.default_rng([params.seed, index]) for index, split in enumerate(SPLITS)}
    splits = {"coco_ic": build_coco_ic, "gtsrb": build_gtsrb}[args.item](params, rngs)
    cfg = getattr(params.prepare, args.item)
    out = DATA / "prepare" / args.item
    for split, prepared in splits.items():
        randoms = random_masks(prepared.masks, cfg.random_mask, rngs[split])
        meta = prepared.write(out / split, randoms, cfg.random_mask)
        log.info("%s/%s: %d samples, mask coverage %.3f, %d images skipped", args.item, split,
                 meta["num_samples"], meta["mean_mask_coverage"], meta["num_skipped"])
        if split == "val":
            title = f"{args.item} validation samples: foreground and random masks ({cfg.random_mask})"
            write_bytes(out / "preview.png", png(preview_figure(prepared, randoms, params.prepare.preview_samples, title)))


if __name__ == "__main__":
    run_stage(main)
