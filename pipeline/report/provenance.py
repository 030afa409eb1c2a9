"""The report's provenance footer: the code (git commit), the params profile and every key that differs from it,
and the machine the report was made on (issue 19 §2)."""

from __future__ import annotations

from typing import Any

from pipeline.report.tables import Cell, Table

LISTED_DIFFERENCES = 12       # keys shown one per row; the rest are counted


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → value for every leaf of a nested dict (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differences(params: dict, profile: dict) -> list[str]:
    """'key: ours (profile: theirs)' for every leaf that differs, is added or is missing."""
    ours, theirs = leaves(params), leaves(profile)
    missing = object()
    return [f"{key}: {ours.get(key, '(absent)')} (profile: {theirs.get(key, '(absent)')})"
            for key in sorted(set(ours) | set(theirs)) if ours.get(key, missing) != theirs.get(key, missing)]


def closest_profile(params: dict, profiles: dict[str, dict]) -> tuple[str, list[str]]:
    """The profile with the fewest differing leaves (the first of a tie), and those differences."""
    changed = {name: differences(params, profile) for name, profile in profiles.items()}
    name = min(changed, key=lambda candidate: len(changed[candidate]))
    return name, changed[name]


def provenance_table(params: dict, profiles: dict[str, dict], commit: str, machine: str) -> Table:
    name, changed = closest_profile(params, profiles) if profiles else ("custom (no profile file found)", [])
    table = Table("Code, params profile and machine", ["", ""])
    table.rows.append([Cell("code"), Cell(commit)])
    table.rows.append([Cell("profile"), Cell(name if not changed else f"{name}, with {len(changed)} key(s) changed")])
    table.rows += [[Cell("changed"), Cell(line)] for line in changed[:LISTED_DIFFERENCES]]
    if len(changed) > LISTED_DIFFERENCES:
        table.rows.append([Cell("changed"), Cell(f"… and {len(changed) - LISTED_DIFFERENCES} more")])
    table.rows.append([Cell("machine"), Cell(machine)])
    table.notes.append("The profiles: tiny and paper (configs/), demo (params.yaml of the commit). The code and "
                       "machine are those of the report stage's last run.")
    return table
