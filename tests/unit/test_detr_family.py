"""The DETR-family adapter (pipeline/models/detr.py) on each family built from a tiny config (DETR, Conditional DETR,
RT-DETR): the attention the attack targets is found by structure and its captured q/k give the model's own eager
attention, the no-object objective in closed form, post-processing back to the original size, gradients to the
pixels, and RT-DETR's BatchNorm initialisation (methods.md P4)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import ConditionalDetrImageProcessor, DetrImageProcessor, RTDetrImageProcessor

from pipeline.models.detr import detector_from_config, detector_from_pretrained, reset_batch_norm, save_detector
from pipeline.models.hf_attention import captured_query_keys, key_query_scores

RESNET = {"embedding_size": 8, "hidden_sizes": [8, 16, 16, 32], "depths": [1, 1, 1, 1], "out_features": ["stage4"]}
DETR = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_queries": 6}
RT_DETR = {"num_queries": 6, "num_denoising": 4, "d_model": 32, "encoder_hidden_dim": 32, "encoder_layers": 1,
           "encoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_layers": 1, "decoder_attention_heads": 4,
           "decoder_n_points": 2, "decoder_ffn_dim": 64, "num_feature_levels": 1, "feat_strides": [16],
           "encode_proj_layers": [0], "encoder_in_channels": [32], "decoder_in_channels": [32],
           "freeze_backbone_batch_norms": False,
           "backbone": {"embedding_size": 8, "hidden_sizes": [8, 16, 32], "depths": [1, 1, 1], "layer_type": "basic",
                        "out_features": ["stage3"]}}
FAMILIES = ("detr", "conditional_detr", "rt_detr")
ATTENTION = {"detr": "model.encoder.layers.0.self_attn", "conditional_detr": "model.encoder.layers.0.self_attn",
             "rt_detr": "model.encoder.aifi.0.layers.0.self_attn"}
CLASSES = ["person", "car", "dog"]
PROCESSORS = {"detr": DetrImageProcessor, "conditional_detr": ConditionalDetrImageProcessor,
              "rt_detr": RTDetrImageProcessor}


def family_config(family: str) -> tuple[dict, dict]:
    """(config, processor size) of a tiny detector of `family`: 64×64 inputs give 2×2 tokens at stride 32 (DETR,
    Conditional DETR) and 4×4 at stride 16 (RT-DETR)."""
    if family == "rt_detr":
        return {"model_type": family, **RT_DETR}, {"height": 64, "width": 64}
    return {"model_type": family, "backbone": RESNET, **DETR}, {"shortest_edge": 64}


def tiny(family: str, **changes):
    config, size = family_config(family)
    torch.manual_seed(0)
    return detector_from_config({**config, **changes}, CLASSES, size).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_targeted_attention_is_found_by_structure_and_is_the_models_own(family):
    """Captured q/k of Detector.attention, as softmax(qkᵀ/√d), equal the attention weights the model's eager
    implementation returns for that layer (with q = k = src + pos inside)."""
    detector = tiny(family, attn_implementation="eager")
    assert detector.attention_name == ATTENTION[family]
    pixels, mask = detector.pad([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))] * 2)
    with torch.no_grad(), captured_query_keys(detector, [detector.attention]) as captured:
        outputs = detector.model(pixel_values=(pixels - detector.mean) / detector.std, pixel_mask=mask,
                                 output_attentions=True)
    expected = outputs.encoder_attentions[0]
    scores = key_query_scores(captured[0], normalise=False)
    assert scores.shape == expected.shape and scores.shape[-1] == detector.token_grid(pixels, mask)[0].numel()
    torch.testing.assert_close(scores.softmax(-1), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_object_objective_closed_form(family):
    detector = tiny(family)
    classes = 3 + (family == "detr")              # DETR adds the "no object" class
    zeros = torch.zeros(2, 6, classes)
    expected = -math.log(classes) if family == "detr" else 3 * math.log(0.5)   # softmax: 1/C; sigmoids: (1/2)³
    assert detector.no_object_log_likelihood(zeros).tolist() == pytest.approx([expected] * 2)
    confident = torch.full((1, 6, classes), -20.0)
    confident[..., -1] = 20.0 if family == "detr" else -20.0
    assert detector.no_object_log_likelihood(confident).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_post_processing_returns_the_box_at_the_original_size(family):
    """One confident query (class 'car', normalised box cx, cy, w, h = 0.5, 0.25, 0.2, 0.1) on a 300×400 original:
    the top detection is that box in original pixels, xyxy."""
    detector = tiny(family)
    classes = 3 + (family == "detr")
    logits = torch.full((1, 6, classes), -10.0)
    logits[0, :, -1] = 10.0 if family == "detr" else -10.0
    logits[0, 2, 1] = 10.0
    boxes = torch.rand(1, 6, 4, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.2
    boxes[0, 2] = torch.tensor([0.5, 0.25, 0.2, 0.1])
    found = detector.detections(SimpleNamespace(logits=logits, pred_boxes=boxes), [(300, 400)])[0]
    top = found["scores"].argmax()
    assert detector.class_names[found["labels"][top]] == "car"
    assert found["boxes"][top].tolist() == pytest.approx([160.0, 60.0, 240.0, 90.0], abs=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_of_the_attack_objective_reach_the_original_pixels(family):
    detector = tiny(family)
    original = torch.rand(3, 75, 90, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    resized = detector.resize(original)
    assert resized.shape[-2:] == ((64, 64) if family == "rt_detr" else (64, 76))
    logits = detector(*detector.pad([resized])).logits
    detector.no_object_log_likelihood(logits).sum().backward()
    assert original.grad is not None and original.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_detector_reloads_with_its_processor_and_same_outputs(tmp_path, family):
    """Trained BatchNorm statistics survive the save: DETR's and Conditional DETR's norms go back to the frozen layers
    their folder loads with (RT-DETR's stay BatchNorm2d: built with freeze_backbone_batch_norms off)."""
    detector = tiny(family)
    detector.train()
    pixels, mask = detector.pad([torch.rand(3, 64, 64), torch.rand(3, 64, 64)])
    for _ in range(3):                                     # move the BatchNorm statistics away from (0, 1)
        detector(pixels, mask)
    detector.eval()
    with torch.no_grad():
        before = detector(pixels, mask)
    save_detector(tmp_path / "model", detector)
    loaded = detector_from_pretrained(tmp_path / "model").eval()
    assert isinstance(loaded.processor, PROCESSORS[family]) and loaded.class_names == CLASSES
    assert loaded.attention_name == ATTENTION[family] and loaded.size == detector.size
    if family != "rt_detr":
        assert not any(type(m).__name__ == "BatchNorm2d" for m in loaded.modules())
    with torch.no_grad():
        after = loaded(pixels, mask)
    torch.testing.assert_close(after.logits, before.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(after.pred_boxes, before.pred_boxes, rtol=1e-4, atol=1e-5)


def test_rt_detr_batch_norm_reset_puts_features_and_position_on_one_scale():
    """transformers draws RT-DETR's BatchNorm weights from N(0, 0.02): the AIFI layer's input tokens are then tiny
    beside its sine position embedding (q = k ≈ pure position). After reset_batch_norm both have comparable norms."""
    config, size = family_config("rt_detr")
    config = {**config, "d_model": 64, "encoder_hidden_dim": 64, "encoder_in_channels": [64],
              "decoder_in_channels": [64],
              "backbone": {**config["backbone"], "embedding_size": 16, "hidden_sizes": [16, 32, 64]}}
    detector = tiny("rt_detr", **{k: v for k, v in config.items() if k != "model_type"})
    layer = detector.model.model.encoder.aifi[0].layers[0]
    seen = {}
    layer.register_forward_pre_hook(lambda _m, args, kwargs: seen.update(
        tokens=args[0], position=kwargs["spatial_position_embeddings"]), with_kwargs=True)
    pixels, mask = detector.pad([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))])

    def ratio() -> float:
        detector.train()                          # the position embedding is built in training (no eval_size)
        with torch.no_grad():
            detector(pixels, mask)
        return (seen["tokens"].norm(dim=-1).mean() / seen["position"].norm(dim=-1).mean()).item()

    assert 0.1 < ratio() < 10
    for norm in detector.modules():                # transformers' own initialisation of the BatchNorm weights
        if isinstance(norm, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(norm.weight, std=0.02)
    assert ratio() < 0.1
    reset_batch_norm(detector)
    assert 0.1 < ratio() < 10
