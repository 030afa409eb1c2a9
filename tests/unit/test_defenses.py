"""Attention recipes: each lowers its own loss, logs its terms; AAD's preservation term and second-order path."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import Classifier
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.defenses._pairing import attention_pairing
from pipeline.models.registry import build_classifier
from tests.conftest import load_profile
from tests.models import stripes

CONFIG = {"model": {"arch": "small_cnn", "width": 4}, "num_classes": 4, "mean": [0.5] * 3, "std": [0.1] * 3,
          "mask": "foreground", "fill": 0.0}
TERMS = {"alp": {"ce", "logit_pairing"}, "at_alp": {"ce", "logit_pairing", "attention_pairing"},
         "trades": {"ce", "kl"}, "aad": {"classification", "rectification", "preservation"}}


def evaluate(step, images, labels, mask):
    torch.manual_seed(123)                      # the same random starts before and after training
    return step(images, labels, mask)


@pytest.mark.parametrize(("recipe", "options"), [("alp", {}), ("at_alp", {}), ("trades", {}), ("aad", {}),
                                                 ("aad", {"base": "alp"}), ("aad", {"variant": "code_v1"})])
def test_recipe_lowers_its_own_loss_and_logs_its_terms(recipe, options):
    torch.manual_seed(0)
    model = build_classifier(CONFIG).train()
    step = build_recipe(recipe, model, RecipeSettings(8 / 255, 2 / 255, 2, options=options))
    images, labels = stripes(64, seed=3)
    mask = torch.ones(64, 1, 16, 16)
    before = evaluate(step, images, labels, mask)
    assert set(before.terms) == TERMS[recipe] and torch.isfinite(before.loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(15):
        out = step(images, labels, mask)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = evaluate(step, images, labels, mask)
    assert after.loss.item() < before.loss.item()


def test_aad_preservation_is_zero_without_perturbation_and_trains_through_the_cam_gradient():
    torch.manual_seed(0)
    model = build_classifier(CONFIG).train()
    images, labels = stripes(16, seed=4)
    mask = torch.ones(16, 1, 16, 16)
    unperturbed = build_recipe("aad", model, RecipeSettings(0.0, 2 / 255, 2))(images, labels, mask)
    assert unperturbed.terms["preservation"].item() == 0.0
    out = build_recipe("aad", model, RecipeSettings(8 / 255, 2 / 255, 2))(images, labels, mask)
    assert out.terms["preservation"].item() > 0
    out.terms["preservation"].backward()
    # The head's weights enter Grad-CAM only through α = ∂z_c/∂A: a gradient there needs the second-order path.
    head = model.model.net.head[-1].weight
    assert head.grad is not None and head.grad.abs().sum() > 0


def test_recipe_options_are_validated_against_the_recipe():
    raw = dict(load_profile("params")["classifiers"]["gtsrb_madry_none"])
    Classifier.model_validate({**raw, "recipe": "aad", "options": {"base": "alp", "alpha": 0.1}})
    with pytest.raises(ValueError, match="options.bse"):
        Classifier.model_validate({**raw, "recipe": "aad", "options": {"bse": "alp"}})
    with pytest.raises(ValueError, match="takes no options"):
        Classifier.model_validate({**raw, "recipe": "madry", "options": {"beta": 6.0}})


def test_attention_pairing_is_a_mean_over_images_and_map_elements():
    """Zagoruyko–Komodakis's β is per map element: two orthogonal unit maps of 4 elements differ by
    ||a − b||² = 2, i.e. 0.5 per element; identical maps by 0."""
    clean = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    adversarial = torch.tensor([[0, 1.0, 0, 0], [0, 1.0, 0, 0]])
    assert attention_pairing(clean, adversarial).item() == pytest.approx((0.5 + 0.0) / 2)
