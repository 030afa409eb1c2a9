"""`train_vit` and `attack_vit` on the tiny profile: outputs checked against an independent recomputation."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.data.dataset import SampleTensors, seeded_subset
from pipeline.evaluation.intervals import wilson_interval
from pipeline.models.checkpoint import load_classifier
from pipeline.models.vit import load_vit
from tests.helpers import (assert_close_weights, interrupted_then_resumed, on_two_ranks, project_with_data, run,
                           trained_on_two_ranks)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vit_params(workdir) -> dict:
    return yaml.safe_load((workdir / "params.yaml").read_text())


@pytest.fixture(scope="module")
def attacked(workdir, vit_params):
    """Every train_vit model and patch target of the tiny profile (the CNN baseline trained first)."""
    for name, target in vit_params["attack_vit"]["targets"].items():
        stage = "train_vit" if target["source"] == "train_vit" else "train_classifier"
        if not (workdir / "data" / stage / name).exists():
            run([sys.executable, "-m", f"stages.{stage}", name], workdir)
        run([sys.executable, "-m", "stages.attack_vit", name], workdir)
    return workdir


def predictions(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(1)


def test_trained_vit_reloads_and_matches_its_metrics(attacked, vit_params):
    name, entry = next(iter(vit_params["train_vit"].items()))
    folder = attacked / "data/train_vit" / name
    vit = load_vit(folder / "model", CPU)
    meta = json.loads((attacked / "data/prepare" / entry["dataset"] / "train/meta.json").read_text())
    assert [vit.hf_model.config.id2label[i] for i in range(len(meta["class_names"]))] == meta["class_names"]
    assert vit.size == (entry["image_size"],) * 2 and vit.token_size == entry["config"]["patch_size"]
    val = SampleTensors(attacked / "data/prepare" / entry["dataset"] / "val")
    accuracy = (predictions(vit, val.images.float() / 255) == val.labels).float().mean().item()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epoch"] == entry["epochs"] and metrics["val_accuracy"] == pytest.approx(accuracy)
    assert {p.stem for p in (folder / "plots/metrics").glob("*.tsv")} >= {"train_loss", "val_accuracy"}


def test_pretrained_init_resizes_the_head_and_keeps_the_backbone(workdir, vit_params, tmp_path):
    """A local DeiT folder with 3 classes, used as it is (epochs 0) on a 10-class dataset; its processor resizes
    past the model's input and centre-crops, as DeiT-B's does (256 → 224): the input is the crop size."""
    from transformers import DeiTConfig, DeiTForImageClassification, DeiTImageProcessor

    config = DeiTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=3)
    torch.manual_seed(0)
    source = DeiTForImageClassification(config)
    source.save_pretrained(tmp_path / "deit")
    DeiTImageProcessor(size={"height": 36, "width": 36}, crop_size={"height": 32, "width": 32}, image_mean=[0.5] * 3,
                       image_std=[0.25] * 3).save_pretrained(tmp_path / "deit")
    raw = json.loads(json.dumps(vit_params))
    entry = dict(raw["train_vit"]["coco_ic_vit"], init="pretrained", pretrained=str(tmp_path / "deit"), config=None,
                 image_size=None, epochs=0)
    raw["train_vit"] = {"coco_ic_deit": entry}
    raw["attack_vit"]["targets"] = {}
    (workdir / "pretrained.yaml").write_text(yaml.safe_dump(raw))
    run([sys.executable, "-m", "stages.train_vit", "coco_ic_deit", "--params", "pretrained.yaml"], workdir)

    deit = load_vit(workdir / "data/train_vit/coco_ic_deit/model", CPU)
    assert deit.prefix_tokens == 2 and deit.hf_model.config.num_labels == 10 and deit.size == (32, 32)
    kept = source.state_dict()
    for key, value in deit.hf_model.state_dict().items():
        if not key.startswith("classifier"):
            assert torch.equal(value, kept[key]), key
    val = SampleTensors(workdir / "data/prepare/coco_ic/val")
    metrics = json.loads((workdir / "data/train_vit/coco_ic_deit/metrics.json").read_text())
    accuracy = (predictions(deit, val.images.float() / 255) == val.labels).float().mean().item()
    assert metrics == {"epoch": 0, "val_accuracy": pytest.approx(accuracy)}


def test_patch_metrics_are_what_the_saved_patches_do(attacked, vit_params):
    """Pasting each run's saved patches into the images by hand and classifying them gives the success flags,
    and metrics.json's accuracies and intervals are those of the flags."""
    cfg, seed = vit_params["attack_vit"], vit_params["seed"]
    for name, target in cfg["targets"].items():
        folder = attacked / "data/attack_vit" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        rows = list(csv.DictReader((folder / "per_sample.csv").open()))
        patches = load_file(str(folder / "patches.safetensors"))
        val = attacked / "data/prepare" / target["dataset"] / "val"
        indices = seeded_subset(len(np.load(val / "labels.npy")), cfg["num_images"], seed)
        assert [int(r["index"]) for r in rows] == indices.tolist()
        samples = SampleTensors(val, indices)
        images = samples.images.float() / 255
        if target["source"] == "train_vit":
            model = load_vit(attacked / "data/train_vit" / name / "model", CPU)
            side = model.token_size * cfg["patch_tokens"]
            expected_runs = len(cfg["objectives"])
        else:
            model, _ = load_classifier(attacked / "data/train_classifier" / name)
            side = target["patch_px"]
            expected_runs = sum(1 for o in cfg["objectives"] if o == "ce")
        assert len(patches) == expected_runs * len(cfg["optimisers"]) * len(cfg["placements"])
        clean = predictions(model, images) == samples.labels
        assert [int(r["clean_correct"]) for r in rows] == clean.int().tolist()
        assert metrics["clean"]["accuracy"] == pytest.approx(clean.float().mean().item())
        for run_name, patch in patches.items():
            placement, optimiser, objective = run_name.split("/")
            assert patch.shape == (len(rows), 3, side, side) and patch.min() >= 0 and patch.max() <= 1
            patched = images.clone()
            for i, r in enumerate(rows):
                top, left = int(r[f"{placement}/row"]) * side, int(r[f"{placement}/col"]) * side
                patched[i, :, top:top + side, left:left + side] = patch[i]
            success = predictions(model, patched) != samples.labels
            assert [int(r[f"{run_name}/success"]) for r in rows] == success.int().tolist(), run_name
            summary = metrics["runs"][placement][optimiser][objective]["robust"]
            hits = int((~success).sum())
            assert summary["accuracy"] == pytest.approx(hits / len(rows))
            assert (summary["ci95_low"], summary["ci95_high"]) == pytest.approx(wilson_interval(hits, len(rows)))
            iterations = np.array([int(r[f"{run_name}/iterations"]) for r in rows])
            assert np.all((iterations >= 0) == success.numpy()) and iterations.max() <= cfg["steps"]
            if placement == "fixed":
                assert all((int(r["fixed/row"]), int(r["fixed/col"])) == tuple(cfg["cell"]) for r in rows)
        assert (folder / "images/patched.png").stat().st_size > 0 and (folder / "images/curves.png").stat().st_size > 0
        assert (folder / "images/cls_attention.png").exists() == (target["source"] == "train_vit")
        curves = list((folder / "plots/curves").glob("*.csv"))
        assert len(curves) == len(patches)


