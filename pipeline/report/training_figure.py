"""The defenses' training curves on one chart (issue 18): clean and PGD accuracy on the validation subset after
every epoch, one line per classifier, the end of the shared clean warm-up marked. Read from the dvclive files of
`train_classifier@<name>` (plots/metrics/<metric>.tsv: step, value)."""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

from pipeline.evaluation.plotting import png

PANELS = (("val_accuracy", "clean accuracy"), ("val_pgd_accuracy", "PGD accuracy (the training adversary)"))


def read_curve(path: Path) -> list[tuple[int, float]]:
    """(epoch, value) pairs of a dvclive .tsv (its step 0 is epoch 1)."""
    try:
        with path.open() as table:
            rows = list(csv.reader(table, delimiter="\t"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; rerun `dvc repro` (train_classifier writes it)") from None
    return [(int(step) + 1, float(value)) for step, value in rows[1:]]


def training_curves_png(curves: dict[str, dict[str, list[tuple[int, float]]]], warmup_epochs: int) -> bytes:
    """`curves`: classifier → metric (PANELS' keys) → (epoch, accuracy) pairs; one panel per metric."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, len(PANELS), sharex=True)
    for axis, (metric, label) in zip(axes, PANELS):
        for name, metrics in curves.items():
            epochs, values = zip(*metrics[metric])
            axis.plot(epochs, [100 * v for v in values], marker=".", label=name)
        if warmup_epochs:
            axis.axvline(warmup_epochs + 0.5, color="grey", linestyle="--", linewidth=1)
            axis.annotate("end of the shared clean warm-up", (warmup_epochs + 0.5, 1), xycoords=("data", "axes fraction"),
                          xytext=(4, -12), textcoords="offset points", fontsize=8, color="grey")
        axis.set(title=label, xlabel="epoch", ylabel="accuracy (%)")
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="lower right")
    figure.suptitle("Defenses: validation accuracy after every training epoch")
    return png(figure)
