"""One GPU window in ONE process: calibrate, train K models in lockstep to a measured step count, sample, validate,
and bring back compact results; then unpack them here as a run under ``runs/full/<benchmark>/<run-id>/``. One
benchmark per window (``--bench``): ``shapes`` (64 px, notebook 06), ``cards`` or ``chess`` (128 px RGB, notebook 07).

Here, before the window (vendors safetensors and python-chess, pins the commit; both travel as carried, git-ignored
paths)::

    python benchmarks/gpu_window.py prepare

On the GPU machine (one call; ``carry=["build/pydeps", "build/gpu_window"]``, ``timeout_s=600``)::

    PYTHONPATH=. python3 benchmarks/gpu_window.py run --out $OUT                 # --bench cards | chess for notebook 07

Back here::

    python benchmarks/gpu_window.py unpack FOLDER        # -> runs/full/shapes64/<run-id>/ (notebook 06's full profile)

What ``run`` does, each stage bounded by the clock that starts when the script starts (``--deadline``, default
540 s, with ``--pack-seconds`` kept for writing the results):

1. **Preflight** (seconds): writes float16 EMA weights of an untrained model (safetensors: the installed package,
   else the vendored copy in build/pydeps, else a small pure-Python writer of the same format, named in the
   summary), samples 2 images with every sampler option used later, validates them, writes an npz, and times
   one sampling forward pass at ``--sample-batch`` (which sizes the sampling reserve). A broken sampling path is
   named and sampling skipped; training still runs.
2. **Calibration** (``--calib-seconds``, 60-90 s on a GPU): for each mode of ``--modes`` (eager, graph = the whole
   step in a CUDA graph, compile = torch.compile, ``+cl`` = channels_last), one model of the heaviest loss
   (VSM) on the real config, batch and device-resident data: warm-up (compilation / capture, timed as
   ``setup_s``), then timed steps (img/s, MFU against the bf16 matmul rate measured at the start, peak memory).
   A mode that errors or runs out of memory is dropped with its error named. For compile modes a second model
   is warmed up too (what each further model of the window costs to compile). Chosen: the mode that trains the
   most images in the training budget (img/s x (budget - K x per-model setup)) among those whose peak memory
   fits K models; if none fits, the smallest and as many models as fit (the rest named as not done).
3. **Lockstep rate**: the K models (``--methods`` x ``--seeds``: configs/<bench>-<method>-gpu.toml, ``vsm10`` =
   VSM with rho 10) are built in the chosen mode on one device-resident copy of the data, warmed up one by one
   (a model that fails there is rebuilt eagerly once), stepped in lockstep (``MultiTrainer``, one CUDA stream
   each) for a few seconds, and then put back to their step-0 state. The step count N = measured lockstep
   steps/s x the training budget (``--train-seconds``, cut to what the deadline leaves after the sampling and
   packing reserves).
4. **Training**: exactly N steps for every model with ``train.steps = N`` and ``train.lr_decay = "cosine"`` (the
   cosine reaches 0 at N), ``MultiTrainer(errors="collect")``: a model that fails is named with its error and the
   others go on. If training runs past its hard stop (the deadline less the reserves) every model stops at the
   same step and keeps the EMA weights of that step (status "stopped", step reached in the summary). EMA
   snapshots at ``--sweep-fracs`` of N feed the training-step sweep (when this window draws sweeps).
5. **Sampling** (priority order, each set only if its measured cost fits before the deadline): the primary sets
   of every model (DDPM ``--sample-steps`` respaced steps with x0_hat clipped, ``--n`` samples, EMA weights as
   shipped (float16, upcast), sampling seed ``--sample-seed`` S with batch k drawn from
   ``torch.Generator(device).manual_seed(S * 1000003 + k)``, the seed scheme of ``vsmlab sample``; fixed-variance
   models with beta and beta_tilde, learned ones with their learned variance; the last 12 x0_hat recorded: the
   detector scores of notebook 06 section 9 are stored for every sample and the x0_hat tail, as uint8, for a few
   rows), then the first seed's sweeps notebook 06 reads (no clipping, raw weights, training step, DDIM steps;
   ``--n-sweep`` samples); between the two, the ceiling sets (``--ceiling``, on by default): every learned-variance
   model with Sigma forced to beta_tilde_t and to beta_t, ``--n`` samples with the primary sets' noise.
   ``--sweeps auto`` draws the sweeps only in the benchmark's first window (no run under ``--runs-root`` yet): a
   later window gives all its sampling time to the primary sets of its new seeds. That is SimpleShapes; Cards and
   chess (``BENCHES``) draw what notebook 07 reads: one primary set per model (fixed variance with beta), 400
   samples, no detector scores, no ceiling sets, and only the training-step sweep at half of N; a chess window also
   keeps the square tiles it rendered its boards with (``chess_tiles_<size>.npy``). File names are the sample
   store's (``vsmlab.lab.full_runs.sample_name``). Every set is validated on the device machine (the benchmark's
   validator: :func:`verdicts`, in ``--validate-workers`` processes while the GPU samples the next set).
6. **Packing**: at most 8 files of < 16 MB under ``--out``: ``gpu_window.json`` (the summary) and up to 7 tar
   chunks (summary copy, log, configs, training logs; primary sets; weights; sweeps), with a SHA-256 manifest that
   ``unpack`` checks. Every primary set must travel: if one would not fit a chunk (noisy 128-px RGB sets compress
   to about 46 KB per image), all of them keep the same first k samples (``primary_rows_kept``). Whatever stage
   fails or runs out of time, the script still packs what is complete.

``unpack`` checks the manifest, puts the run in place and keeps the tree a GPU machine receives within its limit
(.ci/tree_size.py): if the run's files would pass it, its sets go to the run's git-ignored ``local/`` folder, lowest
priority first (sweeps, ceiling sets, and last the primary sets: a 128-px RGB run's primary sets alone are over the
limit, so such a run commits its summary, configs and logs, and its models are complete where it was unpacked);
``kept_local`` in the summary names them. The weights are git-ignored too.

The summary (``gpu_window.json``, ``summary.json`` in the run folder) records the device, torch / CUDA versions,
the pinned commit, the calibration table, the chosen mode and why, img/s per model, MFU against the measured
bf16 matmul rate, peak memory, the step count and the step each model reached, per-stage wall times, every
sample set with its validator categories, and what was not done. Rehearsal on a CPU (tiny settings, seconds):
tests/test_gpu_window.py.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import io
import json
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T_START = time.time()  # the deadline clock starts when the script starts (before torch is imported)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _transfer import PYDEPS, ROOT, device_facts, pack  # noqa: E402  (importing it puts build/pydeps on sys.path)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FORMAT, VERSION = "vsmlab.gpu_window", 1
SUMMARY_NAME = "gpu_window.json"  # beside the chunks under --out; summary.json in the run folder
PIN = ROOT / "build" / "gpu_window" / "pin.json"
CHUNK = 15_500_000  # bytes of files per tar chunk (+ tar headers < 16 MB); 7 chunks + the summary = 8 files
MAX_CHUNKS = 7
MAX_FILE_BYTES = 16_000_000
SEED_STRIDE = 1_000_003  # batch k of sampling seed S: torch.Generator(device).manual_seed(S * SEED_STRIDE + k)
RECORD_LAST = 12
TRAJECTORY_ROWS = (4, 2)  # x0_hat tails kept: the first 4 valid samples, the first 2 of each non-valid category
METHODS = {"fixed": ("fixed", ()), "rho0": ("rho0", ()), "vsm": ("vsm", ()), "vsm10": ("vsm", ("loss.rho=10.0",))}
VAR_OF = {"fixed": "beta", "rho0": "learned", "vsm": "learned", "vsm10": "learned"}
PRIMARY_VARS = {"fixed": ("beta", "beta_tilde"), "rho0": ("learned",), "vsm": ("learned",), "vsm10": ("learned",)}
#: per benchmark (configs/<bench>-<method>-gpu.toml): what its notebook reads. shapes: notebook 06 (both fixed-variance
#: samplers, the detector scores and x0_hat tails, the ceiling sets, four sweeps); cards and chess: notebook 07 (one
#: primary set per model, the training-step sweep at half the steps; 128-px RGB sets are large, so fewer samples)
BENCHES: dict[str, dict[str, Any]] = {
    "shapes": dict(n=600, n_sweep=200, primary_vars=PRIMARY_VARS, record=True, ceiling=True,
                   sweeps=("noclip", "raw", "train_step", "ddim"), sweep_fracs=[0.25, 0.5, 0.75]),
    "cards": dict(n=400, n_sweep=100, primary_vars={**PRIMARY_VARS, "fixed": ("beta",)}, record=False, ceiling=False,
                  sweeps=("train_step",), sweep_fracs=[0.5]),
    "chess": dict(n=400, n_sweep=100, primary_vars={**PRIMARY_VARS, "fixed": ("beta",)}, record=False, ceiling=False,
                  sweeps=("train_step",), sweep_fracs=[0.5]),
}
MODES = {  # name -> Trainer flags
    "eager": dict(cuda_graph=False, compile=False, channels_last=False),
    "eager+cl": dict(cuda_graph=False, compile=False, channels_last=True),
    "graph": dict(cuda_graph=True, compile=False, channels_last=False),
    "graph+cl": dict(cuda_graph=True, compile=False, channels_last=True),
    "compile": dict(cuda_graph=False, compile=True, channels_last=False),
    "compile+cl": dict(cuda_graph=False, compile=True, channels_last=True),
    "compile+graph": dict(cuda_graph=True, compile=True, channels_last=False),
    "compile+graph+cl": dict(cuda_graph=True, compile=True, channels_last=True),
}
# calibration order: the cheap modes, then compile+graph (the likely fastest; a cold compile), compile (the same compiled
# graph: warm caches), then the channels_last variants while the budget lasts (another cold compile)
CUDA_MODES = ["eager", "graph", "compile+graph", "compile", "graph+cl", "compile+graph+cl"]
FIRST_COMPILE_GUESS = 45.0  # s: what a first torch.compile of the UNet step is assumed to cost before one was timed


class Deadline(BaseException):
    """The hard deadline (SIGALRM) or SIGTERM: stop what runs, keep what is complete, pack."""


def _raise_deadline(signum, frame):  # noqa: ARG001
    raise Deadline(f"signal {signal.Signals(signum).name}")


# ------------------------------------------------------------------------------------------------ small tools
class Log:
    """Timestamped lines to stdout and to the run folder's run.log."""

    def __init__(self) -> None:
        self.file = None
        self.lines: list[str] = []

    def open(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")
        for line in self.lines:
            self.file.write(line + "\n")
        self.file.flush()

    def __call__(self, msg: str) -> None:
        line = f"[{time.time() - T_START:7.1f}s] {msg}"
        print(line, flush=True)
        self.lines.append(line)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()


def err_text(exc: BaseException) -> str:
    """``Type: first line`` of an exception (what the summary names)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:400]}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def git_pin() -> dict[str, Any]:
    """The commit this tree was taken from: git here (a checkout), else build/gpu_window/pin.json (written by
    ``prepare`` and carried: the GPU machine's copy of the tree has no git), else unknown. ``dirty``: what differs
    from that commit (uncommitted and untracked-not-ignored files, which travel too)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                   timeout=10).stdout.split("\n")
            return {"commit": head.stdout.strip(), "dirty": [ln[3:] for ln in dirty if ln.strip()], "source": "git"}
    except (OSError, subprocess.SubprocessError):
        pass
    if PIN.is_file():
        try:
            return {**json.loads(PIN.read_text()), "source": "build/gpu_window/pin.json (prepare)"}
        except ValueError:
            pass
    return {"commit": "unknown", "dirty": [], "source": "none (no git, no pin file): run `prepare` before the window"}


def safe_tag(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "x"


def device_tag(name: str) -> str:
    """h100 / h200 / a100 / cpu / ... for the run id."""
    m = re.search(r"\b([A-Z]\d{2,4}[A-Z]?)\b", name)
    return safe_tag(m.group(1)) if m else safe_tag(name.split()[0] if name.split() else "dev")


# ---------------------------------------------------------------------------------------- safetensors writing
def _safetensors_py(tensors: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """The safetensors format written in pure Python (used only when the package cannot be imported): 8-byte
    little-endian header size, the JSON header (dtype, shape, data_offsets per tensor; ``__metadata__``) padded
    with spaces to 8 bytes, then the tensors' bytes in header order."""
    import torch

    codes = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def weights_writer() -> tuple[Any, str]:
    """(function payload -> bytes of a float16 EMA weights file, which writer): vsmlab's writer over the safetensors
    package (installed, or vendored in build/pydeps), else the pure-Python writer of the same format and header."""
    from vsmlab.diffusion import checkpoints as ck

    try:
        import safetensors
        from safetensors.torch import save  # noqa: F401

        where = "vendored (build/pydeps)" if str(PYDEPS) in str(Path(safetensors.__file__).resolve()) else "installed"
        return (lambda payload: ck.weights_bytes(payload, "float16")), f"safetensors {safetensors.__version__} ({where})"
    except Exception as exc:  # noqa: BLE001 - missing, or a build that does not load here: the pure-Python writer
        reason = err_text(exc)

    def fallback(payload: dict[str, Any]) -> bytes:
        import torch

        tensors = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype)
                   for k, v in payload["ema"].items()}
        meta = {"format": ck.WEIGHTS_FORMAT, "version": "1", "model_kind": str(payload["model_kind"]),
                "model_config": json.dumps(payload["model_config"], sort_keys=True),
                "config": json.dumps(payload["config"], sort_keys=True), "step": str(int(payload["step"])),
                "dtype": "float16"}
        return _safetensors_py(tensors, meta)

    return fallback, f"pure-Python safetensors writer (the package did not import: {reason})"


# ---------------------------------------------------------------------------------------------- the window
@dataclass
class Spec:
    """One model of the window."""

    name: str
    method: str
    seed: int
    cfg: dict[str, Any]
    mode: str = ""
    status: str = "planned"
    error: str | None = None
    trainer: Any = None
    loss: Any = None
    setup_s: float | None = None
    log_file: Any = None
    ema16: dict[str, Any] | None = None  # float16-rounded EMA weights (float32 tensors, CPU) after training
    raw: dict[str, Any] | None = None  # raw weights (first seed only, for the raw-weights sweep)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> float16-rounded EMA
    model_config: dict[str, Any] | None = None


def verdicts(bench: str, imgs) -> list[str]:
    """The benchmark validator's verdict per image (uint8, [N, S, S] or [N, S, S, 3] as written): shapes, its
    category ("valid", "blank", ...); cards (at the released threshold) and chess, "valid" or the violated rules
    joined by "+". Runs in the validator processes."""
    if bench == "shapes":
        from vsmlab.data.shapes_validate import validate

        return [v.category for v in validate(imgs)]
    import torch

    x = torch.from_numpy(imgs)
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)
    if bench == "cards":
        from vsmlab.data.cards import THRESHOLD, validate_cards

        v = validate_cards(x, threshold=THRESHOLD)
    else:
        from vsmlab.data.chessboards import validate_chess

        v = validate_chess(x)
    return ["+".join(c) or "flagged" if bad else "valid" for bad, c in zip(v.hallucinated.tolist(), v.categories)]


