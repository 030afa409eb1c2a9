"""The benchmarks behind the GPU check (benchmarks/gpu_check.sh): each one runs through with its counts shrunk, and the
paper projection reads the files they write (a GPU's apart from the CPU's), prefers bf16 where it was measured, and
reports each unit's share of the GPU's datasheet peak. What the benchmarks measure is not asserted here."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from benchmarks import (
    common,
    detr_throughput,
    patch_throughput,
    pgd_throughput,
    project_paper,
    recipe_epochs,
    resnet18_throughput,
)

CUDA = torch.device("cuda")
# images/s of one forward + backward, picked so that TFLOP/s = rate × 3 passes × GFLOPs / 1000 is round
RATES = {"resnet18@64": {"fp32": 1000 / 7.2, "bf16": 2000 / 7.2}, "vit_b16@224": {"fp32": 1000 / 52.8},
         "detr_r50@800": {"fp32": 1000 / 258, "bf16": 4000 / 258}}


def write_gpu_measurements(gpu: str) -> None:
    """The three throughput files in the benchmarks' layout, saved as a GPU's measurement."""
    machine = {"device": "cuda", "gpu": gpu}
    resnet = {f"small_stem_{p}": rate for p, rate in RATES["resnet18@64"].items()}
    vit = {"vit_b16@224_fp32": {"batch": 4, "ce": {"attack_iterations_per_s": RATES["vit_b16@224"]["fp32"] / 4}}}
    detr = {f"detr_r50@800x1066_{p}": {"attack_images_per_s": rate} for p, rate in RATES["detr_r50@800"].items()}
    common.save("resnet18_throughput", {"machine": machine, "images_per_s": resnet}, CUDA)
    common.save("patch_throughput", {"machine": machine, "cases": vit}, CUDA)
    common.save("detr_throughput", {"machine": machine, "cases": detr}, CUDA)


def project(monkeypatch, tmp_path, *arguments: str) -> dict:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(project_paper, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["project_paper", "--device", "cuda", "--gpus", "8", *arguments])
    project_paper.main()
    return json.loads((tmp_path / "paper_projection_cuda.json").read_text())


def test_the_gpu_projection_reads_the_gpu_files_and_prefers_bf16(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    write_gpu_measurements("NVIDIA H200")
    (tmp_path / "detr_throughput.json").write_text("{}")          # a CPU file beside them is not read
    projection = project(monkeypatch, tmp_path)
    assert projection["seconds_per_pass"] == pytest.approx(
        {"resnet18@64": 7.2 / 2000, "vit_b16@224": 52.8 / 1000, "detr_r50@800": 258 / 4000})
    for stage in projection["stages"].values():
        assert stage["hours_8"] == pytest.approx(stage["hours_1"] / 8)


def test_the_share_of_the_datasheet_peak_per_unit_and_precision(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    write_gpu_measurements("NVIDIA H100 80GB HBM3")
    units = project(monkeypatch, tmp_path)["gpu_utilisation"]["units"]
    # 1 TFLOP/s per 1000/(3·GFLOPs) images/s: ResNet-18 2.4, ViT-B/16 17.6, DETR-R50 86 GFLOPs per forward
    expected = {"resnet18@64_fp32": (1, 494.7), "resnet18@64_bf16": (2, 989.4), "vit_b16@224_fp32": (1, 494.7),
                "detr_r50@800_fp32": (1, 494.7), "detr_r50@800_bf16": (4, 989.4)}
    assert set(units) == set(expected)
    for unit, (tflops, peak) in expected.items():
        assert (units[unit]["tflops"], units[unit]["share_of_peak"]) == pytest.approx((tflops, tflops / peak)), unit


def test_an_unknown_gpu_has_no_share_unless_its_peaks_are_given(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    write_gpu_measurements("Some Future GPU")
    assert project(monkeypatch, tmp_path)["gpu_utilisation"]["units"]["detr_r50@800_bf16"]["share_of_peak"] is None
    given = project(monkeypatch, tmp_path, "--peak-tflops", "100", "200")["gpu_utilisation"]
    assert given["peak_tflops_tf32_bf16"] == [100, 200]
    assert given["units"]["detr_r50@800_bf16"]["share_of_peak"] == pytest.approx(4 / 200)


def test_every_benchmark_of_the_gpu_check_runs_and_the_projection_reads_its_files(monkeypatch, tmp_path):
    """The CPU cases of the GPU check's benchmarks with their counts shrunk (same code, same case names), then the
    projection from what they wrote."""
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(pgd_throughput, "CASES", {"small_cnn4@16": ({"arch": "small_cnn", "width": 4}, 16, 4)})
    monkeypatch.setattr(pgd_throughput, "STEPS", 1)
    for name, value in {"K": 1, "SIZE": 16, "COUNT": 8, "BATCH": 4}.items():
        monkeypatch.setattr(recipe_epochs, name, value)
    monkeypatch.setattr(resnet18_throughput, "BATCH", {"cpu": 2})
    vit = {**patch_throughput.DEMO, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "intermediate_size": 16}
    monkeypatch.setattr(patch_throughput, "cases", lambda dev: {"vit_b16@224_fp32": (vit, 16, 2, False, 1)})
    detr = {"model_type": "detr", "num_queries": 4, "d_model": 16, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 16, "decoder_ffn_dim": 16,
            "backbone": {"embedding_size": 8, "hidden_sizes": [8, 8, 8, 8], "depths": [1, 1, 1, 1],
                         "out_features": ["stage4"]}}
    monkeypatch.setattr(detr_throughput, "cases", lambda dev: {"detr_r50@800x1066_fp32": (detr, (96, 128), 2, False, 1)})
    for benchmark in (pgd_throughput, recipe_epochs, resnet18_throughput, patch_throughput, detr_throughput):
        benchmark.main()
    written = {path.name for path in tmp_path.iterdir()}
    assert written == {f"{name}.json" for name in ("pgd_throughput", "recipe_epochs", "resnet18_throughput",
                                                    "patch_throughput", "detr_throughput")}
    monkeypatch.setattr(project_paper, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["project_paper"])
    project_paper.main()
    seconds = json.loads((tmp_path / "paper_projection.json").read_text())["seconds_per_pass"]
    assert set(seconds) == {"resnet18@64", "vit_b16@224", "detr_r50@800"} and all(s > 0 for s in seconds.values())
