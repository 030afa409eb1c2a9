import copy

import pytest

from pipeline.config import ParamsError, validate_params
from tests.conftest import load_profile


@pytest.mark.parametrize("profile", ["params", "tiny", "paper"])
def test_every_profile_validates(profile):
    validate_params(load_profile(profile), profile)


NAMED_MAPS = {".classifiers", ".attack_classifier.suite", ".train_vit", ".attack_vit.targets", ".train_detr"}   # entries are the user's experiments, not schema keys


def test_profiles_share_one_key_set():
    def keys(tree, prefix=""):
        if prefix in NAMED_MAPS:
            return {prefix}
        if not isinstance(tree, dict):
            return {prefix}
        return set().union(*(keys(v, f"{prefix}.{k}") for k, v in tree.items()))

    assert keys(load_profile("params")) == keys(load_profile("tiny")) == keys(load_profile("paper"))


def _error(mutate) -> str:
    raw = copy.deepcopy(load_profile("params"))
    mutate(raw)
    with pytest.raises(ParamsError) as info:
        validate_params(raw, "params.yaml")
    return str(info.value)


def test_unknown_key_names_its_path_and_suggests():
    message = _error(lambda raw: raw["prepare"]["coco_ic"].update(imge_size=64))
    assert "prepare.coco_ic.imge_size: unknown key" in message
    assert "did you mean 'image_size'" in message


def test_unknown_dataset_name_is_rejected_with_the_expected_names():
    message = _error(lambda raw: raw["prepare"].update(cifar10=raw["prepare"]["gtsrb"]))
    assert "prepare.cifar10: unknown key" in message and "'coco_ic'" in message and "'gtsrb'" in message


def test_missing_key():
    assert "prepare.gtsrb.mask: required key is missing" in _error(lambda raw: raw["prepare"]["gtsrb"].pop("mask"))


def test_wrong_type_is_not_coerced():
    assert "download.timeout_s" in _error(lambda raw: raw["download"].update(timeout_s="60"))
    assert "prepare.coco_ic.image_size" in _error(lambda raw: raw["prepare"]["coco_ic"].update(image_size=64.5))


@pytest.mark.parametrize(
    ("path", "value"),
    [("prepare.coco_ic.image_size", 0), ("download.coco.synthetic.grayscale_share", 1.5),
     ("prepare.coco_ic.max_other_overlap", -0.1), ("download.source", "web"), ("prepare.gtsrb.mask", "blob")],
)
def test_out_of_range_values_name_the_key(path, value):
    def mutate(raw):
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value

    assert path in _error(mutate)


def test_range_must_be_ordered():
    message = _error(lambda raw: raw["download"]["coco"]["synthetic"].update(image_side={"min": 300, "max": 100}))
    assert "download.coco.synthetic.image_side" in message and "must not exceed" in message


def test_checksum_format_and_archive_names():
    files = lambda raw: raw["download"]["coco"]["files"]  # noqa: E731
    assert "checksum" in _error(lambda raw: files(raw)["val2017.zip"].update(checksum="md5:xyz"))
    message = _error(lambda raw: files(raw).pop("val2017.zip"))
    assert "download.coco.files" in message and "val2017.zip" in message


def test_all_errors_reported_at_once():
    def mutate(raw):
        raw["prepare"]["gtsrb"]["image_size"] = 0
        raw["seed"] = -1

    message = _error(mutate)
    assert "prepare.gtsrb.image_size" in message and "seed" in message


def test_unknown_recipe_lists_the_recipe_files():
    def mutate(raw):
        next(iter(raw["classifiers"].values()))["recipe"] = "mardy"
    message = _error(mutate)
    assert "recipe" in message and "unknown recipe 'mardy'" in message and "'madry'" in message


def test_warmup_must_leave_epochs_for_the_recipe():
    def mutate(raw):
        entry = raw["classifiers"]["gtsrb_natural_none"]
        entry["warmup_epochs"] = entry["epochs"]
    message = _error(mutate)
    assert "classifiers.gtsrb_natural_none" in message and "warmup_epochs" in message