class FailingLoss:
    """A loss that raises after ``at`` calls once armed (``--fail NAME:AT``: the failure-isolation rehearsal)."""

    def __init__(self, loss: Any, name: str, at: int) -> None:
        self.loss, self.name, self.at, self.calls, self.armed = loss, name, at, 0, False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.calls += 1
            if self.calls >= self.at:
                raise RuntimeError(f"injected failure (--fail {self.name}:{self.at}) at training loss call {self.calls}")
        return self.loss(*args, **kwargs)


class Window:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = Log()
        self.deadline_at = T_START + args.deadline
        self.summary: dict[str, Any] = {"format": FORMAT, "version": VERSION, "command": " ".join(sys.argv),
                                        "stages": {}, "not_done": [], "models": {}, "sample_sets": {}}
        self.lock = threading.Lock()
        self.specs: dict[str, Spec] = {}
        self.stage_t = time.time()
        self.pool = None
        self.writer_q: queue.Queue = queue.Queue()
        self.writer_thread: threading.Thread | None = None
        self.sampling_ok = True
        self.sweeps = True  # setup: only in the benchmark's first window unless --sweeps says otherwise
        self.sec_per_img_step: float | None = None  # the preflight's forward pass at the sampling batch
        self.per_n: dict[int, float] = {}  # n -> seconds per image and sampling step observed for sets of n samples

    # -- time
    def left(self) -> float:
        return self.deadline_at - time.time()

    def stage(self, name: str) -> None:
        """Close the running stage (its wall time into summary['stages']) and start ``name``."""
        now = time.time()
        if getattr(self, "stage_name", None):
            self.summary["stages"][self.stage_name] = round(now - self.stage_t, 2)
        self.stage_name, self.stage_t = name, now

    def not_done(self, what: str) -> None:
        with self.lock:
            self.summary["not_done"].append(what)
        self.log(f"NOT DONE: {what}")

    # -- setup ----------------------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from vsmlab.diffusion.config import build_data, load_config

        a = self.args
        self.torch = torch
        self.device = torch.device(a.device)
        cuda = self.device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available on this machine")
        torch.set_num_threads(a.threads)
        if cuda:
            torch.backends.cudnn.benchmark = True
            try:  # several model instances of one class (and a second graph for the fixed model) compile here
                import torch._dynamo as dynamo

                for key, value in (("cache_size_limit", 64), ("recompile_limit", 64),
                                   ("accumulated_cache_size_limit", 512), ("accumulated_recompile_limit", 512),
                                   ("automatic_dynamic_shapes", False)):
                    if hasattr(dynamo.config, key):
                        setattr(dynamo.config, key, value)
            except Exception:  # noqa: BLE001 - compile modes then report their own errors
                pass
        facts = device_facts(a.device)
        pin = git_pin()
        facts["host_cpus"] = os.cpu_count()
        if cuda:
            props = torch.cuda.get_device_properties(self.device)
            facts["gpu_memory_gib"] = round(props.total_memory / 2**30, 2)
            facts["multiprocessors"] = props.multi_processor_count
        run_id = a.run_id or (f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(T_START))}-{device_tag(facts['device'])}-"
                              f"{safe_tag(pin['commit'][:7])}")
        self.summary.update(facts)
        self.summary.update(run_id=run_id, commit=pin, options={k: v for k, v in vars(a).items() if k != "cmd"})
        # configs: the method's GPU config, the seed, cosine decay (train.steps = N is set once N is measured)
        stem = a.bench
        base = ["train.lr_decay=cosine", f"train.log_every={a.log_every}"] if a.log_every else ["train.lr_decay=cosine"]
        # the config's [sample] records how the window sampled (the primary sets)
        base += [f"sample.n={a.n}", f"sample.batch_size={a.sample_batch}", f"sample.seed={a.sample_seed}",
                 f"sample.steps={a.sample_steps}", "sample.sampler=ddpm"]
        if not cuda:  # the GPU configs ask for bf16 autocast, which runs on CUDA only: fp32 on the CPU (rehearsals)
            base.append("train.amp=auto")
        methods = a.methods
        probe = load_config(ROOT / "configs" / f"{stem}-{METHODS[methods[0]][0]}-gpu.toml", [*base, *a.set])["data"]
        seeds = self.resolve_seeds(f"{probe['kind']}{probe.get('size', '')}")
        cfgs = {}
        for k in seeds:
            for m in methods:
                cfg_stem, extra = METHODS[m]
                path = ROOT / "configs" / f"{stem}-{cfg_stem}-gpu.toml"
                cfgs[(m, k)] = load_config(path, [*extra, *base, f"train.seed={k}", *a.set])
        datas = {json.dumps(c["data"], sort_keys=True) for c in cfgs.values()}
        if len(datas) != 1:
            raise SystemExit(f"the configs of {methods} train on different data ({sorted(datas)}); one data set per window")
        cfg0 = next(iter(cfgs.values()))
        d = cfg0["data"]
        self.benchmark = f"{d['kind']}{d.get('size', '')}"
        self.summary.update(benchmark=self.benchmark, methods=methods, seeds=seeds, extra_train_overrides=list(a.set))
        from vsmlab.lab.full_runs import run_folders

        earlier = [p.name for p in run_folders(self.benchmark, a.runs_root)]
        self.sweeps = a.sweeps == "yes" or (a.sweeps == "auto" and not earlier)
        self.summary["sweeps"] = {"drawn": self.sweeps, "option": a.sweeps, "earlier_runs": earlier}
        self.work = Path(a.work)
        self.run_dir = self.work / "run"
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        for sub in ("models", "weights", "samples"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.out = Path(a.out)
        self.out.mkdir(parents=True, exist_ok=True)
        stale = [p for p in self.out.iterdir() if p.name == SUMMARY_NAME or re.fullmatch(r"chunk_\d+\.tar", p.name)]
        for p in stale:
            p.unlink()
        self.log.open(self.run_dir / "run.log")
        self.log(f"run {run_id}: device {facts['device']}, torch {facts['torch']}, CUDA {facts.get('cuda')}, python "
                 f"{facts['python']}; commit {pin['commit'][:12]} ({pin['source']}); deadline {a.deadline:.0f} s")
        if facts.get("nvidia_smi"):
            self.log(f"nvidia-smi: {facts['nvidia_smi']}")
        t = time.time()
        data = build_data(cfg0)
        self.data = data.to(self.device)  # resident on the device, uint8, shared by every model
        self.log(f"data: {self.benchmark}, {tuple(data.shape)} {data.dtype} built and moved to {self.device} in "
                 f"{time.time() - t:.1f} s")
        if a.bench == "chess":  # the square tiles this machine rendered its boards with (notebook 07 reads against them)
            import numpy as np

            from vsmlab.data.chessboards import lab_tiles

            buf = io.BytesIO()
            np.save(buf, lab_tiles(int(d["size"])))
            atomic_write(self.run_dir / f"chess_tiles_{d['size']}.npy", buf.getvalue())
        for (m, k), cfg in cfgs.items():
            name = f"{m}-seed{k}"
            self.specs[name] = Spec(name, m, k, cfg)
            self.summary["models"][name] = {"method": m, "seed": k, "status": "planned"}
        if a.fail:
            name, _, at = a.fail.partition(":")
            if name not in self.specs:
                raise SystemExit(f"--fail: {name!r} is not a model of this window ({', '.join(self.specs)})")
            self.fail_at = (name, int(at or 1))
        else:
            self.fail_at = None
        from vsmlab.diffusion.config import build_schedule

        self.schedule = build_schedule(cfg0)
        self.shape = tuple(data.shape[1:])
        if a.validate_workers > 0:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(a.validate_workers)
            self.pool_warm = self.pool.map_async(abs, [0] * a.validate_workers)  # start the workers' imports now
        self.writer_thread = threading.Thread(target=self.writer, name="sample-writer", daemon=True)
        self.writer_thread.start()

    def resolve_seeds(self, benchmark: str) -> list[int]:
        """--seeds, or (auto) the --n-seeds smallest seeds no earlier run of ``benchmark`` used (runs/full in the tree
        this machine received: seeds accumulate across windows, each window adds new ones)."""
        from vsmlab.lab.full_runs import used_seeds

        a = self.args
        if a.seeds != ["auto"]:
            try:
                return [int(s) for s in a.seeds]
            except ValueError:
                raise SystemExit(f"--seeds: expected integers or 'auto', got {a.seeds}") from None
        used = used_seeds(benchmark, a.runs_root)
        seeds, k = [], 0
        while len(seeds) < a.n_seeds:
            if k not in used:
                seeds.append(k)
            k += 1
        self.summary["seeds_auto"] = {"used_by_earlier_runs": sorted(used), "chosen": seeds}
        return seeds

    # -- measurement helpers ---------------------------------------------------------------------------------
    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def matmul_rate(self) -> None:
        torch = self.torch
        cuda = self.device.type == "cuda"
        n = self.args.matmul_n or (8192 if cuda else 256)
        dtype, label = (torch.bfloat16, "bf16") if cuda else (torch.float32, "fp32")
        from _timing import matmul_flops  # torch is imported late on purpose (see setup)

        self.peak_flops = matmul_flops(self.device, n, dtype)
        self.summary["matmul"] = {"what": f"{label} {n}x{n} torch.matmul, best of 10", "tflops": round(self.peak_flops / 1e12, 3)}
        self.log(f"matmul rate ({label} {n}x{n}): {self.peak_flops / 1e12:.2f} TFLOP/s")

    def flops(self) -> None:
        from vsmlab.diffusion.config import build_model
        from vsmlab.nets import count_parameters, unet_flops

        spec = self.heaviest()
        model = build_model(spec.cfg, (1, *self.shape))
        self.flops_img = 3 * unet_flops(model, self.shape[-1])
        self.summary["model"] = {"parameters": count_parameters(model), "train_flops_per_image": self.flops_img,
                                 "fp16_weights_bytes_est": 2 * count_parameters(model),
                                 "batch_size": spec.cfg["train"]["batch_size"]}

    def heaviest(self) -> Spec:
        order = ["vsm", "vsm10", "rho0", "fixed"]
        return min(self.specs.values(), key=lambda s: order.index(s.method) if s.method in order else 9)

    def build_trainer(self, spec: Spec, mode: str, steps: int, seed_offset: int = 0):
        from vsmlab.diffusion.config import build_loss, build_model, trainer_options
        from vsmlab.diffusion.training import Trainer

        cfg = copy.deepcopy(spec.cfg)
        cfg["train"].update(MODES[mode])
        cfg["train"]["seed"] += seed_offset
        model = build_model(cfg, (1, *self.shape))
        loss = build_loss(cfg)
        if self.fail_at and self.fail_at[0] == spec.name and not seed_offset:
            loss = FailingLoss(loss, spec.name, self.fail_at[1])
        opts = {**trainer_options(cfg), "steps": steps, "device": self.device}
        return Trainer(model, self.data, self.schedule, loss_fn=loss, **opts), loss, cfg

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()

    def free_memory(self) -> int | None:
        """Free device memory in bytes (None on the CPU: no limit checked)."""
        if self.device.type != "cuda":
            return None
        return int(self.torch.cuda.mem_get_info(self.device)[0])

    def cuda_alive(self) -> str | None:
        """None if the device still runs a kernel, else the error (a sticky CUDA error ends GPU work)."""
        try:
            x = self.torch.ones(4, device=self.device)
            float(x.sum())
            return None
        except Exception as exc:  # noqa: BLE001
            return err_text(exc)

    # -- 1. preflight ----------------------------------------------------------------------------------------
    def preflight(self) -> None:
        from vsmlab.diffusion.config import build_model
        from vsmlab.diffusion.checkpoints import load_checkpoint
        from vsmlab.diffusion.samplers import ddim, ddpm

        torch = self.torch
        a = self.args
        pre: dict[str, Any] = {}
        self.write_weights, pre["weights_writer"] = weights_writer()
        spec = self.heaviest()
        model = build_model(spec.cfg, (1, *self.shape)).to(self.device).eval()
        try:  # a weights file round trip (the writer the window will use; read back by vsmlab's loader)
            payload = {"config": spec.cfg, "model_kind": "unet", "model_config": model.config, "step": 0,
                       "ema": model.state_dict()}
            path = self.work / "preflight.safetensors"
            atomic_write(path, self.write_weights(payload))
            try:
                back = load_checkpoint(path)
                same = all(torch.equal(back["ema"][k], v.detach().cpu().half().float()) for k, v in model.state_dict().items()
                           if v.is_floating_point())
                pre["weights_roundtrip"] = "ok" if same else "MISMATCH"
            except ImportError:
                pre["weights_roundtrip"] = "not read back (no safetensors reader here; the file is checked by unpack)"
            pre["weights_bytes"] = path.stat().st_size
        except Exception as exc:  # noqa: BLE001
            pre["weights_error"] = err_text(exc)
            self.log(f"preflight: weights writer FAILED: {pre['weights_error']}")
        try:  # every sampler option used later, validation, an npz
            g = torch.Generator(device=self.device).manual_seed(1)
            steps = min(a.sample_steps, self.schedule.num_steps)
            r = ddpm(model, self.schedule, shape=(2, *self.shape), generator=g, device=self.device, num_steps=steps,
                     clip_x0=True, variance="learned" if model.learn_variance else "beta", record_last=min(RECORD_LAST, steps),
                     record_device=self.device)
            ddim(model, self.schedule, shape=(2, *self.shape), generator=g, device=self.device,
                 num_steps=min(10, self.schedule.num_steps), clip_x0=True, eta=0.0)
            imgs = self.to_uint8(r.samples)
            self.scores(r.x0_hat, r.recorded_steps)
            cats = self.validate_inline(imgs)
            import numpy as np

            buf = io.BytesIO()
            np.savez_compressed(buf, images=imgs)
            pre["sampling"] = f"ok (DDPM-{steps} clipped with trajectory, DDIM, validator: {cats})"
            # the cost of one sampling forward pass at the sampling batch (fp32, as `vsmlab sample`)
            b = min(a.sample_batch, a.n)
            x = torch.randn(b, *self.shape, device=self.device)
            t = torch.full((b,), 10, device=self.device, dtype=torch.long)
            with torch.no_grad():
                model(x, t)
                self.sync()
                t0 = time.perf_counter()
                reps = 3
                for _ in range(reps):
                    model(x, t)
                self.sync()
            self.sec_per_img_step = (time.perf_counter() - t0) / (reps * b)
            pre["sample_seconds_per_image_step"] = self.sec_per_img_step
            del x, r
        except Exception as exc:  # noqa: BLE001
            self.sampling_ok = False
            pre["sampling"] = f"FAILED: {err_text(exc)}"
            self.log(f"preflight: sampling FAILED (training goes on, sampling is skipped):\n{traceback.format_exc()[-2000:]}")
        del model
        self.free()
        self.summary["preflight"] = pre
        self.log(f"preflight: {pre}")

    # -- 2. calibration --------------------------------------------------------------------------------------
    def primary_need(self) -> float:
        """Seconds the primary sample sets are expected to take (measured cost per image-step, x 1.3 + 5 s)."""
        if not self.sampling_ok or self.sec_per_img_step is None:
            return 0.0
        a = self.args
        sets = sum(len(BENCHES[a.bench]["primary_vars"][s.method]) for s in self.specs.values())
        return 1.3 * sets * a.n * min(a.sample_steps, self.schedule.num_steps) * self.sec_per_img_step + 5.0

    def train_budget(self, extra_setup: float = 0.0) -> float:
        """Seconds training can take from now: --train-seconds, cut to what the deadline leaves after the
        packing, primary-sampling and sweep reserves."""
        a = self.args
        room = self.left() - a.pack_seconds - self.primary_need() - (a.sweep_seconds if self.sampling_ok and self.sweeps else 0.0)
        return max(0.0, min(a.train_seconds, room) - extra_setup)

    def measure_mode(self, mode: str) -> dict[str, Any]:
        """One model of the heaviest loss in ``mode``: setup (warm-up) time, img/s, peak memory; for compile modes
        also the warm-up of a second model (what each further model costs)."""
        torch = self.torch
        a = self.args
        cuda = self.device.type == "cuda"
        spec = self.heaviest()
        row: dict[str, Any] = {"mode": mode, **MODES[mode]}
        self.free()
        if cuda:
            self.sync()
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        tr, _, _ = self.build_trainer(spec, mode, 10**9, seed_offset=1000)
        tr.log_every = 10**9
        it = tr.run()
        try:
            t = time.perf_counter()
            for _ in range(2):
                next(it)
            self.sync()
            row["setup_s"] = round(time.perf_counter() - t, 3)
            batch, chunk, rates, timed = tr.batch_size, a.calib_chunk, [], 0.0
            while timed < a.mode_seconds or len(rates) < 2:
                self.sync()
                t = time.perf_counter()
                for _ in range(chunk):
                    next(it)
                self.sync()
                dt = time.perf_counter() - t
                timed += dt
                rates.append(chunk * batch / dt)
                if len(rates) >= 50:
                    break
            rates.sort()
            row["img_per_s"] = round(rates[len(rates) // 2], 2)
            row["img_per_s_best"] = round(rates[-1], 2)
            row["ms_per_step"] = round(1e3 * batch / row["img_per_s"], 3)
            row["timed_steps"] = chunk * len(rates)
            row["mfu"] = round(row["img_per_s"] * self.flops_img / self.peak_flops, 4)
            if cuda:
                row["peak_mib"] = round((torch.cuda.max_memory_allocated(self.device) - base) / 2**20, 1)
        finally:
            it.close()
        if MODES[mode]["compile"]:  # a further model of the same config (warm caches)
            tr2, _, _ = self.build_trainer(spec, mode, 10**9, seed_offset=2000)
            it2 = tr2.run()
            try:
                t = time.perf_counter()
                for _ in range(2):
                    next(it2)
                self.sync()
                row["setup_next_s"] = round(time.perf_counter() - t, 3)
            finally:
                it2.close()
            del tr2, it2
        del tr, it
        self.free()
        return row

    def calibrate(self) -> None:
        a = self.args
        modes = a.modes or (CUDA_MODES if self.device.type == "cuda" else ["eager"])
        t0 = time.time()
        table: list[dict[str, Any]] = []
        compile_cost: dict[bool, tuple[float, float]] = {}  # channels_last -> (cold, warm) setup measured
        for mode in modes:
            if mode not in MODES:
                table.append({"mode": mode, "error": f"unknown mode; known: {', '.join(MODES)}"})
                continue
            spent = time.time() - t0
            guess = 2.0 + a.mode_seconds
            if MODES[mode]["compile"]:  # warm caches when the same layout was compiled, else a cold compile (x 2 models)
                cl = MODES[mode]["channels_last"]
                guess += 2 * compile_cost[cl][1] if cl in compile_cost else (
                    max(c[0] for c in compile_cost.values()) if compile_cost else FIRST_COMPILE_GUESS) + 10.0
            if table and spent + guess > a.calib_seconds:
                table.append({"mode": mode, "skipped": f"the calibration budget ({a.calib_seconds:.0f} s) would be exceeded: "
                                                      f"{spent:.0f} s spent, about {guess:.0f} s needed"})
                self.log(f"calibration: {mode} skipped ({table[-1]['skipped']})")
                continue
            try:
                row = self.measure_mode(mode)
            except Deadline:
                raise
            except Exception as exc:  # noqa: BLE001 - the mode is dropped, named with its error
                row = {"mode": mode, **MODES[mode], "error": err_text(exc)}
                self.log(f"calibration: {mode} DROPPED: {row['error']}")
                self.free()
                dead = self.cuda_alive()
                if dead:
                    row["cuda_after"] = dead
                    table.append(row)
                    self.summary["calibration"] = {"modes": table}
                    raise RuntimeError(f"the device stopped working after mode {mode} failed: {dead}")
            else:
                if MODES[mode]["compile"]:
                    cl = MODES[mode]["channels_last"]
                    compile_cost.setdefault(cl, (row["setup_s"], row.get("setup_next_s", row["setup_s"])))
                self.log(f"calibration: {mode}: {row['img_per_s']:.1f} img/s, MFU {100 * row.get('mfu', 0):.1f}%, setup "
                         f"{row['setup_s']:.1f} s"
                         + (f" (+{row['setup_next_s']:.1f} s per further model)" if "setup_next_s" in row else "")
                         + (f", peak {row['peak_mib']:.0f} MiB" if "peak_mib" in row else ""))
            table.append(row)
        self.summary["calibration"] = {"modes": table, "seconds": round(time.time() - t0, 1)}
        missed = [f"{r['mode']} ({r.get('error') or r.get('skipped')})" for r in table if "img_per_s" not in r]
        if missed:
            self.not_done("calibration: modes not measured: " + "; ".join(missed))
        self.free()  # what a failed mode's traceback held is released now: the memory check sees it free
        self.choose(table)

    def choose(self, table: list[dict[str, Any]]) -> None:
        """The mode that trains the most images in the budget among those whose memory fits K models."""
        a = self.args
        ok = [r for r in table if "img_per_s" in r]
        if not ok:
            raise RuntimeError("no training mode ran: " + "; ".join(f"{r['mode']}: {r.get('error', r.get('skipped'))}" for r in table))
        k = len(self.specs)
        free = self.free_memory()
        mem = a.memory_fraction * free if free is not None else None
        budget = self.train_budget()
        fixed = any(s.method == "fixed" for s in self.specs.values())
        for r in ok:  # each model's warm-up in the window; a compile mode compiles the fixed model's graph cold
            extra = r.get("setup_next_s", r["setup_s"]) * k + (r["setup_s"] if MODES[r["mode"]]["compile"] and fixed else 0.0)
            r["setup_window_est_s"] = round(extra, 1)
            r["images_in_budget_est"] = int(r["img_per_s"] * max(0.0, budget - extra))
            r["fits"] = mem is None or "peak_mib" not in r or k * r["peak_mib"] * 2**20 <= mem
        fitting = [r for r in ok if r["fits"]]
        why = f"most images in the training budget ({budget:.0f} s) among the modes whose memory fits {k} models"
        if not fitting:
            r = min(ok, key=lambda r: r.get("peak_mib", 0))
            keep = max(1, int(mem // (r["peak_mib"] * 2**20)))
            drop = list(self.specs)[keep:]
            for name in drop:
                self.specs.pop(name)
                self.summary["models"][name].update(status="not trained", error="GPU memory: fewer models fit")
                self.not_done(f"{name}: not trained (memory of {k} models in mode {r['mode']} exceeds the GPU's; {keep} fit)")
            fitting, why = [r], f"no mode fits {k} models; the smallest ({r['mode']}) with {keep} models"
        best = max(fitting, key=lambda r: (r["images_in_budget_est"], r["img_per_s"]))
        self.mode = best["mode"]
        self.summary["calibration"].update(chosen=self.mode, why=why, memory_budget_mib=round(mem / 2**20) if mem else None)
        self.log(f"calibration: chose {self.mode} ({why})")

    # -- 3. lockstep rate and N --------------------------------------------------------------------------------
    def warm(self, spec: Spec, modes: list[str], snapshots: dict[str, Any]) -> None:
        """Build ``spec`` in the first of ``modes`` that warms up (2 steps: compilation / capture), keeping its
        step-0 state in ``snapshots``; none: the model is failed, named with its error."""
        for mode in modes:
            try:
                spec.trainer, spec.loss, spec.cfg = self.build_trainer(spec, mode, 10**9)
                snapshots[spec.name] = copy.deepcopy(spec.trainer.state_dict())
                t = time.perf_counter()
                it = spec.trainer.run()
                try:
                    for _ in range(2):
                        next(it)
                finally:
                    it.close()
                self.sync()
                if mode != self.mode:
                    self.not_done(f"{spec.name}: trained in mode {mode} (mode {self.mode} failed for it: {spec.error})")
                spec.setup_s, spec.mode, spec.error = round(time.perf_counter() - t, 2), mode, None
                return
            except Deadline:
                raise
            except Exception as exc:  # noqa: BLE001
                spec.error, spec.trainer = err_text(exc), None
                self.log(f"{spec.name}: warm-up in mode {mode} FAILED: {spec.error}")
                self.free()
        spec.status = "failed"
        self.summary["models"][spec.name].update(status="failed", error=spec.error, step=0)

    def lockstep(self, live: dict[str, Spec]) -> tuple[float, int, dict[str, BaseException]]:
        """(steps/s of every model, rounds timed, failures) of ``live`` stepped in lockstep (MultiTrainer, one CUDA
        stream each) for --lockstep-seconds after one settling round."""
        from vsmlab.diffusion.training import MultiTrainer

        mt = MultiTrainer({n: s.trainer for n, s in live.items()}, errors="collect")
        it = mt.run()
        rounds, t0, dt = 0, None, 0.0
        try:
            while True:
                for _ in range(len(live) - len(mt.failures)):
                    next(it)
                rounds += 1
                if rounds == 1:  # the first lockstep round settles the streams; the timing starts after it
                    self.sync()
                    t0 = time.perf_counter()
                elif rounds >= 3 and (rounds % 5 == 0 or self.device.type == "cpu"):
                    self.sync()
                    dt = time.perf_counter() - t0
                    if dt >= self.args.lockstep_seconds:
                        break
        except StopIteration:
            pass
        finally:
            it.close()
        self.sync()
        if mt.failures or rounds < 3 or dt <= 0:
            return 0.0, 0, dict(mt.failures) or {"all": RuntimeError("the lockstep measurement ended early")}
        return (rounds - 1) / dt, rounds - 1, {}

    def build_all(self) -> None:
        """Every model in the chosen mode, warmed up one by one (a failure: rebuilt eagerly once), its step-0 state
        kept; then the lockstep rate (a model failing there in the chosen mode: rebuilt eagerly, measured again);
        then every model back at step 0."""
        torch = self.torch
        if self.device.type == "cuda":
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)
        snapshots: dict[str, Any] = {}
        for spec in self.specs.values():
            self.warm(spec, list(dict.fromkeys([self.mode, "eager"])), snapshots)
        for attempt in range(2):
            live = {n: s for n, s in self.specs.items() if s.trainer is not None}
            if not live:
                raise RuntimeError("no model could be built and warmed up: "
                                   + "; ".join(f"{n}: {s.error}" for n, s in self.specs.items()))
            if attempt == 0:
                self.log("warm-up: " + ", ".join(f"{n} {s.setup_s:.1f} s ({s.mode})" for n, s in live.items()))
            rate, rounds, failures = self.lockstep(live)
            if not failures:
                break
            self.log("lockstep measurement: " + "; ".join(f"{n} FAILED: {err_text(e)}" for n, e in failures.items()))
            for name in (live if "all" in failures else failures):
                spec = self.specs[name]
                spec.error, spec.trainer = err_text(failures.get(name, failures.get("all"))), None
                self.free()
                if attempt == 0 and spec.mode != "eager":
                    self.warm(spec, ["eager"], snapshots)
                else:
                    spec.status = "failed"
                    self.summary["models"][name].update(status="failed", error=spec.error, step=0)
        else:
            raise RuntimeError("the lockstep measurement failed twice: " + "; ".join(f"{n}: {err_text(e)}" for n, e in failures.items()))
        self.rounds_per_s = rate
        for name, spec in self.specs.items():  # back to step 0 (the real run is one that was built with N steps)
            if spec.trainer is not None:
                spec.trainer.load_state_dict(snapshots[name])
        del snapshots
        self.free()
        batch = next(iter(self.specs.values())).cfg["train"]["batch_size"]
        k = sum(s.trainer is not None for s in self.specs.values())
        img_s = self.rounds_per_s * k * batch
        self.summary["lockstep"] = {"models": k, "mode": self.mode, "steps_per_s": round(self.rounds_per_s, 3),
                                    "img_per_s_all": round(img_s, 1), "img_per_s_per_model": round(img_s / k, 1),
                                    "mfu": round(img_s * self.flops_img / self.peak_flops, 4), "rounds_timed": rounds,
                                    "modes": {n: s.mode for n, s in self.specs.items() if s.trainer is not None},
                                    "setup_s": {n: s.setup_s for n, s in self.specs.items() if s.setup_s is not None}}
        self.log(f"lockstep: {k} models, {self.rounds_per_s:.2f} steps/s each, {img_s:.0f} img/s in all, MFU "
                 f"{100 * self.summary['lockstep']['mfu']:.1f}%")

    def plan_steps(self) -> None:
        a = self.args
        regraph = 0.0
        if MODES[self.mode]["cuda_graph"]:  # the graphs are captured again after the reset to step 0
            regraph = sum(min(s.setup_s or 1.0, 2.0) for s in self.specs.values() if s.trainer is not None and s.mode == self.mode)
        budget = self.train_budget(regraph)
        n = a.steps or max(1, int(self.rounds_per_s * budget * a.rate_safety))
        self.N = n
        warm = next(s.cfg for s in self.specs.values())["train"]["warmup"]
        if n <= warm:
            self.not_done(f"the lr warm-up ({warm} steps) is longer than the {n} steps the budget allows")
        fr = sorted({int(f * n) // a.log_every * a.log_every for f in a.sweep_fracs} - {0, n}) if a.log_every and self.sweeps else []
        self.sweep_steps = [s for s in fr if 0 < s < n]
        self.summary.update(steps_planned=n, train_budget_s=round(budget, 1), sweep_steps=self.sweep_steps,
                            steps_from="--steps" if a.steps else "measured lockstep rate x budget")
        for spec in self.specs.values():
            spec.cfg["train"]["steps"] = n
            if spec.trainer is not None:
                spec.trainer.steps = n
                if isinstance(spec.loss, FailingLoss):
                    spec.loss.armed = True
        self.log(f"plan: N = {n} steps per model ({self.summary['steps_from']}; budget {budget:.0f} s, cosine lr decay "
                 f"to 0 at N); sweep snapshots at {self.sweep_steps}")

    # -- 4. training -----------------------------------------------------------------------------------------
    def train(self) -> None:
        from vsmlab.diffusion.config import format_config
        from vsmlab.diffusion.training import MultiTrainer

        torch = self.torch
        a = self.args
        cuda = self.device.type == "cuda"
        live = {n: s for n, s in self.specs.items() if s.trainer is not None}
        for n, s in live.items():
            d = self.run_dir / "models" / n
            d.mkdir(parents=True, exist_ok=True)
            atomic_write(d / "config.toml", format_config(s.cfg, comments=False).encode())
            s.log_file = open(d / "log.jsonl", "w", encoding="utf-8")
        k0 = self.summary["seeds"][0]
        sweep_models = {n for n, s in live.items() if s.seed == k0}
        hard_stop = self.deadline_at - a.pack_seconds - a.write_seconds - self.primary_need()
        self.log(f"training {len(live)} models x {self.N} steps; hard stop in {hard_stop - time.time():.0f} s")
        mt = MultiTrainer({n: s.trainer for n, s in live.items()}, errors="collect")
        it = mt.run()
        steps = {n: 0 for n in live}
        t0 = time.perf_counter()
        last_print = t0
        stopped = None
        try:
            for name, rec in it:
                steps[name] = rec.step
                spec = live[name]
                if isinstance(rec.terms["total"], float):
                    spec.log_file.write(json.dumps({"step": rec.step, "lr": rec.lr, **rec.terms, "grad_norm": rec.grad_norm,
                                                    "seconds": round(time.perf_counter() - t0, 2)}) + "\n")
                if rec.step in self.sweep_steps and name in sweep_models:
                    spec.snapshots[rec.step] = {k: v.detach().to(torch.float16).float().cpu()
                                                for k, v in spec.trainer.ema.state_dict().items()}
                if time.time() > hard_stop:
                    going = [steps[n] for n in live if n not in mt.failures and steps[n] < self.N]
                    if len(set(going)) <= 1:
                        stopped = f"the hard stop (deadline - reserves) came at step {max(going, default=0)}"
                        break
                now = time.perf_counter()
                if now - last_print > a.progress_every:
                    last_print = now
                    self.log("steps: " + " ".join(f"{n}={s}" for n, s in steps.items()))
        except Deadline as exc:
            stopped = f"the hard deadline ({exc}) interrupted training"
        finally:
            it.close()
            self.sync()
            wall = time.perf_counter() - t0
            for s in live.values():
                s.log_file.close()
        self.summary["train_wall_s"] = round(wall, 2)
        if cuda:
            self.summary["peak_memory_mib_training"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        batch = next(iter(live.values())).cfg["train"]["batch_size"]
        done_imgs = 0
        for name, spec in live.items():
            tr = spec.trainer
            m = self.summary["models"][name]
            step = tr.step
            done_imgs += step * batch
            if name in mt.failures:
                spec.status, spec.error = "failed", err_text(mt.failures[name])
                self.log(f"{name}: FAILED at step {step + 1}: {spec.error}")
            elif step >= self.N:
                spec.status = "complete"
            else:
                spec.status = "stopped"
            m.update(status=spec.status, step=step, steps_planned=self.N, mode=spec.mode, error=spec.error,
                     img_per_s=round(step * batch / wall, 1) if wall > 0 else None,
                     config=f"models/{name}/config.toml")
            # the weights as shipped: float16 EMA of the step reached (a failed model's too: its last complete step)
            payload = {"config": spec.cfg, "model_kind": "unet", "model_config": tr.model.config, "step": step,
                       "ema": tr.ema.state_dict()}
            try:
                path = self.run_dir / "weights" / f"{name}.safetensors"
                atomic_write(path, self.write_weights(payload))
                m.update(weights=f"weights/{name}.safetensors", weights_bytes=path.stat().st_size)
            except Exception as exc:  # noqa: BLE001
                m["weights_error"] = err_text(exc)
                self.log(f"{name}: weights not written: {m['weights_error']}")
            spec.ema16 = {k: v.detach().to(torch.float16).float().cpu() for k, v in tr.ema.state_dict().items()}
            if spec.seed == k0 and spec.status != "failed" and self.sweeps and "raw" in BENCHES[a.bench]["sweeps"]:
                spec.raw = {k: v.detach().float().cpu() for k, v in tr.model.state_dict().items()}
            spec.model_config = dict(tr.model.config)
        reached = [s.trainer.step for s in live.values() if s.status != "failed"]
        self.summary["common_step"] = min(reached, default=0)  # the step every model that did not fail reached
        self.summary["steps_saved"] = {n: s.trainer.step for n, s in live.items()}
        self.summary["img_per_s_all"] = round(done_imgs / wall, 1) if wall > 0 else None
        self.summary["mfu_training"] = round(done_imgs / wall * self.flops_img / self.peak_flops, 4) if wall > 0 else None
        if stopped:
            self.summary["training_stopped"] = stopped
            self.not_done(f"training: {stopped}; models at steps " + ", ".join(f"{n}={s.trainer.step}" for n, s in live.items()))
        self.log(f"training: {wall:.1f} s, steps " + ", ".join(f"{n}={s.trainer.step} ({s.status})" for n, s in live.items())
                 + f"; {self.summary['img_per_s_all']} img/s in all, MFU {100 * (self.summary['mfu_training'] or 0):.1f}%")
        for spec in live.values():
            spec.trainer = None
        del mt, it
        self.free()

    # -- 5. sampling -----------------------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        """Sample sets in priority order (names: vsmlab.lab.full_runs.sample_name, as the sample store reads them)."""
        from vsmlab.lab.full_runs import sample_name

        a = self.args
        bench = BENCHES[a.bench]
        st = min(a.sample_steps, self.schedule.num_steps)
        ok = {n: s for n, s in self.specs.items() if s.ema16 is not None and s.status != "failed"}
        seeds, methods = self.summary["seeds"], self.summary["methods"]
        out = []

        def add(spec, kind, n, weights="ema", variance=None, sampler="ddpm", steps=st, clip=True, ckpt=None, record=0,
                frac=None):
            var = variance or ("auto" if sampler == "ddim" else VAR_OF[spec.method])
            name = sample_name(spec.method, spec.seed, sampler, steps, var, weights, ckpt, clip, frac)
            out.append(dict(name=name, model=spec.name, kind=kind, n=n, weights=weights, variance=var, sampler=sampler,
                            steps=steps, clip=clip, ckpt=ckpt, record=record, frac=frac))

        for k in seeds:
            for m in methods:
                spec = ok.get(f"{m}-seed{k}")
                if spec is not None:
                    for var in bench["primary_vars"][m]:
                        add(spec, "primary", a.n, variance=var, record=min(RECORD_LAST, st) if bench["record"] else 0)
        if a.ceiling:  # every learned-variance model with Sigma forced to either end of its range, same noise
            for k in seeds:
                for m in methods:
                    spec = ok.get(f"{m}-seed{k}")
                    if spec is not None and VAR_OF[m] == "learned":
                        for f in (0, 1):
                            add(spec, "ceiling", a.n, frac=f)
        if not self.sweeps:  # a later window: its sampling time goes to the primary sets of its new seeds
            return out
        first = [ok[f"{m}-seed{seeds[0]}"] for m in methods if f"{m}-seed{seeds[0]}" in ok]
        kinds = bench["sweeps"]
        for spec in first if "noclip" in kinds else []:
            add(spec, "noclip", a.n_sweep, clip=False)
        for spec in first if "raw" in kinds else []:
            if spec.raw is not None:
                add(spec, "raw", a.n_sweep, weights="raw")
        for s_ in self.sweep_steps if "train_step" in kinds else []:
            for spec in first:
                if s_ in spec.snapshots:
                    add(spec, "train_step", a.n_sweep, ckpt=s_)
        for spec in first[:2] if "ddim" in kinds else []:
            for d in a.ddim_steps:
                if 2 <= d <= self.schedule.num_steps:
                    add(spec, "ddim", a.n_sweep, sampler="ddim", steps=d)
        return out

    def to_uint8(self, x):
        img = ((x.double() + 1) * 127.5).round().clamp(0, 255).to(self.torch.uint8).cpu()
        return (img[:, 0] if img.shape[1] == 1 else img.permute(0, 2, 3, 1)).numpy()

    def scores(self, x0, steps):
        """Detector scores of notebook 06 section 9 (on the device, from the float32 x0_hat)."""
        from vsmlab.analysis.detectors import trajectory_variance, window_variance

        out = {"x0hat_var_last10": trajectory_variance(x0, k=min(10, x0.shape[0])).cpu().numpy()}
        if sum(20 <= t <= 35 for t in steps) >= 2:
            out["x0hat_var_t20_35"] = window_variance(x0, steps, 20, 35).cpu().numpy()
            note = "t in 20..35"
        else:  # short schedules (rehearsals): the notebook's own fallback, the last 3 recorded steps
            out["x0hat_var_t20_35"] = trajectory_variance(x0, k=min(3, x0.shape[0])).cpu().numpy()
            note = "last 3 recorded steps (fewer than 2 recorded steps in t 20..35)"
        return out, note

    def model_for(self, spec: Spec, job: dict[str, Any]):
        from vsmlab.diffusion.config import model_from_config

        model = model_from_config("unet", spec.model_config)
        state = spec.raw if job["weights"] == "raw" else (spec.snapshots[job["ckpt"]] if job["ckpt"] else spec.ema16)
        model.load_state_dict(state)
        return model.to(self.device).eval()

    def sample(self) -> None:
        import numpy as np

        from vsmlab.diffusion.samplers import ddim, ddpm

        torch = self.torch
        a = self.args
        if not self.sampling_ok:
            self.not_done("sampling: the preflight's sampling failed (see preflight.sampling)")
            return
        jobs = self.jobs()
        self.summary["samples_planned"] = [j["name"] for j in jobs]
        stop_at = self.deadline_at - a.pack_seconds - a.write_seconds
        done, skipped, failed = [], [], []
        cache: tuple[Any, Any] | None = None  # (model, weights, step) -> the sampling model
        for job in jobs:
            spec = self.specs[job["model"]]
            per = self.per_n.get(job["n"], max([self.sec_per_img_step, *self.per_n.values()]))
            cost = 1.2 * job["n"] * job["steps"] * per + 0.5
            if time.time() + cost > stop_at:
                skipped.append(job["name"])
                continue
            t = time.perf_counter()
            try:
                key = (job["model"], job["weights"], job["ckpt"])
                if cache is None or cache[0] != key:
                    cache = (key, self.model_for(spec, job))
                model = cache[1]
                fn = ddpm if job["sampler"] == "ddpm" else ddim
                opts: dict[str, Any] = {"num_steps": job["steps"], "clip_x0": job["clip"]}
                if job["sampler"] == "ddpm":
                    opts["variance"] = job["variance"]
                    if job["frac"] is not None:
                        opts["variance_frac"] = float(job["frac"])
                else:
                    opts["eta"] = 0.0
                if job["record"]:
                    opts.update(record_last=job["record"], record_device=self.device)
                imgs, bseed, brow, x0s, rec_steps = [], [], [], [], None
                for b_i in range(-(-job["n"] // a.sample_batch)):
                    b = min(a.sample_batch, job["n"] - b_i * a.sample_batch)
                    key_ = a.sample_seed * SEED_STRIDE + b_i
                    g = torch.Generator(device=self.device).manual_seed(key_)
                    res = fn(model, self.schedule, shape=(b, *self.shape), generator=g, device=self.device, **opts)
                    imgs.append(self.to_uint8(res.samples))
                    bseed += [key_] * b
                    brow += list(range(b))
                    if job["record"]:
                        x0s.append(res.x0_hat)
                        rec_steps = res.recorded_steps
                arrays: dict[str, Any] = {"images": np.concatenate(imgs), "batch_seed": np.asarray(bseed, dtype=np.int64),
                                          "batch_row": np.asarray(brow, dtype=np.int64)}
                extra: dict[str, Any] = {}
                if job["record"]:
                    x0 = torch.cat(x0s, dim=1)
                    sc, note = self.scores(x0, rec_steps)
                    arrays.update(sc)
                    arrays["trajectory_steps"] = np.asarray(rec_steps, dtype=np.int64)
                    extra["x0"] = x0.to(torch.float16).cpu()
                    extra["score_note"] = note
                    del x0, x0s
                self.sync()
                secs = time.perf_counter() - t
                self.per_n[job["n"]] = secs / (job["n"] * job["steps"])
                meta = {"checkpoint": (f"weights/{spec.name}.safetensors" if job["weights"] == "ema" and not job["ckpt"] else
                                       f"in-process {job['weights']} weights of {spec.name}"
                                       + (f" at step {job['ckpt']} (EMA, float16-rounded)" if job["ckpt"] else "")),
                        "checkpoint_step": job["ckpt"] or self.summary["models"][spec.name]["step"], "config": spec.cfg,
                        "model_kind": "unet", "model_config": spec.model_config, "weights": job["weights"],
                        "weights_dtype": "float32 (raw)" if job["weights"] == "raw" else "float16, upcast to float32",
                        "device": str(self.device),
                        "sampler": {"name": job["sampler"], "steps": job["steps"],
                                    "respaced": job["steps"] < self.schedule.num_steps,
                                    **({"variance": job["variance"]} if job["sampler"] == "ddpm" else {"eta": 0.0}),
                                    **({} if job["frac"] is None else {"variance_frac": float(job["frac"])}),
                                    "clip_x0": job["clip"]},
                        "n": job["n"], "batch_size": a.sample_batch, "seed": a.sample_seed,
                        "seed_scheme": f"batch k (size {a.sample_batch}, last smaller) drawn with torch.Generator(device)."
                                       f"manual_seed({a.sample_seed} * {SEED_STRIDE} + k); sample i = row batch_row[i] of "
                                       "the batch with seed batch_seed[i]",
                        "trajectory_last": job["record"] or None, "written_by": "benchmarks/gpu_window.py",
                        "run_id": self.summary["run_id"], "seconds": round(secs, 2)}
                if job["record"]:
                    meta["detector_scores"] = {"x0hat_var_last10": "variance of x0_hat over the last 10 sampling steps",
                                               "x0hat_var_t20_35": extra["score_note"],
                                               "computed_from": "float32 x0_hat on the device"}
                self.writer_q.put((job, arrays, meta, extra))
                done.append(job["name"])
                self.log(f"sampled {job['name']} ({job['n']} x {job['steps']} steps) in {secs:.1f} s")
            except Deadline:
                raise
            except Exception as exc:  # noqa: BLE001 - that set is named; the others go on
                failed.append(job["name"])
                with self.lock:
                    self.summary["sample_sets"][job["name"]] = {"model": job["model"], "kind": job["kind"],
                                                                 "error": err_text(exc)}
                self.log(f"sample set {job['name']} FAILED: {err_text(exc)}")
                self.free()
                if self.cuda_alive():
                    self.log("the device stopped working: sampling ends")
                    break
        self.summary.update(samples_done=done, samples_failed=failed, samples_not_run=skipped)
        if skipped:
            self.not_done(f"{len(skipped)} sample sets not drawn before the deadline: {', '.join(skipped[:8])}"
                          + (", ..." if len(skipped) > 8 else ""))

    # -- validation and writing (a thread; validation in worker processes) ---------------------------------------
    def validate_inline(self, imgs) -> dict[str, int]:
        cats = verdicts(self.args.bench, imgs)
        return {c: cats.count(c) for c in sorted(set(cats))}

    def categories(self, imgs, timeout: float) -> list[str] | None:
        import functools

        if self.pool is None:
            return verdicts(self.args.bench, imgs)
        w = self.args.validate_workers
        parts = [imgs[i::w] for i in range(w)]  # strided: equal shares of hard (noisy) images
        res = self.pool.map_async(functools.partial(verdicts, self.args.bench), [p for p in parts if len(p)])
        out = res.get(timeout=max(1.0, timeout))
        cats = [None] * len(imgs)
        for i, part in enumerate(out):
            for j, c in enumerate(part):
                cats[i + j * w] = c
        return cats

    def writer(self) -> None:
        import numpy as np

        while True:
            item = self.writer_q.get()
            if item is None:
                return
            job, arrays, meta, extra = item
            entry: dict[str, Any] = {"model": job["model"], "kind": job["kind"], "n": job["n"], "file": f"samples/{job['name']}.npz"}
            try:
                t = time.perf_counter()
                # validation waits at most --validate-timeout, less when the deadline or the queue behind it is near
                room = self.deadline_at - self.args.pack_seconds - time.time() - 2.0 * self.writer_q.qsize()
                try:
                    if room < 1.0:
                        raise TimeoutError("no time left before the deadline")
                    cats = self.categories(arrays["images"], min(self.args.validate_timeout, room))
                except Exception as exc:  # noqa: BLE001 - timeout or a validator error: written unvalidated
                    cats = None
                    entry["validation_error"] = err_text(exc)
                if cats is not None:
                    arrays["categories"] = np.asarray(cats)
                    entry["categories"] = {c: cats.count(c) for c in sorted(set(cats))}
                    entry["valid_fraction"] = round(cats.count("valid") / len(cats), 4)
                if "x0" in extra:
                    x0 = extra["x0"]
                    if cats is not None:
                        rows = [i for i, c in enumerate(cats) if c == "valid"][:TRAJECTORY_ROWS[0]]
                        for c in sorted(set(cats) - {"valid"}):
                            rows += [i for i, cc in enumerate(cats) if cc == c][:TRAJECTORY_ROWS[1]]
                    else:
                        rows = list(range(min(16, x0.shape[1])))
                    rows = sorted(rows)
                    arrays["trajectory_rows"] = np.asarray(rows, dtype=np.int64)
                    # uint8 like the images (x0_hat of clipped sampling lies in [-1, 1]): for display; the scores
                    # above were computed from float32 on the device
                    arrays["trajectory_x0_hat"] = ((x0[:, rows].float().clamp(-1, 1) + 1) * 127.5).round().to(
                        self.torch.uint8).numpy()
                arrays["metadata"] = np.asarray(json.dumps(meta))
                buf = io.BytesIO()
                np.savez_compressed(buf, **arrays)
                atomic_write(self.run_dir / "samples" / f"{job['name']}.npz", buf.getvalue())
                entry["bytes"] = len(buf.getvalue())
                entry["write_s"] = round(time.perf_counter() - t, 2)
            except Exception as exc:  # noqa: BLE001
                entry["error"] = err_text(exc)
            with self.lock:
                self.summary["sample_sets"][job["name"]] = entry

    def drain(self) -> None:
        """Wait for the writer (bounded by the deadline); sets it did not write are named."""
        self.writer_q.put(None)
        if self.writer_thread is not None:
            self.writer_thread.join(timeout=max(0.5, self.deadline_at - self.args.pack_seconds / 2 - time.time()))
            if self.writer_thread.is_alive():
                self.not_done("the sample writer / validator had not finished at the deadline: its last sets are missing")

    # -- 6. packing ------------------------------------------------------------------------------------------
    def report_models(self) -> None:
        for name, m in self.summary["models"].items():
            sets = {s: e for s, e in self.summary["sample_sets"].items() if e.get("model") == name and e.get("kind") == "primary"}
            if sets:
                m["primary_valid_fraction"] = {s: e.get("valid_fraction") for s, e in sets.items()}

    def cap_primary(self) -> None:
        """Every primary set must travel: if one would not fit a chunk beside the small files (noisy 128-px RGB sets
        compress poorly), every primary set keeps the same first k samples (paired: sample i keeps its noise);
        ``primary_rows_kept`` in the summary."""
        from _transfer import cap_rows

        a = self.args
        run = self.run_dir
        sets = {n: e for n, e in self.summary["sample_sets"].items()
                if e.get("kind") == "primary" and (run / "samples" / f"{n}.npz").is_file()}
        if not sets:
            return
        small = sum(p.stat().st_size + 1024 for p in run.rglob("*") if p.is_file() and "samples" not in p.parts
                    and "weights" not in p.parts) + 262_144  # the summary grows while packing
        room = min(a.chunk_bytes - small, (MAX_CHUNKS * a.chunk_bytes - small) // len(sets) - 2048)
        k = cap_rows([run / "samples" / f"{n}.npz" for n in sets], room)
        self.summary["primary_rows_kept"] = "all" if k is None else k
        if k is not None:
            for n, e in sets.items():
                e.update(n=k, n_drawn=e.get("n"), bytes=(run / "samples" / f"{n}.npz").stat().st_size)
                if "categories" in e:  # the verdicts of the rows kept
                    import numpy as np

                    cats = [str(c) for c in np.load(run / "samples" / f"{n}.npz")["categories"]]
                    e["categories"] = {c: cats.count(c) for c in sorted(set(cats))}
                    e["valid_fraction"] = round(cats.count("valid") / len(cats), 4)
            self.not_done(f"primary sets cut to their first {k} samples (each must fit a {a.chunk_bytes / 1e6:.1f} MB "
                          "chunk of the transfer)")

    def finish(self) -> int:
        a = self.args
        if self.pool is not None:
            self.pool.terminate()
        run = self.run_dir
        self.report_models()
        self.summary["stages"]["total"] = round(time.time() - T_START, 2)
        self.log(f"writing the summary and packing (at {time.time() - T_START:.1f} s)")
        if self.log.file is not None:  # run.log is final from here on (its SHA-256 goes into the manifest)
            self.log.file.close()
            self.log.file = None
        self.cap_primary()
        files = sorted(p for p in run.rglob("*") if p.is_file() and p.name != "summary.json" and not p.name.endswith(".tmp"))
        self.summary["files"] = {str(p.relative_to(run)): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files}
        summary_path = run / "summary.json"
        atomic_write(summary_path, (json.dumps(self.summary, indent=1, sort_keys=True, default=str) + "\n").encode())

        def rel(p: Path) -> str:
            return str(p.relative_to(run))

        prim = [run / "samples" / f"{n}.npz" for n, e in self.summary["sample_sets"].items() if e.get("kind") == "primary"]
        order = {n: i for i, n in enumerate(self.summary.get("samples_planned", []))}
        prim.sort(key=lambda p: order.get(p.stem, 1 << 30))
        sweeps = sorted((run / "samples").glob("*.npz"), key=lambda p: order.get(p.stem, 1 << 30))
        statuses = {n: m.get("status") for n, m in self.summary["models"].items()}
        weights = sorted((run / "weights").glob("*.safetensors"), key=lambda p: statuses.get(p.stem) == "failed")
        items = [("summary.json", summary_path), ("run.log", run / "run.log")]
        items += [(rel(p), p) for p in sorted(run.glob("*.npy"))]  # chess tiles
        items += [(rel(p), p) for p in sorted((run / "models").rglob("*")) if p.is_file()]
        items += [(rel(p), p) for p in prim] + [(rel(p), p) for p in weights]
        items += [(rel(p), p) for p in sweeps if p not in prim]
        items = [it for it in items if it[1].is_file()]
        t = time.time()
        names, left = pack(items, self.out, chunk=a.chunk_bytes, max_chunks=MAX_CHUNKS)
        self.summary.update(packed=names, left_out=left)
        self.summary["stages"]["pack"] = round(time.time() - t, 2)
        self.summary["stages"]["total"] = round(time.time() - T_START, 2)
        if left:
            self.summary["not_done"].append(f"left out of the transfer (over {MAX_CHUNKS} chunks): {', '.join(left)}")
        final = json.dumps(self.summary, indent=1, sort_keys=True, default=str) + "\n"
        atomic_write(self.out / SUMMARY_NAME, final.encode())
        outs = sorted(self.out.iterdir())
        self.log(f"packed {len(items)} files ({sum(p.stat().st_size for _, p in items) / 1e6:.1f} MB) into {names}; under "
                 f"--out: {len(outs)} files, largest {max(p.stat().st_size for p in outs) / 1e6:.2f} MB; left out "
                 f"{left or 'nothing'}; total {time.time() - T_START:.1f} s")
        bad = [p.name for p in outs if p.stat().st_size > MAX_FILE_BYTES] + (["more than 8 files"] if len(outs) > 8 else [])
        return 4 if bad else 0


def run(args: argparse.Namespace) -> int:
    """The window (module docstring). Exit 0 when every stage ran (a failed model or a skipped set is named in the
    summary, not an exit code), 3 when a stage failed or the deadline cut the run short (what is complete is
    packed either way), 4 when the files under --out break the transfer limits."""
    w = Window(args)
    signal.signal(signal.SIGTERM, _raise_deadline)
    signal.signal(signal.SIGALRM, _raise_deadline)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, args.deadline - args.pack_seconds - (time.time() - T_START)))
    code = 0
    try:
        w.stage("setup")
        w.setup()
        w.stage("preflight")
        w.matmul_rate()
        w.flops()
        w.preflight()
        w.stage("calibration")
        w.calibrate()
        w.stage("lockstep")
        w.build_all()
        w.plan_steps()
        w.stage("train")
        w.train()
        w.stage("sample")
        w.sample()
        w.stage("write")
        w.drain()
    except Deadline as exc:
        code = 3
        w.summary["aborted"] = f"hard deadline: {exc} during {getattr(w, 'stage_name', '?')}"
        w.log(f"ABORTED by the hard deadline during {getattr(w, 'stage_name', '?')}")
        w.not_done(f"everything after the stage '{getattr(w, 'stage_name', '?')}' (hard deadline)")
    except BaseException as exc:  # noqa: BLE001 - whatever broke, what is complete is packed
        code = 3
        w.summary["aborted"] = f"{err_text(exc)} during {getattr(w, 'stage_name', '?')}"
        w.summary["traceback"] = traceback.format_exc()[-4000:]
        w.log(f"ABORTED during {getattr(w, 'stage_name', '?')}:\n{traceback.format_exc()[-3000:]}")
        w.not_done(f"everything after the stage '{getattr(w, 'stage_name', '?')}' ({err_text(exc)})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if "train" in w.summary["stages"] or getattr(w, "stage_name", "") == "train":
        # weights of a run cut short inside training were not written by train(): write them now
        for spec in w.specs.values():
            if spec.trainer is not None and hasattr(w, "write_weights"):
                try:
                    payload = {"config": spec.cfg, "model_kind": "unet", "model_config": spec.trainer.model.config,
                               "step": spec.trainer.step, "ema": spec.trainer.ema.state_dict()}
                    atomic_write(w.run_dir / "weights" / f"{spec.name}.safetensors", w.write_weights(payload))
                    w.summary["models"][spec.name].update(status="stopped", step=spec.trainer.step, steps_planned=w.N,
                                                          weights=f"weights/{spec.name}.safetensors")
                except Exception as exc:  # noqa: BLE001
                    w.summary["models"][spec.name]["weights_error"] = err_text(exc)
    w.stage("pack")
    if not hasattr(w, "run_dir"):
        print(json.dumps(w.summary, indent=1, default=str))
        return 3
    try:
        res = w.finish()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 3
    return code or res


# ------------------------------------------------------------------------------------------------- here
def prepare(into: Path) -> int:
    """Vendor safetensors (the installed version's manylinux abi3 wheel, else a copy of the installed package) and
    python-chess (a copy: pure Python) into build/pydeps and pin the commit in build/gpu_window/pin.json; both are carried to the GPU machine."""
    import safetensors

    version = safetensors.__version__
    into.mkdir(parents=True, exist_ok=True)
    dst = into / "safetensors"
    if dst.exists():
        shutil.rmtree(dst)
    tmp = ROOT / "build" / "gpu_window" / "wheel"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", f"safetensors=={version}", "--no-deps", "--only-binary=:all:",
           "--platform", "manylinux2014_x86_64", "--python-version", "3.10", "-d", str(tmp)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wheels = sorted(tmp.glob("safetensors-*.whl"))
    if res.returncode == 0 and wheels:
        import zipfile

        with zipfile.ZipFile(wheels[0]) as zf:
            for member in zf.namelist():
                if member.startswith("safetensors/"):
                    zf.extract(member, into)
        how = f"unzipped {wheels[0].name}"
    else:  # no index: the installed package (from a manylinux wheel: the same files)
        shutil.copytree(Path(safetensors.__file__).parent, dst, ignore=shutil.ignore_patterns("__pycache__"))
        how = f"copied the installed package (pip download failed: {(res.stderr or res.stdout).strip()[-200:]})"
    shutil.rmtree(tmp, ignore_errors=True)
    import chess  # pure Python; the GPU machine's image lacks it and the chess benchmark renders its boards with it

    shutil.rmtree(into / "chess", ignore_errors=True)
    shutil.copytree(Path(chess.__file__).parent, into / "chess", ignore=shutil.ignore_patterns("__pycache__"))
    how += f"; chess {chess.__version__} copied from the installed package"
    pin = git_pin()
    if pin["source"] != "git":
        raise SystemExit(f"prepare: no git checkout here to pin ({pin['source']})")
    pin.pop("source")
    pin["written"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    atomic_write(PIN, (json.dumps(pin, indent=1) + "\n").encode())
    print(f"safetensors {version} -> {dst} ({how}); commit {pin['commit'][:12]}"
          + (f" with {len(pin['dirty'])} uncommitted changes" if pin["dirty"] else "") + f" pinned in {PIN.relative_to(ROOT)}")
    print('carry=["build/pydeps", "build/gpu_window"]')
    return 0


def _tree_size(root: Path):
    """(total bytes, limit MiB) of the tree a GPU machine would receive from ``root`` (.ci/tree_size.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tree_size", ROOT / ".ci" / "tree_size.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return sum(mod.tree_files(root).values()), mod.LIMIT_MIB


def keep_within(run: Path, summary: dict[str, Any], root: Path, limit_mib: float | None = None) -> list[str]:
    """Move the run's sample sets into ``run/local/samples/`` (git-ignored: on this machine), lowest priority first
    (sweeps, ceiling, and only then primary sets, last seed first), while the tree a GPU machine would receive from
    ``root`` is over the limit; the run's summary.json names them under ``kept_local``. A model whose primary sets
    are kept local is complete on this machine only (a 128-px RGB set of 400 samples alone is over 10 MB). Returns
    the moved set names; nothing is deleted."""
    from vsmlab.lab.full_runs import LOCAL

    total, default_mib = _tree_size(root)
    limit = (default_mib if limit_mib is None else limit_mib) * 2**20
    sets = summary.get("sample_sets", {})
    order = {n: i for i, n in enumerate(summary.get("samples_planned", []))}
    movable = sorted((n for n, e in sets.items() if (run / "samples" / f"{n}.npz").is_file()),
                     key=lambda n: (sets[n].get("kind") == "primary", -order.get(n, 1 << 30)))
    moved: list[str] = []
    while total > limit and len(moved) < len(movable):
        for name in movable[len(moved):]:
            if total <= limit:
                break
            src = run / "samples" / f"{name}.npz"
            dst = run / LOCAL / "samples" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            total -= src.stat().st_size
            os.replace(src, dst)
            moved.append(name)
        summary["kept_local"] = {"sets": moved, "why": f"the tree a GPU machine receives stays within {limit / 2**20:g} MiB"}
        atomic_write(run / "summary.json", (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
        total = _tree_size(root)[0]  # measured again: the summary grew by the names
    return moved


def unpack(folder: Path, into: str, force: bool = False, root: Path = ROOT, limit_mib: float | None = None) -> int:
    """Put a window's files into ``<into>/<benchmark>/<run-id>/`` (default runs/full), checking every file against
    the summary's SHA-256 manifest. When the run lands inside the repository ``root``, keep the tree a GPU machine
    would receive within the limit (:func:`keep_within`) and print its size."""
    summary_path = folder / SUMMARY_NAME
    chunks = sorted(folder.glob("chunk_*.tar"), key=lambda p: int(p.stem.split("_")[1]))
    if not chunks:
        raise SystemExit(f"unpack: no chunk_*.tar in {str(folder)!r}")
    summary = None
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
    else:  # the final summary did not come back: the copy inside chunk 0
        with tarfile.open(chunks[0]) as tar:
            try:
                member = tar.extractfile("summary.json")
                summary = json.loads(member.read()) if member else None
            except (KeyError, ValueError):
                summary = None
    if not summary or summary.get("format") != FORMAT:
        raise SystemExit(f"unpack: {str(folder)!r} holds no GPU-window summary ({SUMMARY_NAME})")
    base = Path(into) if Path(into).is_absolute() else root / into
    dst = base / summary["benchmark"] / summary["run_id"]
    if dst.exists() and not force:
        raise SystemExit(f"unpack: {str(dst)!r} exists (this run was unpacked before); --force replaces it")
    tmp = dst.with_name(f".{dst.name}.unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for c in chunks:
        with tarfile.open(c) as tar:
            tar.extractall(tmp, filter="data")
    atomic_write(tmp / "summary.json", (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    bad, missing = [], []
    for rel, info in summary.get("files", {}).items():
        p = tmp / rel
        if not p.is_file():
            missing.append(rel)
        elif sha256(p) != info["sha256"]:
            bad.append(rel)
    if bad:
        shutil.rmtree(tmp)
        raise SystemExit(f"unpack: {len(bad)} files differ from the summary's SHA-256 (a broken transfer?): {bad[:5]}")
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    n = sum(1 for p in dst.rglob("*") if p.is_file())
    print(f"unpacked {len(chunks)} chunks into {dst}: {n} files"
          + (f"; not brought back (left out of the transfer): {missing}" if missing else ""))
    models = summary.get("models", {})
    print("models: " + ", ".join(f"{k} {m.get('status')} at step {m.get('step')}/{m.get('steps_planned')}" for k, m in models.items()))
    if not dst.resolve().is_relative_to(root.resolve()):
        return 0
    from vsmlab.lab.full_runs import LOCAL

    try:
        moved = keep_within(dst, summary, root, limit_mib)
        total, limit = _tree_size(root)
    except (OSError, subprocess.CalledProcessError) as exc:  # no git here: nothing to measure
        print(f"(tree size not measured: {err_text(exc)})")
        return 0
    limit = limit if limit_mib is None else limit_mib
    if moved:
        kinds = summary.get("sample_sets", {})
        prim = [n for n in moved if kinds.get(n, {}).get("kind") == "primary"]
        print(f"{len(moved)} sample sets kept on this machine only ({dst / LOCAL}, git-ignored) so that the tree stays "
              f"within {limit:g} MiB: {', '.join(moved[:6])}{', ...' if len(moved) > 6 else ''}"
              + (f"; {len(prim)} of them primary: their models are complete on this machine only" if prim else ""))
    print(f"working tree a GPU machine would receive now: {total / 2**20:.1f} MiB (limit {limit:g} MiB)"
          + ("  OVER THE LIMIT even without the sample sets: make room before committing" if total > limit * 2**20 else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="calibrate, train, sample, validate and pack (on the GPU machine)")
    r.add_argument("--out", default=os.environ.get("OUT", "gpu_window_out"), help="where the <= 8 returned files go")
    r.add_argument("--work", default="/tmp/gpu_window", help="scratch folder (the run folder is built in WORK/run)")
    r.add_argument("--device", default="cuda")
    r.add_argument("--bench", default="shapes", choices=list(BENCHES),
                   help="configs/<bench>-<method>-gpu.toml: shapes (notebook 06), cards or chess (notebook 07)")
    r.add_argument("--methods", nargs="+", default=["fixed", "rho0", "vsm"], choices=list(METHODS))
    r.add_argument("--seeds", nargs="+", default=["auto"],
                   help="training seeds, or 'auto' (default): the --n-seeds smallest seeds no run under --runs-root used")
    r.add_argument("--n-seeds", type=int, default=2)
    r.add_argument("--runs-root", default=None, help="runs/full of the repository (default), for --seeds auto")
    r.add_argument("--run-id", default=None, help="default: <UTC start>-<device>-<commit>")
    r.add_argument("--deadline", type=float, default=540, help="seconds from the script's start to its last file")
    r.add_argument("--train-seconds", type=float, default=330, help="training budget (cut to what the deadline leaves)")
    r.add_argument("--calib-seconds", type=float, default=75, help="calibration budget (modes that would exceed it are skipped)")
    r.add_argument("--mode-seconds", type=float, default=None, help="timed seconds per mode (default 4 on CUDA, 0.5 on CPU)")
    r.add_argument("--calib-chunk", type=int, default=None, help="steps per timed chunk (default 10 on CUDA, 2 on CPU)")
    r.add_argument("--lockstep-seconds", type=float, default=None, help="timed lockstep seconds (default 4 CUDA, 0.5 CPU)")
    r.add_argument("--modes", nargs="+", default=None, help=f"calibrated modes (default on CUDA: {' '.join(CUDA_MODES)}; "
                   f"CPU: eager); known: {' '.join(MODES)}")
    r.add_argument("--memory-fraction", type=float, default=0.85, help="share of the free GPU memory K models may take")
    r.add_argument("--rate-safety", type=float, default=0.95, help="N = measured steps/s x budget x this")
    r.add_argument("--steps", type=int, default=None, help="force N (rehearsals; default: from the measured rate)")
    r.add_argument("--log-every", type=int, default=50, help="loss read / log line every this many steps")
    r.add_argument("--pack-seconds", type=float, default=25, help="kept at the end for weights, summary and packing")
    r.add_argument("--write-seconds", type=float, default=10, help="kept after sampling for the last validation / npz")
    r.add_argument("--sweep-seconds", type=float, default=40, help="kept from training for the sweep sample sets")
    r.add_argument("--n", type=int, default=None, help="samples per primary set (default: shapes 600, cards and chess 400)")
    r.add_argument("--n-sweep", type=int, default=None, help="samples per sweep set (default: shapes 200, cards and chess 100)")
    r.add_argument("--sample-batch", type=int, default=600)
    r.add_argument("--sample-steps", type=int, default=250, help="DDPM respaced steps (primary and sweeps)")
    r.add_argument("--sample-seed", type=int, default=1000, help="sampling seed S (notebook 06: 1000)")
    r.add_argument("--ddim-steps", nargs="*", type=int, default=[10, 25, 50, 100, 250])
    r.add_argument("--sweep-fracs", nargs="*", type=float, default=None,
                   help="training-step sweep (x N; default: shapes 0.25 0.5 0.75, cards and chess 0.5)")
    r.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=None,
                   help="after the primary sets: each learned-variance model with Sigma forced to beta_tilde (f = 0) and "
                        "beta (f = 1), --n samples with the primary sets' noise (notebook 06's ceiling; default: on for "
                        "shapes, off for cards and chess)")
    r.add_argument("--sweeps", choices=["auto", "yes", "no"], default="auto",
                   help="draw the first seed's sweep sets: auto (default) = only in the first window of the benchmark "
                        "(no run under --runs-root yet); later windows give their sampling time to the primary sets")
    r.add_argument("--validate-workers", type=int, default=None, help="validator processes (default 8 on CUDA, 0 = inline)")
    r.add_argument("--validate-timeout", type=float, default=30.0,
                   help="seconds a set's validation may take (noisy samples validate slowly); then it is written unvalidated")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    r.add_argument("--matmul-n", type=int, default=None, help="matmul size of the peak rate (default 8192 CUDA, 256 CPU)")
    r.add_argument("--progress-every", type=float, default=30.0)
    r.add_argument("--chunk-bytes", type=int, default=CHUNK)
    r.add_argument("--set", action="append", default=[], help="config override for every model (rehearsals)")
    r.add_argument("--fail", default=None, metavar="NAME[:K]", help="make model NAME fail at its K-th training step "
                   "(rehearsal of failure isolation)")
    p = sub.add_parser("prepare", help="vendor safetensors into build/pydeps and pin the commit (here, before the window)")
    p.add_argument("--into", default=str(PYDEPS))
    u = sub.add_parser("unpack", help="put the returned files into runs/full/<benchmark>/<run-id>/ (here)")
    u.add_argument("folder")
    u.add_argument("--into", default="runs/full")
    u.add_argument("--force", action="store_true", help="replace a run folder unpacked before")
    u.add_argument("--tree-limit-mib", type=float, default=None,
                   help="keep the tree a GPU machine receives within this (default: .ci/tree_size.py's limit) by moving "
                        "the run's non-primary sets (sweeps, then ceiling), lowest priority first, to its git-ignored local/ folder")
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        return prepare(Path(args.into).resolve())
    if args.cmd == "unpack":
        return unpack(Path(args.folder), args.into, args.force, limit_mib=args.tree_limit_mib)
    cuda = args.device.startswith("cuda")
    for key in ("n", "n_sweep", "sweep_fracs", "ceiling"):  # the benchmark's defaults
        if getattr(args, key) is None:
            setattr(args, key, BENCHES[args.bench][key])
    if args.mode_seconds is None:
        args.mode_seconds = 4.0 if cuda else 0.5
    if args.calib_chunk is None:
        args.calib_chunk = 10 if cuda else 2
    if args.lockstep_seconds is None:
        args.lockstep_seconds = 4.0 if cuda else 0.5
    if args.validate_workers is None:
        args.validate_workers = min(8, max(1, (os.cpu_count() or 2) // 2)) if cuda else 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
