"""dvclive for the training stages: one dvclive step per epoch, every metric but the epoch number."""

from __future__ import annotations

from collections.abc import Callable

from dvclive import Live


def epoch_logger(live: Live) -> Callable[[dict], None]:
    """on_epoch_end for the training loops (`Live(out, dvcyaml=False)`: the curves are declared in dvc.yaml)."""
    def log_epoch(metrics: dict) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()
    return log_epoch
