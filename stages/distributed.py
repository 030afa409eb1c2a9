"""Several processes under torchrun (issue 20 §3): an attack stage splits its units of work over the ranks.

`torchrun --nproc_per_node N -m stages.attack_classifier <name>` (likewise attack_vit, attack_detr): every rank
builds the same list of units, computes its share (every N-th, costliest first) into the stage's run store
(stages/progress.py) and waits for the others; rank 0 then writes the outputs as one process does, reading every
unit from the store. attack_classifier's and attack_vit's unit is an attack run (one attack, or objective ×
optimiser × placement, over all images: its batches stay whole); attack_detr's is one batch of (image, patch side ×
objective) items (pipeline/evaluation/detr_runs.py). A unit seeds its own generator and attacks the batches of one
process, so the outputs are the same bytes (tests/stages: 2 CPU processes), and a stage has more units (12-40 runs,
hundreds of DETR batches at paper scale) than a node has GPUs.

Without torchrun (no WORLD_SIZE) every helper here is a no-op. The ranks meet through torch.distributed's gloo
backend (a barrier, no tensors), so the same code waits on CPU and GPU machines.

Independent stages at once (`dvc queue start -j N`, or several `dvc exp run --temp`): `claim_gpu` gives each stage
process the first GPU no other stage process on the machine holds (an exclusive lock file per GPU, released when
the process ends), so N queue workers on N GPUs do not all land on GPU 0.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch.distributed as dist

from stages.logs import log

Made = TypeVar("Made")
WAIT = timedelta(days=2)          # a rank may wait this long for the slowest one (an attack run takes hours)
_held: list = []                  # the open lock file of the claimed GPU, kept for the process's life


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _barrier() -> None:
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=WAIT)
    dist.barrier()


def rank_zero_first(make: Callable[[], Made]) -> Made:
    """`make()` on rank 0, then on the others (a run store is emptied or created once, before any rank uses it)."""
    if world_size() == 1:
        return make()
    made = make() if rank() == 0 else None
    _barrier()
    return made if rank() == 0 else make()


def share_units(units: dict[str, tuple[Callable[[], object], float]]) -> bool:
    """`units`: name -> (compute the unit and store it, its relative cost). Under torchrun this rank computes its
    share and waits for every rank; True where the caller goes on to write the outputs (rank 0, or a single
    process)."""
    if world_size() == 1:
        return True
    ordered = sorted(units, key=lambda name: -units[name][1])
    mine = ordered[rank()::world_size()]
    log.info("rank %d of %d: %d of %d attack unit(s)", rank(), world_size(), len(mine), len(units))
    for name in mine:
        units[name][0]()
    _barrier()
    dist.destroy_process_group()
    return rank() == 0


def claim_gpu(count: int, folder: Path | None = None) -> int:
    """The index of the first of `count` GPUs whose lock in `folder` (ATTNROBUST_GPU_LOCKS, default
    <tmp>/attnrobust-gpus) no other live process holds, now held by this one; GPU 0 when every one is taken."""
    folder = Path(folder or os.environ.get("ATTNROBUST_GPU_LOCKS", Path(tempfile.gettempdir()) / "attnrobust-gpus"))
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        lock = open(folder / f"gpu{index}.lock", "w")    # noqa: SIM115 (held open: the lock lives with the process)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _held.append(lock)
        return index
    log.warning("all %d GPUs are held by other attnrobust stages: sharing GPU 0", count)
    return 0
