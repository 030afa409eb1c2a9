"""A scratch project with the tiny profile's data stages run once for all stage tests."""

import sys

import pytest

from tests.helpers import copy_project, run


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    folder = copy_project(tmp_path_factory.mktemp("stages"))
    for args in (["download", "coco"], ["download", "gtsrb"], ["download", "scenes"], ["prepare", "coco_ic"],
                 ["prepare", "gtsrb"]):
        run([sys.executable, "-m", f"stages.{args[0]}", args[1]], folder)
    return folder
