"""benchmarks/_transfer.py: sample files cut to the same first rows, and packing into transfer-sized chunks."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _transfer  # noqa: E402


def test_cap_rows_keeps_the_same_first_rows_of_every_file_under_the_limit(tmp_path) -> None:
    rng = np.random.default_rng(0)
    paths, originals = [], []
    for i, n in enumerate((20, 20, 20)):
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8) if i < 2 else np.zeros((n, 32, 32, 3), np.uint8)
        p = tmp_path / f"s{i}.npz"
        np.savez(p, images=imgs, batch_row=np.arange(n), metadata=json.dumps({"checkpoint_step": 5}), steps=np.arange(7))
        _transfer.compress(p)
        paths.append(p)
        originals.append(imgs)
    limit = paths[0].stat().st_size // 2
    k = _transfer.cap_rows(paths, limit)
    assert k is not None and 1 <= k < 20
    for p, imgs in zip(paths, originals):
        z = np.load(p)
        assert p.stat().st_size <= limit
        np.testing.assert_array_equal(z["images"], imgs[:k])  # the same first k rows everywhere: still paired by noise
        np.testing.assert_array_equal(z["batch_row"], np.arange(k))
        assert z["steps"].shape == (7,)  # arrays of another length are kept whole
        assert json.loads(str(z["metadata"])) == {"checkpoint_step": 5, "rows_drawn": 20, "rows_kept": k}
    assert _transfer.cap_rows(paths, 10**9) is None  # nothing to cut
    assert _transfer.cap_rows([], 10) is None


def test_pack_keeps_the_priority_order_and_the_limits(tmp_path) -> None:
    items = []
    for i, size in enumerate([6000, 3000, 6000, 20_000, 3000, 6000]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * size)
        items.append((f"a/f{i}.bin", p))
    out = tmp_path / "out"
    out.mkdir()
    names, left = _transfer.pack(items, out, chunk=10_000, max_chunks=2)
    assert names == ["chunk_0.tar", "chunk_1.tar"]
    # (each file counts 1024 bytes of tar overhead) f0 opens chunk 0, f1 does not fit beside it and opens chunk 1,
    # f2 fits neither and no third chunk is allowed, f3 is over the limit, f4 fits beside f1, f5 fits nowhere
    assert left == ["a/f2.bin", "a/f3.bin", "a/f5.bin"]
    packed = {n: [m.name for m in tarfile.open(out / n).getmembers()] for n in names}
    assert packed == {"chunk_0.tar": ["a/f0.bin"], "chunk_1.tar": ["a/f1.bin", "a/f4.bin"]}
    assert all((out / n).stat().st_size <= 10_000 + 10_240 for n in names)
