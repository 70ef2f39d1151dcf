"""The SimpleShapes study of notebook 06: its methods, profiles, models and sample sets, in one call.

    S = ShapesStudy.open(profile, cfg, root)        # cfg: PROFILES[profile] as vsmlab.lab.notebook.start returns it

**Methods** (:data:`METHOD_CONFIGS`): ``fixed``, ``rho0``, ``vsm`` and ``vsm10`` (the VSM config with
``loss.rho=10.0``), each trained from ``configs/shapes-<stem>-<cpu|gpu>.toml`` by
:class:`vsmlab.lab.study.Study` (one folder scheme, one rule for the weights: shipped, trained or GPU run).
**Rows** (:data:`ROWS`): the model rows of the study, a method with its DDPM sampling variance (``fixed`` with
beta_t and with beta_tilde_t).

**Profiles** (:data:`PROFILES`): ``smoke`` (tiny models trained in this process into a temporary folder),
``default`` (32 px: the shipped checkpoints of ``checkpoints/shapes32/``; ``no_cache`` trains them from the
configs into ``runs/shapes32-notebook/``), ``full`` (64 px: every complete model of every GPU window under
``runs/full/shapes64/``, brought back by ``benchmarks/gpu_window.py``: :func:`vsmlab.lab.full_runs.pick_models`;
the runs set the methods, the seeds, the sampling settings and the training-step sweep).

:meth:`ShapesStudy.samples` is every sample set of the notebook: drawn and cached here
(:func:`vsmlab.lab.sample_store.sample_set`) or, in the full profile, read from the files of the model's run
(named by :func:`vsmlab.lab.full_runs.sample_name`). :func:`unet_term_gradient_norms`: the gradient norm of each
loss term on the UNet's trunk and heads.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsmlab.diffusion.variance import term_gradient_norms
from vsmlab.lab.full_runs import ModelRun, describe_run, load_summary, pick_models, run_folders, sample_name
from vsmlab.lab.sample_store import load_npz_samples, sample_set
from vsmlab.lab.study import LoadedModel, Model, Study

__all__ = ["METHOD_CONFIGS", "ROWS", "VARIANCE_OF", "PROFILES", "ShapesStudy", "unet_term_gradient_norms"]

#: method -> (config stem, extra overrides)
METHOD_CONFIGS = {"fixed": ("fixed", ()), "rho0": ("rho0", ()), "vsm": ("vsm", ()), "vsm10": ("vsm", ("loss.rho=10.0",))}
#: the model rows: (row name, method, DDPM sampling variance)
ROWS = [("fixed", "fixed", "beta"), ("fixed~", "fixed", "beta_tilde"), ("rho0", "rho0", "learned"),
        ("vsm", "vsm", "learned"), ("vsm10", "vsm10", "learned")]
#: each method's own sampling variance (the sweeps')
VARIANCE_OF = {"fixed": "beta", "rho0": "learned", "vsm": "learned", "vsm10": "learned"}
_SMOKE = ("data.n=64", "sample.steps=10", "model.base_channels=8", "model.channel_mult=[1, 2]", "diffusion.T=40",
          "train.steps=6", "train.batch_size=8", "train.save_every=3", "train.warmup=2", "train.log_every=2")
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(size=32, config_suffix="cpu", overrides=_SMOKE, seeds=[0, 1], n=8, batch=8,
                  ddpm_steps=None, record_last=12, n_calib=500, n_exact=4, n_score=8, score_ts=[0, 5, 20],
                  ddim_steps=[5, 10], n_sweep=4, step_sweep=[3], sweep_ddpm_steps=None, hybrid_taus=[10, 30],
                  n_hybrid=8, audit_n=16, grad_ts=[[0, 5], [5, 20], [20, 39]], n_grad=4, threads=1,
                  dial_windows=[None, 3], n_dial=4, encoder_steps=20),
    "default": dict(size=32, config_suffix="cpu", overrides=(), seeds=[0],
                    extra_seeds={"fixed": [1], "rho0": [1], "vsm": [1], "vsm10": [1]}, n=128, batch=64,
                    ddpm_steps=250, record_last=12, n_calib=20000, n_exact=64, n_score=16,
                    score_ts=[0, 5, 10, 20, 50, 100, 200, 400, 700], ddim_steps=[10, 25, 50, 100, 250], n_sweep=32,
                    step_sweep=[1000, 3000], sweep_ddpm_steps=100, hybrid_taus=[100, 300], n_hybrid=128, audit_n=200,
                    grad_ts=[[0, 10], [10, 100], [100, 1000]], n_grad=4, threads=2, sweep_methods=["fixed", "rho0", "vsm"],
                    dial_windows=[None, 12, 8, 5], n_dial=64, audit_offset=40, encoder_steps=200),
    # full: the methods, seeds, n, n_sweep, ddpm_steps, ddim_steps and step_sweep come from the GPU windows' runs in
    # runs_dir/shapes<size>/ (each model's config is its run's); the CPU-side sections evaluate the 64-px weights
    # brought back when they are here; hybrids need the UNet for every step of every sample: default only
    "full": dict(size=64, config_suffix="gpu", overrides=(), seeds=[], n=600, batch=64,
                 ddpm_steps=250, record_last=12, n_calib=20000, n_exact=64, n_score=16,
                 score_ts=[0, 5, 10, 20, 50, 100, 200, 400, 700], ddim_steps=[10, 25, 50, 100, 250], n_sweep=200,
                 step_sweep=[], sweep_ddpm_steps=250, hybrid_taus=[], n_hybrid=0, audit_n=240,
                 grad_ts=[[0, 10], [10, 100], [100, 1000]], n_grad=4, threads=2, runs_dir="runs/full",
                 dial_windows=[None, 24, 16, 10], n_dial=64, encoder_steps=200),
}
_FULL_HOW = ("Here `python benchmarks/gpu_window.py prepare`; on a GPU machine `PYTHONPATH=. python3 "
             "benchmarks/gpu_window.py run --out OUT`; then here `python benchmarks/gpu_window.py unpack OUT` "
             "(docs/gpu.md)")


def unet_term_gradient_norms(model: nn.Module, x0: torch.Tensor, t: int, eps: torch.Tensor, schedule,
                             rho: float = 0.1, time_weight: bool = True,
                             decoder: str = "discretized") -> dict[str, dict[str, float]]:
    """L2 norm of the gradient of each loss term's batch mean ("mse", "vb", "vsm" with this rho) on the
    UNet's groups "trunk" (every parameter but the output conv), "eps_head" and "var_head" (the output
    conv's eps / v channels): :func:`vsmlab.diffusion.variance.term_gradient_norms` with the image decoder.
    x0, eps: [B, C, H, W]; all examples at step ``t``. Parameters unchanged."""
    return term_gradient_norms(model, x0, t, eps, schedule, rho=rho, time_weight=time_weight, decoder=decoder)


@dataclass
class ShapesStudy:
    """Notebook 06's models and sample sets under one profile (build it with :meth:`open`).

    models: {(method, seed): Model}; loaded: {(method, seed): LoadedModel} of the checkpoints present (the full
    profile may lack some: a window's weights stay local); gpu_runs: {(method, seed): ModelRun}, the GPU window run
    each model of the full profile comes from (empty otherwise)."""

    profile: str
    cfg: dict[str, Any]
    study: Study
    models: dict[tuple[str, int], Model]
    loaded: dict[tuple[str, int], LoadedModel] = field(default_factory=dict)
    gpu_runs: dict[tuple[str, int], ModelRun] = field(default_factory=dict)
    sample_seed: int = 1000

    @classmethod
    def open(cls, profile: str, cfg: dict[str, Any], root: str | os.PathLike, seed: int = 0,
             no_cache: bool | None = None) -> "ShapesStudy":
        """The study of ``profile`` (``cfg`` = its PROFILES entry; in the full profile updated in place with what the
        GPU windows ran): models trained or checked, the present checkpoints loaded. no_cache (None: reads
        ``$VSMLAB_NO_CACHE``): ignore the shipped checkpoints and train from the configs."""
        root = Path(root)
        if no_cache is None:
            no_cache = os.environ.get("VSMLAB_NO_CACHE", "").lower() in ("1", "true", "yes")
        gpu_runs, gpu = {}, None
        if profile == "full":
            gpu_runs = _full_runs(root, cfg)
        extra = cfg.get("extra_seeds", {})
        models = {}
        for m in cfg.get("methods", METHOD_CONFIGS):
            stem, over = METHOD_CONFIGS[m]
            for k in sorted({*cfg["seeds"], *extra.get(m, [])}):
                run = gpu_runs.get((m, k))
                if run is not None and run.config is not None:  # the config the window trained it with
                    rel = run.config.relative_to(root).as_posix() if run.config.is_relative_to(root) else str(run.config)
                    models[(m, k)] = Model(m, k, rel)
                else:
                    models[(m, k)] = Model(m, k, f"configs/shapes-{stem}-{cfg['config_suffix']}.toml",
                                           (*over, *cfg["overrides"]))
        if profile == "full":  # the windows' float16 EMA weights, where they are on this machine (they stay local)
            gpu = {models[key].name: run.weights for key, run in gpu_runs.items()
                   if run.weights is not None and run.config is not None}
        runs = (Path(tempfile.mkdtemp(prefix="vsmlab06-smoke-")) if profile == "smoke"  # never inside the repository
                else root / "runs" / "shapes32-notebook")
        study = Study(root, runs, root / "checkpoints" / f"shapes{cfg['size']}", use_shipped=profile == "default" and not no_cache,
                      gpu=gpu, image_size=cfg["size"], workers=0 if profile == "smoke" else 2)
        self = cls(profile, cfg, study, models, gpu_runs=gpu_runs, sample_seed=1000 + seed)
        if gpu is None:  # train what is missing; shipped files are config-checked once, as they load below
            study.ensure([mod for mod in models.values() if study.source(mod) == "trained"])
        self.loaded = {key: study.load(mod) for key, mod in models.items() if gpu is None or study.exists(mod)}
        return self

    @property
    def methods(self) -> list[str]:
        """The methods of this profile (a GPU window may train fewer than :data:`METHOD_CONFIGS`)."""
        return list(self.cfg.get("methods", METHOD_CONFIGS))

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """The model rows of :data:`ROWS` whose method this profile has."""
        return [r for r in ROWS if r[1] in self.methods]

    @property
    def seeds(self) -> list[int]:
        """The training seeds every row has (the primary sets)."""
        return list(self.cfg["seeds"])

    def seeds_of(self, method: str) -> list[int]:
        """Every training seed of ``method`` (the primary ones and the further ones of section 5b)."""
        return sorted(k for m, k in self.models if m == method)

    @property
    def cpu_methods(self) -> list[str]:
        """Methods whose first-seed checkpoint is on this machine (all but in a full profile that left some out)."""
        return [m for m in self.methods if (m, self.seeds[0]) in self.loaded]

    @property
    def cpu_seeds(self) -> list[int]:
        """Primary seeds whose checkpoints are here for every method of :attr:`cpu_methods`."""
        return [k for k in self.seeds if all((m, k) in self.loaded for m in self.cpu_methods)]

    @property
    def devices(self) -> list[str]:
        """The devices the models trained and sampled on: the GPU windows' (full profile), else ["cpu"]."""
        if not self.gpu_runs:
            return ["cpu"]
        return sorted({str(load_summary(run).get("device", "unknown")) for run in {r.run_dir for r in self.gpu_runs.values()}})

    @property
    def device_of_samples(self) -> str:
        """Where the sample sets were drawn (results.csv): "cpu" or "cuda: <GPU name>[, ...]"."""
        gpus = [d for d in self.devices if d != "cpu"]
        return f"cuda: {', '.join(gpus)}" if gpus else "cpu"

    @property
    def hardware(self) -> str:
        """"GPU" or "CPU": where the models trained."""
        return "GPU" if self.device_of_samples != "cpu" else "CPU"

    def load(self, method: str, k: int, weights: str = "ema", step: int | None = None) -> LoadedModel:
        """A model with other weights or from an intermediate checkpoint (the loaded EMA model otherwise)."""
        if weights == "ema" and step is None and (method, k) in self.loaded:
            return self.loaded[(method, k)]
        return self.study.load(self.models[(method, k)], weights, step)

    def has_step(self, method: str, k: int, step: int) -> bool:
        """Whether the intermediate checkpoint of ``step`` exists (shipped or trained)."""
        return self.study.exists(self.models[(method, k)], step)

    def shipped_weights_only(self, method: str, k: int) -> bool:
        """Whether the model's file is a shipped EMA-only safetensors file (no raw weights to sweep)."""
        return self.study.source(self.models[(method, k)]) == "shipped"

    def train_step(self, method: str, k: int) -> int:
        """Training step of a model: its checkpoint's, or (full profile, no weights here) the step its run reached."""
        lm = self.loaded.get((method, k))
        return lm.step if lm is not None else self.gpu_runs[(method, k)].step

    def _gpu_path(self, method: str, k: int, sampler: str, steps: int | None, variance: str, weights: str,
                  ckpt_step: int | None, clip: bool, variance_frac: float | None = None) -> Path:
        """The file of a set of the model's GPU window run (in samples/ or, kept on this machine only, local/samples/)."""
        run = self.gpu_runs[(method, k)]
        name = sample_name(method, k, sampler, steps, variance, weights, ckpt_step, clip, variance_frac)
        return run.samples.get(name, run.run_dir / "samples" / f"{name}.npz")

    def _steps(self, steps: int | str | None) -> int | None:
        return self.cfg["ddpm_steps"] if steps == "primary" else steps

    def drawn(self, method: str, k: int, variance: str = "auto", sampler: str = "ddpm",
              steps: int | str | None = "primary", weights: str = "ema", ckpt_step: int | None = None,
              clip: bool = True, variance_frac: float | None = None, seed: int | None = None) -> bool:
        """Whether this set can be had: here, when the checkpoint it needs is (an intermediate step's file, raw
        weights the file keeps); in the full profile, when the GPU run drew it. A False prints one line saying why."""
        if not self.gpu_runs:
            if ckpt_step is not None and not self.has_step(method, k, ckpt_step):
                print(f"{method} seed {k}: no checkpoint of step {ckpt_step}; skipped")
                return False
            if weights == "raw" and self.shipped_weights_only(method, k):
                print(f"{method} seed {k}: the shipped file keeps the EMA weights only; no raw-weights set")
                return False
            return True
        if seed is not None:
            print(f"{method} seed {k}: the GPU run drew no sets with a fresh sampling seed; they are measured in the "
                  "default profile")
            return False
        path = self._gpu_path(method, k, sampler, self._steps(steps), variance, weights, ckpt_step, clip, variance_frac)
        if not path.is_file():
            local = load_summary(self.gpu_runs[(method, k)].run_dir).get("kept_local", {}).get("sets", [])
            why = ("kept on the machine that unpacked the run, not committed (the tree's size limit)" if path.stem in local
                   else "not drawn in the GPU run (its sampling deadline came first)")
            print(f"{why}: {path.name}; skipped")
        return path.is_file()

    def samples(self, method: str, k: int, variance: str = "auto", sampler: str = "ddpm",
                steps: int | str | None = "primary", weights: str = "ema", n: int | None = None, record_last: int = 0,
                ckpt_step: int | None = None, eta: float = 0.0, clip: bool = True,
                variance_frac: float | None = None, seed: int | None = None) -> dict[str, Any]:
        """One sample set of one model (:func:`vsmlab.lab.sample_store.sample_set`'s dict): drawn with the study's
        sampling seed (or ``seed``) and cached here, or read from the GPU run's file (full profile)."""
        steps = self._steps(steps)
        if self.gpu_runs:
            if seed is not None:
                raise ValueError("the GPU run drew no sets with a fresh sampling seed; these run in the default profile")
            z = load_npz_samples(self._gpu_path(method, k, sampler, steps, variance, weights, ckpt_step, clip, variance_frac))
            out = {"images": torch.from_numpy(z["images"]), "batch_seed": torch.from_numpy(z["batch_seed"]),
                   "batch_row": torch.from_numpy(z["batch_row"])}
            if record_last:  # the GPU run kept x0_hat for a few rows (trajectory_rows) and the detector scores of all
                out["x0_hat"] = torch.from_numpy(z["trajectory_x0_hat"][-record_last:]).float() / 127.5 - 1  # uint8
                out["recorded_steps"] = torch.from_numpy(z["trajectory_steps"][-record_last:])
                out["traj_rows"] = [int(i) for i in z["trajectory_rows"]]
                out["scores"] = {"last 10 steps": torch.from_numpy(z["x0hat_var_last10"]),
                                 "t in 20..35": torch.from_numpy(z["x0hat_var_t20_35"])}
            return out
        return sample_set(self.load(method, k, weights, ckpt_step), n or self.cfg["n"],
                          self.sample_seed if seed is None else seed, sampler=sampler, steps=steps, variance=variance,
                          eta=eta, batch_size=self.cfg["batch"], record_last=record_last, clip_x0=clip,
                          variance_frac=variance_frac)

    def describe(self) -> str:
        """Where the models come from, in a few lines (the notebook prints it)."""
        if not self.loaded:
            return (f"{len(self.models)} models of the GPU windows; no weights on this machine (they stay where the run "
                    "was unpacked), so the sections that evaluate a model on this CPU skip them")
        src = {"shipped": "shipped checkpoints (checkpoints/shapes32/)", "trained": "models trained by this run",
               "gpu": "the GPU windows' weights"}[self.study.source(next(iter(self.models.values())))]
        first = next(iter(self.loaded.values()))
        k0 = self.seeds[0]
        n_par = {m: sum(p.numel() for p in self.loaded[(m, k0)].model.parameters()) for m in ("rho0", "fixed")
                 if (m, k0) in self.loaded}
        lines = [f"{len(self.loaded)} models from {src}; step {first.step}; UNet parameters: "
                 + ", ".join(f"{'learned' if m == 'rho0' else 'fixed'} variance {v:,}" for m, v in n_par.items())]
        times = self.study.training_times() if self.study.source(next(iter(self.models.values()))) == "shipped" else {}
        if times:
            lines.append(f"shipped models: training wall time per model {min(times.values()):.0f}-{max(times.values()):.0f} s "
                         "(1 thread each, 2 to 4 trainings at a time on a shared 2-core CPU: checkpoints/shapes32/README.md)")
        if self.cpu_methods != self.methods:
            lines.append(f"checkpoints here for {self.cpu_methods} (seed {k0}); the sections that evaluate a model on this "
                         f"CPU skip {[m for m in self.methods if m not in self.cpu_methods]}")
        return "\n".join(lines)


def _full_runs(root: Path, cfg: dict[str, Any]) -> dict[tuple[str, int], ModelRun]:
    """{(method, seed): ModelRun} of the GPU windows' complete models under ``cfg["runs_dir"]/shapes<size>/`` (the
    oldest run of a (method, seed) wins); updates ``cfg`` with the methods, the seeds that have every method, the
    further seeds per method, the sampling settings and the training-step sweep of the runs, and prints what ran."""
    bench = f"shapes{cfg['size']}"
    base = root / cfg["runs_dir"]
    runs = run_folders(bench, base)
    if not runs:
        raise FileNotFoundError(f"full profile: no GPU window run under {base / bench}: the full profile has not been run "
                                f"in this checkout. {_FULL_HOW}")
    first = load_summary(runs[0])
    opts = first.get("options", {})
    cfg.update(n=int(opts.get("n", cfg["n"])), n_sweep=int(opts.get("n_sweep", cfg["n_sweep"])),
               ddpm_steps=int(opts.get("sample_steps", cfg["ddpm_steps"])), sweep_ddpm_steps=int(opts.get("sample_steps", cfg["ddpm_steps"])),
               ddim_steps=[int(d) for d in opts.get("ddim_steps", cfg["ddim_steps"])])
    cfg["record_last"] = min(cfg["record_last"], cfg["ddpm_steps"])  # a window records at most its sampling steps

    def unusable(m: ModelRun) -> str | None:
        if m.method not in METHOD_CONFIGS:
            return f"method {m.method!r} is not one of notebook 06's"
        rows = [v for _, method, v in ROWS if method == m.method]
        if not all(sample_name(m.method, m.seed, "ddpm", cfg["ddpm_steps"], v) in m.samples for v in rows):
            return f"no primary set with DDPM-{cfg['ddpm_steps']}, the first run's sampler"
        return None

    chosen, left = pick_models(bench, base, unusable)
    methods = [m for m in METHOD_CONFIGS if any(mm == m for mm, _ in chosen)]
    all_seeds = sorted({k for _, k in chosen})
    seeds = [k for k in all_seeds if all((m, k) in chosen for m in methods)]
    if not seeds:
        raise FileNotFoundError(f"full profile: no training seed has a complete model of every method {methods} under "
                                f"{base / bench} (complete: {sorted(m.name for m in chosen.values())})")
    extra = {m: [k for k in all_seeds if k not in seeds and (m, k) in chosen] for m in methods}
    k0_run = load_summary(chosen[(methods[0], seeds[0])].run_dir)
    cfg.update(methods=methods, seeds=seeds, extra_seeds={m: ks for m, ks in extra.items() if ks},
               step_sweep=[int(s) for s in k0_run.get("sweep_steps", [])])
    used = sorted({m.run_dir for m in chosen.values()})
    for run in used:
        print(describe_run(load_summary(run), sorted(m.name for m in chosen.values() if m.run_dir == run)))
    print(f"methods: {methods}; seeds with every method (the primary sets): {seeds}; further seeds per method "
          f"(section 5b): {cfg['extra_seeds'] or 'none'}; sampling: n {cfg['n']}, DDPM-{cfg['ddpm_steps']} with x0 "
          f"clipping; training-step sweep at {cfg['step_sweep'] or 'none'}")
    if left:
        print("not used: " + "; ".join(left))
    return chosen
