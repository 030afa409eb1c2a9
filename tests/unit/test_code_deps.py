"""The code manifests on a hand-built package tree: Python's import rules, deferred and type-only imports, a
registry, and `md5sum -c` reading the manifest."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from pipeline.code_deps import entry_modules, import_graph, loaded_modules, manifest, project_modules

TREE = {
    "pkg/__init__.py": "",
    "pkg/a.py": "from pkg.b import f\nimport pkg.sub.c\n",
    "pkg/b.py": "def f():\n    return 1\n",
    "pkg/sub/__init__.py": "from . import d\n",
    "pkg/sub/c.py": "from ..b import f\nfrom .d import g\n\n\ndef later():\n    from pkg import deferred\n",
    "pkg/sub/d.py": "g = 1\n",
    "pkg/deferred.py": "",
    "pkg/unused.py": "",
    "pkg/typing_only.py": "",
    "pkg/reg/__init__.py": "import importlib\n\n\ndef load(n):\n    return importlib.import_module(f'pkg.reg.{n}')\n",
    "pkg/reg/one.py": "",
    "pkg/reg/two.py": "",
    "pkg/uses_reg.py": ("from typing import TYPE_CHECKING\nfrom pkg.reg import load\n\n"
                        "if TYPE_CHECKING:\n    from pkg import typing_only\n"),
    "app/__init__.py": "",
    "app/main.py": "from pkg import a\n\nif __name__ == '__main__':\n    a.f()\n",
    "app/registry_user.py": "import pkg.uses_reg\n\nif __name__ == '__main__':\n    pass\n",
    "app/helper.py": "import pkg.unused\n",
}


@pytest.fixture
def tree(tmp_path):
    for name, text in TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path, project_modules(tmp_path, ("pkg", "app"))


def test_modules_are_named_as_python_imports_them(tree):
    root, modules = tree
    assert modules["pkg.sub"] == root / "pkg/sub/__init__.py" and modules["pkg.sub.c"] == root / "pkg/sub/c.py"
    assert entry_modules(modules, "app") == ["app.main", "app.registry_user"]      # helper has no __main__ block


def test_absolute_relative_and_package_imports_are_followed(tree):
    _, modules = tree
    eager = loaded_modules("app.main", import_graph(modules))
    assert eager == {"app", "app.main", "pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.sub.d"}
    assert loaded_modules("app.main", import_graph(modules, lazy=True)) == eager | {"pkg.deferred"}


def test_a_registry_loads_its_package_and_type_only_imports_never_run(tree):
    _, modules = tree
    assert loaded_modules("app.registry_user", import_graph(modules)) == {
        "app", "app.registry_user", "pkg", "pkg.uses_reg", "pkg.reg", "pkg.reg.one", "pkg.reg.two"}


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs coreutils md5sum")
def test_the_manifest_is_what_md5sum_checks_and_changes_only_with_a_loaded_file(tree):
    root, modules = tree
    def manifest_of(entry):
        return manifest(root, [modules[m] for m in loaded_modules(entry, import_graph(modules))])
    text = manifest_of("app.main")
    assert text.splitlines()[0] == f"{hashlib.md5(b'').hexdigest()}  app/__init__.py"
    (root / "main.md5").write_text(text)
    assert subprocess.run(["md5sum", "-c", "--quiet", "main.md5"], cwd=root).returncode == 0
    registry_text = manifest_of("app.registry_user")
    (root / "pkg/b.py").write_text("def f():\n    return 2\n")
    assert manifest_of("app.main") != text and manifest_of("app.registry_user") == registry_text
    assert subprocess.run(["md5sum", "-c", "--quiet", "main.md5"], cwd=root, capture_output=True).returncode != 0
