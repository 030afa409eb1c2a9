"""The stages' one logger and its format (timestamped lines, so a `dvc repro` log shows where time goes)."""

from __future__ import annotations

import logging

log = logging.getLogger("attnrobust")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
