"""The q/k capture of pipeline/models/hf_attention.py on a Hugging Face DETR (groundwork for methods.md P4's
DETR attack): the encoder's captured scores are the attention its own eager implementation computes, with
DETR's position embeddings inside (q = k = src + pos), and SDPA gives the same projections."""

from __future__ import annotations

import pytest
import torch
from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

from pipeline.models.hf_attention import attention_layers, captured_query_keys, key_query_scores


def tiny_detr(implementation: str) -> DetrForObjectDetection:
    """A random 2-encoder-layer DETR on a 4-stage ResNet backbone (which has no attention: it stays eager)."""
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1],
                            out_features=["stage4"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False, d_model=32,
                        encoder_layers=2, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
                        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, num_labels=5,
                        attn_implementation={"": implementation, "backbone_config": "eager"})
    torch.manual_seed(0)
    return DetrForObjectDetection(config).eval()


def test_layers_come_in_forward_order_encoder_first():
    model = tiny_detr("eager")
    names = {m: n for n, m in model.named_modules()}
    assert [names[m] for m in attention_layers(model)] == [
        "model.encoder.layers.0.self_attn", "model.encoder.layers.1.self_attn",
        "model.decoder.layers.0.self_attn", "model.decoder.layers.0.encoder_attn"]


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_encoder_scores_are_the_attention_detr_computes(implementation):
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))     # stride 32: 4×4 tokens
    eager = tiny_detr("eager")
    with torch.no_grad(), captured_query_keys(eager) as reference:
        weights = eager(pixel_values=images, output_attentions=True).encoder_attentions
    model = tiny_detr(implementation)
    with torch.no_grad(), captured_query_keys(model) as captured:
        model(pixel_values=images)
    assert len(captured) == 4                                 # 2 encoder, decoder self, decoder cross
    for layer, expected in enumerate(weights):
        assert captured[layer].query.shape == (2, 4, 16, 8)
        scores = key_query_scores(captured[layer], normalise=False)
        torch.testing.assert_close(scores.softmax(-1), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(scores, key_query_scores(reference[layer], normalise=False))
