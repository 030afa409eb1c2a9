"""The params schema: one strict pydantic model for params.yaml and every profile in configs/.

Unknown keys, missing keys, wrong types and out-of-range values fail with the key's full dotted
path and what was expected (`ParamsError`). The library never reads params.yaml itself: stages
load the YAML and call `validate_params`.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import InputError

COCO_ARCHIVES = ("annotations_trainval2017.zip", "train2017.zip", "val2017.zip")
GTSRB_ARCHIVES = (
    "GTSRB_Final_Training_Images.zip",
    "GTSRB_Final_Test_Images.zip",
    "GTSRB_Final_Test_GT.zip",
)
DOWNLOAD_DATASETS = ("coco", "gtsrb", "scenes")
PREPARED_DATASETS = ("coco_ic", "gtsrb")

_CHECKSUM = re.compile(r"^(md5:[0-9a-f]{32}|sha256:[0-9a-f]{64})$")


class ParamsError(InputError):
    """Invalid parameters; the message names every offending key by its dotted path."""


class Strict(BaseModel):
    """Base of every params section: no unknown keys, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class IntRange(Strict):
    """An inclusive integer range, written `{min: a, max: b}` in YAML."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


# ----------------------------------------------------------------------------------- download
class RemoteFile(Strict):
    url: str = Field(pattern=r"^(https?|file)://")
    checksum: str | None = None

    @field_validator("checksum")
    @classmethod
    def _checksum_format(cls, value: str | None) -> str | None:
        if value is not None and not _CHECKSUM.match(value):
            raise ValueError("expected null, 'md5:<32 hex digits>' or 'sha256:<64 hex digits>'")
        return value


class FloatRange(Strict):
    """An inclusive range of shares, written `{min: a, max: b}` in YAML."""

    min: float = Field(ge=0, le=1)
    max: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class SyntheticCoco(Strict):
    """Sizes of the generated COCO 2017 look-alike (same archive names, layout and JSON schema): the COCO-IC source
    (`download.coco`) and the demo's detection scenes (`download.scenes`) come from the same generator."""

    train_images: int = Field(ge=1)
    val_images: int = Field(ge=1)
    image_side: IntRange
    objects_per_image: IntRange
    grayscale_share: float = Field(ge=0, le=1)
    crowd_share: float = Field(ge=0, le=1)
    categories: list[str] | None                   # null: all 12, at COCO-like frequencies;
                                                   # a list: those, at equal frequencies
    object_side: FloatRange                        # object side as a share of the image's shorter side
    max_box_iou: float = Field(ge=0, le=1)         # placement: an object's box overlaps no earlier one more than this
    clutter: IntRange                              # distractor shapes on the background


class SyntheticGtsrb(Strict):
    """Sizes of the generated GTSRB look-alike (43 classes, PPM files, GT-*.csv with ROIs)."""

    train_tracks_per_class: int = Field(ge=1)
    images_per_track: int = Field(ge=1)
    test_images: int = Field(ge=1)
    sign_side: IntRange


class ArchiveSet(Strict):
    """The official archives of one dataset (exactly `ARCHIVES`, by name) and its synthetic look-alike."""

    ARCHIVES: ClassVar[tuple[str, ...]] = ()
    files: dict[str, RemoteFile]

    @field_validator("files")
    @classmethod
    def _archives(cls, files: dict[str, RemoteFile]) -> dict[str, RemoteFile]:
        missing = [name for name in cls.ARCHIVES if name not in files]
        unknown = [name for name in files if name not in cls.ARCHIVES]
        if missing or unknown:
            raise ValueError(f"expected exactly the archives {list(cls.ARCHIVES)}; missing {missing}, unknown {unknown}")
        return files


class CocoDownload(ArchiveSet):
    ARCHIVES = COCO_ARCHIVES
    synthetic: SyntheticCoco


class GtsrbDownload(ArchiveSet):
    ARCHIVES = GTSRB_ARCHIVES
    synthetic: SyntheticGtsrb


class ScenesDownload(Strict):
    """The demo detector's COCO-format scenes: generated whatever `download.source` says (no official archives)."""

    synthetic: SyntheticCoco


