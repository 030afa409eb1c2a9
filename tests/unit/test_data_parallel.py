"""Data-parallel training (issue 20 §3): W gloo ranks on their shares of each global batch train the weights one
process trains on the whole batch; each sample's augmentation and attack start depend on the sample and epoch only
(not on DataLoader workers or ranks); the start noise gives PGD's uniform start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from statistics import NormalDist

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, RandomSampler

from pipeline.attacks.pgd import PGD
from pipeline.config import Augment, Optimiser
from pipeline.data.dataset import PreparedDataset, SampleTensors
from pipeline.defenses import RecipeSettings, build_recipe
from pipeline.evaluation.accuracy import correct_flags, success_flags
from pipeline.models.registry import build_classifier
from pipeline.train.data_parallel import DataParallel
from pipeline.train.loop import FitSettings, evaluate, fit
from pipeline.train.sharding import EpochShard
from tests.helpers import TWO_RANKS, project_env
from tests.models import prepared_split

CONFIG = {"model": {"arch": "small_cnn", "width": 4}, "num_classes": 4, "mean": [0.5] * 3, "std": [0.1] * 3,
          "mask": "foreground", "fill": 0.0}
AUGMENT = Augment(hflip=0.5, shift=0.1, scale=0.1, rotate_deg=10, brightness_contrast=0.2)
SGD = Optimiser(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine")
GLOBAL_BATCH = 16


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    return prepared_split(root / "train", 48, 1), prepared_split(root / "val", 16, 2)


def test_one_process_keeps_torchs_shuffled_order():
    order = [position for position, _ in EpochShard(50)]
    assert order == list(RandomSampler(range(50), generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_kth_batches_together_are_one_process_kth_global_batch(world):
    size, local = 50, 4
    batches = []
    for rank in range(world):
        shard = EpochShard(size, rank, world)
        shard.set_epoch(7)
        positions = {(p, 7): p for p in range(size)}                   # a dataset whose item is its position
        batches.append(list(DataLoader(positions, local, sampler=shard, drop_last=True, collate_fn=list)))
    order = torch.randperm(size, generator=torch.Generator().manual_seed(7)).tolist()
    whole = [order[k * local * world:(k + 1) * local * world] for k in range(size // (local * world))]
    joined = [sorted(p for ranks in batches for p in ranks[k]) for k in range(len(whole))]
    assert joined == [sorted(b) for b in whole]
    assert all(len(ranks) == len(whole) for ranks in batches)


def test_a_sample_draws_the_same_augmentation_and_start_with_workers_as_alone(splits):
    dataset = PreparedDataset(splits[0], AUGMENT)
    shard = EpochShard(len(dataset))
    shard.set_epoch(3)
    alone, in_workers = (list(DataLoader(dataset, 8, sampler=shard, num_workers=workers)) for workers in (0, 2))
    for one, other in zip(alone, in_workers, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(one, other, strict=True))
    assert not torch.equal(dataset[(0, 3)][0], dataset[(0, 4)][0])        # another epoch, another draw


def test_start_noise_is_the_uniform_start_of_the_linf_ball():
    images = torch.full((2, 3, 4, 4), 0.5)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    attack = PGD(torch.nn.Identity(), 8 / 255)
    attack.start_noise = noise
    expected = torch.tensor([0.5 + 8 / 255 * (2 * NormalDist().cdf(z) - 1) for z in noise.flatten().tolist()])
    assert torch.allclose(attack.start(images, None).flatten(), expected.float(), atol=1e-6)


def trained(splits, ranks: DataParallel, state_dir):
    """Two epochs of Madry training (PGD-2 from the start noise, augmentation, a mask, BatchNorm) from seed 0; the
    weights and metrics. (AAD, measured once: within 2·10⁻³ of each tensor's largest value, as Grad-CAM's hard
    threshold amplifies float rounding; docs/performance.md#several-gpus.)"""
    torch.manual_seed(0)
    model = ranks.prepare(build_classifier(CONFIG))
    step = build_recipe("madry", model, RecipeSettings(8 / 255, 2 / 255, 2))
    settings = FitSettings(2, GLOBAL_BATCH, SGD, 0, "foreground", 8 / 255, 2 / 255, 2)
    history = fit(model, step, PreparedDataset(splits[0], AUGMENT), SampleTensors(splits[1]), SampleTensors(splits[1]),
                  settings, state_dir, "f", torch.device("cpu"), ranks=ranks)
    return model.state_dict(), history


def _joined(rank: int, world: int, port: int) -> DataParallel:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    return DataParallel.from_environment(torch.device("cpu"))


def free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def _rank(rank: int, world: int, port: int, splits, out) -> None:
    ranks = _joined(rank, world, port)
    weights, history = trained(splits, ranks, out / "state")
    if ranks.writes:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "weights.safetensors"))
        (out / "history.json").write_text(json.dumps(history))
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_train_the_weights_of_one_process_on_the_global_batch(splits, tmp_path):
    mp.spawn(_rank, args=(2, free_port(), splits, tmp_path), nprocs=2)
    weights, history = trained(splits, DataParallel(), tmp_path / "alone")
    together = load_file(str(tmp_path / "weights.safetensors"))
    assert weights.keys() == together.keys()
    for name, value in weights.items():
        assert torch.allclose(together[name].to(value.dtype), value, rtol=1e-4, atol=1e-5), name
    for epoch, other in zip(history, json.loads((tmp_path / "history.json").read_text()), strict=True):
        assert epoch.keys() == other.keys() and all(abs(epoch[k] - other[k]) < 1e-4 for k in epoch)


