"""The paper profile's projected wall time per stage, from the measured throughputs (issue 20 §5).

Reads `configs/paper.yaml` for the counts and `benchmarks/results/{resnet18,patch,detr}_throughput[_cuda].json` for
the unit costs (the `_cuda` files when `--device cuda`, written by benchmarks/gpu_check.sh), and counts every stage's
work in passes: one forward + backward of one image (a forward alone: 1/3 pass). Cited, not measured: the dataset
sizes below and the detectors' relative cost (GFLOPs at their working size, from the DETR and RT-DETR papers).

The count is an upper bound for the attacks: it assumes no early stop (a broken sample leaves the batch in every
attack here, so a weak model costs far less). With `--gpus N`, every stage divides by N: under torchrun the attacks
share out their runs, the trainings their batches and train_detr its val batches (linear scaling assumed).
`achieved_tflops`: the model FLOPs per second each unit reached; on a GPU, `gpu_utilisation` adds every measured
unit in fp32 and bf16 with its share of the GPU's datasheet peak. Run:
python -m benchmarks.project_paper [--device cuda] → benchmarks/results/paper_projection[_cuda].json; without a GPU
measurement, `--assume 989 0.3` projects from FLOPs at 30% of an H100's bf16 peak (paper_projection_assumed.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from benchmarks.common import RESULTS, save

GTSRB_TRAIN, GTSRB_TEST = 39_209, 12_630        # the official GTSRB training and test images
COCO_VAL = 5_000                                 # val2017
COCO_IC_TRAIN, COCO_IC_VAL = 150_000, 6_000      # estimate: crops of the 10 most frequent categories ≥ 32² px
DETECTOR_GFLOPS = {"detr": 86, "detr_resnet101": 152, "rt_detr": 136}   # DETR paper Table 1; RT-DETR paper Table 2
FORWARD = 1 / 3                                  # a forward pass, in passes
RECIPE_FACTOR = {"aad": 1.21}                    # an AAD epoch over a Madry epoch (benchmarks/results/recipe_epochs)
PEAK_TFLOPS = {"H100 PCIe": (378, 756),          # dense TF32 and BF16 Tensor Core TFLOP/s (no sparsity): NVIDIA's
               "H100": (494.7, 989.4),           # H100 datasheet (SXM; PCIe above); H200 datasheet (same chip
               "H200": (494.7, 989.4),           # peaks as H100 SXM); A100 datasheet. Matched in this order in
               "A100": (156, 312)}               # torch.cuda.get_device_name; --peak-tflops for any other GPU
FORWARD_GFLOPS = {"resnet18@64": 2.4,            # ResNet-18's 1.8 at 224 px (56² after the stem) scaled to 64²
                  "vit_b16@224": 17.6,           # DeiT paper, Table 1 (ViT-B/16 = DeiT-B at 224 px)
                  "detr_r50@800": 86}            # DETR paper, Table 1


def measured_images_per_s(suffix: str, precision: str) -> dict[str, float]:
    """Images/s of one forward + backward in `precision` (fp32 or bf16), per unit that the benchmarks measured in it:
    ResNet-18 (small stem) at 64 px, ViT-B/16 at 224 px (the L_ce patch attack), DETR-R50 at 800 px."""
    def load(name: str) -> dict:
        return json.loads((RESULTS / f"{name}{suffix}.json").read_text())

    resnet = load("resnet18_throughput")["images_per_s"].get(f"small_stem_{precision}")
    vit = load("patch_throughput")["cases"].get(f"vit_b16@224_{precision}")
    detr = load("detr_throughput")["cases"].get(f"detr_r50@800x1066_{precision}")
    measured = {"resnet18@64": resnet, "vit_b16@224": vit and vit["ce"]["attack_iterations_per_s"] * vit["batch"],
                "detr_r50@800": detr and detr["attack_images_per_s"]}
    return {unit: rate for unit, rate in measured.items() if rate}


def model_tflops(unit: str, images_per_s: float) -> float:
    """The model TFLOP/s of `images_per_s` passes (a pass: 3 forward FLOPs)."""
    return images_per_s * 3 * FORWARD_GFLOPS[unit] / 1e3


def throughputs(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """Seconds per pass of one image per unit, from `rates` (precision → unit → images/s): bf16's where measured (a
    GPU), else fp32's."""
    return {unit: 1 / rate for unit, rate in (rates["fp32"] | rates["bf16"]).items()}


def gpu_utilisation(rates: dict[str, dict[str, float]], gpu: str, peaks: tuple[float, float] | None) -> dict:
    """Per unit and precision: the model TFLOP/s each benchmark reached and its share of the GPU's dense Tensor Core
    peak (TF32 for fp32, since configure_cuda allows TF32; BF16 for bf16), where the peak is known."""
    peaks = peaks or next((peak for name, peak in PEAK_TFLOPS.items() if name in gpu), None)
    shares = {}
    for index, precision in enumerate(("fp32", "bf16")):
        for unit, rate in rates[precision].items():
            tflops = model_tflops(unit, rate)
            shares[f"{unit}_{precision}"] = {"tflops": tflops, "share_of_peak": peaks and tflops / peaks[index]}
    return {"gpu": gpu, "peak_tflops_tf32_bf16": peaks, "units": shares}


def assumed_throughputs(peak_tflops: float, utilisation: float) -> dict[str, float]:
    """Seconds per pass from the forward FLOPs (a pass: 3 forward FLOPs) at `utilisation` of a GPU's `peak_tflops`:
    a stand-in until benchmarks/gpu_check.sh has measured the GPU."""
    return {unit: 3 * gflops * 1e9 / (peak_tflops * 1e12 * utilisation) for unit, gflops in FORWARD_GFLOPS.items()}