class Download(Strict):
    source: Literal["synthetic", "official"]
    retries: int = Field(ge=0)
    timeout_s: float = Field(gt=0)
    coco: CocoDownload
    gtsrb: GtsrbDownload
    scenes: ScenesDownload


# ------------------------------------------------------------------------------------ prepare
class SplitCaps(Strict):
    """Optional cap on the number of samples per split (a seeded random subset); null keeps all."""

    train: int | None = Field(default=None, ge=1)
    val: int | None = Field(default=None, ge=1)


class CocoIcPrepare(Strict):
    """MS-COCO-IC (methods.md P1); every field is a [choice] of ours."""

    image_size: int = Field(ge=8, le=1024)
    num_categories: int = Field(ge=2, le=80)
    categories: list[str] | None = None
    min_area: float = Field(ge=0)
    bbox_margin: float = Field(ge=0, le=1)
    max_other_overlap: float = Field(ge=0, le=1)
    mask_scope: Literal["instance", "category"]
    random_mask: Literal["shifted", "pixels"]
    max_samples: SplitCaps


class GtsrbPrepare(Strict):
    """GTSRB with sign-shape masks drawn in the ROI box (methods.md P1)."""

    image_size: int = Field(ge=8, le=1024)
    mask: Literal["shape", "box"]
    random_mask: Literal["shifted", "pixels"]
    max_samples: SplitCaps


class Prepare(Strict):
    max_corrupt_share: float = Field(ge=0, le=1)
    preview_samples: int = Field(ge=1, le=64)
    coco_ic: CocoIcPrepare
    gtsrb: GtsrbPrepare


# ------------------------------------------------------------------------------------ augment
class Augment(Strict):
    """Joint image+mask augmentation for training (albumentations); geometry hits both."""

    hflip: float = Field(ge=0, le=1)
    shift: float = Field(ge=0, le=0.5)
    scale: float = Field(ge=0, le=0.5)
    rotate_deg: float = Field(ge=0, le=180)
    brightness_contrast: float = Field(ge=0, le=1)


class AugmentSection(Strict):
    coco_ic: Augment
    gtsrb: Augment


# -------------------------------------------------------------------------------- classifiers
class SmallCnn(Strict):
    arch: Literal["small_cnn"]
    width: int = Field(ge=1, le=1024)


class ResNet(Strict):
    arch: Literal["resnet18", "resnet50"]
    stem: Literal["standard", "small"]


class Optimiser(Strict):
    name: Literal["sgd", "adam", "adamw"]      # adam/adamw: `momentum` is β₁
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    schedule: Literal["cosine", "constant"]


class Adversary(Strict):
    """The L∞ PGD used by adversarial recipes and for the per-epoch robust-accuracy curve (ε in 1/255 units)."""

    eps_255: float = Field(ge=0, le=255)
    step_255: float = Field(gt=0, le=255)
    steps: int = Field(ge=1)


