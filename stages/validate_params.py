"""Stage `validate_params`: fail `dvc repro` / `dvc exp run` at once on any bad key in params.yaml.

It depends on the whole params file, so a key added with `dvc exp run -S +section.typo=…` that no data
stage reads still stops the experiment with the key's path. DVC writes `-S` values into the workspace's
params.yaml before the stages run and does not undo them when the run fails; inside an experiment the
error says so and how to undo them (README, "Running experiments").
"""

from __future__ import annotations

import os
import sys

from stages.common import load_params, log, run_stage, setup_logging

EXPERIMENT_HINT = ("note: `dvc exp run -S` wrote its values into params.yaml, and DVC leaves them there when the run "
                   "fails: `git diff params.yaml` shows them, `git checkout -- params.yaml` undoes them (your own "
                   "uncommitted edits too). `dvc exp run --queue` and `--temp` leave the workspace's params.yaml alone.")


def main() -> None:
    setup_logging()
    try:
        load_params()
    except SystemExit:
        if "DVC_EXP_NAME" in os.environ:       # set by `dvc exp run` for its stages
            print(EXPERIMENT_HINT, file=sys.stderr)
        raise
    log.info("params.yaml is valid")


if __name__ == "__main__":
    run_stage(main)
