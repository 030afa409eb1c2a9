"""Stage `validate_params`: fail `dvc repro` / `dvc exp run` at once on any bad key in params.yaml.

It depends on the whole params file, so a key added with `dvc exp run -S +section.typo=…` that no data
stage reads still stops the experiment with the key's path.
"""

from __future__ import annotations

from stages.common import load_params, log, run_stage, setup_logging


def main() -> None:
    setup_logging()
    load_params()
    log.info("params.yaml is valid")


if __name__ == "__main__":
    run_stage(main)