class Classifier(Strict):
    """One `train_classifier@<name>` / `attack_classifier@<name>` experiment (methods.md P1)."""

    dataset: Literal["coco_ic", "gtsrb"]
    mask: Literal["none", "foreground", "random"]
    fill: float = Field(ge=0, le=1)
    remask_at_test: bool
    recipe: str
    model: SmallCnn | ResNet = Field(discriminator="arch")
    optimiser: Optimiser
    epochs: int = Field(ge=1)
    warmup_epochs: int = Field(default=0, ge=0)  # the first epochs train on clean images (recipe natural)
    batch_size: int = Field(ge=1)
    adversary: Adversary
    val_subset: int = Field(ge=1)
    options: dict[str, Any] = Field(default_factory=dict)   # the recipe's own keys (its `Options` model)
    checkpoint_every: int = Field(default=0, ge=0)           # keep every n-th epoch's weights (0: the last only)
    holdout_share: float = Field(default=0.0, ge=0, lt=1)    # tuning: train without this share of the sources, evaluate on it
    attack_images: int | None = Field(default=None, ge=1)    # attack_classifier's images for it (None: its num_images)
    seed: int | None = Field(default=None, ge=0)   # training seed: init, shuffling, augmentation (None: the top-level seed)
    amp: bool = False                              # bf16 autocast in the training forward passes (losses in fp32)

    @model_validator(mode="after")
    def _options_fit_the_recipe(self) -> "Classifier":
        from pipeline.defenses import recipe_options

        model = recipe_options(self.recipe)
        if model is None and self.options:
            raise ValueError(f"recipe {self.recipe!r} takes no options (got {sorted(self.options)})")
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:
                problems = "; ".join(f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ValueError(f"recipe {self.recipe!r}: {problems}") from None
        return self

    @model_validator(mode="after")
    def _warmup_within_epochs(self) -> "Classifier":
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        return self

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        from pipeline.defenses import recipe_names

        if name not in recipe_names():
            raise ValueError(f"unknown recipe {name!r}; known: {recipe_names()} (one file each in pipeline/defenses/)")
        return name


# -------------------------------------------------------------------------- attack_classifier
class SuiteEntry(Strict):
    """One attack of the evaluation suite; `steps`/`queries` only where the attack has them."""

    attack: Literal["fgsm", "pgd", "cw", "step_ll", "apgd_ce", "apgd_dlr", "square"]
    steps: int | None = Field(default=None, ge=1)
    restarts: int = Field(default=1, ge=1)
    queries: int | None = Field(default=None, ge=1)
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] | None = None
    a3_sigma: float | None = Field(default=None, gt=0)   # A3Attack's σ (methods.md P3); None: the plain attack

    @model_validator(mode="after")
    def _consistent(self) -> SuiteEntry:
        if self.a3_sigma is not None and (self.attack not in ("pgd", "cw", "step_ll") or self.norm != "linf"):
            raise ValueError("`a3_sigma` is for the L∞ attacks 'pgd', 'cw' and 'step_ll'")
        if self.norm == "l2" and (self.attack != "pgd" or self.eps is None):
            raise ValueError("norm 'l2' is for attack 'pgd' and needs its own `eps` list (L2 units)")
        if self.queries is not None and self.attack != "square":
            raise ValueError("`queries` is for attack 'square'")
        if self.steps is not None and self.attack in ("fgsm", "square"):
            raise ValueError(f"attack {self.attack!r} takes no `steps`")
        return self


class Curves(Strict):
    """Accuracy-vs-ε (PGD with `eps_steps` steps) and accuracy-vs-steps (PGD at the first suite ε)."""

    eps_255: list[float] = Field(min_length=1)
    eps_steps: int = Field(ge=1)
    steps: list[int] = Field(min_length=1)


class Audit(Strict):
    """The gradient-masking audit (methods.md, last section); each check passes or fails on its threshold."""

    fail_stage: bool
    max_zero_gradient_share: float = Field(ge=0, le=1)
    max_pgd20_pgd100_gap: float = Field(ge=0, le=1)
    max_blackbox_wins: int = Field(ge=0)
    large_eps_255: float = Field(gt=0, le=255)
    max_large_eps_accuracy: float = Field(ge=0, le=1)
    max_forward_change: float = Field(ge=0)


class AttackClassifier(Strict):
    num_images: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    eps_255: list[float] = Field(min_length=1)
    step_ratio: float = Field(gt=0, le=1)
    amp: bool
    suite: dict[str, SuiteEntry]
    curves: Curves
    audit: Audit
    grid_images: int = Field(ge=1, le=64)


# -------------------------------------------------------------------------- analyze_attention
class AnalyzeAttention(Strict):
    """The attention analysis of seed 002 §3 (methods.md P3) per classifier, foreground masks as ground truth."""

    num_images: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    attack: SuiteEntry                    # default: one-step Step-LL, as in the seed
    eps_255: float = Field(gt=0, le=255)
    cells: list[int] = Field(min_length=1)
    iou_threshold: float = Field(gt=0, le=1)
    layer: str | None = None              # Grad-CAM layer of the block classifier; None: the last block


# -------------------------------------------------------------------------- train_vit / attack_vit
VIT_MODEL_TYPES = ("vit", "deit")


