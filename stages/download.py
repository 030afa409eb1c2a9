"""Stage `download@<coco|gtsrb|scenes>`: the official archives, fetched or generated, under their official names.

`download.source: official` fetches each `download.<ds>.files` entry (resumable, verified); archives
already in place (downloaded before, or put there by hand) are verified and kept. `synthetic` writes
look-alike archives with the same names, layout and formats. `source.json` records which is which, so
switching source never mixes the two. `scenes` (the demo detector's COCO-format detection scenes) has no official
archives: it is generated under either source.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import COCO_ARCHIVES, DOWNLOAD_DATASETS, Params
from pipeline.data.synthetic_coco import write_synthetic_coco
from pipeline.data.synthetic_gtsrb import write_synthetic_gtsrb
from pipeline.io.atomic import write_json
from pipeline.io.download import download, verify_checksum
from stages.common import DATA, log, run_stage, stage_args

SOURCE_RECORD = "source.json"


def _recorded_source(folder: Path) -> dict:
    path = folder / SOURCE_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def fetch_official(dataset: str, folder: Path, params: Params) -> dict:
    """Download every missing archive of `dataset`; keep present ones that verify."""
    cfg = getattr(params.download, dataset)
    record = _recorded_source(folder)
    for name, remote in cfg.files.items():
        dest = folder / name
        if dest.exists() and record.get(name, {}).get("source") != "synthetic":
            verify_checksum(dest, remote.checksum, label=f"{dest} (already present: delete it to download afresh)")
            log.info("%s: present, kept%s", name, "" if remote.checksum else " (no checksum to verify)")
        else:
            dest.unlink(missing_ok=True)
            download(remote.url, dest, remote.checksum, params.download.retries, params.download.timeout_s)
    return {name: {"source": "official", "url": remote.url} for name, remote in cfg.files.items()}


def generate_synthetic(dataset: str, folder: Path, params: Params) -> dict:
    cfg = getattr(params.download, dataset)
    writer = {"coco": write_synthetic_coco, "gtsrb": write_synthetic_gtsrb, "scenes": write_synthetic_coco}[dataset]
    writer(folder, cfg.synthetic, params.seed)
    return {name: {"source": "synthetic"} for name in (COCO_ARCHIVES if dataset == "scenes" else cfg.files)}


def main() -> None:
    args, params = stage_args(__doc__.splitlines()[0], DOWNLOAD_DATASETS)
    folder = DATA / "download" / args.item
    folder.mkdir(parents=True, exist_ok=True)
    official = params.download.source == "official" and args.item != "scenes"
    make = fetch_official if official else generate_synthetic
    write_json(folder / SOURCE_RECORD, make(args.item, folder, params))


if __name__ == "__main__":
    run_stage(main)
