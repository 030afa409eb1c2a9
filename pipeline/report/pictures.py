"""The stages' pictures, placed in the report next to the numbers they explain (issue 19 §2): each PNG a stage drew
becomes a Figure section, named `<stage>_<entry>_<kind>.png` under the report's figures/ folder. A picture the stage
did not draw (a CNN target has no CLS attention) is left out."""

from __future__ import annotations

from pathlib import Path

from pipeline.report.tables import Figure

MASKS = ("Foreground masks of validation samples: the image, its mask, the masked image and a random mask of the same "
         "area (the control).")
ADVERSARIAL = ("PGD-20 adversarial examples; δ = x_adv − x per pixel (mean over RGB) on ±ε. A sample the classifier "
               "gets wrong when clean is not attacked (flat δ).")
GRADCAM = ("Grad-CAM of the true class on the clean image and of the predicted class on the adversarial one (seed 002, "
           "Figure 1): an image the attack broke and one it did not.")
CAM_EPOCHS = "Grad-CAM of one image after each kept training epoch (seed 002, Figure 6)."
PATCHED = ("Patched images per objective (seed 003); each row title gives the true class and the predicted class ids, "
           "clean first.")
CLS = "The CLS token's attention over the tokens in every layer, clean and patched (seed 003, Figure 4)."
CURVES = "The attack per update: the mean attention on the patch (ViT, DETR) or the objective (CNN)."
DETECTIONS = "Detections before and after the patch: boxes with class names and scores; the patch dashed."
KEY_ATTENTION = "Each query's attention on the patch key cell in the first encoder layer (seed 003, Figure 6)."
MAP_STEPS = "mAP@[.5:.95] against attack iterations per objective; the clean mAP dashed."


def _figures(folder: Path, prefix: str, kinds: list[tuple[str, str, str]]) -> list[Figure]:
    """(kind, title, caption) → the Figure of folder/<kind>.png where it exists."""
    return [Figure(title, f"{prefix}_{kind}.png", (folder / f"{kind}.png").read_bytes(), caption)
            for kind, title, caption in kinds if (folder / f"{kind}.png").exists()]


def mask_pictures(data: Path, datasets: list[str]) -> list[Figure]:
    return [figure for dataset in datasets for figure in _figures(
        data / "prepare" / dataset, f"prepare_{dataset}", [("preview", f"Masks: {dataset}", MASKS)])]


def classifier_pictures(data: Path, names: list[str]) -> list[Figure]:
    """Adversarial examples and Grad-CAMs before and after the attack and across epochs, per classifier."""
    return [figure for name in names for figure in (
        _figures(data / "attack_classifier" / name / "images", f"attack_classifier_{name}",
                 [("adversarial", f"Adversarial examples: {name}", ADVERSARIAL)])
        + _figures(data / "analyze_attention" / name / "images", f"analyze_attention_{name}",
                   [("attention", f"Grad-CAM before and after the attack: {name}", GRADCAM),
                    ("cam_epochs", f"Grad-CAM across training: {name}", CAM_EPOCHS)]))]


def patch_pictures(data: Path, targets: list[str]) -> list[Figure]:
    return [figure for name in targets for figure in _figures(
        data / "attack_vit" / name / "images", f"attack_vit_{name}",
        [("patched", f"Patched images: {name}", PATCHED), ("cls_attention", f"CLS attention: {name}", CLS),
         ("curves", f"Patch attack per update: {name}", CURVES)])]


def detector_pictures(data: Path, detectors: list[str]) -> list[Figure]:
    return [figure for name in detectors for figure in _figures(
        data / "attack_detr" / name / "images", f"attack_detr_{name}",
        [("detections", f"Detections before and after the patch: {name}", DETECTIONS),
         ("attention", f"Attention on the patch key: {name}", KEY_ATTENTION),
         ("map_steps", f"mAP against attack iterations: {name}", MAP_STEPS),
         ("curves", f"Patch attack per iteration: {name}", CURVES)])]