def check_init(entry: Any, model_types: tuple[str, ...]) -> None:
    """The keys `init` allows in a `train_vit` or `train_detr` entry: `pretrained` alone, or `config` (with one of
    `model_types`) and `image_size`, trained for at least one epoch."""
    if entry.init == "pretrained":
        if entry.pretrained is None or entry.config is not None or entry.image_size is not None:
            raise ValueError("init 'pretrained' takes `pretrained` (hub id or folder) and no `config`/`image_size` "
                             "(the checkpoint's image processor sets the size)")
        return
    if entry.config is None or entry.image_size is None or entry.pretrained is not None:
        raise ValueError("init 'config' takes `config` and `image_size`, and no `pretrained`")
    if entry.config.get("model_type") not in model_types:
        raise ValueError(f"config.model_type must be one of {list(model_types)} (got {entry.config.get('model_type')!r})")
    if entry.epochs == 0:
        raise ValueError("init 'config' trains from scratch: epochs must be at least 1")


class VitModel(Strict):
    """One `train_vit@<name>` entry: a Hugging Face ViT / DeiT fine-tuned or trained on a prepared dataset
    (methods.md P4). `init: pretrained` loads `pretrained` (a hub id or a local `save_pretrained` folder) and
    resizes its head; `init: config` builds `config` (ViTConfig / DeiTConfig keys and `model_type`) from scratch."""

    dataset: Literal["coco_ic", "gtsrb"]
    init: Literal["pretrained", "config"]
    pretrained: str | None = None
    config: dict[str, Any] | None = None
    image_size: int | None = Field(default=None, ge=8, le=1024)   # init config: the model's input side
    epochs: int = Field(ge=0)                                       # 0: use a pretrained model as it is
    batch_size: int = Field(ge=1)
    augment: bool                                                   # train with `augment.<dataset>`
    optimiser: Optimiser
    adversary: Adversary                  # the per-epoch PGD curve on the validation subset
    val_subset: int = Field(ge=1)
    amp: bool = False                     # bf16 autocast in the training forward passes (losses in fp32)

    @model_validator(mode="after")
    def _init_keys(self) -> "VitModel":
        check_init(self, VIT_MODEL_TYPES)
        return self


class PatchTarget(Strict):
    """One `attack_vit@<name>` target: a `train_vit` model, or a `train_classifier` CNN as the baseline of seed
    003's Table 3 (attacked with the objectives that have no attention term)."""

    source: Literal["train_vit", "train_classifier"]
    dataset: Literal["coco_ic", "gtsrb"]
    patch_px: int | None = Field(default=None, ge=1)   # train_classifier only: the patch side in its pixels


class AttackVit(Strict):
    """The Attention-Fool patch attacks (seed 003, methods.md P4): every objective × optimiser × placement."""

    num_images: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    steps: int = Field(ge=1)
    step_size_255: float = Field(gt=0, le=255)     # α_0, cosine-decayed
    momentum: float = Field(gt=0, lt=1)            # β of the momentum optimiser
    optimisers: list[Literal["plain", "momentum"]] = Field(min_length=1)
    objectives: list[str] = Field(min_length=1)    # ce | ce+kq | ce+kq_cls | kq_cls | ce+patch_fool | …
    attention_weight: float = Field(ge=0)          # λ
    normalise: bool                                # the L1,2 normalisation of the projections
    aggregation: Literal["smooth_max", "max", "mean"]
    patch_tokens: int = Field(ge=1)                # ViT patch side in tokens
    placements: list[Literal["fixed", "random"]] = Field(min_length=1)
    cell: list[int] = Field(min_length=2, max_length=2)   # fixed placement: the (row, col) token cell
    amp: bool
    grid_images: int = Field(ge=1, le=64)
    targets: dict[str, PatchTarget]

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, objectives: list[str]) -> list[str]:
        from pipeline.attacks.patch import parse_objective

        for objective in objectives:
            parse_objective(objective)
        return objectives


# -------------------------------------------------------------------------- train_detr / attack_detr
DETR_FAMILIES = ("detr", "conditional_detr", "rt_detr")


class DetrImageSize(Strict):
    """The image processor's resize: DETR's (the shortest side to `shortest_edge`, the longest at most
    `longest_edge`) or RT-DETR's (every image to `height` × `width`)."""

    shortest_edge: int | None = Field(default=None, ge=32, le=2048)
    longest_edge: int | None = Field(default=None, ge=32, le=4096)
    height: int | None = Field(default=None, ge=32, le=2048)
    width: int | None = Field(default=None, ge=32, le=2048)

    @model_validator(mode="after")
    def _one_rule(self) -> "DetrImageSize":
        fixed = self.height is not None and self.width is not None
        if fixed == (self.shortest_edge is not None) or (fixed and self.longest_edge is not None) or \
                (self.height is None) != (self.width is None):
            raise ValueError("give `shortest_edge` (and optionally `longest_edge`: DETR, Conditional DETR) or "
                             "`height` and `width` (RT-DETR), not both")
        return self


