"""Running stages and dvc as a user would, in a scratch folder that holds a copy of the project."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def project_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid")
    return env


def run(args: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """`args` in `cwd` with the project's environment (plus `env`); `check` raises with the output on failure."""
    result = subprocess.run(args, cwd=cwd, env={**project_env(), **env}, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def copy_project(dest: Path, profile: str = "tiny") -> Path:
    """The pipeline's code, profiles, dvc.yaml, .gitignore and .dvcignore in `dest`, with `configs/<profile>.yaml` as
    params.yaml."""
    for name in ("pipeline", "stages", "configs"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    shutil.copy(ROOT / ".gitignore", dest / ".gitignore")
    shutil.copy(ROOT / ".dvcignore", dest / ".dvcignore")
    shutil.copy(ROOT / "configs" / f"{profile}.yaml", dest / "params.yaml")
    return dest


def project_with_data(dest: Path, source: Path, *folders: str) -> Path:
    """A scratch project (copy_project) whose `data/<folder>` entries are links to those of the project `source`:
    the stage under test reads them and writes its own outputs beside them."""
    project = copy_project(dest)
    for folder in folders:
        (project / "data" / folder).parent.mkdir(parents=True, exist_ok=True)
        (project / "data" / folder).symlink_to(source / "data" / folder)
    return project


def chromium() -> str | None:
    """A headless-capable Chromium: found on PATH, else installed from the system's packages where this process may
    (root with apt-get); None where neither works."""
    names = ("chromium", "chromium-browser", "google-chrome")
    found = next((shutil.which(name) for name in names if shutil.which(name)), None)
    if found is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    return found


def interrupted_then_resumed(project, stage: str, name: str, progress) -> str:
    """Run `stage name` in `project`, kill it (SIGKILL) once its first unit is stored in `progress`, rerun it to the
    end; the rerun's log."""
    process = subprocess.Popen([sys.executable, "-m", f"stages.{stage}", name], cwd=project, env=project_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(progress.glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert list(progress.glob("*.json")), "the stage finished or failed before its first unit was stored"
    log = run([sys.executable, "-m", f"stages.{stage}", name], project).stderr
    assert re.search(r"resuming: [1-9]\d* finished attack unit", log), log
    assert not progress.exists()                       # a finished stage removes its store
    return log


TWO_RANKS = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]   # gloo on CPU


def on_two_ranks(project, stage: str, name: str, progress) -> str:
    """Run `stage name` in `project` under torchrun with two CPU processes (gloo), each with the thread count one
    process has (so each attack run computes what it computes alone); rank 0's log."""
    log = run([*TWO_RANKS, "-m", f"stages.{stage}", name], project, ATTNROBUST_DEVICE="cpu",
              OMP_NUM_THREADS=str(torch.get_num_threads())).stderr
    assert re.search(r"rank 0 of 2: \d+ of \d+ attack unit", log) and re.search(r"rank 1 of 2: [1-9]", log), log
    assert not progress.exists()
    return log


def trained_on_two_ranks(project, stage: str, name: str, epochs: int) -> str:
    """Run the training `stage name` in `project` under torchrun with two CPU processes (gloo) of one thread each;
    checks that rank 0 alone logged each of the `epochs` epochs. The log."""
    log = run([*TWO_RANKS, "-m", f"stages.{stage}", name], project, ATTNROBUST_DEVICE="cpu", OMP_NUM_THREADS="1").stderr
    assert [log.count(f"epoch {epoch}/{epochs}: ") for epoch in range(1, epochs + 1)] == [1] * epochs, log
    return log


def assert_close_weights(produced: Path, reference: Path) -> None:
    """The safetensors files hold the same tensors within float rounding (rtol 1e-4, atol 1e-5)."""
    mine, theirs = load_file(str(produced)), load_file(str(reference))
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.allclose(mine[key].to(value.dtype), value, rtol=1e-4, atol=1e-5), f"{produced}: {key}"


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """`folder`'s files over HTTP on 127.0.0.1 while the block runs; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
