"""Attack invariants, closed forms and strength ordering (methods.md, 'Checks any attack must pass')."""

from __future__ import annotations

import pytest
import torch

from pipeline.attacks.apgd import checkpoints
from pipeline.attacks.fgsm import FGSM
from pipeline.attacks.losses import dlr, margin
from pipeline.attacks.pgd import PGD
from pipeline.attacks.registry import ATTACKS, build_attack
from pipeline.attacks.square import window_share
from pipeline.models.wrappers import Masked
from tests.models import LinearBinary, stripes, train_stripes_model

EPS = 8 / 255
OPTIONS = {"pgd": {"steps": 5}, "cw": {"steps": 5}, "step_ll": {"steps": 3}, "apgd_ce": {"steps": 5},
           "apgd_dlr": {"steps": 5}, "square": {"queries": 20}, "fgsm": {}}


@pytest.fixture(scope="module")
def stripes_model():
    return train_stripes_model()


@pytest.fixture(scope="module")
def stripes_data():
    return stripes(200, seed=7)


def test_fixture_model_is_accurate(stripes_model, stripes_data):
    images, labels = stripes_data
    assert (stripes_model(images).argmax(1) == labels).float().mean() > 0.95


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_threat_model_invariants(name, stripes_model, stripes_data):
    images, labels = stripes_data[0][:64], stripes_data[1][:64]
    original = images.clone()
    perturb_mask = torch.zeros(64, 1, 16, 16)
    perturb_mask[:, :, 4:12, 4:12] = 1
    stripes_model.train()
    stripes_model.net.blocks[0][1].eval()           # a mixed mode that must come back exactly
    modes = [m.training for m in stripes_model.modules()]
    stripes_model.net.head[2].weight.requires_grad_(False)
    flags = [p.requires_grad for p in stripes_model.parameters()]

    result = build_attack(name, stripes_model, EPS, **OPTIONS[name])(images, labels, perturb_mask=perturb_mask)

    delta = result.adversarial - images
    assert torch.equal(images, original), "input mutated"
    assert delta.abs().max() <= EPS + 1e-6
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    assert torch.all(delta[(perturb_mask == 0).expand_as(delta)] == 0)
    assert [m.training for m in stripes_model.modules()] == modes
    assert [p.requires_grad for p in stripes_model.parameters()] == flags
    stripes_model.eval()
    with torch.no_grad():
        predicted = stripes_model(result.adversarial).argmax(1)
    assert torch.equal(result.success, predicted != labels)
    stripes_model.net.head[2].weight.requires_grad_(True)


def test_l2_pgd_stays_in_the_l2_ball(stripes_model, stripes_data):
    images, labels = stripes_data
    result = PGD(stripes_model, 2.0, steps=20, norm="l2", step_size=0.25)(images, labels)
    assert (result.adversarial - images).flatten(1).norm(dim=1).max() <= 2.0 + 1e-5
    assert result.success.float().mean() > 0


def test_fgsm_equals_one_step_pgd_without_random_start(stripes_model, stripes_data):
    images, labels = stripes_data
    fgsm = FGSM(stripes_model, EPS)(images, labels)
    pgd = PGD(stripes_model, EPS, steps=1, step_size=EPS, random_start=False)(images, labels)
    assert torch.equal(fgsm.adversarial, pgd.adversarial)
    assert torch.equal(fgsm.success, pgd.success)


@pytest.mark.parametrize("attack", ["pgd", "cw", "apgd_ce"])
def test_linear_model_closed_form(attack):
    """z = wᵀx + b, label 1: the L∞ optimum is clip(x − ε·sign(w)), which the attack must reach.

    b keeps every sample correct even at the optimum, so APGD returns its best-loss point (the optimum).
    """
    torch.manual_seed(0)
    w, eps = torch.randn(3, 4, 4), 0.05
    images = torch.rand(16, 3, 4, 4) * 0.8 + 0.1
    b = (eps * w.abs().sum() + (images.flatten(1) @ w.flatten()).abs().max() + 1).item()
    model = LinearBinary(w, b)
    labels = torch.ones(16, dtype=torch.long)
    optimum = (images - eps * w.sign()).clamp(0, 1)
    found = build_attack(attack, model, eps, steps=20, skip_misclassified=False)(images, labels).adversarial
    assert torch.allclose(found, optimum, atol=1e-6)


def test_misclassified_samples_are_skipped(stripes_model, stripes_data):
    images, labels = stripes_data
    wrong = (labels + 1) % 4
    result = PGD(stripes_model, EPS, steps=3)(images, wrong)
    clean_wrong = stripes_model(images).argmax(1) != wrong
    assert torch.equal(result.adversarial[clean_wrong], images[clean_wrong])
    assert result.success[clean_wrong].all()


def test_restarts_only_add_successes(stripes_model, stripes_data):
    images, labels = stripes_data
    one = PGD(stripes_model, 2 / 255, steps=3)(images, labels).success
    three = PGD(stripes_model, 2 / 255, steps=3, restarts=3)(images, labels).success
    assert torch.all(three | ~one) and three.sum() >= one.sum()


