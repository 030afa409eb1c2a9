"""`dvc repro` with configs/tiny.yaml in a scratch git repo, as a new user would run it."""

import re

import pytest

from tests.helpers import copy_project, run

pytestmark = pytest.mark.e2e
DATA_STAGES = {"download@coco", "download@gtsrb", "prepare@coco_ic", "prepare@gtsrb"}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    folder = copy_project(tmp_path_factory.mktemp("repo"))
    run(["git", "init", "-q"], folder)
    run(["dvc", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-qm", "tiny project"], folder)
    first = run(["dvc", "repro"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-qm", "first repro"], folder)
    return folder, first.stdout


def test_first_repro_runs_every_stage(repo):
    folder, output = repo
    assert ran(output) == DATA_STAGES | {"validate_params"}
    for path in ("data/prepare/coco_ic/val/masks.npy", "data/prepare/gtsrb/preview.png", "dvc.lock"):
        assert (folder / path).exists()


def test_second_repro_runs_nothing(repo):
    folder, _ = repo
    output = run(["dvc", "repro"], folder).stdout
    assert ran(output) == set()
    assert run(["dvc", "status"], folder).stdout.strip().startswith("Data and pipelines are up to date")


def test_exp_run_of_a_prepare_key_reruns_only_that_prepare(repo):
    folder, _ = repo
    output = run(["dvc", "exp", "run", "-S", "prepare.coco_ic.mask_scope=category"], folder).stdout
    assert ran(output) & DATA_STAGES == {"prepare@coco_ic"}
    run(["git", "checkout", "--", "."], folder)


@pytest.mark.parametrize(("override", "named"), [
    ("+prepare.coco_ic.imge_size=48", "prepare.coco_ic.imge_size: unknown key"),
    ("+sed=1", "sed: unknown key"),
    ("prepare.gtsrb.image_size=0", "prepare.gtsrb.image_size"),
])
def test_bad_exp_run_fails_with_the_key_path(repo, override, named):
    folder, _ = repo
    result = run(["dvc", "exp", "run", "-S", override], folder, check=False)
    run(["git", "checkout", "--", "."], folder)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_mistyped_key_without_plus_is_refused_by_dvc(repo):
    folder, _ = repo
    result = run(["dvc", "exp", "run", "-S", "prepare.coco_ic.imge_size=48"], folder, check=False)
    run(["git", "checkout", "--", "."], folder)
    assert "imge_size" in result.stdout + result.stderr and not ran(result.stdout)
