"""Hugging Face DETR-family detectors on [0, 1] images (DETR, Carion et al. 2020; Conditional DETR, Meng et al.
2021; RT-DETR, Zhao et al. 2024) for the Attention-Fool detection attack (seed 003, methods.md P4).

The image processor's resize and normalisation happen here in torch, so gradients reach the pixels: DETR's rule
(shortest side to `shortest_edge`, longest capped at `longest_edge`) or RT-DETR's (every image to `height` ×
`width`), and the processor's mean/std only where it normalises (RT-DETR's does not: pixels / 255). A batch is
zero-padded at the bottom and right with a pixel mask, as the processor pads. Boxes are normalised (cx, cy, w, h)
of each image's unpadded working size, which the model's own `post_process_object_detection` scales to the
original sizes. Every family has one dot-product self-attention over image tokens with q = k = src + pos before
any other attention: DETR's and Conditional DETR's first encoder layer, RT-DETR's AIFI layer on its top feature
level; `image_attention` finds it by structure (the first q/k-projection attention inside the encoder).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import DETR_FAMILIES
from pipeline.errors import InputError, unloadable_model
from pipeline.io.atomic import replace_folder

UNUSED_LABEL = "N/A"            # a hub DETR's name for the label slots of ids COCO does not use
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def working_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """(h, w) after the processor's resize: `{height, width}` fixed (RT-DETR), or DetrImageProcessor's rule, the
    shortest side to `shortest_edge` unless the longest would exceed `longest_edge`, in which case the longest side
    becomes `longest_edge` (transformers' get_size_with_aspect_ratio)."""
    if "height" in size and "width" in size:
        return size["height"], size["width"]
    shortest, longest, raw = size["shortest_edge"], size.get("longest_edge"), None
    if longest is not None and max(height, width) / min(height, width) * shortest > longest:
        raw = longest * min(height, width) / max(height, width)
        shortest = int(round(raw))
    if min(height, width) == shortest:
        return height, width
    scale = raw if raw is not None else shortest
    if width < height:
        return int(scale * height / width), shortest
    return shortest, int(scale * width / height)


def image_attention(model: nn.Module) -> str:
    """The name of the first dot-product self-attention over image tokens: the first module inside the encoder with
    q/k projections (DETR, Conditional DETR: encoder layer 0; RT-DETR: the AIFI layer's first layer)."""
    for name, module in model.named_modules():
        if ".encoder." in f".{name}." and all(hasattr(module, a) for a in ("q_proj", "k_proj", "head_dim")):
            return name
    raise InputError(f"{type(model).__name__}: no encoder self-attention with q_proj/k_proj/head_dim")


class Detector(nn.Module):
    """[0, 1] images → a DETR-family model's outputs (logits, pred_boxes, loss when labels are given)."""

    def __init__(self, model: nn.Module, processor: Any):
        super().__init__()
        family = model.config.model_type
        if family not in DETR_FAMILIES:
            raise InputError(f"model_type {family!r}: the DETR stages support {list(DETR_FAMILIES)}")
        self.model, self.processor, self.family = model, processor, family
        normalises = getattr(processor, "do_normalize", True)
        mean, std = (processor.image_mean, processor.image_std) if normalises else ([0.0] * 3, [1.0] * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.size = {key: value for key, value in dict(processor.size).items() if value is not None}
        self.attention_name = image_attention(model)

    @property
    def attention(self) -> nn.Module:
        """The first self-attention over image tokens (`image_attention`), the layer L_kq^(1) targets."""
        return self.model.get_submodule(self.attention_name)

    @property
    def class_names(self) -> list[str]:
        """Label index → name (a hub DETR's unused COCO ids are "N/A")."""
        labels = self.model.config.id2label
        return [labels.get(i, UNUSED_LABEL) for i in range(self.model.config.num_labels)]

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """3×H×W → 3×h×w at the working size (bilinear with antialiasing, like PIL's; identity at that size)."""
        size = working_size(*image.shape[-2:], self.size)
        if tuple(image.shape[-2:]) == size:
            return image
        return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]

    @staticmethod
    def pad(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images at their working sizes → (B×3×H×W zero-padded at the bottom and right, B×H×W 0/1 pixel mask)."""
        height, width = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)
        pixels = images[0].new_zeros(len(images), 3, height, width)
        mask = torch.zeros(len(images), height, width, dtype=torch.long, device=images[0].device)
        for index, image in enumerate(images):
            pixels[index, :, :image.shape[-2], :image.shape[-1]] = image
            mask[index, :image.shape[-2], :image.shape[-1]] = 1
        return pixels, mask

    def forward(self, pixels: torch.Tensor, pixel_mask: torch.Tensor, labels: list[dict] | None = None):
        """Padded [0, 1] pixels → model outputs; normalised inside, the padding kept at zero (as the processor's)."""
        normalised = (pixels - self.mean) / self.std * pixel_mask[:, None].to(pixels.dtype)
        return self.model(pixel_values=normalised, pixel_mask=pixel_mask, labels=labels)

    def no_object_log_likelihood(self, logits: torch.Tensor) -> torch.Tensor:
        """Per image, the mean over decoder queries of log p(no object): DETR's softmax "no object" class (the
        last logit); the sigmoid heads of Conditional DETR and RT-DETR: every class off, Σ_c log σ(−z_c). In fp32;
        to be maximised."""
        logits = logits.float()
        if self.family == "detr":
            per_query = logits.log_softmax(-1)[..., -1]
        else:
            per_query = F.logsigmoid(-logits).sum(-1)
        return per_query.mean(-1)

    def detections(self, outputs, original_sizes: list[tuple[int, int]]) -> list[dict]:
        """Per image, {scores, labels, boxes (x0, y0, x1, y1) at its original size}: the model's own post-processing,
        every query kept (threshold 0; the sigmoid heads: their top query-class pairs), as COCO evaluation wants."""
        return self.processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=original_sizes)

    def token_grid(self, pixels: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
        """B×h×w bool: the token grid of `image_attention` for this padded batch (the backbone's last feature map;
        RT-DETR: the level its AIFI layer encodes), True where a token holds image and not padding (the mask the
        model itself downsamples)."""
        level = self.model.config.encode_proj_layers[0] if self.family == "rt_detr" else -1
        with torch.no_grad():
            _, valid = self.model.model.backbone(pixels, pixel_mask)[level]
        return valid.bool()


def same_size_batches(sizes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of images of (h, w) `sizes` in batches of at most `batch_size` images of one size each (in order of
    first appearance): a batch then needs no padding, and DETR (whose convolutions see the padding) gives every
    image exactly what it gives it alone."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(index)
    return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def _labels(class_names: list[str]) -> dict[str, Any]:
    return {"num_labels": len(class_names), "id2label": dict(enumerate(class_names)),
            "label2id": {name: i for i, name in enumerate(class_names)}}


def new_processor(family: str, size: dict[str, int]) -> Any:
    """The image processor saved beside a detector built from a config: DETR's and Conditional DETR's with ImageNet
    mean and std, RT-DETR's as on the hub (a fixed size, pixels / 255, no normalisation)."""
    from transformers import ConditionalDetrImageProcessor, DetrImageProcessor, RTDetrImageProcessor

    if family == "rt_detr":
        return RTDetrImageProcessor(size=size)
    processor = DetrImageProcessor if family == "detr" else ConditionalDetrImageProcessor
    return processor(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


def detector_from_config(config: dict[str, Any], class_names: list[str], size: dict[str, int]) -> Detector:
    """A randomly initialised DETR / Conditional DETR / RT-DETR: `model_type`, a `backbone` of ResNetConfig (RT-DETR:
    RTDetrResNetConfig) keys, and any key of the family's config (`attn_implementation`: sdpa unless given); `size`
    is the processor's resize. Every backbone
    weight trains (transformers freezes a ResNet's stem and first stage, which only makes sense for an
    ImageNet-pretrained backbone), BatchNorm included, and every BatchNorm starts at weight 1, bias 0
    (`reset_batch_norm`)."""
    from transformers import AutoConfig, AutoModelForObjectDetection, ResNetConfig, RTDetrResNetConfig

    keys = dict(config)
    family = keys.pop("model_type")
    if family == "rt_detr":
        backbone, extra = RTDetrResNetConfig(**keys.pop("backbone")), {}
    else:
        backbone, extra = ResNetConfig(**keys.pop("backbone")), {"use_timm_backbone": False,
                                                                   "use_pretrained_backbone": False}
    implementation = {"": keys.pop("attn_implementation", "sdpa"), "backbone_config": "eager"}
    hf_config = AutoConfig.for_model(family, backbone_config=backbone, **extra, **keys, **_labels(class_names),
                                     attn_implementation=implementation)
    model = AutoModelForObjectDetection.from_config(hf_config)
    unfreeze_batch_norm(model)
    reset_batch_norm(model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return Detector(model, new_processor(family, size))


def reset_batch_norm(module: nn.Module) -> None:
    """Every BatchNorm2d to weight 1, bias 0 (torch's own initialisation). transformers draws RT-DETR's BatchNorm
    weights from N(0, 0.02): its AIFI input then has a per-token norm far below the sine position embedding's, so
    q = k is nearly pure position, the detector learns slower and L_kq cannot move its attention."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)


def unfreeze_batch_norm(module: nn.Module) -> None:
    """Swap transformers' FrozenBatchNorm2d back to trainable BatchNorm2d (same statistics and affine values): a
    backbone trained from scratch needs batch statistics. `freeze_batch_norm` undoes it before saving."""
    for name, child in module.named_children():
        if type(child).__name__.endswith("FrozenBatchNorm2d"):
            norm = nn.BatchNorm2d(len(child.weight)).to(child.weight.device)
            _copy_statistics(child, norm)
            norm.frozen_type = type(child)
            setattr(module, name, norm)
        else:
            unfreeze_batch_norm(child)


def freeze_batch_norm(module: nn.Module) -> None:
    """The BatchNorm2d layers of `unfreeze_batch_norm` as the frozen layers the saved model is loaded with again."""
    for name, child in module.named_children():
        if hasattr(child, "frozen_type"):
            frozen = child.frozen_type(len(child.weight)).to(child.weight.device)
            _copy_statistics(child, frozen)
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)


def _copy_statistics(source: nn.Module, target: nn.Module) -> None:
    with torch.no_grad():
        for attribute in ("weight", "bias", "running_mean", "running_var"):
            getattr(target, attribute).copy_(getattr(source, attribute))


def detector_from_pretrained(source: str | Path) -> Detector:
    """A hub id or `save_pretrained` folder with its image processor (HF_HUB_OFFLINE and the cache apply)."""
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    try:
        model = AutoModelForObjectDetection.from_pretrained(source)
        processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise unloadable_model(source, "a DETR-family detector with its image processor", exc) from None
    return Detector(model, processor)


def save_detector(folder: Path, detector: Detector) -> None:
    """`save_pretrained` of the model (BatchNorm frozen again) and its image processor into `folder`, swapped in
    whole."""
    freeze_batch_norm(detector.model)
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(folder).parent, prefix=f".{Path(folder).name}.") as staging:
        detector.model.save_pretrained(staging)
        detector.processor.save_pretrained(staging)
        replace_folder(Path(staging), Path(folder))


def load_detector(folder: Path, device: torch.device) -> Detector:
    return detector_from_pretrained(folder).to(device).eval()
