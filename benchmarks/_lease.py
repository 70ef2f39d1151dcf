"""What the GPU scripts share (``full07_gpu.py`` all of it, ``gpu_window.py`` the device facts and packing): logging, the subprocess
environment, training to a wall-clock deadline with a preflight beside it, the common saved step, NVIDIA MPS,
compressing and packing the results into transfer-sized tar chunks, and unpacking them here.

The device returns at most 8 files of at most 16 MiB each (64 MiB in all): ``MAX_CHUNKS`` chunks of ``CHUNK`` bytes
plus the summary JSON and the run log. Chunks of 10.3 MB hold one 9.7 MB checkpoint each.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
# pure-Python packages the GPU machine lacks (python-chess), copied here by ``full07_gpu.py vendor`` and carried
PYDEPS = ROOT / "build" / "pydeps"
if PYDEPS.is_dir() and str(PYDEPS) not in sys.path:
    sys.path.append(str(PYDEPS))
CHUNK = 10_300_000
MAX_CHUNKS = 6


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env() -> dict[str, str]:
    """The environment of every child process: the project (and :data:`PYDEPS`, last) on PYTHONPATH, unbuffered,
    one CPU thread."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""), str(PYDEPS) if PYDEPS.is_dir() else "") if p)
    return {**os.environ, "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def last_logged_step(run: Path) -> int:
    try:
        lines = (run / "log.jsonl").read_text().strip().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def saved_steps(run: Path) -> set[int]:
    return {int(p.stem.split("_")[1]) for p in run.glob("step_*.pt")}


def common_step(runs: list[Path]) -> int:
    """The largest saved step (``step_NNNNNNN.pt``) that every run in ``runs`` reached; 0 if none."""
    return max(set.intersection(*(saved_steps(r) for r in runs)) if runs else set(), default=0)


def stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every live process, wait up to 20 s in all, then kill what is left."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    end = time.time() + 20
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


def start_mps() -> str:
    """Start NVIDIA MPS (many small processes then share the GPU at once instead of taking turns); check that a
    CUDA process still starts under it, else stop it again. Returns what happened."""
    if shutil.which("nvidia-cuda-mps-control") is None:
        return "no nvidia-cuda-mps-control: processes time-share the GPU"
    try:
        subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True, timeout=20, capture_output=True)
        probe = subprocess.run([sys.executable, "-c", "import torch; x = torch.ones(1, device='cuda'); print(float(x.sum()))"],
                               timeout=45, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "1.0":
            return "on (nvidia-cuda-mps-control -d; a CUDA probe ran under it)"
        reason = f"probe failed: {(probe.stderr or probe.stdout).strip()[-300:]}"
    except (subprocess.SubprocessError, OSError) as exc:
        reason = f"could not start: {exc}"
    subprocess.run(["bash", "-c", "echo quit | nvidia-cuda-mps-control"], timeout=20, capture_output=True)
    return f"off ({reason}); processes time-share the GPU"


def fresh_folders(out: str | os.PathLike, work: str | os.PathLike, name: str) -> tuple[Path, Path, Path, Path]:
    """(out, runs, samples, logs) for one lease: ``out`` created, ``work/runs/<name>`` emptied, then
    ``work/runs/<name>/samples`` and ``work/logs`` created."""
    out, work = Path(out), Path(work)
    runs = work / "runs" / name
    if runs.exists():
        shutil.rmtree(runs)
    for d in (out, runs / "samples", work / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    return out, runs, runs / "samples", work / "logs"


def device_facts(device: str, mps: bool) -> dict:
    """Device name, torch / CUDA / Python versions, nvidia-smi's line and MPS state, for the run's summary."""
    import torch

    facts = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
             "cuda": torch.version.cuda, "python": sys.version.split()[0],
             "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if device == "cuda":
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        facts["nvidia_smi"] = smi.stdout.strip()
        facts["mps"] = start_mps() if mps else "not asked for"
    return facts


def popen_logged(cmd: list[str], logfile: Path, files: list[IO]) -> subprocess.Popen:
    """Start ``cmd`` in the project root with :func:`env`, stdout and stderr into ``logfile`` (kept in ``files``
    so the caller closes it)."""
    f = open(logfile, "w")
    files.append(f)
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=f, stderr=subprocess.STDOUT)


def shell_chain(cmds: list[list[str]]) -> list[str]:
    """One bash command line that runs ``cmds`` one after the other and stops at the first failure."""
    return ["bash", "-c", " && ".join(" ".join(f"'{c}'" for c in cmd) for cmd in cmds)]


def train_until(procs: dict[str, subprocess.Popen], runs: Path, logs: Path, preflight: subprocess.Popen | None,
                seconds: float, summary: dict, preflight_what: str) -> list[str]:
    """Poll the trainings (run folders ``runs/<name>``) until ``seconds`` have passed, all have finished, one has
    failed or the preflight has failed; then stop them all. Records the train and preflight times, the saved and
    logged steps in ``summary``; returns the names of the failed runs (``"preflight"`` included)."""
    t0 = time.time()
    failed: list[str] = []
    while time.time() - t0 < seconds:
        time.sleep(5)
        failed = [n for n, p in procs.items() if p.poll() not in (None, 0)]
        if preflight is not None:
            if preflight.poll() not in (None, 0):
                failed.append("preflight")
                log("preflight FAILED:\n" + (logs / "preflight.log").read_text()[-3000:])
            elif preflight.returncode == 0 and "preflight" not in summary["stages"]:
                summary["stages"]["preflight"] = round(time.time() - t0, 1)
                log(f"preflight passed ({preflight_what}) in {summary['stages']['preflight']} s")
        if failed or all(p.poll() == 0 for p in procs.values()):
            break
        if int(time.time() - t0) % 30 < 5:
            log("steps: " + " ".join(f"{n}={last_logged_step(runs / n)}" for n in procs))
    stop(procs)
    if preflight is not None and preflight.poll() is None:
        preflight.kill()
        summary["stages"]["preflight"] = "not finished when training stopped (killed)"
        log("preflight had not finished when training stopped: killed")
    summary["stages"]["train"] = round(time.time() - t0, 1)
    summary["steps_saved"] = {n: max(saved_steps(runs / n), default=0) for n in procs}
    summary["steps_logged"] = {n: last_logged_step(runs / n) for n in procs}
    for n in failed:
        if n != "preflight":
            log(f"training {n} FAILED (exit {procs[n].returncode}):\n{(logs / f'train_{n}.log').read_text()[-3000:]}")
    if failed:
        summary["failed"] = failed
    return failed


def run_queue(jobs: list[tuple[str, list[str]]], procs_at_once: int, seconds: float, logs: Path,
              summary: dict) -> tuple[list[str], list[str], list[str]]:
    """Run ``(name, command)`` jobs in order, ``procs_at_once`` at a time, until ``seconds`` have passed (what is still
    running then is killed). Records each command and time in ``summary``; returns (done, failed, not run)."""
    t0 = time.time()
    pending, active, done, failed = list(jobs), {}, [], []
    while (pending or active) and time.time() - t0 < seconds:
        while pending and len(active) < procs_at_once:
            name, cmd = pending.pop(0)
            summary["commands"][f"sample:{name}"] = " ".join(["python", *cmd[1:]])
            f = open(logs / f"sample_{name}.log", "w")
            active[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=f, stderr=subprocess.STDOUT), f, time.time())
        time.sleep(1)
        for name, (p, f, ts) in list(active.items()):
            if p.poll() is not None:
                f.close()
                del active[name]
                (done if p.returncode == 0 else failed).append(name)
                summary.setdefault("sample_seconds", {})[name] = round(time.time() - ts, 1)
    for name, (p, f, _) in active.items():
        p.kill()
        f.close()
    return done, failed, [n for n, _ in pending] + list(active)