def test_early_stop_keeps_the_first_misclassified_iterate(stripes_model, stripes_data):
    images, labels = stripes_data
    full = PGD(stripes_model, 4 / 255, steps=10)(images, labels)
    early = PGD(stripes_model, 4 / 255, steps=10, early_stop=True)(images, labels)
    assert torch.equal(early.success, full.success | early.success)   # early stopping never loses a success
    assert early.success.float().mean() >= full.success.float().mean() - 0.02


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_the_first_k_steps_of_an_early_stopped_run_are_pgd_k(loss, stripes_model, stripes_data):
    """PGD-k run on its own succeeds exactly where a longer run with the same start and step first succeeds
    within k steps: what lets the suite read PGD-10/20/40 off one PGD-100 run."""
    images, labels = stripes_data
    eps, step = 2 / 255, 0.5 / 255                                 # small steps: successes spread over the steps
    longest = PGD(stripes_model, eps, steps=12, step_size=step, loss=loss, early_stop=True)(images, labels)
    first = longest.first_success
    assert torch.equal(longest.success, first >= 0) and first.max() <= 12
    assert len(set(first[first > 0].tolist())) >= 3                # the test sees several different horizons
    for k in (2, 5, 9):
        alone = PGD(stripes_model, eps, steps=k, step_size=step, loss=loss, early_stop=True)(images, labels)
        assert torch.equal(alone.success, (first >= 0) & (first <= k)), k
        assert torch.equal(alone.first_success, torch.where(first <= k, first, -1)), k


def test_first_success_is_zero_for_clean_mistakes_and_absent_without_early_stop(stripes_model, stripes_data):
    images, labels = stripes_data[0][:32], stripes_data[1][:32]
    wrong = (labels + 1) % 4
    result = PGD(stripes_model, EPS, steps=3, early_stop=True)(images, wrong)
    clean_wrong = stripes_model(images).argmax(1) != wrong
    assert clean_wrong.any() and (result.first_success[clean_wrong] == 0).all()
    assert PGD(stripes_model, EPS, steps=3)(images, labels).first_success is None
    assert PGD(stripes_model, EPS, steps=3, early_stop=True, restarts=2)(images, labels).first_success is None


def test_naturally_trained_model_falls_to_zero_under_pgd(stripes_model, stripes_data):
    images, labels = stripes_data
    assert PGD(stripes_model, EPS, steps=20)(images, labels).success.float().mean() >= 0.98


def test_strength_ordering(stripes_model, stripes_data):
    images, labels = stripes_data
    eps = 3 / 255
    suite = {"fgsm": ("fgsm", {}), "pgd10": ("pgd", {"steps": 10}), "pgd100": ("pgd", {"steps": 100})}
    robust = {name: 1 - build_attack(attack, stripes_model, eps, **opts)(images, labels).success.float().mean().item()
              for name, (attack, opts) in suite.items()}
    assert robust["fgsm"] >= robust["pgd10"] - 0.01 >= robust["pgd100"] - 0.02
    accuracies = [1 - PGD(stripes_model, e / 255, steps=10)(images, labels).success.float().mean().item() for e in (1, 2, 4, 64)]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[-1] == 0


def test_bf16_forward_changes_robust_accuracy_by_under_one_point(stripes_model):
    images, labels = stripes(1000, seed=11)
    accuracy = {amp: 1 - PGD(stripes_model, 3 / 255, steps=10, amp=amp)(images, labels).success.float().mean().item()
                for amp in (False, True)}
    assert 0.05 < accuracy[False] < 0.95, "the fixture ε should leave robust accuracy away from 0 and 1"
    assert abs(accuracy[True] - accuracy[False]) < 0.01


def test_masked_model_ignores_the_background(stripes_model, stripes_data):
    images, labels = stripes_data
    mask = torch.zeros(len(images), 1, 16, 16)
    mask[:, :, 2:14, 2:14] = 1
    masked = Masked(stripes_model, fill=0.0)
    noise = torch.rand_like(images) * (1 - mask)
    assert torch.equal(masked(images, mask), masked(((images + noise) * (1 - mask)) + images * mask, mask))
    result = PGD(masked, EPS, steps=5)(images, labels, model_mask=mask)
    assert result.success.float().mean() > 0


def test_apgd_checkpoints_match_the_paper():
    """Croce & Hein 2020, §3.2: for N = 100 the checkpoints are 22, 41, 57, 70, 80, 87, 93, 99."""
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_losses_closed_form():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    label = torch.tensor([1])
    assert margin(logits, label).item() == pytest.approx(2.0)                # 3 − 1
    assert dlr(logits, label).item() == pytest.approx(2.0 / (3.0 - 0.0))     # −(1 − 3)/(z_π1 − z_π3)


def test_square_schedule():
    assert window_share(0, 1000, 0.8) == 0.8
    assert window_share(100, 1000, 0.8) == pytest.approx(0.8 / 16)          # 1000 on the 10k scale: 4 halvings
    assert window_share(9999, 10000, 0.8) == pytest.approx(0.8 / 512)
