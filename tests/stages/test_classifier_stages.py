"""`train_classifier` and `attack_classifier` on the tiny profile: outputs checked by recomputing them."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.data.dataset import SampleTensors, seeded_subset
from pipeline.data.holdout import holdout_indices
from pipeline.evaluation.accuracy import correct_flags
from pipeline.evaluation.intervals import wilson_interval
from pipeline.models.checkpoint import load_classifier
from tests.helpers import (TWO_RANKS, assert_close_weights, interrupted_then_resumed, on_two_ranks, project_with_data,
                           run, trained_on_two_ranks)

NAMES = ("gtsrb_natural_foreground", "coco_ic_madry_none")


@pytest.fixture(scope="module")
def trained(workdir):
    for name in params(workdir)["classifiers"]:         # all of the tiny profile's: the report reads every one
        run([sys.executable, "-m", "stages.train_classifier", name], workdir)
        run([sys.executable, "-m", "stages.attack_classifier", name], workdir)
        run([sys.executable, "-m", "stages.analyze_attention", name], workdir)
    return workdir


def params(workdir) -> dict:
    return yaml.safe_load((workdir / "params.yaml").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_training_outputs_rebuild_the_model_and_match_its_metrics(trained, name):
    folder = trained / "data/train_classifier" / name
    entry = params(trained)["classifiers"][name]
    model, config = load_classifier(folder)
    assert config["mask"] == entry["mask"] and config["model"] == entry["model"]
    val = SampleTensors(trained / "data/prepare" / entry["dataset"] / "val")
    accuracy = correct_flags(model, val, 64, torch.device("cpu"), entry["mask"]).float().mean().item()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epoch"] == entry["epochs"] and metrics["val_accuracy"] == pytest.approx(accuracy)
    curves = {p.stem: p.read_text().splitlines() for p in (folder / "plots/metrics").glob("*.tsv")}
    assert set(curves) == {"train_loss", "train_accuracy", "val_accuracy", "val_pgd_accuracy"}
    assert all(len(lines) == entry["epochs"] + 1 for lines in curves.values())        # header + one row per epoch


@pytest.mark.parametrize("name", NAMES)
def test_attack_metrics_agree_with_the_per_sample_flags(trained, name):
    folder = trained / "data/attack_classifier" / name
    p = params(trained)
    entry, cfg = p["classifiers"][name], p["attack_classifier"]
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = list(csv.DictReader((folder / "per_sample.csv").open()))
    val = trained / "data/prepare" / entry["dataset"] / "val"
    count = len(np.load(val / "labels.npy"))
    assert [int(r["index"]) for r in rows] == seeded_subset(count, cfg["num_images"], p["seed"]).tolist()

    model, _ = load_classifier(trained / "data/train_classifier" / name)
    samples = SampleTensors(val, [int(r["index"]) for r in rows])
    clean = correct_flags(model, samples, 64, torch.device("cpu"), entry["mask"])
    assert [int(r["clean_correct"]) for r in rows] == clean.int().tolist()

    for label, attacks in metrics.items():
        if not label.startswith(("eps_", "l2_eps_")):
            continue
        columns = [f"{label}/{a}" for a in attacks if a != "worst_case"]
        for attack, summary in attacks.items():
            success = np.array([int(r[f"{label}/{attack}"]) for r in rows])
            hits = int((1 - success).sum())
            assert summary["accuracy"] == pytest.approx(hits / len(rows))
            assert (summary["ci95_low"], summary["ci95_high"]) == pytest.approx(wilson_interval(hits, len(rows)))
            assert np.all(success >= 1 - clean.int().numpy())            # clean mistakes count as broken
        worst = np.array([int(r[f"{label}/worst_case"]) for r in rows])
        assert np.array_equal(worst, np.max([[int(r[c]) for r in rows] for c in columns], axis=0))
    assert set(metrics["audit"]) == {"passed", "zero_gradient_share", "pgd20_pgd100_gap", "blackbox_wins",
                                     "large_eps_accuracy", "forward_change"}
    assert (folder / "images/adversarial.png").stat().st_size > 0
    assert (folder / "plots/accuracy_vs_eps.csv").read_text().startswith("eps_255,accuracy")


def test_failing_audit_fails_the_stage_when_asked(trained):
    name = "coco_ic_madry_none"
    p = params(trained)
    clean = json.loads((trained / "data/attack_classifier" / name / "metrics.json").read_text())["clean"]["accuracy"]
    assert clean > 0, "the check below needs a classifier with some correct samples"
    # A "large" ε of 0.01/255 cannot bring accuracy to 0: the large-ε check fails.
    p["attack_classifier"]["audit"].update(fail_stage=True, large_eps_255=0.01, max_large_eps_accuracy=0.0)
    (trained / "strict.yaml").write_text(yaml.safe_dump(p))
    result = run([sys.executable, "-m", "stages.attack_classifier", name, "--params", "strict.yaml"], trained, check=False)
    assert result.returncode != 0 and "large_eps_accuracy" in result.stderr
    metrics = json.loads((trained / "data/attack_classifier" / name / "metrics.json").read_text())
    assert metrics["audit"]["large_eps_accuracy"]["pass"] is False


def test_unknown_classifier_is_named(workdir):
    result = run([sys.executable, "-m", "stages.train_classifier", "nope"], workdir, check=False)
    assert result.returncode != 0 and "nope" in result.stderr and "gtsrb_natural_foreground" in result.stderr


def test_report_shows_a_failed_audit_in_red(trained):
    name = "coco_ic_madry_none"
    p = params(trained)
    p["attack_classifier"]["audit"].update(large_eps_255=0.01, max_large_eps_accuracy=0.0)   # fails, as above
    p["attack_vit"]["targets"], p["train_detr"] = {}, {}   # the patch attacks have their own stage tests
    (trained / "loose.yaml").write_text(yaml.safe_dump(p))
    run([sys.executable, "-m", "stages.attack_classifier", name, "--params", "loose.yaml"], trained)
    result = run([sys.executable, "-m", "stages.report", "--params", "loose.yaml"], trained)
    assert f"{name}: gradient-masking audit FAILED" in result.stderr
    report = json.loads((trained / "data/report/details.json").read_text())
    assert report["classifiers"][name]["audit_passed"] is False
    headline = json.loads((trained / "data/report/metrics.json").read_text())
    assert headline["audit"] == {"failed": [v["audit_passed"] for v in report["classifiers"].values()].count(False),
                                 "classifiers": len(report["classifiers"])}
    rows = {row.split("</td>")[0].removeprefix("<tr><td>"): row
            for row in (trained / "data/report/report.html").read_text().split("</table>")[0].split("</tr>")
            if row.startswith("<tr><td>")}                   # the first table: accuracy and audit
    assert "<td class='fail'>large_eps_accuracy" in rows[name]
    assert ("class='fail'" in rows["gtsrb_natural_foreground"]) != report["classifiers"]["gtsrb_natural_foreground"]["audit_passed"]
    attacked = json.loads((trained / "data/attack_classifier/coco_ic_aad_none/metrics.json").read_text())
    row = dict(report["defenses"]["coco_ic_aad_none"])
    paired = row.pop("vs_madry_worst_case")
    assert row == {"clean": attacked["clean"]["accuracy"],
                   **{k: attacked["eps_4_255"][k]["accuracy"] for k in ("fgsm", "pgd3", "cw3", "worst_case")}}
    robust = {}                                  # per image: 1 if no attack broke it (per_sample.csv, by hand)
    for classifier in ("coco_ic_aad_none", name):
        with open(trained / "data/attack_classifier" / classifier / "per_sample.csv") as table:
            robust[classifier] = {r["index"]: 1 - int(r["eps_4_255/worst_case"]) for r in csv.DictReader(table)}
    differences = [robust["coco_ic_aad_none"][i] - robust[name][i] for i in robust[name]]
    assert paired["n"] == len(differences) and paired["mean"] == pytest.approx(sum(differences) / len(differences))
    assert paired["low"] <= paired["mean"] <= paired["high"]
    footer = (trained / "data/report/report.md").read_text().split("## Provenance")[1]
    tiny = yaml.safe_load((trained / "configs/tiny.yaml").read_text())["attack_classifier"]["audit"]
    assert "| profile | tiny, with" in footer and "| code | unknown (not a git checkout) |" in footer
    assert f"attack_classifier.audit.large_eps_255: 0.01 (profile: {tiny['large_eps_255']})" in footer
    claim, attention = report["claims"]          # the tiny profile's claims: the same pair, then its Grad-CAM IoU
    assert (claim["better"], claim["than"], claim["mean"]) == ("coco_ic_aad_none", name, paired["mean"])
    assert claim["verdict"].startswith(("reproduced", "not reproduced", "not separated"))
    iou = {}
    for classifier in ("coco_ic_aad_none", name):
        with open(trained / "data/analyze_attention" / classifier / "per_sample.csv") as table:
            iou[classifier] = {r["index"]: float(r["iou_gt"]) for r in csv.DictReader(table) if r["iou_gt"] != "nan"}
    both = set(iou[name]) & set(iou["coco_ic_aad_none"])
    assert attention["measure"] == "iou_gt" and attention["n"] == len(both) > 0
    assert attention["mean"] == pytest.approx(sum(iou["coco_ic_aad_none"][i] - iou[name][i] for i in both) / len(both))
    page = (trained / "data/report/report.html").read_text()
    figures = sorted(path.name for path in (trained / "data/report/figures").iterdir())
    assert page.count("src='data:image/png;base64,") == len(figures) and "defense_curves.png" in figures


def test_attention_recipe_logs_its_loss_terms_per_epoch(workdir):
    p = params(workdir)
    entry = p["classifiers"]["gtsrb_natural_foreground"]
    entry.update(recipe="aad", options={"base": "alp"}, epochs=2)
    p["classifiers"], p["report"]["defense_table"], p["attack_vit"]["targets"] = {"gtsrb_aad": entry}, [], {}
    p["report"]["claims"] = []
    (workdir / "aad.yaml").write_text(yaml.safe_dump(p))
    run([sys.executable, "-m", "stages.train_classifier", "gtsrb_aad", "--params", "aad.yaml"], workdir)
    curves = {path.stem: path.read_text().splitlines() for path in (workdir / "data/train_classifier/gtsrb_aad/plots/metrics").glob("*.tsv")}
    for term in ("train_classification", "train_rectification", "train_preservation", "train_loss"):
        assert len(curves[term]) == 3, term          # header + one row per epoch


@pytest.mark.parametrize("name", NAMES)
def test_attention_analysis_tables_match_its_per_sample_rows(trained, name):
    run([sys.executable, "-m", "stages.analyze_attention", name], trained)
    folder = trained / "data/analyze_attention" / name
    metrics = json.loads((folder / "metrics.json").read_text())
    cfg, entry = params(trained)["analyze_attention"], params(trained)["classifiers"][name]
    val = trained / "data/prepare" / entry["dataset"] / "val"
    samples = SampleTensors(val, seeded_subset(len(SampleTensors(val)), cfg["num_images"], params(trained)["seed"]))
    model, _ = load_classifier(trained / "data/train_classifier" / name)
    correct = correct_flags(model, samples, 64, torch.device("cpu"), entry["mask"])
    rows = list(csv.DictReader((folder / "per_sample.csv").open()))
    assert metrics["correct"] == int(correct.sum()) == len(rows)
    assert {int(float(r["index"])) for r in rows} == set(samples.indices[correct.numpy()].tolist())
    succeed = [r for r in rows if float(r["success"]) == 1]
    assert metrics["table1"]["succeed"]["count"] == len(succeed)
    defined = [float(r["iou_gt"]) for r in succeed if r["iou_gt"] != "nan"]      # nan: an all-zero CAM
    if defined:
        assert metrics["table1"]["succeed"]["mean_iou_gt"] == pytest.approx(np.mean(defined), abs=1e-6)
    if succeed:
        empty = np.mean([float(r["clean_cam_empty"]) for r in succeed])
        assert metrics["table1"]["succeed"]["empty_cam_share"] == pytest.approx(empty, abs=1e-6)
    assert all(r[f"iou_cells_{n}"] == "nan" or 0 <= float(r[f"iou_cells_{n}"]) <= 1 for r in rows for n in cfg["cells"])
    assert (folder / "images/attention.png").stat().st_size > 0
    epochs = params(trained)["classifiers"][name]["epochs"]                 # tiny: checkpoint_every 1
    kept = sorted(p.name for p in (trained / "data/train_classifier" / name / "checkpoints").iterdir())
    assert kept == [f"epoch_{e:03d}.safetensors" for e in range(1, epochs + 1)]
    assert (folder / "images/cam_epochs.png").stat().st_size > 0


def test_two_torchrun_ranks_analyse_the_attention_one_process_analyses(trained, tmp_path):
    """analyze_attention under torchrun on all 86 validation images in batches of 4: rank r explains batches r,
    r + 2, …, rank 0 gathers and writes the bytes one process writes with the same params (per-sample rows in one
    process's order)."""
    name = "gtsrb_natural_foreground"
    p = params(trained)
    p["analyze_attention"].update(num_images=86, batch_size=4)
    written = {}
    for how in ("alone", "torchrun"):
        project = project_with_data(tmp_path / how, trained, "prepare", f"train_classifier/{name}")
        (project / "params.yaml").write_text(yaml.safe_dump(p))
        command = [sys.executable, "-m", "stages.analyze_attention", name]
        log = run([*TWO_RANKS, *command[1:]] if how == "torchrun" else command, project, ATTNROBUST_DEVICE="cpu",
                  OMP_NUM_THREADS=str(torch.get_num_threads())).stderr        # each rank: one process's threads
        out = project / "data/analyze_attention" / name
        written[how] = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert "rank 0 of 2: 44 of 86 images" in log and "rank 1 of 2: 42 of 86 images" in log, log
    rows = [int(float(row["index"])) for row in csv.DictReader(written["alone"][Path("per_sample.csv")].decode().splitlines())]
    by_rank = [[i for i in rows if i // 4 % 2 == rank] for rank in (0, 1)]          # all images: index = position
    assert by_rank[1] and min(by_rank[1]) < max(by_rank[0])          # rank 0's rows then rank 1's are not in order
    assert sorted(written["torchrun"]) == sorted(written["alone"]) and len(written["alone"]) == 4
    for path, content in written["alone"].items():
        assert written["torchrun"][path] == content, path


def test_a_tuning_run_trains_without_its_holdout_and_reports_on_it(workdir, tmp_path):
    """holdout_share: the held-out sources leave the training set; the curves and metrics are on them, by name."""
    project = project_with_data(tmp_path, workdir, "prepare")
    p = params(workdir)
    entry = {**p["classifiers"]["coco_ic_madry_none"], "holdout_share": 0.3}
    p["classifiers"]["tuned"] = entry
    (project / "params.yaml").write_text(yaml.safe_dump(p))
    run([sys.executable, "-m", "stages.train_classifier", "tuned"], project)

    train = workdir / "data/prepare/coco_ic/train"
    index, labels = json.loads((train / "index.json").read_text()), np.load(train / "labels.npy")
    held = [i for i in range(len(index)) if index[i]["source_file"] in {index[j]["source_file"] for j in
                                                                        holdout_indices(index, labels, "coco_ic", 0.3, p["seed"])}]
    assert 0 < len(held) < len(index)
    folder = project / "data/train_classifier/tuned"
    model, _ = load_classifier(folder)
    accuracy = correct_flags(model, SampleTensors(train, held), 64, torch.device("cpu"), "none").float().mean().item()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["holdout_accuracy"] == pytest.approx(accuracy) and "val_accuracy" not in metrics
    assert {p.stem for p in (folder / "plots/metrics").glob("*.tsv")} >= {"holdout_accuracy", "holdout_pgd_accuracy"}


def test_attack_images_and_seed_retrain_only_when_training_depends_on_them(workdir, tmp_path):
    """`attack_images` is read by attack_classifier alone: changing it finds the finished run and trains nothing.
    `seed` is training's own: another seed trains again, from another initialisation."""
    project = project_with_data(tmp_path, workdir, "prepare")
    p = params(workdir)
    p["classifiers"]["row"] = {**p["classifiers"]["coco_ic_madry_none"], "epochs": 2, "warmup_epochs": 0}
    folder = project / "data/train_classifier/row"

    def train(**changes) -> tuple[str, dict]:
        p["classifiers"]["row"].update(changes)
        (project / "params.yaml").write_text(yaml.safe_dump(p))
        log = run([sys.executable, "-m", "stages.train_classifier", "row"], project).stderr
        return log, load_classifier(folder)[0].state_dict()

    _, first = train()
    log, same = train(attack_images=3)
    assert "resuming after epoch 2 of 2" in log and "epoch 1/2" not in log
    assert all(torch.equal(first[k], same[k]) for k in first)
    log, reseeded = train(seed=p["seed"] + 1)
    assert "epoch 1/2" in log and any(not torch.equal(first[k], reseeded[k]) for k in first)


@pytest.mark.parametrize("how", [interrupted_then_resumed, on_two_ranks], ids=["killed", "torchrun"])
def test_a_resumed_or_torchrun_attack_writes_what_one_uninterrupted_process_writes(trained, tmp_path, how):
    """attack_classifier killed after its first finished attack run and rerun (it reuses the stored runs), or split
    over two torchrun ranks: its per-sample flags and metrics equal those of one uninterrupted process (the `trained` fixture's; not the classifier
    the audit test attacks again with other params)."""
    name = "coco_ic_aad_none"
    project = project_with_data(tmp_path, trained, "prepare", f"train_classifier/{name}")
    out = project / "data/attack_classifier" / name
    how(project, "attack_classifier", name, out / ".progress")
    for file in ("per_sample.csv", "metrics.json"):
        assert (out / file).read_bytes() == (trained / "data/attack_classifier" / name / file).read_bytes(), file


def test_two_torchrun_ranks_train_the_classifier_one_process_trains(trained, tmp_path):
    """train_classifier under torchrun, two gloo ranks with half of every global batch each (Madry: PGD from each
    sample's own start, BatchNorm over the global batch): rank 0 alone logs and writes, and the weights, checkpoints
    and metrics are those of one process (the `trained` fixture's) within float rounding."""
    name = "coco_ic_madry_none"
    project = project_with_data(tmp_path, trained, "prepare")
    trained_on_two_ranks(project, "train_classifier", name, params(trained)["classifiers"][name]["epochs"])
    produced, reference = (folder / "data/train_classifier" / name for folder in (project, trained))
    assert_close_weights(produced / "model.safetensors", reference / "model.safetensors")
    saved = sorted(path.name for path in (reference / "checkpoints").iterdir())
    assert sorted(path.name for path in (produced / "checkpoints").iterdir()) == saved
    for checkpoint in saved:
        assert_close_weights(produced / "checkpoints" / checkpoint, reference / "checkpoints" / checkpoint)
    mine, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (produced, reference))
    assert mine == pytest.approx(theirs, abs=1e-4)
