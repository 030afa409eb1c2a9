"""What the resumable attack stages share (issue 20 §4): the store of their finished attack units (attack runs;
attack_detr's batches) in `<output folder>/.progress/` (pipeline/io/run_store.py), valid for one fingerprint of the
code, params, model and images; an interrupted stage reloads those units and computes only the rest."""

from __future__ import annotations

from pathlib import Path

from pipeline.io.download import file_digest
from pipeline.io.run_store import RunStore
from pipeline.train.state import fingerprint, library_digest
from stages.distributed import rank_zero_first
from stages.logs import log


def run_store(out: Path, stage_file: str, model: Path, *parts: object) -> RunStore:
    """The store for `out`; `model` (a file or a folder) and `parts` (params, image indices) are what the units depend
    on besides the loaded code."""
    files = sorted(p for p in Path(model).rglob("*") if p.is_file()) if Path(model).is_dir() else [Path(model)]
    identity = fingerprint(library_digest(), Path(stage_file).read_text(), *parts, *map(file_digest, files))
    store = rank_zero_first(lambda: RunStore(Path(out) / ".progress", identity))
    if store.done():
        log.info("resuming: %d finished attack unit(s) in %s", store.done(), store.folder)
    return store