@pytest.mark.parametrize("how", [interrupted_then_resumed, on_two_ranks], ids=["killed", "torchrun"])
def test_a_resumed_or_torchrun_patch_attack_writes_the_same_outputs(attacked, vit_params, tmp_path, how):
    """attack_vit killed after its first finished objective × optimiser × placement run and rerun (it reuses the
    stored runs), or split over two torchrun ranks: the flags, metrics and patches of one uninterrupted process."""
    name = next(n for n, t in vit_params["attack_vit"]["targets"].items() if t["source"] == "train_vit")
    project = project_with_data(tmp_path, attacked, "prepare", f"train_vit/{name}")
    out = project / "data/attack_vit" / name
    how(project, "attack_vit", name, out / ".progress")
    for file in ("per_sample.csv", "metrics.json", "patches.safetensors"):
        assert (out / file).read_bytes() == (attacked / "data/attack_vit" / name / file).read_bytes(), file


def test_two_torchrun_ranks_train_the_vit_one_process_trains(attacked, vit_params, tmp_path):
    """train_vit under torchrun, two gloo ranks with half of every global batch each (augmented): rank 0 alone logs
    and writes a model folder whose weights and metrics are one process's (the `attacked` fixture's) within float
    rounding."""
    name, entry = next(iter(vit_params["train_vit"].items()))
    project = project_with_data(tmp_path, attacked, "prepare")
    trained_on_two_ranks(project, "train_vit", name, entry["epochs"])
    produced, reference = (folder / "data/train_vit" / name for folder in (project, attacked))
    assert_close_weights(produced / "model/model.safetensors", reference / "model/model.safetensors")
    mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (produced, reference))
    assert mine == pytest.approx(theirs, abs=1e-4)
