"""The one job runner of the image studies: subprocesses a few at a time, library calls in this process, failures
named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vsmlab.lab.jobs import Job, check_workers, run_jobs


def test_subprocess_jobs_run_in_root_with_one_thread(tmp_path) -> None:
    code = "import os; open('out_{i}.txt', 'w').write(os.environ['OMP_NUM_THREADS'])"
    jobs = [Job(f"job {i}", [sys.executable, "-c", code.format(i=i)], lambda: None) for i in range(3)]
    run_jobs(jobs, tmp_path, workers=2)
    assert sorted(p.read_text() for p in tmp_path.glob("out_*.txt")) == ["1", "1", "1"]


def test_in_process_jobs_call_the_library_in_root(tmp_path) -> None:
    seen = []
    jobs = [Job("a", ["unused"], lambda: seen.append(Path.cwd())), Job("b", ["unused"], lambda: seen.append(1))]
    run_jobs(jobs, tmp_path, workers=0)
    assert seen == [tmp_path.resolve(), 1]
    assert Path.cwd() != tmp_path.resolve()  # the working folder is restored


def test_a_failing_job_is_named_with_its_message_and_the_others_stop(tmp_path) -> None:
    slow = Job("slow", [sys.executable, "-c", "import time; time.sleep(30); open('late', 'w')"], lambda: None)
    bad = Job("vsmlab train broken", [sys.executable, "-c", "import sys; sys.exit('error: config: no such file')"],
              lambda: None)
    with pytest.raises(RuntimeError, match=r"^vsmlab train broken: exit code 1: error: config: no such file$"):
        run_jobs([slow, bad], tmp_path, workers=2)
    assert not (tmp_path / "late").exists()


@pytest.mark.parametrize("workers", [-1, 1.5, True, "2"])
def test_bad_workers_are_named(workers) -> None:
    with pytest.raises(ValueError, match=r"^workers: expected an int >= 0"):
        check_workers(workers)
    with pytest.raises(ValueError, match=r"^workers: expected an int >= 0"):
        run_jobs([], ".", workers)
