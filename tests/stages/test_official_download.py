"""`download.source: official` end to end: archives served on 127.0.0.1, fetched, verified, prepared."""

import hashlib
import json
import sys

import pytest
import yaml

from pipeline.config import GTSRB_ARCHIVES
from tests.helpers import copy_project, run, served


@pytest.fixture
def served_archives(gtsrb_archives):
    with served(gtsrb_archives) as base_url:
        yield base_url, gtsrb_archives


def _official_params(folder, base_url, archives, corrupt_checksum=False):
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["download"]["source"] = "official"
    params["download"]["retries"] = 0
    for name in GTSRB_ARCHIVES:
        digest = hashlib.sha256((archives / name).read_bytes()).hexdigest()
        if corrupt_checksum:
            digest = "0" * 64
        params["download"]["gtsrb"]["files"][name] = {"url": f"{base_url}/{name}", "checksum": f"sha256:{digest}"}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def test_official_source_fetches_verifies_and_replaces_synthetic(served_archives, tmp_path):
    base_url, archives = served_archives
    folder = copy_project(tmp_path)
    run([sys.executable, "-m", "stages.download", "gtsrb"], folder)  # synthetic first, from the tiny profile
    for name in GTSRB_ARCHIVES:
        (folder / "data/download/gtsrb" / name).write_bytes(b"stale synthetic bytes")
    _official_params(folder, base_url, archives)
    run([sys.executable, "-m", "stages.download", "gtsrb"], folder)
    for name in GTSRB_ARCHIVES:
        assert (folder / "data/download/gtsrb" / name).read_bytes() == (archives / name).read_bytes()
    record = json.loads((folder / "data/download/gtsrb/source.json").read_text())
    assert {entry["source"] for entry in record.values()} == {"official"}
    run([sys.executable, "-m", "stages.prepare", "gtsrb"], folder)
    assert (folder / "data/prepare/gtsrb/val/masks.npy").exists()


def test_checksum_mismatch_fails_the_stage_and_keeps_nothing(served_archives, tmp_path):
    base_url, archives = served_archives
    folder = copy_project(tmp_path)
    _official_params(folder, base_url, archives, corrupt_checksum=True)
    result = run([sys.executable, "-m", "stages.download", "gtsrb"], folder, check=False)
    assert result.returncode != 0 and ".zip from http://127.0.0.1" in result.stderr and "expected 000" in result.stderr
    assert not any(p.name in GTSRB_ARCHIVES for p in (folder / "data/download/gtsrb").iterdir())
