"""Stage `attack_vit@<name>`: the Attention-Fool patch attacks (seed 003, methods.md P4) on one target.

A target is a `train_vit` model, or a `train_classifier` CNN: the baseline of the seed's Table 3, attacked
with the objectives that have no attention term. Every objective × optimiser (plain sign-PGD, momentum) ×
placement (the fixed `cell`, or a seeded random token-aligned cell per image, the same in every run) runs
on `num_images` seeded validation images; a patch stops at its first success. Under torchrun the runs are split
over the ranks (stages/distributed.py).

Writes `data/attack_vit/<name>/`: metrics.json (clean and robust accuracy with 95% Wilson intervals, the
iterations to first success, the attention on the patch token before and after, per run), per_sample.csv
(cells, success flags and iterations per run), patches.safetensors (every run's final patches, keyed
`<placement>/<optimiser>/<objective>`), plots/curves/<run>.csv (mean objective and attention on the patch
per iteration) and images/ (patched examples; the curves of every objective in one chart; a ViT's CLS
attention map in every layer before and after the patch).
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import torch

from pipeline.attacks.patch import PatchAttack, PatchPlacement, parse_objective
from pipeline.config import AttackVit, PatchTarget
from pipeline.data.dataset import PreparedDataset, SampleTensors, seeded_subset
from pipeline.evaluation.figures import curves_figure, heat_rows_figure, image_rows_figure
from pipeline.evaluation.patch_runs import Run, RunResult, Target, clean_attention, run_attack, run_metrics
from pipeline.evaluation.plotting import png
from pipeline.evaluation.suite import accuracy_summary
from pipeline.evaluation.vit_attention import cls_attention_maps
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.models.checkpoint import load_classifier, save_tensors
from pipeline.models.forward import model_logits
from pipeline.models.vit import load_vit
from stages.common import DATA, entry_args, log, pick_device, run_stage
from stages.distributed import share_units
from stages.progress import run_store


def load_target(name: str, target: PatchTarget, cfg: AttackVit, device: torch.device) -> Target:
    if target.source == "train_vit":
        vit = load_vit(DATA / "train_vit" / name / "model", device)
        labels = vit.hf_model.config.id2label
        placement = PatchPlacement(vit.token_size, vit.grid_width, vit.prefix_tokens)
        return Target(vit, placement, cfg.patch_tokens, [labels[i] for i in range(len(labels))])
    model, config = load_classifier(DATA / "train_classifier" / name, device)
    return Target(model, PatchPlacement(target.patch_px, config["image_size"] // target.patch_px, 0), 1,
                  config["class_names"])


def patch_cells(placement: str, cfg: AttackVit, target: Target, count: int, seed: int) -> torch.Tensor:
    """count×2 (row, col) cells: `cfg.cell` for every image, or seeded random cells the patch fits in."""
    span = target.placement.grid_width - target.patch_cells + 1
    if placement == "random":
        return torch.from_numpy(np.random.default_rng(seed).integers(0, span, size=(count, 2)))
    if max(cfg.cell) >= span:
        sys.exit(f"attack_vit.cell {cfg.cell}: a patch of {target.patch_cells} cell(s) must fit in the "
                 f"{target.placement.grid_width}×{target.placement.grid_width} grid (row and col below {span})")
    return torch.tensor([cfg.cell] * count)


def planned_runs(cfg: AttackVit, target: Target) -> list[Run]:
    objectives = [o for o in cfg.objectives if target.is_vit or parse_objective(o)[1] is None]
    return [(p, o, j) for p in cfg.placements for o in cfg.optimisers for j in objectives]


def per_sample_csv(samples: SampleTensors, clean_correct: torch.Tensor, cells: dict[str, torch.Tensor],
                   results: dict[Run, RunResult]) -> bytes:
    """index, label, clean_correct, the cell of each placement, then per run: success (0/1) and the patch
    updates before the first success (−1: never)."""
    columns = ["index", "label", "clean_correct", *(f"{p}/{axis}" for p in cells for axis in ("row", "col"))]
    values = [torch.as_tensor(samples.indices), samples.labels, clean_correct.long(),
              *(c[:, axis] for c in cells.values() for axis in (0, 1))]
    for run, result in results.items():
        columns += [f"{'/'.join(run)}/success", f"{'/'.join(run)}/iterations"]
        values += [result.success.long(), result.first_success]
    return csv_bytes(columns, torch.stack([v.long() for v in values], 1).tolist())


def curve_csv(result: RunResult) -> bytes:
    if result.attention_curve:
        rows = [[t, loss, att] for t, (loss, att) in enumerate(zip(result.loss_curve, result.attention_curve))]
        return csv_bytes(["iteration", "objective", "attention_on_patch"], rows)
    return csv_bytes(["iteration", "objective"], [[t, loss] for t, loss in enumerate(result.loss_curve)])


def main() -> None:
    name, spec, params = entry_args(__doc__.splitlines()[0], "attack_vit.targets")
    cfg, device = params.attack_vit, pick_device(params.accelerator)
    target = load_target(name, spec, cfg, device)
    val = DATA / "prepare" / spec.dataset / "val"
    samples = SampleTensors(val, seeded_subset(len(PreparedDataset(val)), cfg.num_images, params.seed))
    clean_inputs = torch.cat([target.inputs(images) for images, _, _ in samples.batches(cfg.batch_size, device, "none")])
    with torch.no_grad():
        clean_pred = torch.cat([model_logits(target.model, x).argmax(1) for x in clean_inputs.split(cfg.batch_size)]).cpu()
    clean_correct = clean_pred == samples.labels
    metrics: dict = {"num_images": len(samples), "patch_px": target.patch_px,
                     "patch_area_share": target.patch_px ** 2 / clean_inputs[0, 0].numel(),
                     "clean": accuracy_summary(clean_correct), "runs": {}}
    out = DATA / "attack_vit" / name
    model = DATA / ("train_vit" if spec.source == "train_vit" else "train_classifier") / name
    store = run_store(out, __file__, model, params.seed, cfg.model_dump(), spec.model_dump(), samples.indices.tolist())
    results: dict[Run, RunResult] = {}
    cells = {p: patch_cells(p, cfg, target, len(samples), params.seed) for p in cfg.placements}
    before = {p: clean_attention(target, clean_inputs, cells[p], cfg.batch_size) for p in cfg.placements}

    def attacked(run: Run) -> RunResult:
        """The run's result from the store, or computed and stored."""
        placement, optimiser, objective = run

        def compute() -> RunResult:
            attack = PatchAttack(target.model, target.placement, cfg.steps, objective, cfg.step_size_255 / 255,
                                 cfg.momentum if optimiser == "momentum" else None, cfg.attention_weight, cfg.normalise,
                                 cfg.aggregation, target.patch_px, cfg.amp, seed=params.seed)
            return run_attack(attack, clean_inputs, samples.labels, cells[placement], cfg.batch_size,
                              cfg.grid_images, "/".join(run))
        return store.computed("/".join(run), RunResult, device, compute)

    runs = planned_runs(cfg, target)
    if not share_units({"/".join(run): (functools.partial(attacked, run), 1.0) for run in runs}):
        return
    for run in runs:
        placement, optimiser, objective = run
        results[run] = attacked(run)
        metrics["runs"].setdefault(placement, {}).setdefault(optimiser, {})[objective] = \
            run_metrics(results[run], clean_correct, before[placement])
        write_bytes(out / "plots" / "curves" / f"{'_'.join(run)}.csv", curve_csv(results[run]))
        log.info("%s %s: robust accuracy %.3f", name, "/".join(run), metrics["runs"][placement][optimiser][objective]
                 ["robust"]["accuracy"])
    write_figures(out, name, target, cfg, clean_inputs[:cfg.grid_images], samples.labels[:cfg.grid_images],
                  clean_pred[:cfg.grid_images], results)
    write_bytes(out / "per_sample.csv", per_sample_csv(samples, clean_correct, cells, results))
    save_tensors(out / "patches.safetensors", {"/".join(run): result.patches for run, result in results.items()})
    write_json(out / "metrics.json", metrics)
    store.remove()
    log.info("%s: clean %.3f; robust accuracy per run in %s", name, metrics["clean"]["accuracy"], out / "metrics.json")


