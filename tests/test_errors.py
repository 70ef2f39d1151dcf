"""Bad inputs raise ValueError/TypeError whose message names the argument (and what is allowed)."""

from __future__ import annotations

import pytest
import torch

import vsmlab
from vsmlab import GaussianMixture, MLP
from vsmlab.lab.notebook import profile_settings
from vsmlab.core.schedules import check_t


@pytest.mark.parametrize("stds", [0.0, -0.1, [0.1, 0.0], [0.1, -1.0], float("nan"), float("inf")])
def test_bad_std(stds) -> None:
    with pytest.raises(ValueError, match=r"^stds: .*> 0"):
        GaussianMixture([[0.0], [1.0]], stds)


@pytest.mark.parametrize("weights", [[0.0, 0.0], [-1.0, 1.0], [0.5, float("nan")], [1.0, float("inf")]])
def test_bad_weights(weights) -> None:
    with pytest.raises(ValueError, match=r"^weights: .*positive sum"):
        GaussianMixture([[0.0], [1.0]], 0.1, weights)


def test_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"^stds: expected a scalar or shape \[2\]"):
        GaussianMixture([[0.0], [1.0]], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"^weights: expected shape \[2\]"):
        GaussianMixture([[0.0], [1.0]], 0.1, [1.0])
    with pytest.raises(ValueError, match=r"^means: expected shape \[K, d\]"):
        GaussianMixture(torch.zeros(2, 2, 2), 0.1)
    with pytest.raises(ValueError, match=r"^means: every mean must be finite"):
        GaussianMixture([[0.0], [float("nan")]], 0.1)
    mix = vsmlab.grid_2d(2)
    with pytest.raises(ValueError, match=r"^x: expected shape \[B, 2\]"):
        mix.score(torch.zeros(3, 1))
    with pytest.raises(TypeError, match=r"^x: expected a tensor"):
        mix.log_prob([[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^eps: expected shape \(4, 1\)"):
        vsmlab.linear(10).noise(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), eps=torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"^x_t: expected shape \[B, 2\]"):
        MLP(2, width=8, depth=1)(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^t: expected shape \[3\]"):
        MLP(2, width=8, depth=1)(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^t: expected 3 steps"):
        vsmlab.evenly_spaced_1d().score(torch.zeros(3, 1), torch.zeros(2, dtype=torch.long), vsmlab.linear(10))


def test_t_out_of_range_and_float_t(aggressive) -> None:
    mix = vsmlab.evenly_spaced_1d()
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"^t: step 1000 is out of range; allowed 0\.\.999"):
        mix.score(x, torch.tensor([0, 1000]), aggressive)
    with pytest.raises(ValueError, match=r"^t: step -1 is out of range"):
        aggressive.noise(x, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match=r"^t: expected an integer tensor .* got dtype torch.float32"):
        mix.score(x, torch.tensor([0.0, 1.0]), aggressive)
    with pytest.raises(TypeError, match=r"^t: expected an integer tensor"):
        check_t(torch.tensor([True, False]), 10)
    with pytest.raises(TypeError, match=r"^t: expected an integer tensor of shape \[B\], got float"):
        check_t(0.5, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^schedule: a Schedule is required"):
        mix.score(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^t: step 10 is out of range"):
        vsmlab.ExactScoreModel(mix, vsmlab.linear(10))(x, torch.tensor([10, 0]))


def test_bad_schedule_arguments() -> None:
    with pytest.raises(ValueError, match=r"^betas: every beta must lie in \(0, 1\)"):
        vsmlab.Schedule(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match=r"^beta_end: expected a value in \(0, 1\)"):
        vsmlab.linear(10, 1e-3, 1.5)
    with pytest.raises(ValueError, match=r"^num_steps: expected an int >= 2"):
        vsmlab.cosine(1)
    with pytest.raises(ValueError, match=r"^num_steps: expected an int in 2\.\.10"):
        vsmlab.linear(10).timesteps(11)


def test_bad_sampler_arguments(aggressive) -> None:
    model = vsmlab.ExactScoreModel(vsmlab.evenly_spaced_1d(), aggressive)
    with pytest.raises(ValueError, match=r"^name: expected one of \['ddim', 'ddpm', 'ode'\], got 'euler'"):
        vsmlab.sample("euler", model, aggressive, shape=(2, 1))
    with pytest.raises(ValueError, match=r"^record_last: expected an int in 1\.\.1000"):
        vsmlab.ddpm(model, aggressive, shape=(2, 1), record_last=1001)
    with pytest.raises(ValueError, match=r"^record_last: expected an int in 1\.\.20"):
        vsmlab.ode(model, aggressive, shape=(2, 1), num_steps=20, record_last=21)
    with pytest.raises(ValueError, match=r"^record_last: "):
        vsmlab.ddim(model, aggressive, shape=(2, 1), record_last=0)
    with pytest.raises(ValueError, match=r"^x_T, shape: give exactly one"):
        vsmlab.ddim(model, aggressive)
    with pytest.raises(ValueError, match=r"^variance: expected 'auto', 'beta', 'beta_tilde' or 'learned'"):
        vsmlab.ddpm(model, aggressive, shape=(2, 1), variance="large")
    with pytest.raises(ValueError, match=r"^variance: 'learned' needs a model that returns v"):
        vsmlab.ddpm(model, aggressive, shape=(2, 1), variance="learned")
    with pytest.raises(ValueError, match=r"^method: expected 'euler' or 'heun'"):
        vsmlab.ode(model, aggressive, shape=(2, 1), method="rk4")
    with pytest.raises(ValueError, match=r"^eta: expected a finite number >= 0"):
        vsmlab.ddim(model, aggressive, shape=(2, 1), eta=-1)


def test_bad_metric_and_model_arguments(mix1d) -> None:
    with pytest.raises(ValueError, match=r"^count: expected an int in 0\.\.10"):
        vsmlab.wilson_interval(11, 10)
    with pytest.raises(ValueError, match=r"^n: expected an int >= 1"):
        vsmlab.wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"^values: expected at least one value"):
        vsmlab.mean_ci([])
    with pytest.raises(ValueError, match=r"^k: expected a number > 0"):
        mix1d.in_support(torch.zeros(2, 1), k=0)
    with pytest.raises(ValueError, match=r"^temperature: expected a finite number > 0"):
        mix1d.score(torch.zeros(2, 1), temperature=0.0)
    with pytest.raises(TypeError, match=r"^mixture: expected a GaussianMixture"):
        vsmlab.ExactScoreModel("1d", vsmlab.linear(10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^activation: expected one of"):
        MLP(1, activation="tanh")
    with pytest.raises(ValueError, match=r"^width: expected an int >= 1"):
        MLP(1, width=0)
    with pytest.raises(ValueError, match=r"^steps: expected an int >= 1"):
        vsmlab.fit(MLP(1, width=8, depth=1), torch.zeros(4, 1), vsmlab.linear(10), 0)
    with pytest.raises(ValueError, match=r"^lr: expected a finite number > 0"):
        vsmlab.fit(MLP(1, width=8, depth=1), torch.zeros(4, 1), vsmlab.linear(10), 1, lr=-1.0)
    with pytest.raises(TypeError, match=r"^data: expected a tensor"):
        vsmlab.fit(MLP(1, width=8, depth=1), [[0.0]], vsmlab.linear(10), 1)


def test_unknown_profile_and_notebook(tmp_path) -> None:
    from vsmlab.lab import runner

    table = {"smoke": {"n": 1}, "default": {"n": 2}, "full": {"n": 3}}
    with pytest.raises(ValueError, match=r"^profile: expected one of smoke, default, full, got 'huge'"):
        profile_settings("huge", table)
    assert profile_settings("smoke", table) == {"n": 1}
    with pytest.raises(ValueError, match=r"^profile: expected one of smoke, default, full, got 'fast'"):
        runner.run_figures(profile="fast", out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"^profile: expected one of"):
        runner.run_notebook("01_anything", profile="quick", out_dir=tmp_path, executed_dir=tmp_path, notebooks_dir=tmp_path)
    with pytest.raises(ValueError, match=r"^notebook: no source .*zz_missing\.py"):
        runner.run_notebook("zz_missing", profile="smoke", out_dir=tmp_path / "f", executed_dir=tmp_path / "e",
                            notebooks_dir=tmp_path)
    (tmp_path / "01_real.py").write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match=r"^only: unknown notebook 'zz'; allowed: 01_real"):
        runner._resolve(["zz"], runner.list_notebooks(tmp_path))
    assert runner._resolve(["01"], runner.list_notebooks(tmp_path)) == ["01_real"]
    with pytest.raises(ValueError, match=r"^only: unknown notebook 'no_such_notebook'"):
        runner.run_figures(["no_such_notebook"], profile="smoke", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written for a rejected request


def test_seed_range_memory_and_input_checks(tmp_path) -> None:
    import zipfile

    from vsmlab.core.checks import (SEED_MAX, InputError, check_memory, check_range, check_seed, format_bytes,
                                    input_errors)

    assert check_seed("--seed", SEED_MAX) == SEED_MAX
    with pytest.raises(ValueError, match=r"^--seed: expected an int in 0\.\.9223372036854775807 .*got 18446744073709551617"):
        check_seed("--seed", 2**64 + 1)
    with pytest.raises(ValueError, match=r"^--seed: .*got -1"):
        check_seed("--seed", -1)
    with pytest.raises(ValueError, match=r"^--eta: expected a number in \[0, 1\], got 2\.0"):
        check_range("--eta", 2.0, 0, 1)
    with pytest.raises(ValueError, match=r"^--max-rmse: expected a number in \(0, 1\]"):
        check_range("--max-rmse", 0.0, 0, 1, low_open=True)
    assert check_range("--eta", 1, 0, 1) == 1.0
    with pytest.raises(ValueError, match=r"^--n: 1000 images need about 1\.0 MB of memory, but about 1\.0 KB is "
                                         r"available here; allowed: at most about 1$"):
        check_memory("--n", 1000, 1000, "images", available=1000)
    assert check_memory("--n", 1, 1000, "images", available=1000) == 1
    assert format_bytes(812) == "812 bytes" and format_bytes(2.5e15) == "2.5 PB"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"^PATH: cannot read '.*bad\.npz': truncated or corrupt"):
        with input_errors("PATH", bad):
            zipfile.ZipFile(bad)
    with pytest.raises(InputError, match=r"^--templates: cannot read '.*nowhere': No such file or directory"):
        with input_errors("--templates", tmp_path / "nowhere"):
            (tmp_path / "nowhere").read_bytes()
    with pytest.raises(FileExistsError, match="^own message"):  # an error with its own message passes unchanged
        with input_errors("--out", tmp_path):
            raise FileExistsError("own message")


def test_argument_checks_name_the_argument_and_take_numpy_scalars() -> None:
    import math

    import numpy as np

    from vsmlab.core.checks import (check_bool, check_choice, check_int, check_ints, check_number, check_optional_int,
                                    check_positive, check_range, check_square_images, check_step)

    cases = [(lambda: check_int("n", True, low=1), r"^n: expected an int >= 1, got True$"),
             (lambda: check_optional_int("h", 0, low=1), r"^h: expected an int >= 1 or None, got 0$"),
             (lambda: check_step("t", 1000, 1000), r"^t: expected an int step in 0\.\.999, got 1000$"),
             (lambda: check_ints("steps", [], 0, 9, nonempty=True), r"^steps: expected a non-empty sequence of ints in 0\.\.9"),
             (lambda: check_ints("res", 16), r"^res: expected a sequence of ints, got 16$"),
             (lambda: check_ints("res", "16"), r"^res: expected a sequence of ints, got '16'$"),
             (lambda: check_bool("learn_variance", 1), r"^learn_variance: expected a bool, got 1$"),
             (lambda: check_number("frac", math.nan), r"^frac: expected a finite number, got nan$"),
             (lambda: check_positive("k", 0, finite=False), r"^k: expected a number > 0, got 0$"),
             (lambda: check_range("p", 1.0, 0, 1, high_open=True, noun="a probability"),
              r"^p: expected a probability in \[0, 1\), got 1\.0$"),
             (lambda: check_choice("size", 48, (64, 32), hint="pixels"), r"^size: expected 64 or 32 \(pixels\), got 48$")]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
    assert check_int("n", np.int64(3), low=1) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_optional_int("h", None) is None and check_ints("c", (1, np.int64(2)), low=1) == [1, 2]
    assert check_choice("size", np.int64(64), (64, 32)) == 64 and check_positive("k", math.inf, finite=False) == math.inf
    assert check_range("r", np.float32(0.5), 0, 1) == 0.5 and check_step("t", 0, 1) == 0
    with pytest.raises(TypeError, match=r"^images: expected a tensor \[B, 3, S, S\], got list"):
        check_square_images("images", [1], 8, "[B, 3, S, S]")
    with pytest.raises(ValueError, match=r"^images: expected \[B, 1 or 3, S, S\] with S even, got \[1, 3, 5, 5\]$"):
        check_square_images("images", torch.zeros(1, 3, 5, 5), 2, "[B, 1 or 3, S, S]")


def test_config_file_must_name_its_sections(tmp_path) -> None:
    from vsmlab.diffusion.config import ConfigError, load_config

    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match=r"empty \(no \[section\] tables\).*\[data\], \[model\], \[diffusion\], \[loss\], "
                                          r"\[train\], \[sample\]"):
        load_config(empty)
    loose = tmp_path / "loose.toml"
    loose.write_text("steps = 3\n[train]\nlr = 1e-3\n")
    with pytest.raises(ConfigError, match=r"key 'steps' is outside any \[section\]"):
        load_config(loose)
    with pytest.raises(ConfigError, match=r"^CONFIG: .* is a folder"):
        load_config(tmp_path)
    ok = tmp_path / "ok.toml"
    ok.write_text('[data]\nkind = "mixture"\n[model]\nkind = "mlp"\n')
    assert load_config(ok)["data"]["kind"] == "mixture"
    ok.write_text('[data]\nkind = "mixture"\n[model]\nkind = "mlp"\n[sample]\neta = 1.5\n')
    with pytest.raises(ConfigError, match=r"sample\.eta = 1\.5 is invalid; expected a number in \[0, 1\]"):
        load_config(ok)
