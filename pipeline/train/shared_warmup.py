"""Shared clean warm-ups: the training state after the warm-up epochs, stored once per warm-up identity.

The warm-up (FitSettings.warmup_epochs of clean training) does not depend on the recipe that follows it,
so classifiers that differ only in recipe, options or total epochs go through the same warm-up. A natural
classifier is all warm-up (`warmup_length`): it is the warm-up of its adversarial twins whose warmup_epochs equals
its epochs, so the demo trains each clean model once, not once as a classifier and again as a warm-up. Every
epoch reseeds from (seed, epoch), so continuing from a stored warm-up gives the same weights, metrics and
snapshots as training it again: the store is a memo, safe to delete, keyed (by the caller) on everything
that determines the warm-up.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from pipeline.io.atomic import replace_folder, write_json
from pipeline.train.state import STATE

log = logging.getLogger(__name__)


def warmup_length(recipe: str, epochs: int, warmup_epochs: int) -> int:
    """The clean epochs a run starts with: all of them for the natural recipe, else `warmup_epochs`."""
    return epochs if recipe == "natural" else warmup_epochs


def store(state_dir: Path, warmup: Path) -> None:
    """Keep `state_dir` (a resume state saved right after the last warm-up epoch) as the warm-up `warmup`."""
    replace_folder(state_dir, warmup)


def restore(warmup: Path, state_dir: Path, fingerprint: str) -> bool:
    """Make the stored warm-up `warmup` the resume state of a run with `fingerprint`; False if none is stored."""
    try:
        meta = json.loads((warmup / STATE).read_text())
    except (OSError, ValueError):
        return False
    shutil.rmtree(state_dir, ignore_errors=True)
    shutil.copytree(warmup, state_dir)
    write_json(state_dir / STATE, {**meta, "fingerprint": fingerprint})
    log.info("continuing from the shared warm-up %s (%d epochs)", warmup, meta["epoch"])
    return True