class DetrSubsets(Strict):
    train: int | None = Field(default=None, ge=1)     # None: every image of the split
    val: int | None = Field(default=None, ge=1)


class DetrModel(Strict):
    """One `train_detr@<name>` entry: a DETR-family detector on `data/download/<dataset>` (methods.md P4): `coco`
    (COCO 2017, official or synthetic) or `scenes` (the demo's generated detection scenes). `init: pretrained` loads
    `pretrained` (a hub id such as facebook/detr-resnet-50, or a local folder; epochs 0 uses it as it is); `init:
    config` builds `config` (`model_type` detr | conditional_detr | rt_detr, a `backbone` of ResNetConfig (RT-DETR:
    RTDetrResNetConfig) keys, and the family's config keys) at `image_size` and trains it from scratch."""

    dataset: Literal["coco", "scenes"]
    init: Literal["pretrained", "config"]
    pretrained: str | None = None
    config: dict[str, Any] | None = None
    image_size: DetrImageSize | None = None
    epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    optimiser: Optimiser
    warmup_steps: int = Field(ge=0)                # linear learning-rate warm-up before the schedule
    clip_norm: float = Field(ge=0)                 # gradient clipping (DETR: 0.1); 0 disables
    hflip: float = Field(ge=0, le=1)               # horizontal-flip probability
    eval_every: int = Field(ge=1)                  # validation mAP every n epochs (and after the last)
    max_images: DetrSubsets

    @model_validator(mode="after")
    def _init_keys(self) -> "DetrModel":
        check_init(self, DETR_FAMILIES)
        if self.init == "config":
            if not isinstance(self.config.get("backbone"), dict):
                raise ValueError("config.backbone must be a mapping of ResNetConfig keys")
            if (self.config["model_type"] == "rt_detr") != (self.image_size.height is not None):
                raise ValueError("image_size: `height` and `width` for rt_detr (its processor resizes to a fixed "
                                 "size), `shortest_edge` for detr and conditional_detr")
        return self


class AttackDetr(Strict):
    """The Attention-Fool detection attack (seed 003 §5.3, methods.md P4) on every `train_detr` detector: each
    objective × patch size, the patch centred at `centre` (row, col) of the working-size image."""

    num_images: int = Field(ge=1)                  # seeded validation images
    batch_size: int = Field(ge=1)
    steps: int = Field(ge=1)                       # N of the cosine step decay (seed: 1000)
    step_size_255: float = Field(gt=0, le=255)     # α_0
    optimiser: Literal["plain", "momentum"]
    momentum: float = Field(gt=0, lt=1)            # β of the momentum optimiser
    objectives: list[Literal["random", "ce", "ce+kq", "kq"]] = Field(min_length=1)   # random: the U[0, 1] start
    map_at_steps: list[Annotated[int, Field(ge=0)]]   # mAP of the patch at these iterations too (mAP vs steps)
    attention_weight: float = Field(ge=0)          # λ
    normalise: bool                                # the L1,2 normalisation of the projections
    patch_px: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)   # sides in working-size px (seed: 64, 56, 48)
    centre: list[int] = Field(min_length=2, max_length=2)   # (row, col) of the patch centre (seed: 80, 80)
    amp: bool
    grid_images: int = Field(ge=1, le=16)

    @model_validator(mode="after")
    def _snapshots_within_steps(self) -> "AttackDetr":
        if any(step > self.steps for step in self.map_at_steps):
            raise ValueError(f"map_at_steps {self.map_at_steps}: every step must be at most steps ({self.steps})")
        return self


# -------------------------------------------------------------------------- report
class Claim(Strict):
    """A seed paper's claim that classifier `better` scores above `than` on `measure`, per image: robust under the
    whole suite (worst_case), or, from analyze_attention's per_sample.csv, the Grad-CAM's IoU with the object
    (iou_gt, seed 002 Table 1) or the clean and attacked top-n cells' IoU (iou_cells_<n>, Table 3)."""

    claim: str
    better: str
    than: str
    measure: str = Field(default="worst_case", pattern=r"^(worst_case|iou_gt|iou_cells_\d+)$")


