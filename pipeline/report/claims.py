"""The seed papers' claims, each checked as a paired difference on the same images (`report.claims`).

A claim "A is above B" is the mean over the images both were evaluated on of A's per-image measure minus B's
(robust under the whole suite: 0/1; or a Grad-CAM IoU where both are defined), with its 95% paired-bootstrap
interval. It is *reproduced in direction* only when that interval lies above zero;
an interval below zero reverses it; an interval across zero cannot tell them apart at this number of images.
"""

from __future__ import annotations

from pipeline.config import Claim
from pipeline.report.classifiers import paired_to_baseline
from pipeline.report.tables import Cell, Table, paired_text
from pipeline.report.verdicts import direction_verdict


def claims_table(claims: list[Claim], per_image: dict[str, dict[str, dict[int, float]]],
                 eps_key: str, paper: str = "") -> tuple[Table, list[dict]]:
    """One row per claim (those whose text starts with `paper`, e.g. "seed 002"): the paired difference of its measure
    in points (×100) with its interval, and the verdict. `per_image`: measure → classifier → image index → value
    (undefined values left out)."""
    claims = [claim for claim in claims if claim.claim.startswith(paper)]
    table = Table(f"Verdicts{f' ({paper})' if paper else ''}: the claims on this data (paired on the same images; "
                  f"worst case at {eps_key})",
                  ["claim", "classifier", "compared with", "measure", "Δ, points [95%]", "images", "verdict"])
    headline = []
    for claim in claims:
        difference = paired_to_baseline(per_image[claim.measure], claim.better, claim.than)
        result = direction_verdict(difference)
        table.rows.append([Cell(claim.claim), Cell(claim.better), Cell(claim.than), Cell(claim.measure),
                           Cell(paired_text(difference)),
                           Cell(str(difference["n"])), Cell(result, fail=result.startswith("not reproduced"))])
        headline.append({"claim": claim.claim, "better": claim.better, "than": claim.than, "measure": claim.measure,
                         **difference,
                         "verdict": result})
    table.notes += ["Reproduced in direction only when the paired 95% interval excludes zero on the side the paper "
                    "claims; see docs/defenses.md for the protocol (tuned weights, equal recipe epochs).",
                    "worst_case: robust to every attack of the suite; iou_gt: the clean Grad-CAM's top cells against the "
                    "object mask; iou_cells_<n>: the clean and Step-LL-attacked Grad-CAMs' top n cells (analyze_attention, "
                    "images both classifiers classify correctly)."]
    return table, headline
