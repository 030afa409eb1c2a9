"""Offline stand-ins for the paper profile's Hugging Face checkpoints: each hub id resolves, through a Hugging Face
cache folder (HF_HUB_CACHE) and HF_HUB_OFFLINE=1, to the real architecture built from its published config.json with
random weights, beside its published preprocessor_config.json. Both JSON files are written as the hub serves them,
legacy keys included (DETR's `size: 800, max_size: 1333`, `use_timm_backbone`; DeiT's resize 256 / crop 224), so
the stages meet the same config conversion, label slots and processor rules as with the real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.data.coco_categories import COCO_CATEGORIES

REVISION = "0" * 40
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _labels(names: list[str]) -> dict:
    return {"id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)}}


def _vit(image_mean: list[float], image_std: list[float]) -> dict:
    return {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 768,
            "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16, "num_channels": 3, "qkv_bias": True,
            **_labels([f"imagenet class {i}" for i in range(1000)])}


def _detr(backbone: str) -> dict:
    """facebook/detr-resnet-50 / -101: 91 label slots, one per COCO id 0..90, "N/A" where COCO uses no id."""
    names = {c["id"]: c["name"] for c in COCO_CATEGORIES}
    return {"architectures": ["DetrForObjectDetection"], "model_type": "detr", "backbone": backbone,
            "use_timm_backbone": True, "use_pretrained_backbone": True, "dilation": False, "num_channels": 3,
            "num_queries": 100, "d_model": 256, "encoder_layers": 6, "decoder_layers": 6, "encoder_ffn_dim": 2048,
            "decoder_ffn_dim": 2048, "encoder_attention_heads": 8, "decoder_attention_heads": 8,
            "position_embedding_type": "sine", "auxiliary_loss": False, "dropout": 0.1,
            **_labels([names.get(i, "N/A") for i in range(91)])}


def _rtdetr() -> dict:
    """PekingU/rtdetr_r50vd: transformers' RTDetrConfig defaults, 80 contiguous labels in COCO id order."""
    return {"architectures": ["RTDetrForObjectDetection"], "model_type": "rt_detr",
            **_labels([c["name"] for c in COCO_CATEGORIES])}


VIT_PROCESSOR = {"feature_extractor_type": "ViTFeatureExtractor", "do_resize": True, "size": 224, "resample": 2,
                 "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
DEIT_PROCESSOR = {"feature_extractor_type": "DeiTFeatureExtractor", "do_resize": True, "size": 256, "resample": 3,
                  "do_center_crop": True, "crop_size": 224, "do_normalize": True, "image_mean": IMAGENET_MEAN,
                  "image_std": IMAGENET_STD}
DETR_PROCESSOR = {"feature_extractor_type": "DetrFeatureExtractor", "format": "coco_detection", "do_resize": True,
                  "size": 800, "max_size": 1333, "do_normalize": True, "image_mean": IMAGENET_MEAN,
                  "image_std": IMAGENET_STD}
RTDETR_PROCESSOR = {"image_processor_type": "RTDetrImageProcessor", "format": "coco_detection", "do_resize": True,
                    "size": {"height": 640, "width": 640}, "resample": 2, "do_rescale": True,
                    "rescale_factor": 1 / 255, "do_normalize": False, "do_pad": False, "image_mean": IMAGENET_MEAN,
                    "image_std": IMAGENET_STD}

HUB = {   # hub id -> (config.json, preprocessor_config.json, model class)
    "google/vit-base-patch16-224": (_vit([0.5] * 3, [0.5] * 3), VIT_PROCESSOR, "AutoModelForImageClassification"),
    "facebook/deit-base-patch16-224": (_vit(IMAGENET_MEAN, IMAGENET_STD), DEIT_PROCESSOR,
                                       "AutoModelForImageClassification"),
    "facebook/detr-resnet-50": (_detr("resnet50"), DETR_PROCESSOR, "AutoModelForObjectDetection"),
    "facebook/detr-resnet-101": (_detr("resnet101"), DETR_PROCESSOR, "AutoModelForObjectDetection"),
    "PekingU/rtdetr_r50vd": (_rtdetr(), RTDETR_PROCESSOR, "AutoModelForObjectDetection"),
}


def write_hub_cache(cache: Path, hub_ids: list[str]) -> Path:
    """`cache` laid out as a Hugging Face hub cache (models--<org>--<name>/refs/main, snapshots/<revision>/) holding
    each of `hub_ids` with random weights; returns `cache` (for HF_HUB_CACHE)."""
    import transformers

    for hub_id in hub_ids:
        config, processor, model_class = HUB[hub_id]
        repo = cache / f"models--{hub_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / REVISION
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(REVISION)
        (snapshot / "config.json").write_text(json.dumps(config))
        hf_config = transformers.AutoConfig.from_pretrained(snapshot)
        torch.manual_seed(0)
        getattr(transformers, model_class).from_config(hf_config).save_pretrained(snapshot)
        (snapshot / "config.json").write_text(json.dumps(config))         # the hub's form, not this version's
        (snapshot / "preprocessor_config.json").write_text(json.dumps(processor))
    return cache