def test_classifier_names_must_be_folder_safe():
    message = _error(lambda raw: raw["classifiers"].update({"a/b": next(iter(raw["classifiers"].values()))}))
    assert "classifiers" in message and "a/b" in message


def test_suite_entry_options_must_fit_the_attack():
    message = _error(lambda raw: raw["attack_classifier"]["suite"].update(bad={"attack": "pgd", "queries": 10}))
    assert "attack_classifier.suite.bad" in message and "queries" in message
    message = _error(lambda raw: raw["attack_classifier"]["suite"].update(l2={"attack": "pgd", "norm": "l2"}))
    assert "attack_classifier.suite.l2" in message
    message = _error(lambda raw: raw["attack_classifier"]["suite"].update(sq={"attack": "square", "a3_sigma": 10}))
    assert "attack_classifier.suite.sq" in message and "a3_sigma" in message


def test_defense_table_names_only_known_classifiers():
    message = _error(lambda raw: raw["report"].update(defense_table=["gtsrb_madry_none", "gtsrb_madry_typo"]))
    assert "report.defense_table" in message and "gtsrb_madry_typo" in message


def test_vit_init_keys_must_match_the_init_mode():
    message = _error(lambda raw: raw["train_vit"]["gtsrb_vit"].update(init="pretrained"))
    assert "train_vit.gtsrb_vit" in message and "init 'pretrained'" in message
    message = _error(lambda raw: raw["train_vit"]["gtsrb_vit"]["config"].update(model_type="bert"))
    assert "train_vit.gtsrb_vit" in message and "model_type" in message and "'bert'" in message


def test_patch_objectives_are_checked():
    message = _error(lambda raw: raw["attack_vit"].update(objectives=["ce", "kq+ce"]))
    assert "attack_vit.objectives" in message and "'kq+ce'" in message


def test_patch_targets_must_name_a_model_of_their_source_and_dataset():
    targets = lambda raw: raw["attack_vit"]["targets"]          # noqa: E731
    message = _error(lambda raw: targets(raw).update(gtsrb_vit={"source": "train_classifier", "dataset": "gtsrb",
                                                                "patch_px": 4}))
    assert "attack_vit.targets.gtsrb_vit" in message and "no train_classifier entry 'gtsrb_vit'" in message
    message = _error(lambda raw: targets(raw).update(gtsrb_vit={"source": "train_vit", "dataset": "coco_ic"}))
    assert "attack_vit.targets.gtsrb_vit" in message and "uses 'gtsrb'" in message
    message = _error(lambda raw: targets(raw)["gtsrb_natural_none"].pop("patch_px"))
    assert "attack_vit.targets.gtsrb_natural_none" in message and "patch_px" in message
    message = _error(lambda raw: targets(raw).update(gtsrb_natural_foreground={
        "source": "train_classifier", "dataset": "gtsrb", "patch_px": 4}))
    assert "mask 'none'" in message


def test_detr_entries_and_attack_keys_are_checked():
    message = _error(lambda raw: raw["train_detr"]["scenes_rtdetr"].update(init="pretrained"))
    assert "train_detr.scenes_rtdetr" in message and "init 'pretrained'" in message
    message = _error(lambda raw: raw["train_detr"]["scenes_rtdetr"]["config"].update(model_type="yolos"))
    assert "train_detr.scenes_rtdetr" in message and "'yolos'" in message
    message = _error(lambda raw: raw["train_detr"]["scenes_rtdetr"]["config"].pop("backbone"))
    assert "train_detr.scenes_rtdetr" in message and "config.backbone" in message
    message = _error(lambda raw: raw["attack_detr"].update(objectives=["ce", "kq_cls"]))
    assert "attack_detr.objectives.1" in message and "'kq_cls'" in message
    message = _error(lambda raw: raw["attack_detr"].update(centre=[80]))
    assert "attack_detr.centre" in message


def test_claims_name_only_known_classifiers():
    claim = {"claim": "typo above Madry", "better": "gtsrb_alp_typo", "than": "gtsrb_madry_none"}
    message = _error(lambda raw: raw["report"].update(claims=[claim]))
    assert "report.claims.0" in message and "gtsrb_alp_typo" in message
