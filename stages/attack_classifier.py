"""Stage `attack_classifier@<name>`: the attack suite, accuracy curves and gradient-masking audit of one classifier.

Under torchrun the attack runs are split over the ranks (stages/distributed.py). Writes
`data/attack_classifier/<name>/`: metrics.json (accuracy with 95% Wilson intervals per ε and
attack, the per-sample worst case, the audit), per_sample.csv (success flags), plots/ (accuracy vs ε and
vs steps) and images/adversarial.png.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import torch

from pipeline.config import AttackClassifier, SuiteEntry
from pipeline.data.dataset import PreparedDataset, SampleTensors, seeded_subset
from pipeline.evaluation.audit import AUDIT_PGD_STEPS, run_audit
from pipeline.evaluation.figures import adversarial_figure
from pipeline.evaluation.plotting import png
from pipeline.evaluation.suite import Evaluation, SuiteRunner, accuracy_summary, eps_label, make_attack
from pipeline.io.atomic import csv_bytes, write_bytes, write_json
from pipeline.models.checkpoint import load_classifier
from pipeline.models.forward import model_logits
from stages.common import DATA, entry_args, evaluated_model, log, pick_device, run_stage
from stages.distributed import share_units
from stages.progress import run_store


def suite_budgets(cfg: AttackClassifier) -> list[tuple[str, SuiteEntry, float]]:
    """(attack name, spec, ε) for every suite entry at every ε it runs at."""
    runs = []
    for name, spec in cfg.suite.items():
        for eps in spec.eps if spec.eps is not None else [e / 255 for e in cfg.eps_255]:
            runs.append((name, spec, eps))
    return runs


def planned_runs(cfg: AttackClassifier) -> list[tuple[SuiteEntry, float]]:
    """Every (spec, ε) the suite, the curves and the audit ask for, so PGD-k / CW-k share their longest run."""
    first = cfg.eps_255[0] / 255
    return [*((spec, eps) for _, spec, eps in suite_budgets(cfg)),
            *((SuiteEntry(attack="pgd", steps=cfg.curves.eps_steps), e / 255) for e in cfg.curves.eps_255),
            *((SuiteEntry(attack="pgd", steps=steps), first) for steps in cfg.curves.steps),
            *((SuiteEntry(attack="pgd", steps=steps), first) for steps in AUDIT_PGD_STEPS),
            (SuiteEntry(attack="pgd", steps=AUDIT_PGD_STEPS[0]), cfg.audit.large_eps_255 / 255)]


def run_cost(spec: SuiteEntry) -> float:
    """An attack run's cost in forward-backward passes per image, roughly (Square: forward passes, ≈ 1/3 each)."""
    if spec.attack == "square":
        return (spec.queries or 1000) / 3
    return (spec.steps or 1) * spec.restarts


def curves(runner: SuiteRunner, cfg: AttackClassifier) -> tuple[bytes, bytes]:
    """accuracy_vs_eps.csv (PGD-`eps_steps` over curves.eps_255) and accuracy_vs_steps.csv (PGD at the first ε)."""
    rows_eps = [[0.0, *accuracy_summary(runner.clean_correct).values()]]
    for eps_255 in cfg.curves.eps_255:
        flags = runner.success(SuiteEntry(attack="pgd", steps=cfg.curves.eps_steps), eps_255 / 255)
        rows_eps.append([eps_255, *accuracy_summary(~flags).values()])
    rows_steps = []
    for steps in cfg.curves.steps:
        flags = runner.success(SuiteEntry(attack="pgd", steps=steps), cfg.eps_255[0] / 255)
        rows_steps.append([steps, *accuracy_summary(~flags).values()])
    columns = ["accuracy", "ci95_low", "ci95_high", "n"]
    return csv_bytes(["eps_255", *columns], rows_eps), csv_bytes(["steps", *columns], rows_steps)


def example_grid(evaluation: Evaluation, cfg: AttackClassifier, class_names: list[str], name: str) -> bytes:
    """Clean vs PGD-20 adversarial examples on the first `grid_images` evaluation samples, captioned with the
    true class and the predictions on both (a clean mistake is not attacked: its δ panel is flat grey)."""
    eps = cfg.eps_255[0] / 255
    images, mask, labels = next(evaluation.samples.batches(cfg.grid_images, evaluation.device, evaluation.mask_mode))
    attack = make_attack(evaluation, SuiteEntry(attack="pgd", steps=20), eps)
    result = attack(images, labels, model_mask=mask, perturb_mask=mask)
    with torch.no_grad():
        clean, adversarial = (model_logits(evaluation.model, x, mask).argmax(1).tolist() for x in (images, result.adversarial))
    captions = [f"true: {class_names[y]}\nclean: {class_names[c]}\nadversarial: {class_names[a]}"
                for y, c, a in zip(labels.tolist(), clean, adversarial)]
    return png(adversarial_figure(images, result.adversarial, eps, captions,
                                  f"{name}: PGD-20 at ε = {cfg.eps_255[0]:g}/255"))


