"""On a CUDA GPU (marker `gpu`, skipped without one; `benchmarks/gpu_check.sh` runs them): what the CPU suite checks
that a GPU could break: a resumed training equals the uninterrupted one under the deterministic settings
`stages.common.pick_device` makes, and bf16 autocast leaves robust accuracy within one point of fp32 (and a
memorised detector's patched mAP within ten points)."""

from __future__ import annotations

import pytest
import torch

from pipeline.attacks.patch import PatchAttack, PatchPlacement
from stages.common import configure_cuda
from tests.unit.test_detr import memorised_detector
from tests.unit.test_training import Interrupted, same_weights, splits, train  # noqa: F401  (splits: a fixture)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def deterministic_cuda():
    configure_cuda()


@pytest.mark.parametrize("recipe", ["natural", "madry"])
def test_resume_on_the_gpu_gives_the_uninterrupted_weights(splits, tmp_path, recipe):  # noqa: F811
    reference, reference_history, _ = train(splits, tmp_path / "full", recipe, device=CUDA)
    with pytest.raises(Interrupted):
        train(splits, tmp_path / "cut", recipe, stop_after=2, device=CUDA)
    resumed, history, _ = train(splits, tmp_path / "cut", recipe, device=CUDA)
    assert history == reference_history and same_weights(resumed, reference)


@pytest.mark.parametrize("size", [16, 224])
def test_bf16_patch_attack_within_one_point_of_fp32(size):
    """A random ViT (tiny at 16 px; ViT-B/16's architecture at 224 px) labelled by its own clean predictions:
    L_ce + L_kq* robust accuracy under bf16 autocast within 1 point of fp32."""
    from pipeline.models.vit import classifier_of, image_processor, vit_from_config

    tiny = {"model_type": "vit", "patch_size": 4, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "initializer_range": 0.1}
    base = {"model_type": "vit", "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "initializer_range": 0.1}
    config, count = (tiny, 400) if size == 16 else (base, 100)
    torch.manual_seed(0)
    processor = image_processor(size, [0.5] * 3, [0.25] * 3)
    model = classifier_of(vit_from_config(config, size, list("abcdefghij")), processor)
    model = model.to(CUDA).eval()
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(3)).to(CUDA)
    with torch.no_grad():
        labels = model(images).argmax(1)
    cells = torch.zeros(count, 2, dtype=torch.long, device=CUDA)
    robust = {}
    for amp in (False, True):
        placement = PatchPlacement(config["patch_size"], size // config["patch_size"], 1)
        attack = PatchAttack(model, placement, steps=10, objective="ce+kq_cls", momentum=0.9, amp=amp)
        robust[amp] = 1 - attack(images, labels, cells).success.float().mean().item()
    assert abs(robust[True] - robust[False]) <= 0.01, robust


def test_bf16_detr_patch_attack_lowers_map_as_fp32_does(tmp_path):
    """The memorised Conditional DETR of tests/unit/test_detr.py, trained and attacked on the GPU: the CPU suite's
    bf16 check (Memorised.check_bf16)."""
    memorised_detector(CUDA, tmp_path).check_bf16()
