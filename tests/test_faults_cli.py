"""A failing job on the command line (issue #25, part 6): the real commands, run as subprocesses, print one
`error: <message>` line on stderr and exit 1, with no traceback; `--debug` shows the traceback. The same for a
study and for the worker's start-up errors (a bad broker URL, a data dir it cannot use).

The machine is told it is offline (KD_OFFLINE, HF_HUB_OFFLINE): nothing is downloaded even where CI is online.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_faults_disk import fill, small_disk  # noqa: F401 - the tmpfs fixture

ROOT = Path(__file__).resolve().parent.parent
TINY_CLI = ["--epochs", "1", "--kd-epochs", "1", "--finetune-epochs", "1", "--max-samples", "200"]
TINY_CLI += ["--pruning-steps", "1", "--pretrained", "false"]


def run(args: list[str], tmp: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """python -m <args> from the repository root, offline, with its folders under tmp."""
    environ = {**os.environ, "KD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp / "torch"), **env}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout
    )


def folders(tmp: Path, cache: Path | None = None) -> list[str]:
    cache = cache or tmp / "cache"
    return ["--out", str(tmp / "out"), "--cache-dir", str(cache), "--upload-dir", str(tmp / "uploads")]


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a failed command (exit 1, no traceback)."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    return errors[0]


@pytest.mark.slow  # each starts a job's process (about 4 s on an idle machine)
@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--model", "resnet18", "--dataset", "cifar10"], "dataset 'cifar10' is not cached on this machine"),
        (["--model", "resnet18", "--dataset", "upl_" + "0" * 32], "no such upload"),
        (["--model", "resnet18", "--dataset", "digits", "--pretrained", "true"], "pretrained=true but"),
    ],
    ids=["offline-dataset", "unknown-upload", "unreachable-weights"],
)
def test_a_failing_job_prints_one_error_line_and_exits_1(tmp_path, options, words):
    line = one_error_line(run(["backend.cli", *options, *folders(tmp_path)], tmp_path))
    assert words in line


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    done = run(["backend.cli", "--model", "resnet18", "--dataset", "cifar10", "--debug", *folders(tmp_path)], tmp_path)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "DataError" in done.stderr


@pytest.mark.slow
def test_a_study_whose_runs_fail_prints_one_error_line(tmp_path):
    args = ["backend.cli", "study", "--model", "resnet18", "--dataset", "cifar10", "--sparsity", "0.3,0.5"]
    done = run([*args, "--structural-ratio", "0.5", *folders(tmp_path)], tmp_path)
    line = one_error_line(done)
    assert line.startswith("error: 2 of 2 runs failed; the first: DataError: dataset 'cifar10' is not cached")
    assert (tmp_path / "out" / "study.json").is_file()  # the failed rows are still written


@pytest.mark.parametrize("broker", ["foo://localhost/0", "localhost:6379"])
def test_the_worker_refuses_a_bad_broker_url_in_one_line(tmp_path, broker):
    line = one_error_line(run(["backend.worker", "--broker", broker, "--data-dir", str(tmp_path / "d")], tmp_path))
    assert "is not a Redis URL" in line


def test_the_worker_refuses_a_data_dir_it_cannot_use_in_one_line(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    done = run(["backend.worker", "--broker", "redis://127.0.0.1:1/0", "--data-dir", str(not_a_dir)], tmp_path)
    assert f"cannot use the data dir {not_a_dir}" in one_error_line(done)
    done = run(
        ["backend.worker", "--broker", "redis://127.0.0.1:1/0", "--data-dir", str(not_a_dir), "--debug"], tmp_path
    )
    assert done.returncode == 1 and "Traceback" in done.stderr


@pytest.mark.slow
@pytest.mark.root
def test_a_job_that_fills_the_disk_prints_one_error_line(small_disk, tmp_path):  # noqa: F811
    """A real job whose teacher cache is on a full tmpfs: `error: disk full: ...`, exit 1, nothing half-written."""
    fill(small_disk, leave=1536 * 1024)
    cache = small_disk / "cache"
    done = run(["backend.cli", "--model", "distilbert", *TINY_CLI, *folders(tmp_path, cache)], tmp_path)
    line = one_error_line(done)
    assert line.startswith(f"error: disk full: the filesystem of {cache}") and " free; " in line
    assert [p.name for p in (cache / "teachers").iterdir() if not p.name.endswith(".lock")] == []
