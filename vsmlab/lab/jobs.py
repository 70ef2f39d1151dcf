"""One job runner for the image studies: ``vsmlab`` command lines a few at a time, or their library calls here.

A :class:`Job` is one training run or one sample set: ``what`` (for messages), ``argv`` (the exact ``vsmlab``
command line, the one a reader can copy) and ``call`` (the library function behind that command). :func:`run_jobs`
runs them in the project root ``root``:

- ``workers >= 1``: at most ``workers`` subprocesses at a time, each with one torch thread (OMP/MKL), so the
  notebook's own process keeps its threads; when one fails the others are killed and RuntimeError names the job
  and the command's last message: ``"<what>: exit code N: <stderr tail>"``;
- ``workers = 0``: every ``call`` in this process, in order (tiny smoke runs, tests); errors as the calls raise them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from vsmlab.core.checks import check_int

__all__ = ["Job", "run_jobs", "call_many", "thread_env", "check_workers"]


@dataclass(frozen=True)
class Job:
    """One training run or sample set: ``what`` (for messages), ``argv`` (the exact ``vsmlab`` command line,
    run as a subprocess) and ``call`` (the library call behind it, run in this process)."""

    what: str
    argv: list[str]
    call: Callable[[], object]


def thread_env(threads: int) -> dict[str, str]:
    """This process's environment with ``threads`` OMP / MKL threads (what each job subprocess gets)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def check_workers(workers: int) -> None:
    """ValueError naming ``workers`` unless it is an int >= 0."""
    check_int("workers", workers, 0, hint="0: in this process")


def run_jobs(jobs: Sequence[Job], root: str | os.PathLike, workers: int) -> None:
    """Run ``jobs`` in ``root``: ``workers`` command lines at a time with one thread each, or every library call in
    this process (``workers=0``). RuntimeError naming the job and the command's message when a subprocess fails."""
    check_workers(workers)
    root = Path(root)
    if workers == 0:
        with contextlib.chdir(root):  # the jobs name paths relative to the project root
            for job in jobs:
                job.call()
        return
    queue, running = list(jobs), []
    try:
        while queue or running:
            while queue and len(running) < workers:
                job = queue.pop(0)
                proc = subprocess.Popen(job.argv, cwd=str(root), env=thread_env(1), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
                running.append((job.what, proc))
            time.sleep(0.5)
            for item in list(running):
                what, proc = item
                if proc.poll() is not None:
                    running.remove(item)
                    err = proc.stderr.read() if proc.stderr else ""
                    if proc.returncode != 0:
                        raise RuntimeError(f"{what}: exit code {proc.returncode}: {err.strip()[-800:]}")
    finally:
        for _, proc in running:
            proc.kill()
            proc.wait()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def call_many(fn: Callable[..., Any], calls: Sequence[tuple[tuple, dict[str, Any]]], workers: int = 2) -> list[Any]:
    """``[fn(*args, **kwargs) for args, kwargs in calls]``, in input order, in ``workers`` processes with one torch
    thread each (``workers <= 1``: here, with the caller's threads). ``fn`` must be importable (a module-level
    library function, e.g. :func:`vsmlab.lab.ceiling.toy_ceiling`); a failing call raises in the caller."""
    check_int("workers", workers, 0, hint="processes, one torch thread each; 0 or 1: in this process")
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args, **kwargs) for args, kwargs in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(_call, fn, tuple(args), dict(kwargs)) for args, kwargs in calls]
        return [f.result() for f in futures]