def compress(path: Path, arrays: dict | None = None) -> None:
    """Rewrite the npz at ``path`` (with ``arrays`` instead of its own, if given) compressed, atomically."""
    import numpy as np

    arrays = dict(np.load(path)) if arrays is None else arrays
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def cap_rows(paths: list[Path], max_bytes: int) -> int | None:
    """Keep the same first k rows of every compressed sample file in ``paths`` so that each is at most ``max_bytes``
    (every array whose first axis has the file's row count is cut; the ``metadata`` JSON gets ``rows_drawn`` and
    ``rows_kept``). Row i of every file keeps its sampling noise, so the files stay paired. Returns k, or None if
    nothing had to be cut."""
    import numpy as np

    if not paths:
        return None
    rows = {p: int(np.load(p)["images"].shape[0]) for p in paths}
    n = min(rows.values())
    per_row = max(p.stat().st_size / rows[p] for p in paths)
    if all(p.stat().st_size <= max_bytes for p in paths) and len(set(rows.values())) == 1:
        return None
    k = max(1, min(n, int(0.97 * max_bytes / per_row)))
    while True:
        for p in paths:
            z = dict(np.load(p))
            m = rows[p]
            cut = {key: (a[:k] if a.ndim >= 1 and a.shape[0] == m else a) for key, a in z.items()}
            if "metadata" in cut:
                meta = json.loads(str(cut["metadata"]))
                meta.update(rows_drawn=m, rows_kept=k)
                cut["metadata"] = np.array(json.dumps(meta))
            compress(p, cut)
            rows[p] = k
        if all(p.stat().st_size <= max_bytes for p in paths) or k == 1:
            return k
        k = max(1, int(0.9 * k))


