"""Each stage depends on its module's code manifest (DVC reruns a stage only when a dep changes), and the
manifest lists exactly the pipeline/ and stages/ files the interpreter loads for that module: none missing, which
would leave a stage stale after an edit, and none extra, which would rerun it for nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from pipeline.code_deps import entry_modules, import_graph, loaded_modules, project_modules
from stages.code_deps import RUNS_EVERY_VALIDATOR
from tests.helpers import ROOT, project_env

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
MODULES = project_modules(ROOT, ("pipeline", "stages"))
GRAPHS = {lazy: import_graph(MODULES, lazy) for lazy in (False, True)}
ENTRIES = [m for m in entry_modules(MODULES, "stages") if m != "stages.code_deps"]
# Import the stage module as `python -m` would; then what the stage loads later by name: validate_params runs
# every validator (which import recipes and objectives), a registry loads any of its members.
LOADS = """
import importlib, json, pkgutil, sys
from pathlib import Path
import {module}
{extra}
if "pipeline.defenses" in sys.modules:
    for member in pkgutil.iter_modules(sys.modules["pipeline.defenses"].__path__):
        importlib.import_module(f"pipeline.defenses.{{member.name}}")
root = Path.cwd().resolve()
paths = {{Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}}
print(json.dumps(sorted(str(p.relative_to(root)) for p in paths if p.is_relative_to(root / "pipeline")
                        or p.is_relative_to(root / "stages"))))
"""


def interpreter_loads(module: str) -> set[str]:
    extra = "from stages.common import load_params; load_params()" if module == "stages.validate_params" else ""
    result = subprocess.run([sys.executable, "-c", LOADS.format(module=module, extra=extra)], cwd=ROOT,
                            env=project_env(), capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ENTRIES)
def test_the_manifest_lists_exactly_what_the_interpreter_loads(module):
    listed = {str(MODULES[m].relative_to(ROOT)) for m in loaded_modules(module, GRAPHS[module == RUNS_EVERY_VALIDATOR])}
    loaded = interpreter_loads(module)
    assert not loaded - listed, f"{module}: the manifest misses {sorted(loaded - listed)}"
    assert not listed - loaded, f"{module}: the manifest lists code the stage never loads: {sorted(listed - loaded)}"


@pytest.mark.parametrize("stage", sorted(set(STAGES) - {"code_deps"}))
def test_every_stage_depends_on_its_manifest_and_on_no_source_file(stage):
    spec = STAGES[stage].get("do", STAGES[stage])
    module = re.search(r"python -m stages\.(\w+)", spec["cmd"]).group(1)
    assert f"data/code_deps/{module}.md5" in spec["deps"]
    assert not [d for d in spec["deps"] if d.startswith(("pipeline", "stages"))]


def test_the_manifests_are_rebuilt_from_every_source():
    assert set(STAGES["code_deps"]["deps"]) == {"pipeline", "stages"}
    assert {d.split(".")[1] for d in ENTRIES} == {
        re.search(r"python -m stages\.(\w+)", s.get("do", s)["cmd"]).group(1) for s in STAGES.values()} - {"code_deps"}
