"""`python -m tests.run_stages` in a project: every stage's command, in an order `dvc repro` could run them, inside
this one process (one import of torch and transformers instead of one per stage: the paper dry run has 70 stages).

Each command must be `python -m stages.<module> [args]`; it runs as `run_stage(module.main)` with those args, so
a stage fails here exactly as it fails under DVC (its message, then this process exits non-zero naming the stage).
"""

from __future__ import annotations

import importlib
import shlex
import sys
import time

from stages.common import run_stage


def planned_commands() -> list[tuple[str, list[str]]]:
    """(stage name, command words) of every stage of dvc.yaml, dependencies first, else in the file's order."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(".") as repo:
        position = {stage: i for i, stage in enumerate(repo.index.stages)}
        graph = repo.index.graph.reverse()             # DVC's edges point from a stage to what it depends on
        order = nx.lexicographical_topological_sort(graph, key=position.get)
        return [(stage.addressing, shlex.split(stage.cmd)) for stage in order]


def main() -> None:
    for stage, words in planned_commands():
        if words[:2] != ["python", "-m"] or not words[2].startswith("stages."):
            sys.exit(f"{stage}: expected `python -m stages.<module> ...`, got {' '.join(words)}")
        module = importlib.import_module(words[2])
        started = time.monotonic()
        sys.argv = [words[2], *words[3:]]
        try:
            run_stage(module.main)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                sys.exit(f"stage {stage} failed: {exc.code}")
        print(f"stage {stage}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
