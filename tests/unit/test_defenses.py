"""Attention recipes: each lowers its own loss, logs its terms; AAD's preservation term and second-order path, its
BatchNorm-neutral masked pass and live Grad-CAMs; ALP's loss at Kannan et al.'s scale."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.attention.gradcam import grad_cam
from pipeline.config import Classifier
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.defenses._pairing import attention_pairing
from pipeline.models.batch_norm import batch_norm_frozen
from pipeline.models.registry import build_classifier
from tests.conftest import load_profile
from tests.models import stripes

CONFIG = {"model": {"arch": "small_cnn", "width": 4}, "num_classes": 4, "mean": [0.5] * 3, "std": [0.1] * 3,
          "mask": "foreground", "fill": 0.0}
TERMS = {"alp": {"ce", "logit_pairing"}, "at_alp": {"ce", "logit_pairing", "attention_pairing"},
         "trades": {"ce", "kl"}, "aad": {"classification", "rectification", "preservation"}}


def train(model, step, images, labels, mask, steps: int, lr: float) -> None:
    """`steps` SGD updates (momentum 0.9) of `model` on the recipe's loss over one fixed batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        out = step(images, labels, mask, torch.randn_like(images))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()


def evaluate(step, images, labels, mask):
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(123))   # the same starts before and after
    return step(images, labels, mask, noise)


@pytest.mark.parametrize(("recipe", "options"), [("alp", {}), ("at_alp", {}), ("trades", {}), ("aad", {}),
                                                 ("aad", {"base": "alp"}),
                                                 ("aad", {"classification": "soft_margin"})])
def test_recipe_lowers_its_own_loss_and_logs_its_terms(recipe, options):
    torch.manual_seed(0)
    model = build_classifier(CONFIG).train()
    step = build_recipe(recipe, model, RecipeSettings(8 / 255, 2 / 255, 2, options=options))
    images, labels = stripes(64, seed=3)
    mask = torch.ones(64, 1, 16, 16)
    before = evaluate(step, images, labels, mask)
    assert set(before.terms) == TERMS[recipe] and torch.isfinite(before.loss)
    train(model, step, images, labels, mask, steps=15, lr=0.02)
    after = evaluate(step, images, labels, mask)
    assert after.loss.item() < before.loss.item()


def test_aad_preservation_is_zero_without_perturbation_and_trains_through_the_cam_gradient():
    torch.manual_seed(0)
    model = build_classifier(CONFIG).train()
    images, labels = stripes(16, seed=4)
    mask = torch.ones(16, 1, 16, 16)
    unperturbed = build_recipe("aad", model, RecipeSettings(0.0, 2 / 255, 2))(images, labels, mask,
                                                                                  torch.randn_like(images))
    assert unperturbed.terms["preservation"].item() == 0.0
    out = build_recipe("aad", model, RecipeSettings(8 / 255, 2 / 255, 2))(images, labels, mask, torch.randn_like(images))
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


def test_alp_loss_is_kannans_formula_on_a_three_class_example():
    """Kannan et al.'s code: the cross-entropy averaged over the mixed 2B batch plus λ · the mean over images AND
    logits of the squared logit difference; computed here by hand in float64 for a linear 3-class model."""
    from pipeline.defenses._pairing import paired_step

    model = torch.nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0]]))
        model.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    clean, adversarial = torch.tensor([[1.0, 2.0], [-1.0, 0.5]]), torch.tensor([[1.5, 1.0], [0.0, 0.0]])
    labels = torch.tensor([1, 2])
    attack = lambda images, labels, model_mask=None, start_noise=None: SimpleNamespace(adversarial=adversarial)  # noqa: E731
    out = paired_step(model, attack, logit_weight=0.5, attention_weight=0.0, amp=False)(clean, labels, None, None)
    w, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    z, z_adv = clean.double().numpy() @ w.T + b, adversarial.double().numpy() @ w.T + b
    logits, targets = np.concatenate([z, z_adv]), np.array([1, 2, 1, 2])
    cross_entropy = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(4), targets])
    pairing = np.mean((z - z_adv) ** 2)                           # 2 images × 3 logits
    assert out.terms["ce"].item() == pytest.approx(cross_entropy, rel=1e-6)
    assert out.terms["logit_pairing"].item() == pytest.approx(pairing, rel=1e-6)
    assert out.loss.item() == pytest.approx(cross_entropy + 0.5 * pairing, rel=1e-6)


def test_batch_norm_frozen_keeps_the_running_statistics_and_the_gradient():
    model = build_classifier(CONFIG).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(n.running_mean.clone(), n.running_var.clone(), int(n.num_batches_tracked)) for n in norms]
    images = torch.rand(8, 3, 16, 16)
    with batch_norm_frozen(model):
        model(images, torch.ones(8, 1, 16, 16)).sum().backward()
    for norm, (mean, var, tracked) in zip(norms, before):
        assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
        assert int(norm.num_batches_tracked) == tracked and norm.training
    assert next(model.parameters()).grad.abs().sum() > 0


def test_an_aad_step_updates_batch_norm_once_not_on_the_masked_images():
    """One AAD step runs three forward passes in train mode territory: the attack (eval mode), the Grad-CAM pass on
    x and x_adv (trains BN: one update) and the pass on the masked x^m (must not: BN0 drifted 0.6σ with it)."""
    torch.manual_seed(0)
    model = build_classifier(CONFIG).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    images, labels = stripes(16, seed=5)
    build_recipe("aad", model, RecipeSettings(8 / 255, 2 / 255, 2))(images, labels, torch.ones(16, 1, 16, 16),
                                                                 torch.randn_like(images))
    assert all(int(norm.num_batches_tracked) == 1 for norm in norms)


@pytest.mark.parametrize("classification", ["cross_entropy", "soft_margin"])
def test_aad_keeps_grad_cams_alive_with_cross_entropy(classification):
    """The defect the issue measured: with the multi-label soft margin the head's Grad-CAM weights turn negative and
    ReLU(Σ αA) = 0 on most images (43 classes: 85% all-zero CAMs). With cross-entropy (the authors' code) the CAMs of
    a trained model on a 43-class fixture stay non-zero."""
    torch.manual_seed(0)
    config = {**CONFIG, "num_classes": 43}
    model = build_classifier(config).train()
    images, labels = stripes(128, seed=6)                 # four of the 43 classes occur
    mask = torch.ones(128, 1, 16, 16)
    step = build_recipe("aad", model, RecipeSettings(8 / 255, 2 / 255, 2, options={"classification": classification}))
    train(model, step, images, labels, mask, steps=40, lr=0.05)
    model.eval()
    cams = grad_cam(model, images, labels, mask).cam
    zero_share = (cams.flatten(1).amax(1) == 0).float().mean().item()
    if classification == "cross_entropy":
        assert zero_share < 0.05
    else:
        assert zero_share > 0.25            # 37% on this fixture (the demo's 43-class GTSRB: 85%)
