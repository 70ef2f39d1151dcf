"""What benchmarks/gpu_window.py needs beside the window itself: the device facts of its summary, and the results cut
and packed into transfer-sized tar chunks (the GPU machine returns at most 8 files of at most 16 MiB each).
Importing it puts ``build/pydeps`` (pure-Python packages the GPU machine's image lacks, vendored by ``gpu_window.py
prepare``) on ``sys.path``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYDEPS = ROOT / "build" / "pydeps"
if PYDEPS.is_dir() and str(PYDEPS) not in sys.path:
    sys.path.append(str(PYDEPS))


def device_facts(device: str) -> dict:
    """Device name, torch / CUDA / Python versions and nvidia-smi's line, for the run's summary."""
    import torch

    facts = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
             "cuda": torch.version.cuda, "python": sys.version.split()[0],
             "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if device == "cuda":
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        facts["nvidia_smi"] = smi.stdout.strip()
    return facts


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


def pack(items: list[tuple[str, Path]], out: Path, chunk: int, max_chunks: int) -> tuple[list[str], list[str]]:
    """Greedy: items (arcname, path) in priority order into chunk_<i>.tar files of <= ``chunk`` bytes, at most
    ``max_chunks``. Returns (chunk names, arcnames left out)."""
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
