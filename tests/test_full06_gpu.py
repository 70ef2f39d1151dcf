"""benchmarks/full06_gpu.py: job names match notebook 06's full-profile file names, packing respects the transfer
limits, shrinking keeps the detector scores of every sample and the trajectories of the rows it lists."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vsmlab.analysis.detectors import trajectory_variance, window_variance
from vsmlab.data.shapes import generate
from vsmlab.data.shapes_validate import validate

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("full06_gpu", ROOT / "benchmarks" / "full06_gpu.py")
full06 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(full06)


def test_sample_job_names_are_the_notebooks_file_names(tmp_path) -> None:
    jobs = dict(full06.sample_jobs(["fixed", "rho0", "vsm", "vsm10"], [0, 1], 1000, tmp_path, 600, 200, [250, 500], [10, 50]))
    names = list(jobs)
    # primary sets first (both seeds), fixed with both DDPM variances
    assert names[:10] == ["fixed-seed0_ddpm250_beta_ema", "fixed-seed0_ddpm250_beta_tilde_ema", "rho0-seed0_ddpm250_learned_ema",
                          "vsm-seed0_ddpm250_learned_ema", "vsm10-seed0_ddpm250_learned_ema", "fixed-seed1_ddpm250_beta_ema",
                          "fixed-seed1_ddpm250_beta_tilde_ema", "rho0-seed1_ddpm250_learned_ema", "vsm-seed1_ddpm250_learned_ema",
                          "vsm10-seed1_ddpm250_learned_ema"]
    assert "--trajectory-last" in jobs["rho0-seed1_ddpm250_learned_ema"]
    assert jobs["fixed-seed0_ddpm250_beta_tilde_ema"][jobs["fixed-seed0_ddpm250_beta_tilde_ema"].index("--variance") + 1] == "beta_tilde"
    assert {"vsm10-seed0_ddpm250_learned_ema_step250", "rho0-seed0_ddim50_auto_ema", "fixed-seed0_ddpm250_beta_raw",
            "vsm-seed0_ddpm250_learned_ema_noclip"} <= set(names)
    assert not any(n.startswith("vsm-seed0_ddim") for n in names)  # DDIM for the first two methods, as the notebook
    raw = jobs["rho0-seed0_ddpm250_learned_raw"]
    assert raw[0].endswith("step_0001000.pt") and raw[raw.index("--weights") + 1] == "raw"  # raw weights: the step file
    assert all(a[a.index("--seed") + 1] == "1000" for a in jobs.values())  # one sampling seed: paired noise
    # one owner of the names: the script and the sample store build them with full_runs.sample_name; the notebook
    # names no file at all (it asks vsmlab.lab.shapes_study for its sets)
    src = (ROOT / "benchmarks" / "full06_gpu.py").read_text()
    store = (ROOT / "vsmlab" / "lab" / "sample_store.py").read_text()
    nb = "".join((ROOT / "notebooks" / f"06_shapes_vsm{part}.py").read_text() for part in ("", "_appendix"))
    assert "from vsmlab.lab.full_runs import sample_name" in src
    assert "from vsmlab.lab.full_runs import run_name, sample_name" in store
    for text in (src, store, nb):
        assert "_ddpm250_" not in text and '"_noclip"' not in text and "seed{k}_{sampler}" not in text
    assert "sample_name" not in nb and ".npz" not in nb and "FULL_DIR" not in nb


def test_pack_keeps_the_priority_order_and_the_limits(tmp_path) -> None:
    items = []
    for i, size in enumerate([6000, 3000, 6000, 20_000, 3000, 6000]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * size)
        items.append((f"a/f{i}.bin", p))
    out = tmp_path / "out"
    out.mkdir()
    names, left = full06.pack(items, out, chunk=10_000, max_chunks=2)
    assert names == ["chunk_0.tar", "chunk_1.tar"]
    # (each file counts 1024 bytes of tar overhead) f0 opens chunk 0, f1 does not fit beside it and opens chunk 1,
    # f2 fits neither and no third chunk is allowed, f3 is over the limit, f4 fits beside f1, f5 fits nowhere
    assert left == ["a/f2.bin", "a/f3.bin", "a/f5.bin"]
    packed = {n: [m.name for m in tarfile.open(out / n).getmembers()] for n in names}
    assert packed == {"chunk_0.tar": ["a/f0.bin"], "chunk_1.tar": ["a/f1.bin", "a/f4.bin"]}
    assert all((out / n).stat().st_size <= 10_000 + 10_240 for n in names)


def test_shrink_keeps_scores_of_every_sample_and_the_listed_trajectories(tmp_path) -> None:
    imgs = generate(12, 32, seed=3).images
    imgs[1][:, :] = 255  # a non-valid image
    steps = np.array([44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0])
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(steps), 12, 1, 32, 32, generator=g).to(torch.float16)
    path = tmp_path / "s.npz"
    buf = io.BytesIO()
    np.savez(buf, images=imgs, batch_seed=np.zeros(12, dtype=np.int64), batch_row=np.arange(12), trajectory_steps=steps,
             trajectory_x0_hat=x0.numpy(), trajectory_x_t=x0.numpy())
    path.write_bytes(buf.getvalue())
    cats = full06.shrink_primary(path)
    z = np.load(path)
    verdicts = [v.category for v in validate(imgs)]
    assert cats == {c: verdicts.count(c) for c in set(verdicts)} and verdicts[1] != "valid"
    rows = z["trajectory_rows"].tolist()
    assert 1 in rows and rows == sorted(rows) and len([r for r in rows if verdicts[r] == "valid"]) == min(4, verdicts.count("valid"))
    np.testing.assert_array_equal(z["trajectory_x0_hat"], x0.numpy()[:, rows])
    assert "trajectory_x_t" not in z.files
    torch.testing.assert_close(torch.from_numpy(z["x0hat_var_last10"]), trajectory_variance(x0.float(), k=10))
    torch.testing.assert_close(torch.from_numpy(z["x0hat_var_t20_35"]), window_variance(x0.float(), steps, 20, 35))
    np.testing.assert_array_equal(z["images"], imgs)


def test_unpack_refuses_a_folder_without_chunks(tmp_path) -> None:
    with pytest.raises(SystemExit, match="unpack: no chunk_"):
        full06.main(["unpack", str(tmp_path), "--into", str(tmp_path / "x")])
