"""The store of finished attack runs: a unit comes back field for field, only under its own fingerprint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.io.run_store import RunStore


@dataclass
class Unit:
    flags: torch.Tensor
    maybe: torch.Tensor | None
    curve: list[float]
    images: list[torch.Tensor]
    snapshots: dict[int, torch.Tensor]
    cell: tuple[int, int]


def unit() -> Unit:
    torch.manual_seed(0)
    return Unit(torch.rand(5) > 0.5, None, [0.5, 0.25], [torch.rand(3, 4, 6), torch.rand(3, 8, 2)],
                {0: torch.rand(2, 3), 10: torch.rand(2, 3)}, (1, 2))


def same(a: Unit, b: Unit) -> bool:
    return (torch.equal(a.flags, b.flags) and a.maybe is b.maybe is None and a.curve == b.curve
            and all(torch.equal(x, y) for x, y in zip(a.images, b.images, strict=True))
            and a.snapshots.keys() == b.snapshots.keys() and all(torch.equal(a.snapshots[k], b.snapshots[k])
                                                                  for k in a.snapshots)
            and list(a.cell) == list(b.cell))


def test_a_saved_unit_comes_back_whole(tmp_path):
    store = RunStore(tmp_path / "progress", "f1")
    assert store.load("fixed/plain/ce", Unit, torch.device("cpu")) is None
    store.save("fixed/plain/ce", unit())
    reopened = RunStore(tmp_path / "progress", "f1")
    assert reopened.done() == 1 and same(reopened.load("fixed/plain/ce", Unit, torch.device("cpu")), unit())


def test_fields_that_are_views_of_one_tensor_are_saved_apart(tmp_path):
    """A batch's per-item fields are often views of one tensor (rows of a map, the last row of a curve)."""
    whole = torch.rand(3, 4)
    shared = Unit(whole[0] > 0.5, whole[-1], [1.0], list(whole.view(3, 2, 2)), {0: whole}, (0, 0))
    store = RunStore(tmp_path / "progress", "f1")
    store.save("views", shared)
    back = store.load("views", Unit, torch.device("cpu"))
    assert torch.equal(back.flags, shared.flags) and torch.equal(back.maybe, whole[-1])
    assert all(torch.equal(x, y) for x, y in zip(back.images, shared.images, strict=True))
    assert torch.equal(back.snapshots[0], whole)


def test_another_fingerprint_starts_empty(tmp_path):
    RunStore(tmp_path / "progress", "f1").save("a", unit())
    store = RunStore(tmp_path / "progress", "f2")
    assert store.done() == 0 and store.load("a", Unit, torch.device("cpu")) is None
    store.remove()
    assert not (tmp_path / "progress").exists()


def test_computed_runs_only_what_no_earlier_run_finished(tmp_path):
    calls = []

    def compute() -> Unit:
        calls.append(1)
        return unit()

    store = RunStore(tmp_path / "progress", "f1")
    first = store.computed("a", Unit, torch.device("cpu"), compute)
    again = RunStore(tmp_path / "progress", "f1").computed("a", Unit, torch.device("cpu"), compute)
    assert len(calls) == 1 and same(first, again)
