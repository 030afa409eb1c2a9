"""Resumable, verified HTTP downloads.

A download streams into `<name>.part` beside the destination, resumes it with an HTTP Range request
after an interruption, retries with exponential backoff, checks free disk space first, verifies the
checksum and only then renames the file to its final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import InputError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
FREE_SPACE_MARGIN_BYTES = 64 << 20


class DownloadError(InputError):
    """A download could not be completed; the message says what to do instead."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected checksum."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, checksum: str | None, label: str | None = None) -> None:
    """Raise `ChecksumError` unless `path` matches `checksum` ('md5:…' / 'sha256:…'; None skips)."""
    if checksum is None:
        return
    algorithm, expected = checksum.split(":", 1)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(f"{label or path}: {algorithm} is {actual}, expected {expected}")


def _open(url: str, offset: int, timeout_s: float):
    request = urllib.request.Request(url, headers={"User-Agent": "attnrobust"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (scheme checked in config)


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed + FREE_SPACE_MARGIN_BYTES > free:
        raise DownloadError(f"not enough free space in {folder}: {needed / 2**30:.2f} GiB needed, "
                            f"{free / 2**30:.2f} GiB free")


def _stream_once(url: str, part: Path, timeout_s: float) -> None:
    """Append the rest of `url` to `part`, starting where `part` ends."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part file already holds every byte
            return
        raise
    with response:
        if offset and response.status != 206:  # server ignored Range: start over
            log.info("%s: server does not resume, restarting", part.name)
            offset = 0
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        if remaining is not None:
            _check_free_space(part.parent, remaining)
        total = offset + remaining if remaining is not None else None
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[: -len(".part")]
        ) as bar:
            received = 0
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if remaining is not None and received < remaining:
            raise ConnectionError(f"connection closed after {received} of {remaining} bytes")


def download(url: str, dest: Path, checksum: str | None, retries: int, timeout_s: float,
             backoff_s: float = 1.0) -> Path:
    """Download `url` to `dest`, resuming `dest.part` if present; return `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _stream_once(url, part, timeout_s)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            reason: object = exc
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            if attempt == retries:
                raise DownloadError(
                    f"could not download {url} ({getattr(exc, 'reason', exc)}) after {retries + 1} tries. "
                    f"Set `download.source: synthetic` in params.yaml to use the generated data, "
                    f"or place {dest.name} in {dest.parent}/ by hand."
                ) from exc
            reason = exc
        wait = backoff_s * 2**attempt
        log.warning("%s: %s; retrying in %.1fs (try %d of %d)", dest.name, reason, wait, attempt + 2, retries + 1)
        time.sleep(wait)
    try:
        verify_checksum(part, checksum, label=f"{dest.name} from {url}")
    except ChecksumError as exc:
        part.unlink()
        raise ChecksumError(f"{exc}; the download was removed, run again to fetch it afresh") from None
    os.replace(part, dest)
    return dest
