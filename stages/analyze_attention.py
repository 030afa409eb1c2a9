"""Stage `analyze_attention@<name>`: seed 002's attention analysis (§3, Tables 1–3) for one classifier.

On `num_images` seeded validation images: Grad-CAM of the true class on the clean images; the correctly
classified ones are attacked (`analyze_attention.attack`, default Step-LL) and the Grad-CAM of the
predicted class is taken on the adversarial images. Writes `data/analyze_attention/<name>/`:
metrics.json (Tables 1–3, pipeline/evaluation/attention_analysis.py), per_sample.csv,
images/attention.png (the seed's Figure 1: an attacked and a surviving image with both CAMs) and
images/cam_epochs.png (Figure 6: one image's CAM after each epoch kept in the classifier's checkpoints/).
Several GPUs: under `torchrun --nproc_per_node W` each rank explains every W-th batch (whole batches: the outputs
are one process's) and rank 0 gathers the per-sample results and writes.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from pipeline.attacks.base import Attack, frozen_eval, take
from pipeline.attention.gradcam import grad_cam
from pipeline.config import Classifier
from pipeline.data.dataset import PreparedDataset, SampleTensors, seeded_subset
from pipeline.evaluation.attention_analysis import per_sample, summarise
from pipeline.evaluation.figures import cam_epochs_figure, gradcam_figure, message_figure
from pipeline.evaluation.plotting import png
from pipeline.evaluation.suite import Evaluation, make_attack
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.models.checkpoint import load_classifier
from pipeline.train.data_parallel import DataParallel
from stages.common import DATA, entry_args, evaluated_model, log, pick_device, run_stage


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0])
    cfg, device = params.analyze_attention, pick_device(params.accelerator)
    model, _ = load_classifier(DATA / "train_classifier" / name, device)
    model, mask_mode = evaluated_model(entry, model)
    val = DATA / "prepare" / entry.dataset / "val"
    samples = SampleTensors(val, seeded_subset(len(PreparedDataset(val)), cfg.num_images, params.seed))
    ranks = DataParallel.from_environment(device)
    share = samples.batch_share(cfg.batch_size, ranks.rank, ranks.world)
    evaluation = Evaluation(model, mask_mode, share, cfg.batch_size, device, params.attack_classifier.step_ratio,
                            False, params.seed)
    attack = make_attack(evaluation, cfg.attack, cfg.eps_255 / 255)
    if ranks.world > 1:
        log.info("rank %d of %d: %d of %d images", ranks.rank, ranks.world, len(share), len(samples))
    parts = ranks.gather([attack_and_explain(evaluation, attack, cfg.layer)] if len(share) else [])
    if not ranks.writes:
        return
    data = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}      # rank r's batches: r, r + W, …
    data = {key: value[data["index"].argsort()] for key, value in data.items()}     # one process's order (sorted)
    records = per_sample(data["clean"], data["adversarial"], data["foreground"], cfg.cells)
    tables = summarise(records, data["success"], data["confidence"], cfg.iou_threshold, cfg.cells)

    out = DATA / "analyze_attention" / name
    write_json(out / "metrics.json", {"num_images": len(samples), "correct": len(data["success"]),
                                      "attack": cfg.attack.model_dump(exclude_none=True), "eps_255": cfg.eps_255, **tables})
    columns = ["index", "success", "confidence", *records]
    rows = np.stack([data["index"].numpy(), data["success"].numpy(), data["confidence"].numpy(),
                     *(r.numpy() for r in records.values())], 1).tolist() if len(data["success"]) else []
    write_bytes(out / "per_sample.csv", csv_bytes(columns, rows))
    write_bytes(out / "images" / "attention.png", png(figure(name, data)))
    write_bytes(out / "images" / "cam_epochs.png",
                png(cam_across_epochs(name, entry, samples, mask_mode, cfg.layer, device)))
    log.info("%s: %d correct of %d; attack succeeded on %.1f%%; mean IoU(Att, GT) succeed %s, fail %s", name,
             len(data["success"]), len(samples), 100 * (tables["table1"]["succeed"]["share"] or 0),
             tables["table1"]["succeed"]["mean_iou_gt"], tables["table1"]["fail"]["mean_iou_gt"])
    empty = records["clean_cam_empty"].mean().item() if len(data["success"]) else 0.0
    if empty:
        log.warning("%s: %.1f%% of the clean Grad-CAMs are all zero (no attention to compare; left out of the IoUs)",
                    name, 100 * empty)


def attack_and_explain(evaluation: Evaluation, attack: Attack, layer: str | None) -> dict[str, torch.Tensor]:
    """Per correctly classified image (on the CPU): its index, image, clean CAM (true class), adversarial CAM
    (predicted class), attack success, clean confidence and foreground mask."""
    model, samples = evaluation.model, evaluation.samples
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("index", "images", "clean", "adversarial", "success",
                                                             "confidence", "foreground")}
    start = 0
    for images, mask, labels in samples.batches(evaluation.batch_size, evaluation.device, evaluation.mask_mode):
        rows = slice(start, start + len(labels))
        start += len(labels)
        with frozen_eval(model):
            clean = grad_cam(model, images, labels, mask, layer)
            keep = (clean.logits.argmax(1) == labels).nonzero()[:, 0]
            result = attack(images[keep], labels[keep], model_mask=take(mask, keep), perturb_mask=take(mask, keep))
            adversarial = grad_cam(model, result.adversarial, None, take(mask, keep), layer)
        kept = keep.cpu()
        for key, value in (("index", torch.as_tensor(samples.indices[rows])[kept]), ("images", images[keep]),
                           ("clean", clean.cam[keep]), ("adversarial", adversarial.cam), ("success", result.success),
                           ("confidence", clean.logits.softmax(1).amax(1)[keep]),
                           ("foreground", samples.masks[rows][kept].float())):
            parts[key].append(value.cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def figure(name: str, data: dict[str, torch.Tensor]) -> Figure:
    """Seed 002 Figure 1: the first attacked and the first surviving image, each with its clean and adversarial CAM."""
    chosen = [(i, label) for flag, label in ((True, "attack succeeded"), (False, "attack failed"))
              for i in data["success"].eq(flag).nonzero()[:1, 0].tolist()]
    if not chosen:
        return message_figure(f"{name}: no correctly classified image to attack")
    rows = [i for i, _ in chosen]
    return gradcam_figure(data["images"][rows], data["clean"][rows], data["adversarial"][rows],
                          [text for _, text in chosen], f"{name}: Grad-CAM before and after the attack")


def cam_across_epochs(name: str, entry: Classifier, samples: SampleTensors, mask_mode: str, layer: str | None,
                      device: torch.device) -> Figure:
    """Seed 002 Figure 6: Grad-CAM (true class) of the first analysed image after every kept training epoch."""
    folder = DATA / "train_classifier" / name
    paths = sorted((folder / "checkpoints").glob("epoch_*.safetensors"))
    images, mask, labels = next(samples.batches(1, device, mask_mode))
    cams = []
    for path in paths:
        model, _ = evaluated_model(entry, load_classifier(folder, device, weights=path)[0])
        with frozen_eval(model):
            cams.append(grad_cam(model, images, labels, mask, layer).cam[0])
    return cam_epochs_figure(images[0], cams, [int(p.stem.removeprefix("epoch_")) for p in paths],
                             f"{name}: Grad-CAM of the true class after each kept epoch")


if __name__ == "__main__":
    run_stage(main)
