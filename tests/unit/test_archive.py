import zipfile

import pytest

from pipeline.errors import InputError
from pipeline.io.archive import SafeZip, UnsafeArchiveError


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


@pytest.mark.parametrize("bad", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:/evil.txt"])
def test_escaping_members_are_refused(tmp_path, bad):
    path = _zip(tmp_path / "a.zip", ["ok/file.txt", bad])
    with pytest.raises(UnsafeArchiveError, match="refusing member"):
        SafeZip(path)


def test_members_are_read_in_place(tmp_path):
    with SafeZip(_zip(tmp_path / "a.zip", ["dir/file.txt"])) as archive:
        assert archive.names() == ["dir/file.txt"] and archive.read("dir/file.txt") == b"x"
        with pytest.raises(InputError, match="missing.txt"):
            archive.read("missing.txt")
    assert not (tmp_path / "dir").exists()


def test_not_a_zip_is_named(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.zip"):
        SafeZip(tmp_path / "junk.zip")