def main() -> None:
    name, entry, params = entry_args(__doc__.splitlines()[0])
    cfg, device = params.attack_classifier, pick_device(params.accelerator)
    model, config = load_classifier(DATA / "train_classifier" / name, device)
    model, mask_mode = evaluated_model(entry, model)
    if mask_mode != entry.mask:
        log.info("%s: remask_at_test is off: evaluating the network without its mask", name)
    val = DATA / "prepare" / entry.dataset / "val"
    count = entry.attack_images or cfg.num_images       # seeded: a smaller count's images are among a larger one's
    samples = SampleTensors(val, seeded_subset(len(PreparedDataset(val)), count, params.seed))
    evaluation = Evaluation(model, mask_mode, samples, cfg.batch_size, device, cfg.step_ratio, cfg.amp, params.seed)
    out = DATA / "attack_classifier" / name
    store = run_store(out, __file__, DATA / "train_classifier" / name / "model.safetensors", params.seed,
                      cfg.model_dump(), entry.model_dump(), samples.indices.tolist())
    planned = planned_runs(cfg)
    runner = SuiteRunner(evaluation, planned, store)
    runs = {runner.run_key(spec, eps): (functools.partial(runner.success, spec, eps), run_cost(spec))
            for spec, eps in sorted(planned, key=lambda run: run_cost(run[0]))}     # a family's longest run last
    if not share_units(runs):
        return

    metrics: dict = {"num_images": len(samples), "clean": accuracy_summary(runner.clean_correct)}
    broken: dict[str, torch.Tensor] = {}
    first_eps = cfg.eps_255[0] / 255                     # the audit's ε
    first_label, white_box = eps_label("linf", first_eps), torch.zeros_like(runner.clean_correct)
    columns, flags = ["index", "label", "clean_correct"], [samples.indices, samples.labels.numpy(), runner.clean_correct.numpy()]
    for attack_name, spec, eps in suite_budgets(cfg):
        label = eps_label(spec.norm, eps)
        success = runner.success(spec, eps, f"{name}: {attack_name} {label}")
        metrics.setdefault(label, {})[attack_name] = accuracy_summary(~success)
        broken[label] = broken.get(label, torch.zeros_like(success)) | success
        columns.append(f"{label}/{attack_name}")
        flags.append(success.numpy())
        if label == first_label and spec.attack != "square":
            white_box |= success
    for label, any_success in broken.items():
        metrics[label]["worst_case"] = accuracy_summary(~any_success)
        columns.append(f"{label}/worst_case")
        flags.append(any_success.numpy())

    square = next((spec for spec in cfg.suite.values() if spec.attack == "square"), SuiteEntry(attack="square"))
    metrics["audit"] = run_audit(runner, cfg.audit, first_eps, white_box, square)
    by_eps, by_steps = curves(runner, cfg)

    write_bytes(out / "plots" / "accuracy_vs_eps.csv", by_eps)
    write_bytes(out / "plots" / "accuracy_vs_steps.csv", by_steps)
    write_bytes(out / "images" / "adversarial.png", example_grid(evaluation, cfg, config["class_names"], name))
    table = np.stack([np.asarray(f).astype(np.int64) for f in flags], axis=1)
    write_bytes(out / "per_sample.csv", csv_bytes(columns, table.tolist()))
    write_json(out / "metrics.json", metrics)
    store.remove()
    worst = metrics[first_label]["worst_case"]["accuracy"]
    log.info("%s: clean %.4f, worst case at %s %.4f, audit %s", name, metrics["clean"]["accuracy"], first_label, worst,
             "passed" if metrics["audit"]["passed"] else "FAILED")
    if not metrics["audit"]["passed"] and cfg.audit.fail_stage:
        failed = [k for k, v in metrics["audit"].items() if isinstance(v, dict) and not v["pass"]]
        sys.exit(f"{name}: gradient-masking audit failed ({failed}); see {out / 'metrics.json'}")


if __name__ == "__main__":
    run_stage(main)
