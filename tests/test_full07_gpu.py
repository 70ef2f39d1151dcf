"""benchmarks/full07_gpu.py (and the _lease helpers it shares with gpu_window.py): job names match notebook 07's
full-profile file names, the sweep step is a saved step below the common one, the common step is per benchmark,
the preflight check reads samples as the notebook does and refuses wrong ones, vendoring copies the chess package,
packing keeps the priority order within the transfer limits."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vsmlab.data import chessboards as CB

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("full07_gpu", ROOT / "benchmarks" / "full07_gpu.py")
full07 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(full07)
import _lease  # noqa: E402


def test_sample_job_names_are_the_notebooks_file_names(tmp_path) -> None:
    jobs = dict(full07.sample_jobs(["chess", "cards"], ["fixed", "rho0", "vsm"], [0, 1], {"chess": 500, "cards": 750},
                                   {"chess": 250, "cards": 250}, tmp_path, 400, 100))
    names = list(jobs)
    # every seed-0 primary set first, then seed 1, then the seed-0 sweep sets
    assert names[:6] == ["chess-fixed-seed0", "chess-rho0-seed0", "chess-vsm-seed0", "cards-fixed-seed0", "cards-rho0-seed0",
                         "cards-vsm-seed0"]
    assert names[6:12] == [n.replace("seed0", "seed1") for n in names[:6]]
    assert names[12:] == [f"{b}-{m}-seed0_step250" for b in ("chess", "cards") for m in ("fixed", "rho0", "vsm")]
    a = jobs["cards-vsm-seed1"]
    assert a[0] == str(tmp_path / "cards-vsm-seed1" / "latest.pt") and a[a.index("--n") + 1] == "400"
    assert a[a.index("--steps") + 1] == "250" and "--clip-x0" in a
    s = jobs["chess-rho0-seed0_step250"]
    assert s[0].endswith("chess-rho0-seed0/step_0000250.pt") and s[s.index("--n") + 1] == "100"
    assert all(x[x.index("--seed") + 1] == str(full07.SAMPLE_SEED) for x in jobs.values())  # one sampling seed
    # a benchmark without a common step draws nothing; a sweep step at the common step is skipped
    jobs = dict(full07.sample_jobs(["chess", "cards"], ["rho0"], [0], {"chess": 0, "cards": 500}, {"cards": 500},
                                   tmp_path, 4, 4))
    assert list(jobs) == ["cards-rho0-seed0"]
    # one owner of the names: the script builds them with full_runs.run_name, the study reads them through the sample
    # store's gpu_run_path (which uses run_name); the notebook names no file of the GPU run (it asks
    # vsmlab.lab.semantic_study for them)
    nb = "".join((ROOT / "notebooks" / f"07_semantic_benchmarks{part}.py").read_text() for part in ("", "_appendix"))
    src = (ROOT / "benchmarks" / "full07_gpu.py").read_text()
    lib = (ROOT / "vsmlab" / "lab" / "semantic_study.py").read_text()
    assert "from vsmlab.lab.full_runs import run_name" in src and "from vsmlab.lab.full_runs import run_name" in lib
    for text in (nb, src, lib):
        assert not any(lit in text for lit in ("cards-{m}-seed", "chess-{m}-seed", "{bench}-{m}-seed", "-seed0_step",
                                               "{bench}-{method}-seed"))
    assert not any(lit in nb for lit in ("run_name", ".npz\"", "chess_tiles_", "FULL_DIR"))
    assert '"samples" / f"{run_name' not in lib
    for pattern in ('gpu_run_path(self.full_dir, bench, *key)', 'gpu_run_path(self.full_dir, bench, m, 0, st)',
                    'f"chess_tiles_{size}.npy"',
                    'run_name(bench, method, 0) / "log.jsonl"', '"full07.json"', '"runs/full07"'):
        assert pattern in lib, pattern


def test_sweep_step_and_common_step(tmp_path) -> None:
    assert full07.sweep_step(750, 250) == 250 and full07.sweep_step(1000, 250) == 500
    assert full07.sweep_step(250, 250) == 0 and full07.sweep_step(0, 250) == 0
    for name, steps in (("a", (250, 500, 750)), ("b", (250, 500)), ("c", (250, 500, 750, 1000))):
        (tmp_path / name).mkdir()
        for st in steps:
            (tmp_path / name / f"step_{st:07d}.pt").write_bytes(b"")
    assert _lease.common_step([tmp_path / n for n in "abc"]) == 500
    assert _lease.common_step([tmp_path / "a", tmp_path / "c"]) == 750
    assert _lease.common_step([]) == 0


def _npz(path: Path, images: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, images=images, metadata=json.dumps({"checkpoint_step": 2}))
    path.write_bytes(buf.getvalue())


def test_check_preflight_reads_boards_and_refuses_wrong_sets(tmp_path, capsys) -> None:
    fens = CB.random_positions(4, 0, "train")
    boards = CB.render_boards(np.stack([CB.placement_to_classes(f) for f in fens]), CB.lab_tiles(128))  # [4, H, W, 3]
    _npz(tmp_path / "chess.npz", boards)
    _npz(tmp_path / "cards.npz", np.zeros((4, 128, 128, 3), dtype=np.uint8))
    full07.check_preflight(str(tmp_path))
    assert "validator categories [(), (), (), ()]" in capsys.readouterr().out  # real boards: legal, read exactly
    _npz(tmp_path / "chess.npz", np.zeros((4, 96, 96, 3), dtype=np.uint8))
    with pytest.raises(SystemExit, match=r"preflight: chess samples \[4, 3, 96, 96\], expected RGB boards"):
        full07.check_preflight(str(tmp_path))
    _npz(tmp_path / "cards.npz", np.zeros((3, 64, 64), dtype=np.uint8))
    with pytest.raises(SystemExit, match=r"preflight: cards.npz holds .* expected 4 uint8 images"):
        full07.check_preflight(str(tmp_path))


def test_vendor_copies_the_chess_package_and_unpack_refuses_an_empty_folder(tmp_path) -> None:
    assert full07.main(["vendor", "--into", str(tmp_path / "deps")]) == 0
    assert (tmp_path / "deps" / "chess" / "__init__.py").is_file()
    assert not list((tmp_path / "deps").rglob("__pycache__"))
    with pytest.raises(SystemExit, match="unpack: no chunk_"):
        full07.main(["unpack", str(tmp_path), "--into", str(tmp_path / "x")])


def test_train_commands_use_the_gpu_configs() -> None:
    cmd = full07.train_cmd("chess", "vsm", 1, Path("/r/x"), "cuda", ["train.steps=2"])
    assert cmd[3:5] == ["train", "configs/chess-vsm-gpu.toml"] and cmd[cmd.index("--device") + 1] == "cuda"
    assert "train.seed=1" in cmd and "train.steps=2" in cmd
    assert all((ROOT / f"configs/{b}-{m}-gpu.toml").is_file() for b in full07.BENCHES for m in full07.METHODS)


def test_cap_rows_keeps_the_same_first_rows_of_every_file_under_the_limit(tmp_path) -> None:
    rng = np.random.default_rng(0)
    paths, originals = [], []
    for i, n in enumerate((20, 20, 20)):
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8) if i < 2 else np.zeros((n, 32, 32, 3), np.uint8)
        p = tmp_path / f"s{i}.npz"
        np.savez(p, images=imgs, batch_row=np.arange(n), metadata=json.dumps({"checkpoint_step": 5}), steps=np.arange(7))
        _lease.compress(p)
        paths.append(p)
        originals.append(imgs)
    limit = paths[0].stat().st_size // 2
    k = _lease.cap_rows(paths, limit)
    assert k is not None and 1 <= k < 20
    for p, imgs in zip(paths, originals):
        z = np.load(p)
        assert p.stat().st_size <= limit
        np.testing.assert_array_equal(z["images"], imgs[:k])  # the same first k rows everywhere: still paired by noise
        np.testing.assert_array_equal(z["batch_row"], np.arange(k))
        assert z["steps"].shape == (7,)  # arrays of another length are kept whole
        assert json.loads(str(z["metadata"])) == {"checkpoint_step": 5, "rows_drawn": 20, "rows_kept": k}
    assert _lease.cap_rows(paths, 10**9) is None  # nothing to cut
    assert _lease.cap_rows([], 10) is None


def test_pack_keeps_the_priority_order_and_the_limits(tmp_path) -> None:
    items = []
    for i, size in enumerate([6000, 3000, 6000, 20_000, 3000, 6000]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * size)
        items.append((f"a/f{i}.bin", p))
    out = tmp_path / "out"
    out.mkdir()
    names, left = _lease.pack(items, out, chunk=10_000, max_chunks=2)
    assert names == ["chunk_0.tar", "chunk_1.tar"]
    # (each file counts 1024 bytes of tar overhead) f0 opens chunk 0, f1 does not fit beside it and opens chunk 1,
    # f2 fits neither and no third chunk is allowed, f3 is over the limit, f4 fits beside f1, f5 fits nowhere
    assert left == ["a/f2.bin", "a/f3.bin", "a/f5.bin"]
    packed = {n: [m.name for m in tarfile.open(out / n).getmembers()] for n in names}
    assert packed == {"chunk_0.tar": ["a/f0.bin"], "chunk_1.tar": ["a/f1.bin", "a/f4.bin"]}
    assert all((out / n).stat().st_size <= 10_000 + 10_240 for n in names)
