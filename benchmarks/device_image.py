"""Run a command here as if on the GPU machine's Python image: every package installed here that the image lacks
(papermill, Jupyter, ipywidgets, python-chess, diffusers, ...) fails to import, unless the import resolves to a copy
inside this repository (the vendored ``build/pydeps`` that travels with the working tree).

    python benchmarks/device_image.py [--list] -- python3 benchmarks/gpu_window.py run --device cpu ...

The image's packages are the list the device notes give for the ``cuda`` image (read on 2026-11-17:
``IMAGE_PACKAGES``); its Python is 3.12 and its torch 2.11 (here: whatever this machine has; only the imports are
emulated, not the versions). The guard is a ``sitecustomize`` module put first on ``PYTHONPATH`` of the command and
of every Python process it starts (the window's validator workers, the CLI subprocesses of gpu_check). An import it
refuses raises ``ModuleNotFoundError: <name> (... not on the GPU machine's image)``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYDEPS = ROOT / "build" / "pydeps"  # vendored packages carried to the GPU machine (prepare / vendor)

#: distributions of the GPU machine's "cuda" image (device notes, KINDS.md, read 2026-11-17)
IMAGE_PACKAGES = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split()

_GUARD = '''"""Written by benchmarks/device_image.py: imports of packages the GPU machine's image lacks fail."""
import importlib.machinery, sys
_BLOCKED = frozenset({blocked!r})
_ALLOWED_UNDER = {allowed!r}


class _DeviceImage:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in _BLOCKED or name != top:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, _ALLOWED_UNDER)
        if spec is not None:
            return spec  # a copy that travels with the repository (build/pydeps)
        raise ModuleNotFoundError(f"No module named {{name!r}} (installed here, not on the GPU machine's image)", name=name)


sys.meta_path.insert(0, _DeviceImage())
'''


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def blocked_modules() -> list[str]:
    """Top-level import names installed here whose distributions are all missing from the image (vsmlab excepted:
    it travels as the repository's source)."""
    image = {_norm(p) for p in IMAGE_PACKAGES} | {"vsmlab"}
    out = []
    for module, dists in md.packages_distributions().items():
        if module.startswith("_") and module != "_yaml" or not module.isidentifier():
            continue
        if all(_norm(d) not in image for d in dists):
            out.append(module)
    return sorted(out)


def guard_dir(where: str | os.PathLike, allowed: str | os.PathLike = PYDEPS) -> Path:
    """Write the ``sitecustomize.py`` guard into ``where`` (made if missing; atomically) and return that folder; a
    refused package still imports from ``allowed`` (the vendored copies that travel: ``build/pydeps``). A
    ``sitecustomize.py`` there that this module did not write is never replaced (FileExistsError)."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    path = where / "sitecustomize.py"
    marker = _GUARD.splitlines()[0]
    if path.exists() and path.read_text(encoding="utf-8", errors="replace").splitlines()[:1] != [marker]:
        raise FileExistsError(f"where: {str(where)!r} holds a sitecustomize.py this script did not write; "
                              "expected an empty folder or one it made")
    text = _GUARD.format(blocked=sorted(blocked_modules()), allowed=[str(Path(allowed).resolve())])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return where


def env_for(where: str | os.PathLike, env: dict[str, str] | None = None,
            allowed: str | os.PathLike = PYDEPS) -> dict[str, str]:
    """``env`` (default os.environ) with the guard folder first on PYTHONPATH and the repository after it."""
    env = dict(os.environ if env is None else env)
    parts = [str(guard_dir(where, allowed)), str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the import names the guard refuses and exit")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    if args.list:
        print(" ".join(blocked_modules()))
        return 0
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        parser.error("command: expected a command after --, e.g. -- python3 benchmarks/gpu_window.py run --device cpu")
    with tempfile.TemporaryDirectory(prefix="device_image_") as tmp:
        return subprocess.call(cmd, cwd=ROOT, env=env_for(tmp))


if __name__ == "__main__":
    sys.exit(main())
