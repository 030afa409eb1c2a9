"""Every pipeline/ and stages/ source a stage loads is one of its dvc.yaml deps (DVC reruns a stage only when a
dep changes), and no stage depends on code it never loads, which would rerun it for nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.helpers import ROOT, project_env

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
LOADS = """
import json, sys
from pathlib import Path
import stages.{module}
{extra}
root = Path.cwd().resolve()
paths = {{Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}}
print(json.dumps(sorted(str(p.relative_to(root)) for p in paths if p.is_relative_to(root / "pipeline")
                        or p.is_relative_to(root / "stages"))))
"""


def loaded_sources(module: str) -> set[str]:
    """The project files `python -m stages.<module>` has loaded once its imports (and, for validate_params, the
    lazy imports of validation) are done; package __init__ files that hold only a docstring are left out."""
    extra = "from stages.common import load_params; load_params()" if module == "validate_params" else ""
    result = subprocess.run([sys.executable, "-c", LOADS.format(module=module, extra=extra)], cwd=ROOT,
                            env=project_env(), capture_output=True, text=True, check=True)
    files = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return {f for f in files if not (f.endswith("__init__.py") and len((ROOT / f).read_text().splitlines()) <= 1)}


def dep_paths(stage: dict) -> list[str]:
    """The stage's code deps; for a `foreach` over a literal list or mapping, those of every item together
    (a stage module may import code that only some items run, e.g. both synthetic generators)."""
    spec = stage.get("do", stage)
    deps = [d for d in spec["deps"] if d.startswith(("pipeline", "stages"))]
    items = stage.get("foreach")
    if not isinstance(items, (list, dict)):
        return deps
    resolved = []
    for key, item in (items.items() if isinstance(items, dict) else zip(items, items)):
        for dep in deps:
            dep = dep.replace("${key}", str(key))
            for field, value in (item.items() if isinstance(item, dict) else [("", item)]):
                dep = dep.replace("${item." + field + "}" if field else "${item}", str(value))
            resolved.append(dep)
    return resolved


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_code_it_loads(stage):
    module = re.search(r"python -m stages\.(\w+)", STAGES[stage].get("do", STAGES[stage])["cmd"]).group(1)
    deps = dep_paths(STAGES[stage])
    loaded = loaded_sources(module)
    uncovered = [f for f in loaded if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not uncovered, f"{stage}: dvc.yaml deps miss {uncovered}"
    unused = [d for d in set(deps) if not any(f == d or f.startswith(d.rstrip("/") + "/") for f in loaded)]
    assert not unused, f"{stage}: dvc.yaml deps list code the stage never loads: {unused}"
