"""Read members straight from a zip archive, refusing members that could escape a folder."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError


class UnsafeArchiveError(InputError):
    """An archive holds a member with an absolute path or a `..` component."""


def _is_unsafe(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


class SafeZip:
    """A read-only zip whose member names were all checked when it was opened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{self.path}: not a readable zip archive ({exc}); a truncated or corrupt download? "
                             f"Delete it and rerun its download stage") from exc
        bad = [name for name in self._zip.namelist() if _is_unsafe(name)]
        if bad:
            self._zip.close()
            raise UnsafeArchiveError(f"{self.path}: refusing member {bad[0]!r} (absolute path or '..')")

    def names(self) -> list[str]:
        return [info.filename for info in self._zip.infolist() if not info.is_dir()]

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except KeyError:
            raise InputError(f"{self.path}: no member {name!r}") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_member(archive: zipfile.ZipFile, name: str, data: bytes | str, compress: bool = True) -> None:
    """Write a member with a fixed timestamp, so the same content gives a byte-identical archive."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)
