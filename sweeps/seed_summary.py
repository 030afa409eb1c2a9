"""How a second training seed moved the defense comparison (sweeps/second_seed.sh), as Markdown tables.

Run: python sweeps/seed_summary.py defenses-seed-1 [--baseline HEAD]
Per defense-table row: clean and worst-case accuracy and the paired worst-case difference to Madry under the
baseline's seed and the experiment's; per claim: the difference and verdict under each. Both are read from the
report's details.json at the two commits (an experiment name resolves to its ref under refs/exps/).
"""

from __future__ import annotations

import argparse
import json
import subprocess


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def resolve(name: str) -> str:
    """A DVC experiment's ref by name, or the argument itself (a commit, branch or tag)."""
    refs = git("for-each-ref", "--format=%(refname)", "refs/exps/").split()
    return next((ref for ref in refs if ref.endswith(f"/{name}")), name)


def details(rev: str) -> dict:
    return json.loads(git("show", f"{resolve(rev)}:data/report/details.json"))


def points(difference: dict | None) -> str:
    if not difference:
        return "(baseline)"
    return f"{100 * difference['mean']:+.1f} [{100 * difference['low']:+.1f}, {100 * difference['high']:+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("--baseline", default="HEAD")
    args = parser.parse_args()
    first, second = details(args.baseline), details(args.experiment)
    print(f"| row | clean ({args.baseline}) | clean ({args.experiment}) | worst ({args.baseline}) | "
          f"worst ({args.experiment}) | vs Madry ({args.baseline}) | vs Madry ({args.experiment}) |")
    print("|---|---|---|---|---|---|---|")
    for name, row in first["defenses"].items():
        other = second["defenses"][name]
        print(f"| {name} | {100 * row['clean']:.1f} | {100 * other['clean']:.1f} | {100 * row['worst_case']:.1f} | "
              f"{100 * other['worst_case']:.1f} | {points(row.get('vs_madry_worst_case'))} | "
              f"{points(other.get('vs_madry_worst_case'))} |")
    print()
    print(f"| claim | Δ ({args.baseline}) | verdict | Δ ({args.experiment}) | verdict |")
    print("|---|---|---|---|---|")
    for claim, other in zip(first["claims"], second["claims"]):
        print(f"| {claim['claim']} | {points(claim)} | {claim['verdict']} | {points(other)} | {other['verdict']} |")


if __name__ == "__main__":
    main()