class Report(Strict):
    """What the report compares: classifiers by clean, `classifier_attack` and worst-case accuracy, the
    `defense_table` classifiers (rows, in this order) in the layout of seed 002's Table 6, and the `claims`,
    each a paired difference on the same images with a verdict."""

    classifier_attack: str
    defense_table: list[str] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)


class Params(Strict):
    seed: int = Field(ge=0)
    # required: with ATTNROBUST_DEVICE=auto a stage stops when no GPU is usable (the paper profile), instead of
    # running on the CPU; not a DVC dep, since results do not depend on it
    accelerator: Literal["required", "optional"] = "optional"
    # DataLoader processes per training process (augmentation off the main process); every sample's random draws
    # are seeded by sample and epoch, so results do not depend on it: not a DVC dep either
    loader_workers: int = Field(default=0, ge=0)
    download: Download
    prepare: Prepare
    augment: AugmentSection
    classifiers: dict[str, Classifier]
    attack_classifier: AttackClassifier
    analyze_attention: AnalyzeAttention
    train_vit: dict[str, VitModel]
    attack_vit: AttackVit
    train_detr: dict[str, DetrModel]
    attack_detr: AttackDetr
    report: Report

    @model_validator(mode="after")
    def _report_names_exist(self) -> "Params":
        if self.report.classifier_attack not in self.attack_classifier.suite:
            raise ValueError(f"report.classifier_attack {self.report.classifier_attack!r} is not an entry of "
                             f"attack_classifier.suite ({sorted(self.attack_classifier.suite)})")
        unknown = [name for name in self.report.defense_table if name not in self.classifiers]
        if unknown:
            raise ValueError(f"report.defense_table names classifiers that `classifiers:` lacks: {unknown}")
        for i, claim in enumerate(self.report.claims):
            unknown = [name for name in (claim.better, claim.than) if name not in self.classifiers]
            if unknown:
                raise ValueError(f"report.claims.{i} ({claim.claim!r}) names classifiers that `classifiers:` lacks: "
                                 f"{unknown}")
        return self

    @model_validator(mode="after")
    def _patch_targets_exist(self) -> "Params":
        for name, target in self.attack_vit.targets.items():
            where = f"attack_vit.targets.{name}"
            models = self.train_vit if target.source == "train_vit" else self.classifiers
            if name not in models:
                raise ValueError(f"{where}: no {target.source} entry {name!r} (have {sorted(models)})")
            if models[name].dataset != target.dataset:
                raise ValueError(f"{where}: dataset {target.dataset!r}, but {target.source}.{name} uses "
                                 f"{models[name].dataset!r}")
            if (target.patch_px is None) != (target.source == "train_vit"):
                raise ValueError(f"{where}: `patch_px` is for train_classifier targets, and they need it "
                                 "(ViT patches are `attack_vit.patch_tokens` tokens)")
            if target.source == "train_classifier" and self.classifiers[name].mask != "none":
                raise ValueError(f"{where}: the CNN baseline must be a classifier with mask 'none'")
        return self

    @field_validator("classifiers", "train_vit", "train_detr")
    @classmethod
    def _folder_names(cls, models: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in models if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name)]
        if bad:
            raise ValueError(f"model names become folder and stage names: use letters, digits, _ . - ({bad})")
        return models


# ------------------------------------------------------------------------------------ errors
def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that the (parent) location `path` is validated with, if it is a model."""
    model: Any = Params
    for key in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        models = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if get_origin(annotation) is dict or not models:
            return None
        model = models[0]
    return model


def _describe(error: dict[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        model = _model_at(tuple(error["loc"][:-1]))
        allowed = sorted(model.model_fields) if model else []
        guess = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        return f"{path}: unknown key (expected one of {allowed}){hint}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    if not error["loc"]:            # a check across sections: its message names the keys; the input is everything
        return f"{path}: {error['msg']}"
    return f"{path}: {error['msg']} (got {error.get('input')!r})"


def validate_params(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping; raise `ParamsError` naming every bad key of `source`."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  {_describe(err)}" for err in exc.errors())
        raise ParamsError(f"{source}: invalid parameters\n{lines}") from None
