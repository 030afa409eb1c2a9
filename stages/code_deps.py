"""Stage `code_deps`: data/code_deps/<module>.md5, the md5 of every pipeline/ and stages/ file each stage module
loads (`pipeline/code_deps.py` says how that is found).

Every other stage depends on its module's manifest instead of on the source files themselves, so editing a file
reruns exactly the stages that load it while dvc.lock stays small. `md5sum -c data/code_deps/<module>.md5`
checks a manifest against the working tree. Only the standard library and the atomic writer (numpy, PIL) are
loaded here, and every source is parsed once per import rule: the stage runs after every code edit and must stay
cheap.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.code_deps import entry_modules, import_graph, loaded_modules, manifest, project_modules
from pipeline.io.atomic import write_bytes
from stages.logs import log, setup_logging

PACKAGES = ("pipeline", "stages")
OUTPUT = Path("data/code_deps")
RUNS_EVERY_VALIDATOR = "stages.validate_params"   # its manifest follows the validators' deferred imports too


def main() -> None:
    setup_logging()
    root = Path.cwd()
    modules = project_modules(root, PACKAGES)
    graphs = {lazy: import_graph(modules, lazy) for lazy in (False, True)}
    for entry in entry_modules(modules, "stages"):
        if modules[entry].resolve() == Path(__file__).resolve():
            continue                        # this stage depends on the source folders themselves
        files = [modules[m] for m in loaded_modules(entry, graphs[entry == RUNS_EVERY_VALIDATOR])]
        write_bytes(OUTPUT / f"{entry.rpartition('.')[2]}.md5", manifest(root, files).encode())
        log.info("%s: %d files", entry, len(files))


if __name__ == "__main__":
    main()