def classifier_passes(entry: dict, attack: dict) -> tuple[float, float]:
    """(training, attack_classifier) passes of one classifier, at its image size."""
    train, val = (COCO_IC_TRAIN, COCO_IC_VAL) if entry["dataset"] == "coco_ic" else (GTSRB_TRAIN, GTSRB_TEST)
    steps = entry["adversary"]["steps"]
    per_image = 1 if entry["recipe"] == "natural" else (steps + 1) * RECIPE_FACTOR.get(entry["recipe"], 1)
    training = entry["epochs"] * (train * per_image + min(entry["val_subset"], val) * (steps + 1))
    longest: dict[str, float] = {}                  # PGD-k / CW-k: one run of the family's longest k
    for spec in attack["suite"].values():
        cost = spec.get("queries", 1000) * FORWARD if spec["attack"] == "square" else spec.get("steps", 1)
        family = spec["attack"] + ("_a3" if "a3_sigma" in spec else "")
        longest[family] = max(longest.get(family, 0), cost)
    curves = len(attack["curves"]["eps_255"]) * attack["curves"]["eps_steps"] + 20      # + the audit's large ε
    return training, attack["num_images"] * (sum(longest.values()) + curves)


def stage_passes(params: dict) -> list[tuple[str, str, float]]:
    """(stage, unit cost, passes) for every stage of the paper profile."""
    rows = []
    attack = params["attack_classifier"]
    for name, entry in params["classifiers"].items():
        scale = 1.0 if entry["dataset"] == "coco_ic" else 0.25      # 32 px GTSRB: a quarter of 64 px's pixels
        training, attacked = classifier_passes(entry, attack)
        rows += [(f"train_classifier@{name}", "resnet18@64", training * scale),
                 (f"attack_classifier@{name}", "resnet18@64", attacked * scale)]
    vit = params["attack_vit"]
    runs = len(vit["objectives"]) * len(vit["optimisers"]) * len(vit["placements"])
    for name, entry in params["train_vit"].items():
        steps = entry["adversary"]["steps"]
        rows += [(f"train_vit@{name}", "vit_b16@224",
                  entry["epochs"] * (GTSRB_TRAIN + entry["val_subset"] * (steps + 1))),
                 (f"attack_vit@{name}", "vit_b16@224", vit["num_images"] * runs * vit["steps"])]
    detr = params["attack_detr"]
    optimised = len([o for o in detr["objectives"] if o != "random"])
    for name, entry in params["train_detr"].items():
        family = "detr_resnet101" if "101" in entry["pretrained"] else "rt_detr" if "rtdetr" in entry["pretrained"] \
            else "detr"
        scale = DETECTOR_GFLOPS[family] / DETECTOR_GFLOPS["detr"]
        evaluations = len(detr["patch_px"]) * (1 + len(detr["objectives"]) * (1 + len(detr["map_at_steps"])))
        rows += [(f"train_detr@{name}", "detr_r50@800", COCO_VAL * FORWARD * scale),
                 (f"attack_detr@{name}", "detr_r50@800", detr["num_images"] * scale * (
                     len(detr["patch_px"]) * optimised * detr["steps"] + evaluations * FORWARD))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="whose throughput files to read")
    parser.add_argument("--gpus", type=int, default=8, help="the multi-GPU column")
    parser.add_argument("--assume", nargs=2, type=float, metavar=("PEAK_TFLOPS", "UTILISATION"),
                        help="no measurement: passes at this share of this peak (e.g. H100 bf16: 989 0.3)")
    parser.add_argument("--peak-tflops", nargs=2, type=float, metavar=("TF32", "BF16"),
                        help="the GPU's dense peaks, for a GPU not in PEAK_TFLOPS")
    args = parser.parse_args()
    suffix = "_assumed" if args.assume else "_cuda" if args.device == "cuda" else ""
    rates = {} if args.assume else {precision: measured_images_per_s(suffix, precision)      # read once, used by
                                    for precision in ("fp32", "bf16")}                            # both below
    seconds_per_pass = assumed_throughputs(*args.assume) if args.assume else throughputs(rates)
    params = yaml.safe_load(Path("configs/paper.yaml").read_text())
    stages = {}
    for stage, unit, passes in stage_passes(params):
        hours = passes * seconds_per_pass[unit] / 3600
        stages[stage] = {"unit": unit, "passes": round(passes), "hours_1": hours,
                         f"hours_{args.gpus}": hours / args.gpus}
    totals = {"hours_1": sum(s["hours_1"] for s in stages.values()),
              f"hours_{args.gpus}_sequential": sum(s[f"hours_{args.gpus}"] for s in stages.values())}
    achieved = {unit: model_tflops(unit, 1 / seconds) for unit, seconds in seconds_per_pass.items()}
    utilisation = None
    if suffix == "_cuda":
        gpu = json.loads((RESULTS / "detr_throughput_cuda.json").read_text())["machine"]["gpu"]
        utilisation = gpu_utilisation(rates, gpu, args.peak_tflops and tuple(args.peak_tflops))
    save(f"paper_projection{suffix}", {"device": args.device, "assumed_gpu": args.assume,
                                       "seconds_per_pass": seconds_per_pass, "achieved_tflops": achieved,
                                       "gpu_utilisation": utilisation,
                                       "assumptions": {"gtsrb_train": GTSRB_TRAIN, "coco_ic_train": COCO_IC_TRAIN,
                                                       "detector_gflops": DETECTOR_GFLOPS, "early_stop": False},
                                       "totals": totals, "stages": stages})


if __name__ == "__main__":
    main()