EVALUATION = FitSettings(0, GLOBAL_BATCH, SGD, 0, "foreground", 8 / 255, 2 / 255, 3, eval_batch=3)


def evaluated() -> tuple[torch.nn.Module, PGD]:
    """An untrained model (seed 1) and the per-epoch PGD-3 of EVALUATION."""
    torch.manual_seed(1)
    model = build_classifier(CONFIG).eval()
    return model, PGD(model, EVALUATION.eval_eps, steps=EVALUATION.eval_steps, step_size=EVALUATION.eval_step_size)


def _evaluating_rank(rank: int, world: int, port: int, splits, out) -> None:
    ranks = _joined(rank, world, port)
    model, attack = evaluated()
    val = SampleTensors(splits[1])
    metrics = evaluate(model, attack, val, SampleTensors(splits[1], list(range(1, 14))), EVALUATION,
                       torch.device("cpu"), ranks)
    (out / f"rank_{rank}.json").write_text(json.dumps(metrics))
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_share_the_validation_batches_and_report_one_process_fractions(splits, tmp_path):
    """16 validation images and a subset of 13 in batches of 3: the ranks take alternate batches and sum their
    counts, so both report the fractions one process counts over all batches, exactly."""
    mp.spawn(_evaluating_rank, args=(2, free_port(), splits, tmp_path), nprocs=2)
    model, attack = evaluated()
    cpu = torch.device("cpu")
    correct = correct_flags(model, SampleTensors(splits[1]), 3, cpu, "foreground")
    broken = success_flags(attack, SampleTensors(splits[1], list(range(1, 14))), 3, cpu, "foreground")
    expected = {"val_accuracy": int(correct.sum()) / 16, "val_pgd_accuracy": (13 - int(broken.sum())) / 13}
    assert all(0 < fraction < 1 for fraction in expected.values())          # neither trivially 0 nor 1
    for rank in range(2):
        assert json.loads((tmp_path / f"rank_{rank}.json").read_text()) == expected


RANK_LEAVES_FIRST = """
import time, torch
from pipeline.train.data_parallel import DataParallel
ranks = DataParallel.from_environment(torch.device("cpu"))
ranks.gather([ranks.rank])
if ranks.writes:
    time.sleep(0.5)                     # rank 0 still writing while rank 1 has finished
"""


def test_a_rank_that_finishes_first_exits_cleanly(tmp_path):
    """Under torchrun the rank that does not write returns while rank 0 still works (analyze_attention, train_detr):
    its exit must not abort on the process group's threads. Eight runs: the abort came in about 4 of 10."""
    script = tmp_path / "leaves_first.py"
    script.write_text(RANK_LEAVES_FIRST)
    failed = []
    for _ in range(8):
        result = subprocess.run([*TWO_RANKS, str(script)], cwd=tmp_path, env={**project_env(), "OMP_NUM_THREADS": "1"},
                                capture_output=True, text=True, check=False)
        if result.returncode:
            failed.append(result.stderr[-500:])
    assert not failed, failed[0]
