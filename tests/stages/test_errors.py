"""Errors a user can cause end a stage with a few lines naming the file, key or sample and what to do, exit status
2 and no traceback; `--debug` or ATTNROBUST_DEBUG=1 brings the traceback back (issue 19 §4)."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile

import pytest
import torch
import yaml

from tests.helpers import copy_project, run

ANNOTATIONS = "annotations_trainval2017.zip"


def assert_readable(result, *phrases: str) -> None:
    """Failed with exit status 2, a short message holding every phrase, no traceback."""
    assert result.returncode == 2, result.stderr
    message = result.stderr[result.stderr.index("error: "):]
    assert "Traceback" not in result.stderr and len(message.splitlines()) <= 4, result.stderr
    for phrase in phrases:
        assert phrase in message, (phrase, message)


@pytest.fixture
def coco_copy(workdir, tmp_path):
    """A scratch project whose COCO download is a copy of the tiny profile's, free to spoil."""
    project = copy_project(tmp_path)
    shutil.copytree(workdir / "data/download/coco", project / "data/download/coco")
    return project


def rewrite_annotations(archive, edit) -> None:
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    name = "annotations/instances_train2017.json"
    instances = json.loads(members[name])
    edit(instances)
    members[name] = json.dumps(instances).encode()
    with zipfile.ZipFile(archive, "w") as target:
        for member, data in members.items():
            target.writestr(member, data)


def test_an_annotation_without_bbox_is_named(coco_copy):
    archive = coco_copy / "data/download/coco" / ANNOTATIONS
    rewrite_annotations(archive, lambda instances: instances["annotations"][3].pop("bbox"))
    result = run([sys.executable, "-m", "stages.prepare", "coco_ic"], coco_copy, check=False)
    assert_readable(result, f"{ANNOTATIONS}:annotations/instances_train2017.json", "annotations[3]", "lacks bbox")


def test_an_annotation_of_a_missing_image_is_named(coco_copy):
    archive = coco_copy / "data/download/coco" / ANNOTATIONS
    rewrite_annotations(archive, lambda instances: instances["annotations"][0].update(image_id=-7))
    result = run([sys.executable, "-m", "stages.prepare", "coco_ic"], coco_copy, check=False)
    assert_readable(result, "image_id -7", "`images` lacks")


def test_a_truncated_archive_says_to_download_again(coco_copy):
    archive = coco_copy / "data/download/coco/train2017.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 3])
    result = run([sys.executable, "-m", "stages.prepare", "coco_ic"], coco_copy, check=False)
    assert_readable(result, "train2017.zip", "not a readable zip archive", "rerun its download stage")


def test_debug_shows_the_traceback(coco_copy):
    archive = coco_copy / "data/download/coco/train2017.zip"
    archive.write_bytes(b"not a zip")
    for args, env in ((["--debug"], {}), ([], {"ATTNROBUST_DEBUG": "1"})):
        result = run([sys.executable, "-m", "stages.prepare", "coco_ic", *args], coco_copy, check=False, **env)
        assert result.returncode != 0 and "Traceback" in result.stderr and "InputError" in result.stderr


def test_an_unknown_model_id_offline_says_how_to_fetch_it(workdir, tmp_path):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    name, entry = next(iter(params["train_vit"].items()))
    params["train_vit"] = {name: dict(entry, init="pretrained", pretrained="no-such-org/no-such-vit", config=None,
                                      image_size=None, epochs=0)}
    params["attack_vit"]["targets"] = {}
    (tmp_path / "offline.yaml").write_text(yaml.safe_dump(params))
    result = run([sys.executable, "-m", "stages.train_vit", name, "--params", str(tmp_path / "offline.yaml")], workdir,
                 check=False, HF_HOME=str(tmp_path / "empty_cache"))
    assert_readable(result, "no-such-org/no-such-vit", "HF_HUB_OFFLINE", "hf download no-such-org/no-such-vit")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a usable GPU")
@pytest.mark.parametrize(("device", "accelerator", "phrases"), [
    ("cuda", "optional", ("ATTNROBUST_DEVICE='cuda'", "no usable GPU")),
    ("tpu", "optional", ("ATTNROBUST_DEVICE='tpu'", "expected auto, cpu, cuda or cuda:N")),
    ("auto", "required", ("accelerator: required", "ATTNROBUST_DEVICE=cpu")),
])
def test_an_unusable_device_is_named(workdir, tmp_path, device, accelerator, phrases):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["accelerator"] = accelerator
    (tmp_path / "device.yaml").write_text(yaml.safe_dump(params))
    name = next(iter(params["classifiers"]))
    result = run([sys.executable, "-m", "stages.train_classifier", name, "--params", str(tmp_path / "device.yaml")],
                 workdir, check=False, ATTNROBUST_DEVICE=device)
    assert_readable(result, *phrases)


def test_required_accelerator_yields_to_an_explicit_cpu(monkeypatch):
    """`accelerator: required` with ATTNROBUST_DEVICE=cpu runs on the CPU: the person asked for it."""
    from stages.common import pick_device

    monkeypatch.setenv("ATTNROBUST_DEVICE", "cpu")
    assert pick_device("required") == torch.device("cpu")
