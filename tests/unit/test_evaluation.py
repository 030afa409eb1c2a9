"""Wilson intervals against closed forms; the gradient-masking audit on a model that masks its gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config import Audit, SuiteEntry
from pipeline.data.dataset import SampleTensors
from pipeline.evaluation.audit import run_audit, share_check
from pipeline.evaluation.intervals import wilson_interval
from pipeline.evaluation.suite import Evaluation, SuiteRunner
from tests.models import stripes, train_stripes_model

AUDIT = Audit(fail_stage=False, max_zero_gradient_share=0.01, max_pgd20_pgd100_gap=0.03, max_blackbox_wins=0,
              large_eps_255=128, max_large_eps_accuracy=0.01, max_forward_change=1e-4)


def test_wilson_closed_forms():
    z = 1.959963984540054
    assert wilson_interval(0, 10) == pytest.approx((0.0, z * z / (10 + z * z)))     # upper bound z²/(n + z²)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z * z), 1.0))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)       # textbook value
    low, high = wilson_interval(300, 1000)
    assert low < 0.3 < high and high - low == pytest.approx(2 * z * math.sqrt(0.3 * 0.7 / 1000), rel=0.01)


class Quantised(nn.Module):
    """Rounds its input to 8 bits first: a textbook obfuscated gradient (zero almost everywhere)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


def write_samples(folder, n=64):
    images, labels = stripes(n, seed=5)
    folder.mkdir()
    np.save(folder / "images.npy", (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    np.save(folder / "masks.npy", np.ones((n, 16, 16), np.uint8))
    np.save(folder / "random_masks.npy", np.ones((n, 16, 16), np.uint8))
    np.save(folder / "labels.npy", labels.numpy().astype(np.int64))
    return SampleTensors(folder)


@pytest.fixture(scope="module")
def audit_inputs(tmp_path_factory):
    return train_stripes_model(), write_samples(tmp_path_factory.mktemp("audit") / "val")


def audit(model, samples) -> dict:
    runner = SuiteRunner(Evaluation(model, "none", samples, 64, torch.device("cpu"), 0.25, False, 0))
    eps = 8 / 255
    white_box = runner.success(SuiteEntry(attack="pgd", steps=20), eps)
    return run_audit(runner, AUDIT, eps, white_box, SuiteEntry(attack="square", queries=200))


def test_honest_model_passes_the_audit(audit_inputs):
    report = audit(*audit_inputs)
    assert report["passed"], report


def test_obfuscated_gradients_fail_the_audit(audit_inputs):
    model, samples = audit_inputs
    report = audit(Quantised(model), samples)
    assert not report["passed"]
    assert report["zero_gradient_share"]["value"] == 1.0 and not report["zero_gradient_share"]["pass"]
    assert report["blackbox_wins"]["value"] > 0 and not report["blackbox_wins"]["pass"]


def test_randomised_forward_is_flagged(audit_inputs):
    model, samples = audit_inputs

    class Noisy(nn.Module):
        def forward(self, x):
            return model(x + 0.05 * torch.randn_like(x))

    assert not audit(Noisy(), samples)["forward_change"]["pass"]


class Counting(nn.Module):
    """Counts the images the model is run on (forward passes × batch)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += len(x)
        return self.model(x)


def test_planned_pgd_and_cw_runs_are_read_off_the_longest_one(audit_inputs):
    model, samples = audit_inputs
    eps, specs = 3 / 255, [SuiteEntry(attack=a, steps=k) for a in ("pgd", "cw") for k in (2, 5, 10)]
    separate = Counting(model)
    alone = [SuiteRunner(Evaluation(separate, "none", samples, 64, torch.device("cpu"), 0.25, False, 0)).success(s, eps)
             for s in specs]
    shared = Counting(model)
    runner = SuiteRunner(Evaluation(shared, "none", samples, 64, torch.device("cpu"), 0.25, False, 0),
                         planned=[(s, eps) for s in specs])
    read_off = [runner.success(s, eps) for s in specs]
    for spec, flags, expected in zip(specs, read_off, alone):
        assert torch.equal(flags, expected), spec
    assert len({int(f.sum()) for f in alone[:3]}) > 1                  # PGD-2, -5, -10 differ: a real test
    assert shared.images < 0.75 * separate.images                      # one 10-step run per attack, not 2 + 5 + 10


def test_share_checks_decide_on_image_counts():
    """A gap of exactly the limit (3 of 100 images at 0.03) passes; float32 accuracies made it 0.030000001 > 0.03."""
    pgd20, pgd100 = torch.zeros(100), torch.zeros(100)
    pgd20[:2], pgd100[:5] = 1, 1                                                 # 2 and 5 of 100 images broken
    assert (1 - pgd20.mean().item()) - (1 - pgd100.mean().item()) > 0.03        # the old float32 comparison
    assert share_check(3, 100, 0.03) == {"value": 0.03, "count": 3, "images": 100, "limit": 0.03, "pass": True}
    assert not share_check(4, 100, 0.03)["pass"] and share_check(0, 0, 0.0)["pass"]
