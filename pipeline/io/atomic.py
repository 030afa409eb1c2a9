"""Atomic writes: every output appears whole under its final name or not at all."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest` in one rename."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json(dest: Path, obj: Any) -> None:
    write_bytes(dest, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def csv_bytes(header: list[str], rows: list[list]) -> bytes:
    """A CSV file's bytes (DVC plots read these)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def write_npy(dest: Path, array: np.ndarray) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def replace_folder(source: Path, dest: Path) -> None:
    """Make `dest` a copy of folder `source`: copied beside it first, then swapped in with renames."""
    source, dest = Path(source), Path(dest)
    staging = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    retired = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if dest.exists():
        os.replace(dest, retired)
    os.replace(staging, dest)
    shutil.rmtree(retired, ignore_errors=True)
