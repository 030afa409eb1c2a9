"""Hugging Face ViT / DeiT classifiers on [0, 1] images (seed 003, methods.md P4).

The image processor's resize and normalisation happen inside the model, differentiably, so attacks work in
[0, 1] pixel space like every other attack here. Patches are token-aligned in the model's own resolution:
attack `resize(images)`, which is what forward sees.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import unloadable_model
from pipeline.io.atomic import replace_folder
from pipeline.models.wrappers import Normalized

PREFIX_TOKENS = {"vit": 1, "deit": 2}          # CLS; DeiT adds a distillation token


class HFLogits(nn.Module):
    """x → model(pixel_values=x).logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


class ViTClassifier(nn.Module):
    """[0, 1] B×3×H×W → logits: resized to `size` (bilinear; identity at that size), normalised, classified."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], size: tuple[int, int]):
        super().__init__()
        model_type = model.config.model_type
        if model_type not in PREFIX_TOKENS:
            raise ValueError(f"model_type {model_type!r}: the ViT stages support {sorted(PREFIX_TOKENS)}")
        self.net = Normalized(HFLogits(model), mean, std)
        self.size = tuple(size)
        self.token_size = model.config.patch_size
        self.prefix_tokens = PREFIX_TOKENS[model_type]

    @property
    def hf_model(self) -> nn.Module:
        """The wrapped Hugging Face model (for save_pretrained)."""
        return self.net.net.model

    @property
    def grid_width(self) -> int:
        return self.size[1] // self.token_size

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) == self.size:
            return images
        return F.interpolate(images, size=self.size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.resize(images))


def _labels(class_names: list[str]) -> dict[str, Any]:
    return {"num_labels": len(class_names), "id2label": dict(enumerate(class_names)),
            "label2id": {name: i for i, name in enumerate(class_names)}}


def vit_from_config(config: dict[str, Any], image_size: int, class_names: list[str]) -> nn.Module:
    """A randomly initialised ViT / DeiT classifier from config keys (`model_type` among them)."""
    from transformers import AutoConfig, AutoModelForImageClassification

    keys = dict(config)
    hf_config = AutoConfig.for_model(keys.pop("model_type"), image_size=image_size, **keys, **_labels(class_names))
    return AutoModelForImageClassification.from_config(hf_config)


def vit_from_pretrained(source: str, class_names: list[str]) -> tuple[nn.Module, Any]:
    """(model, image processor) of a hub id or local folder, the head resized to `class_names` (a new head is
    randomly initialised unless the checkpoint's already has that many classes). Honours HF_HUB_OFFLINE."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(source, ignore_mismatched_sizes=True,
                                                                **_labels(class_names))
        return model, AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise unloadable_model(source, "a ViT / DeiT image classifier with its image processor", exc) from None


def image_processor(image_size: int, mean: list[float], std: list[float]) -> Any:
    """The processor saved beside a model trained from a config: its size, mean and std drive ViTClassifier."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": image_size, "width": image_size}, image_mean=mean, image_std=std)


def input_size(processor: Any) -> tuple[int, int]:
    """The model's input (height, width): the centre crop when the processor crops (DeiT-B: resize 256, crop 224),
    else its resize."""
    size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
    return size["height"], size["width"]


def classifier_of(model: nn.Module, processor: Any) -> ViTClassifier:
    return ViTClassifier(model, list(processor.image_mean), list(processor.image_std), input_size(processor))


def save_vit(folder: Path, classifier: ViTClassifier, processor: Any) -> None:
    """`save_pretrained` of the model and its image processor into `folder`, swapped in whole."""
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(folder).parent, prefix=f".{Path(folder).name}.") as staging:
        classifier.hf_model.save_pretrained(staging)
        processor.save_pretrained(staging)
        replace_folder(Path(staging), Path(folder))


def load_vit(folder: Path, device: torch.device) -> ViTClassifier:
    """A `save_pretrained` folder (model + image processor) as a ViTClassifier in eval mode."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(folder)
        processor = AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise unloadable_model(folder, "a saved ViT / DeiT with its image processor", exc) from None
    return classifier_of(model, processor).to(device).eval()
