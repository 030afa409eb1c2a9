"""Which project source files a stage module loads, found by reading its imports, and their md5 manifest.

DVC reruns a stage when one of its deps changes. Listing every source file a stage loads as a dep is exact but
costs DVC dearly: each file dep is four lines of dvc.lock, which DVC parses and rewrites after every stage. The
`code_deps` stage instead writes one manifest per stage module (`<md5>  <path>` lines, the `md5sum` format), and
each stage depends on its manifest: the manifest changes exactly when a file the stage loads changes.

What counts as loaded, for the packages given (Python's own import rules): `import a.b.c` runs a/__init__.py,
a/b/__init__.py and a/b/c.py; `from a.b import c` runs a and a.b, and a.b.c if c is a submodule; relative
imports resolve against the importing module's package; imports under `if TYPE_CHECKING:` never run. Imports
inside functions are deferred, and only `lazy=True` follows them: `pipeline/config.py` defers the recipe and
objective lookups of its validators, which only the `validate_params` stage needs to rerun for. A module that
calls `importlib.import_module` loads modules by name at run time (a registry), so it counts as loading every
module of its own package.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name → source file, for every .py file under the given top-level package folders."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _import_nodes(tree: ast.AST, lazy: bool) -> Iterable[ast.Import | ast.ImportFrom]:
    """The import statements of the tree that run: those of `if TYPE_CHECKING:` bodies never, those inside
    functions only if `lazy`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        elif isinstance(node, FUNCTIONS) and not lazy:
            children = []
        stack.extend(children)


def _calls_import_module(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        or (isinstance(node.func, ast.Name) and node.func.id == "import_module")) for node in ast.walk(tree))


def direct_imports(name: str, modules: dict[str, Path], lazy: bool = False) -> set[str]:
    """The project modules that loading module `name` runs directly (see the module docstring)."""
    path = modules[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in _import_nodes(tree, lazy):
        if isinstance(node, ast.Import):
            found.update(p for alias in node.names for p in _prefixes(alias.name))
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            base = ".".join([*parts[:len(parts) - node.level + 1], *([base] if base else [])])
        found.update(_prefixes(base))
        found.update(f"{base}.{alias.name}" for alias in node.names)
    if _calls_import_module(tree):
        found.update(m for m in modules if m.startswith(package + "."))
    return {m for m in found if m in modules and m != name}


def entry_modules(modules: dict[str, Path], package: str) -> list[str]:
    """The modules of `package` that run as `python -m <module>` (a top-level `if __name__ == "__main__":`)."""
    def runs_as_main(path: Path) -> bool:
        return any(isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                   and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                   for node in ast.parse(path.read_text(), filename=str(path)).body)
    return sorted(m for m, path in modules.items() if m.startswith(package + ".") and runs_as_main(path))


def import_graph(modules: dict[str, Path], lazy: bool = False) -> dict[str, set[str]]:
    """Every module's direct imports, each source parsed once (see the module docstring for `lazy`)."""
    return {name: direct_imports(name, modules, lazy) for name in modules}


def loaded_modules(entry: str, graph: dict[str, set[str]]) -> set[str]:
    """Every project module `python -m <entry>` loads: the entry, its packages and their imports, transitively."""
    loaded, todo = set(), [p for p in _prefixes(entry) if p in graph]
    while todo:
        name = todo.pop()
        if name not in loaded:
            loaded.add(name)
            todo.extend(graph[name] - loaded)
    return loaded


def manifest(root: Path, files: Iterable[Path]) -> str:
    """`<md5>  <path>` per file, sorted by path relative to `root` (what `md5sum -c` reads)."""
    rows = sorted(str(Path(f).relative_to(root)) for f in files)
    return "".join(f"{hashlib.md5((root / row).read_bytes()).hexdigest()}  {row}\n" for row in rows)