def write_figures(out, name: str, target: Target, cfg: AttackVit, clean: torch.Tensor, labels: torch.Tensor,
                  clean_pred: torch.Tensor, results: dict[Run, RunResult]) -> None:
    """images/patched.png: clean | patched under each objective (first placement, last optimiser), with the
    predicted class ids; images/curves.png: the mean attention on the patch (ViT; a CNN: the objective) per
    iteration, one line per objective, one panel per optimiser (first placement); images/cls_attention.png
    (ViT): CLS attention per layer, clean and patched."""
    shown = [run for run in results if run[0] == cfg.placements[0] and run[1] == cfg.optimisers[-1]]
    patched = [results[run].examples.to(clean.device) for run in shown]
    with torch.no_grad():
        predictions = [clean_pred.tolist()] + [model_logits(target.model, p).argmax(1).tolist() for p in patched]
    captions = [f"true {target.class_names[y]} ({y})\npredicted " + " | ".join(str(p[i]) for p in predictions)
                for i, y in enumerate(labels.tolist())]
    rows = [[c[i] for c in (clean, *patched)] for i in range(len(labels))]
    write_bytes(out / "images" / "patched.png", png(image_rows_figure(
        rows, ["clean", *(run[2] for run in shown)], captions,
        f"{name}: patched images ({cfg.placements[0]} cell, {cfg.optimisers[-1]}), predicted class ids")))
    curve, measure = ("attention_curve", "mean attention on the patch") if target.is_vit else ("loss_curve", "objective")
    panels = {f"{optimiser}, {cfg.placements[0]} cell": {run[2]: getattr(results[run], curve) for run in results
                                                         if run[0] == cfg.placements[0] and run[1] == optimiser}
              for optimiser in cfg.optimisers}
    write_bytes(out / "images" / "curves.png", png(curves_figure(panels, "patch updates", measure,
                                                                 f"{name}: {measure} per patch update")))
    if not target.is_vit:
        return
    attention_run = next((run for run in shown if parse_objective(run[2])[1] is not None), shown[-1])
    count = min(3, len(labels))
    images = {"clean": clean[:count], f"patched ({attention_run[2]})": results[attention_run].examples[:count]}
    maps = {what: cls_attention_maps(target.model, x.to(clean.device)) for what, x in images.items()}   # L×B×g×g
    rows, texts = [], []
    for i in range(count):
        for what, x in images.items():
            rows.append((x[i], list(maps[what][:, i])))
            texts.append(what)
    layers = len(next(iter(maps.values())))
    write_bytes(out / "images" / "cls_attention.png", png(heat_rows_figure(
        rows, ["image", *(f"layer {layer}" for layer in range(1, layers + 1))], texts,
        f"{name}: CLS attention per layer, clean and patched", "CLS attention (softmax weight)")))


if __name__ == "__main__":
    run_stage(main)
