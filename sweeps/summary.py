"""Print the tuning sweep's results (sweeps/tune_defenses.sh) as a Markdown table.

Run: python sweeps/summary.py [--prefix tune-]
One row per experiment whose name starts with the prefix and per classifier it trained with a hold-out: its last
epoch and the clean and PGD accuracy on the held-out training images. The per-stage metrics.json files are not
`dvc exp show` columns (only the report's headline is), so they are read from each experiment's commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Iterator

import yaml


def experiments(shown: list[dict]) -> Iterator[tuple[str, str]]:
    """(name, commit) of every experiment in `dvc exp show --json` output."""
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs", []):
                if rev.get("name") and len(rev.get("rev", "")) == 40:
                    yield rev["name"], rev["rev"]


def committed_json(commit: str, path: str) -> dict | None:
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def rows(prefix: str) -> list[tuple[str, str, int, float, float]]:
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--all-commits", "--json"], check=True, capture_output=True,
                                      text=True).stdout)
    found = []
    for name, commit in experiments(shown):
        if not name.startswith(prefix):
            continue
        params = yaml.safe_load(subprocess.run(["git", "show", f"{commit}:params.yaml"], check=True,
                                               capture_output=True, text=True).stdout)
        for classifier, entry in params["classifiers"].items():
            metrics = committed_json(commit, f"data/train_classifier/{classifier}/metrics.json") if entry.get(
                "holdout_share") else None
            if metrics and "holdout_pgd_accuracy" in metrics:
                found.append((name, classifier, metrics["epoch"], metrics["holdout_accuracy"],
                              metrics["holdout_pgd_accuracy"]))
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="tune-")
    args = parser.parse_args()
    print("| experiment | classifier | epochs | holdout clean % | holdout PGD % |\n|---|---|---|---|---|")
    for name, classifier, epoch, clean, robust in rows(args.prefix):
        print(f"| {name} | {classifier} | {epoch} | {100 * clean:.1f} | {100 * robust:.1f} |")


if __name__ == "__main__":
    main()
