"""A held-out part of a training split, for tuning a recipe's weights without looking at the test images.

Images that share a source are held out together, so that near-duplicates do not sit on both sides: a
GTSRB track (30 frames of one physical sign; the file `TTTTT_IIIII.ppm` is frame IIIII of track TTTTT)
or a COCO image (every crop cut from it, whatever its category). A source belongs to the class of its first
sample; per class, a seeded `share` of its sources is held out, at least one where the class has two or
more, so that every class is tuned on.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath

import numpy as np


def source_group(entry: dict, dataset: str) -> str:
    """The source an index.json entry comes from: its GTSRB track, or its COCO image."""
    path = PurePosixPath(entry["source_file"])
    if dataset == "gtsrb":
        return f"{path.parent}/{path.stem.split('_')[0]}"
    return str(path)


def holdout_indices(index: list[dict], labels: np.ndarray, dataset: str, share: float, seed: int) -> np.ndarray:
    """Sorted sample indices held out: per class, round(share · sources) of its sources (≥ 1 if it has ≥ 2), whole."""
    if not 0 < share < 1:
        raise ValueError(f"holdout share must be in (0, 1), got {share}")
    if len(index) != len(labels):
        raise ValueError(f"index.json lists {len(index)} samples, labels.npy {len(labels)}")
    samples: dict[str, list[int]] = defaultdict(list)
    for i, entry in enumerate(index):
        samples[source_group(entry, dataset)].append(i)
    sources_of: dict[int, list[str]] = defaultdict(list)
    for source, members in samples.items():
        sources_of[int(labels[members[0]])].append(source)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in sorted(sources_of):
        sources = sorted(sources_of[label])
        count = min(len(sources) - 1, max(1, round(share * len(sources)))) if len(sources) > 1 else 0
        for source in rng.permutation(sources)[:count]:
            held.extend(samples[source])
    return np.sort(np.asarray(held, dtype=np.int64))
