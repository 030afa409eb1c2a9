"""The four seed papers as parts of the report (issue 19 §2): per paper its claim in one sentence and the paper's own
numbers in its layout, as the papers report them (quoted in ../shared/methods.md and docs/), so that the report sets
this run's tables, verdicts and pictures beside them."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.report.tables import Cell, Heading, Table


@dataclass(frozen=True)
class Paper:
    key: str                  # how `report.claims` entries name it ("seed 002: …")
    title: str
    claim: str
    references: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]], ...]   # (title, header, rows)

    def sections(self) -> list[Heading | Table]:
        return [Heading(f"{self.key}: {self.title}", [f"Claim: {self.claim}"])] + [
            Table(title, list(header), [[Cell(text) for text in row] for row in rows])
            for title, header, rows in self.references]


P1 = Paper(
    "P1", "foreground attention masks (Vaishnavi et al. 2019)",
    "Removing the background with a foreground mask before classification raises adversarial robustness: +21.8 "
    "points of robust accuracy on MS-COCO-IC for adversarially trained models, about +9 on GTSRB, and foreground "
    "masks beat random masks.",
    (("The paper's numbers (PGD, L∞)", ("dataset", "comparison", "paper"),
      (("MS-COCO-IC", "adversarially trained, foreground mask − none", "+21.8 points robust accuracy"),
       ("GTSRB", "foreground mask − none", "+9.32 points robust accuracy"),
       ("both", "foreground mask vs random mask", "foreground higher"))),))
SEED_001 = Paper(
    "seed 001", "attention and adversarial logit pairing, AT+ALP (2019)",
    "Pairing the attention maps as well as the logits of clean and adversarial examples (AT+ALP) makes adversarial "
    "training more robust than logit pairing alone (ALP) and than Madry adversarial training.",
    (("The paper's numbers (17 Flower Category Database, PGD-200, accuracy %)", ("attack", "prior art", "AT+ALP"),
      (("gray-box", "34", "50"), ("black-box", "39", "51"))),))
SEED_002 = Paper(
    "seed 002", "attention-aware defense, AAD (Wu, Sang et al. 2022)",
    "Adding AAD's attention terms to Madry training or to ALP raises robust accuracy, and AAD keeps the model's "
    "attention on the object under attack.",
    (("The paper's Table 6 (CIFAR-10, ResNet9, 200 epochs, accuracy %)", ("model", "clean", "PGD-100", "CW-100"),
      (("Madry adv", "83.36", "44.72", "35.79"), ("Madry adv + AAD", "83.62", "48.49", "39.64"),
       ("Kannan ALP", "82.80", "48.60", "40.00"), ("Kannan ALP + AAD", "80.50", "51.99", "42.34"))),))
SEED_003 = Paper(
    "seed 003", "Attention-Fool patches on ViTs and DETR (Lovisotto et al. 2022)",
    "A patch that draws the dot-product attention of every query to its own key token (L_kq, L_kq*) breaks ViTs "
    "and DETR far more than the cross-entropy alone: robust accuracy near 0% for ViT-B with 0.5% of the image, and "
    "DETR-R101's mAP below 3%.",
    (("The paper's Table 3 (ImageNet, 1000 images, 16 px patch = 0.5%, 250 steps; robust accuracy %)",
      ("model", "clean", "PGD L_ce", "PGD +L_kq", "PGD +L_kq*", "momentum L_ce", "momentum +L_kq", "momentum +L_kq*"),
      (("ViT-B/16", "85.0", "13.5", "5.0", "2.6", "3.1", "0.1", "0.1"),
       ("DeiT-B/16", "82.0", "36.0", "35.5", "33.7", "16.8", "19.3", "13.1"))),
     ("The paper's Table 4 (MS COCO, 100 images, 64 px patch at (80, 80), 1000 steps; mAP %)",
      ("detector", "clean", "L_ce", "L_ce + L_kq^(1)", "L_kq^(1)"),
      (("DETR-R50", "53.00", "34.91", "21.03", "29.52"), ("DETR-R101", "54.41", "31.76", "2.07", "2.05")))))
PAPERS = (P1, SEED_001, SEED_002, SEED_003)
