"""Data-parallel detector training (train_detr under torchrun, issue 20 §3): two gloo ranks, each on half of every
global batch, train the weights one process trains on the whole batch. The fixture is chosen so that the two agree
exactly: transformers' DETR losses divide the box terms by the rank's own box count, and every scene here holds two
boxes, so the ranks' mean loss is the global batch's; dropout is off (each rank would draw its own masks). RT-DETR's
denoising queries depend on the batch, so there the ranks only approximate one process (docs/performance.md)."""

from __future__ import annotations

import json
import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from pipeline.config import Optimiser
from pipeline.data.coco_detection import StreamedImage
from pipeline.models.detr import detector_from_config
from pipeline.train.data_parallel import ONE_PROCESS, DataParallel
from pipeline.train.detection import DetectorFitSettings, fit_detector
from tests.unit.test_detr import BACKBONE, fixture_scenes

CONFIG = {"model_type": "conditional_detr", "backbone": BACKBONE, "d_model": 32, "encoder_layers": 1,
          "decoder_layers": 1, "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64,
          "decoder_ffn_dim": 64, "num_queries": 4, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
ADAMW = Optimiser(name="adamw", lr=2e-3, momentum=0.9, weight_decay=1e-4, schedule="cosine")
SETTINGS = DetectorFitSettings(epochs=3, batch_size=4, optimiser=ADAMW, seed=0, clip_norm=0.1, hflip=0.5,
                               eval_every=99, warmup_steps=2)


def trained(ranks: DataParallel, state_dir) -> tuple[dict, list[dict]]:
    """Three epochs of one global batch of the four scenes (flips, clipping, warm-up, cosine), from seed 0."""
    images, _ = fixture_scenes()
    torch.manual_seed(0)
    detector = ranks.prepare(detector_from_config(CONFIG, ["box", "disc"], {"shortest_edge": 64}))
    targets = [{"class_labels": image.category_ids - 1, "boxes": image.boxes} for image in images]
    streamed = [StreamedImage(index, f"{index}.jpg", image.pixels, "") for index, image in enumerate(images)]
    history = fit_detector(detector, streamed, targets, dict, SETTINGS, state_dir, "fixture", torch.device("cpu"),
                           ranks=ranks)
    return detector.state_dict(), history


def _rank(rank: int, world: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    ranks = DataParallel.from_environment(torch.device("cpu"))
    weights, history = trained(ranks, out / "state")
    if ranks.writes:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "weights.safetensors"))
        (out / "history.json").write_text(json.dumps(history))
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_train_the_detector_one_process_trains_on_the_global_batch(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    mp.spawn(_rank, args=(2, port, tmp_path), nprocs=2)
    weights, history = trained(ONE_PROCESS, tmp_path / "alone")
    together = load_file(str(tmp_path / "weights.safetensors"))
    assert weights.keys() == together.keys()
    for name, value in weights.items():
        assert torch.allclose(together[name], value, rtol=1e-4, atol=1e-5), name
    torch.manual_seed(0)
    initial = detector_from_config(CONFIG, ["box", "disc"], {"shortest_edge": 64}).state_dict()
    assert sum(not torch.equal(weights[name], initial[name]) for name in weights) > 20      # training moved it
    for epoch, other in zip(history, json.loads((tmp_path / "history.json").read_text()), strict=True):
        assert epoch.keys() == other.keys()
        assert all(abs(epoch[k] - other[k]) < 1e-4 for k in epoch if k != "train_minutes"), (epoch, other)
