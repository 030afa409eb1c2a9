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

NO_SHARED_IMAGE = "no verdict: no image where both classifiers have the measure (none correctly classified by both)"


def claim_results(claims: list[Claim], per_image: dict[str, dict[str, dict[int, float]]]) -> list[dict]:
    """Per claim, in order: the paired difference of its measure (better − than) with its interval and the verdict.
    `per_image`: measure → classifier → image index → value (undefined values left out). An attention measure is
    defined only on images a classifier gets right: a claim without an image both get right has no verdict."""
    results = []
    for claim in claims:
        values = per_image[claim.measure]
        if claim.measure != "worst_case" and not set(values[claim.better]) & set(values[claim.than]):
            difference, verdict = {"mean": None, "low": None, "high": None, "n": 0}, NO_SHARED_IMAGE
        else:
            difference = paired_to_baseline(values, claim.better, claim.than)
            verdict = direction_verdict(difference)
        results.append({"claim": claim.claim, "better": claim.better, "than": claim.than, "measure": claim.measure,
                        **difference, "verdict": verdict})
    return results


def claims_table(results: list[dict], eps_key: str, papers: tuple[str, ...] = (),
                 others: tuple[str, ...] = ()) -> Table:
    """The rows of the claims whose text starts with one of `papers` (e.g. "seed 002"), or, with `others`, of every
    claim that starts with none of them: the difference in points (×100) with its interval, and the verdict."""
    def shown(text: str) -> bool:
        return text.startswith(papers) if papers else not text.startswith(others)

    name = ", ".join(papers) if papers else "other claims"
    table = Table(f"Verdicts ({name}) on this data (paired on the same images; worst case at {eps_key})",
                  ["claim", "classifier", "compared with", "measure", "Δ, points [95%]", "images", "verdict"])
    for result in (r for r in results if shown(r["claim"])):
        table.rows.append([Cell(result["claim"]), Cell(result["better"]), Cell(result["than"]), Cell(result["measure"]),
                           Cell(paired_text(result)), Cell(str(result["n"])),
                           Cell(result["verdict"], fail=result["verdict"].startswith("not reproduced"))])
    table.notes += ["Reproduced in direction only when the paired 95% interval excludes zero on the side the paper "
                    "claims; see docs/defenses.md for the protocol (tuned weights, equal recipe epochs).",
                    "worst_case: robust to every attack of the suite; iou_gt: the clean Grad-CAM's top cells against "
                    "the object mask; iou_cells_<n>: the clean and Step-LL-attacked Grad-CAMs' top n cells "
                    "(analyze_attention, images both classifiers classify correctly)."]
    return table