def pack(items: list[tuple[str, Path]], out: Path, chunk: int | None = None,
         max_chunks: int | None = None) -> tuple[list[str], list[str]]:
    """Greedy: items (arcname, path) in priority order into chunk_<i>.tar files of <= ``chunk`` bytes (default
    :data:`CHUNK`), at most ``max_chunks`` (default :data:`MAX_CHUNKS`). Returns (chunk names, arcnames left out)."""
    chunk = CHUNK if chunk is None else chunk
    max_chunks = MAX_CHUNKS if max_chunks is None else max_chunks
    chunks: list[list[tuple[str, Path]]] = []
    sizes: list[int] = []
    left = []
    for arc, p in items:
        size = p.stat().st_size + 1024
        for i, s in enumerate(sizes):
            if s + size <= chunk:
                chunks[i].append((arc, p))
                sizes[i] += size
                break
        else:
            if len(chunks) < max_chunks and size <= chunk:
                chunks.append([(arc, p)])
                sizes.append(size)
            else:
                left.append(arc)
    names = []
    for i, members in enumerate(chunks):
        name = f"chunk_{i}.tar"
        with tarfile.open(out / name, "w") as tar:
            for arc, p in members:
                tar.add(p, arcname=arc)
        names.append(name)
    return names, left


def unpack(folder: str | os.PathLike, into: str | os.PathLike, summary_name: str) -> int:
    """Extract every ``chunk_*.tar`` of ``folder`` into ``into`` (relative to the project root), and copy the final
    summary ``summary_name`` beside them when the device brought it back."""
    src, dst = Path(folder), ROOT / into
    chunks = sorted(src.glob("chunk_*.tar"))
    if not chunks:
        raise SystemExit(f"unpack: no chunk_*.tar in {str(src)!r}")
    dst.mkdir(parents=True, exist_ok=True)
    for c in chunks:
        with tarfile.open(c) as tar:
            tar.extractall(dst, filter="data")
    if (src / summary_name).exists():
        shutil.copyfile(src / summary_name, dst / summary_name)
    print(f"unpacked {len(chunks)} chunks into {dst}")
    return 0
