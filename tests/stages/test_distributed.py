"""Several GPUs on one machine: stage processes claim distinct GPUs (stages/distributed.claim_gpu). The torchrun
split of the attack stages is tested beside their resume tests (the `[torchrun]` cases)."""

from __future__ import annotations

import subprocess
import sys

from stages import distributed
from stages.distributed import claim_gpu
from tests.helpers import project_env

HOLDER = ("from stages.distributed import claim_gpu; import sys, time; print(claim_gpu(2, sys.argv[1]), flush=True); "
          "time.sleep(60)")


def test_each_stage_process_takes_a_gpu_no_other_holds_and_frees_it_when_it_ends(tmp_path, caplog):
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=project_env(), stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "0"        # another process holds GPU 0
        assert claim_gpu(2, tmp_path) == 1
        assert claim_gpu(2, tmp_path) == 0 and "all 2 GPUs are held" in caplog.text
    finally:
        other.kill()
        other.wait()
        for lock in distributed._held:
            lock.close()
        distributed._held.clear()
    assert claim_gpu(2, tmp_path) == 0                       # the ended process's GPU is free again
    distributed._held.pop().close()
