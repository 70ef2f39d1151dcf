"""TOML training configs: the schema (every key validated, unknown keys refused by name), base files,
``--set`` overrides, printing, and building the data, model, schedule, loss and trainer options from a config.

:data:`SCHEMA` is the reference: six sections ([data], [model], [diffusion], [loss], [train], [sample]) and
for each key its default, its check and its meaning; ``vsmlab train CONFIG --print-config`` prints every key
of a config with its value, default and meaning. A key absent from the file takes its default. A key whose
``Key.when`` names a kind (e.g. model.width: only with model.kind = "mlp"; loss.rho: only with loss.name =
"vsm") is refused for another kind, and data.size's default and choices follow data.kind.

What no single key says (:func:`validate_config`): loss "hybrid" and "vsm" need model.learn_variance = true
and "eps_mse" refuses it; a UNet trains images (shapes, cards, chess), an MLP a mixture; every attention
resolution must be one the UNet reaches at data.size; weight_decay needs adamw; sample.steps is 0 or
2..diffusion.T. train.seed seeds the model's initialisation and every training draw, data.seed only the data
set; train.batch_size is the global batch, split over torchrun ranks (what the [train] keys do in a run:
:class:`vsmlab.diffusion.training.Trainer`).

**Base files** (:func:`load_config`): a file may name a base before its first section, ``base = "PATH"``
(relative to the file). The base is loaded first (it may have a base of its own; a cycle is refused), then the
file's keys replace the base's, key by key within each section; ``--set`` overrides apply last. Each file's
sections and keys are checked by name in that file's name, a missing base is named, and ``base`` is not part
of the resolved config. ``configs/base/`` holds one base per benchmark and size, a method's file the keys that
make the method.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vsmlab.core.checks import check_bool, check_choice, check_int, check_ints, check_number, check_range

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SCHEMA", "ConfigError", "load_config", "validate_config", "apply_overrides", "parse_override",
           "format_config", "default_config", "build_data", "build_model", "model_from_config", "build_schedule",
           "build_loss", "trainer_options"]


class ConfigError(ValueError):
    """An invalid config: the message names the key (section.key), the bad value and what is allowed."""


# ------------------------------------------------------------------------------------------ validators
# Each validator runs the shared check of vsmlab.core.checks and, on failure, raises ValueError(description):
# the ConfigError message names the key and the value itself.
def _described(desc: str, check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def validate(v: Any) -> Any:
        try:
            return check(v)
        except ValueError:
            raise ValueError(desc) from None
    validate.__doc__ = desc
    return validate


def _int(low: int | None = None, high: int | None = None) -> Callable[[Any], Any]:
    desc = f"an int in {low}..{high}" if low is not None and high is not None else \
        f"an int{f' >= {low}' if low is not None else ''}"
    return _described(desc, lambda v: check_int("value", v, low, high))


_SEED_MAX = 2**63 - 1  # seeds are stored as int64 (npz, checkpoints) and fit every generator vsmlab uses


def _float(low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False,
           zero_ok: bool = False) -> Callable[[Any], Any]:
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    desc = f"a number in {lo}{low:g}, {high:g}{hi}" + (" or 0 (off)" if zero_ok else "")

    def check(v: Any) -> float:
        if zero_ok and check_number("value", v) == 0:
            return 0.0
        return check_range("value", v, low, high, low_open, high_open)
    return _described(desc, check)


_bool = _described("true or false", lambda v: check_bool("value", v))


def _choice(*options: Any) -> Callable[[Any], Any]:
    return _described(f"one of {list(options)}", lambda v: check_choice("value", v, options))


def _int_list(low: int = 0, nonempty: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> list[int]:
        if not isinstance(v, list):
            raise ValueError("not a list")
        return check_ints("value", v, low, nonempty=nonempty)
    return _described(f"a {'non-empty ' if nonempty else ''}list of ints >= {low}", check)


@dataclass(frozen=True)
class Key:
    """One config key: default, validator, description; ``when`` = (key of the kind, allowed kinds) or None."""

    default: Any
    check: Callable[[Any], Any]
    doc: str
    when: tuple[str, tuple[str, ...]] | None = None
    by_kind: dict[str, tuple[Any, Callable[[Any], Any]]] | None = None  # kind -> (default, check) in place of these


_UNET, _MLP = ("kind", ("unet",)), ("kind", ("mlp",))
IMAGE_KINDS = ("shapes", "cards", "chess")  # data kinds of uint8 images (trained with a UNet)
_VAR = ("name", ("hybrid", "vsm"))

SCHEMA: dict[str, dict[str, Key]] = {
    "data": {
        "kind": Key("shapes", _choice("shapes", "mixture", "cards", "chess"),
                    "training data: SimpleShapes, Cards or chess images, or a toy mixture"),
        "n": Key(5000, _int(1), "training-set size"),
        "seed": Key(0, _int(0, _SEED_MAX), "seed of the data set"),
        "size": Key(64, _choice(64, 32), "image size (shapes 64 | 32, cards 128 | 64, chess 256 | 128)",
                    ("kind", ("shapes", "cards", "chess")),
                    by_kind={"cards": (128, _choice(128, 64)), "chess": (256, _choice(256, 128))}),
        "rgb": Key(False, _bool, "RGB card faces (else grayscale)", ("kind", ("cards",))),
        "mixture": Key("1d", _choice("1d", "grid", "diamond"), "toy mixture", ("kind", ("mixture",))),
    },
    "model": {
        "kind": Key("unet", _choice("unet", "mlp"), "network"),
        "learn_variance": Key(False, _bool, "variance head v (needed by hybrid / vsm)"),
        "base_channels": Key(64, _int(1), "channels of the first level", _UNET),
        "channel_mult": Key([1, 2, 2], _int_list(1, True), "channel multiplier per level", _UNET),
        "num_res_blocks": Key(2, _int(1), "res blocks per level", _UNET),
        "attention_resolutions": Key([16], _int_list(1), "resolutions (px) with self-attention", _UNET),
        "num_heads": Key(4, _int(1), "attention heads", _UNET),
        "dropout": Key(0.0, _float(0.0, 1.0, high_open=True), "dropout in the res blocks", _UNET),
        "width": Key(128, _int(1), "hidden width", _MLP),
        "depth": Key(3, _int(0), "residual blocks", _MLP),
        "time_dim": Key(64, _int(2), "time-embedding size (even)", _MLP),
        "norm": Key(True, _bool, "LayerNorm in the blocks", _MLP),
        "activation": Key("leaky_relu", _choice("leaky_relu", "silu", "relu", "gelu"), "activation", _MLP),
        "fourier_features": Key(0, _int(0), "Fourier features of x", _MLP),
        "fourier_scale": Key(1.0, _float(0.0, low_open=True), "std of the Fourier matrix", _MLP),
        "v_activation": Key("none", _choice("none", "tanh"), "what the variance head applies to v", _MLP),
    },
    "diffusion": {
        "schedule": Key("cosine", _choice("cosine", "linear"), "noise schedule"),
        "T": Key(1000, _int(2), "diffusion steps"),
        "beta_start": Key(1e-4, _float(0.0, 1.0, True, True), "first beta", ("schedule", ("linear",))),
        "beta_end": Key(0.02, _float(0.0, 1.0, True, True), "last beta", ("schedule", ("linear",))),
    },
    "loss": {
        "name": Key("eps_mse", _choice("eps_mse", "hybrid", "vsm"), "fixed variance | learned (rho 0) | VSM"),
        "rho": Key(0.1, _float(0.0), "VSM penalty weight", ("name", ("vsm",))),
        "time_weight": Key(True, _bool, "rho / sqrt(1 - alpha_bar_t) (true) or rho", ("name", ("vsm",))),
        "vb_weight": Key(1.0, _float(0.0), "weight of the vb term", _VAR),
        "decoder": Key("auto", _choice("auto", "discretized", "gaussian"), "t = 0 term of vb", _VAR),
    },
    "train": {
        "steps": Key(1000, _int(1), "train until this global step"),
        "batch_size": Key(64, _int(1), "global batch size"),
        "lr": Key(1e-4, _float(0.0, low_open=True), "peak learning rate"),
        "optimizer": Key("adamw", _choice("adamw", "adam"), "optimizer"),
        "weight_decay": Key(0.0, _float(0.0), "decoupled weight decay (adamw)"),
        "warmup": Key(0, _int(0), "linear warm-up steps"),
        "lr_decay": Key("none", _choice("none", "cosine"), "lr decay after warm-up"),
        "clip": Key(1.0, _float(0.0), "max gradient norm (0: off)"),
        "ema": Key(0.9999, _float(0.0, 1.0, True, True, zero_ok=True), "EMA decay (0: off)"),
        "ema_warmup": Key("ramp", _choice("ramp", "none"), "EMA decay ramp"),
        "save_every": Key(1000, _int(0), "step checkpoint every this many steps (0: end only)"),
        "keep_last": Key(0, _int(0), "step checkpoints kept (0: all)"),
        "log_every": Key(10, _int(1), "read losses every this many steps"),
        "seed": Key(0, _int(0, _SEED_MAX), "seed of the init and of every training draw"),
        "timestep_sampler": Key("uniform", _choice("uniform", "loss_second_moment"), "how t is drawn"),
        "amp": Key("auto", _choice("auto", "bf16", "none"), "mixed precision"),
        "compile": Key(False, _bool, "torch.compile the model"),
        "channels_last": Key(False, _bool, "channels-last memory format"),
        "cuda_graph": Key(False, _bool, "capture the training step in a CUDA graph (CUDA only)"),
        "rng": Key("per_step", _choice("per_step", "sequential"), "randomness scheme"),
    },
    "sample": {
        "n": Key(64, _int(1), "number of samples"),
        "batch_size": Key(64, _int(1), "samples per batch"),
        "seed": Key(0, _int(0, _SEED_MAX // 1_000_003 - 1), "seed S (batch k: generator seed S * 1000003 + k)"),
        "sampler": Key("ddpm", _choice("ddpm", "ddim"), "sampler"),
        "steps": Key(0, _int(0), "respaced sampling steps (0: all T)"),
        "variance": Key("auto", _choice("auto", "beta", "beta_tilde", "learned"), "DDPM reverse variance"),
        "eta": Key(0.0, _float(0.0, 1.0), "DDIM eta"),
        "weights": Key("auto", _choice("auto", "ema", "raw"), "EMA or raw weights"),
        "trajectory_every": Key(0, _int(0), "keep x_t, x0_hat every this many steps (0: none)"),
    },
}


def _applies(section: dict[str, Key], key: str, values: dict[str, Any]) -> bool:
    when = section[key].when
    return when is None or values.get(when[0], section[when[0]].default) in when[1]


def default_config() -> dict[str, dict[str, Any]]:
    """Every section with the defaults of the keys that apply to the default kinds."""
    return validate_config({})


def _check_section_names(raw: dict[str, Any], source: str) -> None:
    """Refuse (ConfigError, by name) a section that :data:`SCHEMA` does not have."""
    unknown = [s for s in raw if s not in SCHEMA]
    if unknown:
        raise ConfigError(f"{source}: unknown section [{unknown[0]}]; allowed sections: {', '.join(SCHEMA)}")


def _check_key_names(name: str, given: Any, source: str) -> None:
    """Refuse (ConfigError, by name) a section ``name`` that is not a table, or a key it does not have."""
    if not isinstance(given, dict):
        raise ConfigError(f"{source}: [{name}] must be a table, got {given!r}")
    for key in given:
        if key not in SCHEMA[name]:
            raise ConfigError(f"{source}: unknown key {name}.{key} = {given[key]!r}; allowed keys in "
                              f"[{name}]: {', '.join(SCHEMA[name])}")


def validate_config(raw: dict[str, Any], source: str = "config") -> dict[str, dict[str, Any]]:
    """Check ``raw`` (parsed TOML) against :data:`SCHEMA`; return the full config (defaults filled in, only
    the keys that apply to the chosen kinds). Raises ConfigError naming the key, the value and what is allowed."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a table of sections, got {type(raw).__name__}")
    _check_section_names(raw, source)
    out: dict[str, dict[str, Any]] = {}
    for name, section in SCHEMA.items():
        given = raw.get(name, {})
        _check_key_names(name, given, source)
        values: dict[str, Any] = {}
        for key in [k for k, spec in section.items() if spec.when is None] + \
                   [k for k, spec in section.items() if spec.when is not None]:
            spec = section[key]
            if not _applies(section, key, values):
                if key in given:
                    kind_key, kinds = spec.when
                    raise ConfigError(f"{source}: {name}.{key} applies only when {name}.{kind_key} is one of "
                                      f"{list(kinds)}; here {name}.{kind_key} = {values[kind_key]!r}")
                continue
            default, check = spec.default, spec.check
            if spec.by_kind and spec.when and values.get(spec.when[0]) in spec.by_kind:
                default, check = spec.by_kind[values[spec.when[0]]]
            value = given.get(key, default)
            try:
                values[key] = check(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: {name}.{key} = {value!r} is invalid; expected {exc}") from None
        out[name] = {k: values[k] for k in section if k in values}
    _cross_checks(out, source)
    return out


def _cross_checks(cfg: dict[str, dict[str, Any]], source: str) -> None:
    loss, model, data = cfg["loss"]["name"], cfg["model"], cfg["data"]
    if loss in ("hybrid", "vsm") and not model["learn_variance"]:
        raise ConfigError(f"{source}: loss.name = {loss!r} learns the variance and needs model.learn_variance = true")
    if loss == "eps_mse" and model["learn_variance"]:
        raise ConfigError(f"{source}: model.learn_variance = true with loss.name = 'eps_mse' leaves the variance "
                          "head untrained; use loss.name = 'hybrid' or 'vsm', or learn_variance = false")
    if (model["kind"] == "unet") != (data["kind"] in IMAGE_KINDS):
        raise ConfigError(f"{source}: model.kind = {model['kind']!r} does not fit data.kind = {data['kind']!r}; "
                          "allowed: unet with shapes, cards or chess, mlp with mixture")
    if model["kind"] == "unet":
        reached = [data["size"] // 2 ** i for i in range(len(model["channel_mult"]))]
        bad = [r for r in model["attention_resolutions"] if r not in reached]
        if bad or data["size"] % 2 ** (len(model["channel_mult"]) - 1):
            raise ConfigError(f"{source}: model.attention_resolutions = {model['attention_resolutions']} / "
                              f"channel_mult = {model['channel_mult']} do not fit data.size = {data['size']}; "
                              f"resolutions reached: {reached}")
    if cfg["train"]["weight_decay"] and cfg["train"]["optimizer"] != "adamw":
        raise ConfigError(f"{source}: train.weight_decay = {cfg['train']['weight_decay']} needs train.optimizer = 'adamw'")
    if cfg["sample"]["steps"] and not 2 <= cfg["sample"]["steps"] <= cfg["diffusion"]["T"]:
        raise ConfigError(f"{source}: sample.steps = {cfg['sample']['steps']} is invalid; expected 0 (all) or "
                          f"2..{cfg['diffusion']['T']} (diffusion.T)")


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"train.lr=2e-4"`` -> ("train", "lr", 2e-4). The value is parsed as TOML (``true``, ``[1, 2]``,
    ``"x"``); a value that is not valid TOML is taken as a bare string (``loss.name=vsm``)."""
    if "=" not in text:
        raise ConfigError(f"--set: expected section.key=value, got {text!r}")
    dotted, value_text = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set: expected section.key=value (e.g. train.lr=2e-4), got {text!r}; "
                          f"sections: {', '.join(SCHEMA)}")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    return parts[0], parts[1], value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``section.key=value`` of ``overrides`` set (validated later, by name)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SCHEMA:
            raise ConfigError(f"--set {text}: unknown section [{section}]; allowed sections: {', '.join(SCHEMA)}")
        if key not in SCHEMA[section]:
            raise ConfigError(f"--set {text}: unknown key {section}.{key}; allowed keys in [{section}]: "
                              f"{', '.join(SCHEMA[section])}")
        out.setdefault(section, {})[key] = value
    return out


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    """The parsed TOML of one config file; ConfigError starting with ``label`` ("CONFIG", or the file that
    names it as its base) when it is a folder, missing or unreadable, or naming the file when it is not TOML."""
    if path.is_dir():
        raise ConfigError(f"{label}: {str(path)!r} is a folder; expected a TOML config file (see configs/*.toml)")
    if not path.is_file():
        raise ConfigError(f"{label}: no such file {str(path)!r}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {str(path)!r}: not valid TOML: {str(exc).splitlines()[0]}") from None
    except (OSError, MemoryError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{label}: cannot read {str(path)!r}: {reason}") from None


def _load_raw(path: Path, label: str, chain: tuple[Path, ...]) -> tuple[dict[str, Any], list[Path]]:
    """One file's sections merged over its base's (recursively): (raw sections, [path, its base, ...]).
    ``chain``: the resolved paths of the files that led here (a base among them is a cycle)."""
    raw = _read_toml(path, label)
    source = f"config {str(path)!r}"
    sections = ", ".join(f"[{name}]" for name in SCHEMA)
    loose = [k for k, v in raw.items() if not isinstance(v, dict) and k != "base"]
    if loose:
        raise ConfigError(f"{source}: key {loose[0]!r} is outside any [section]; expected keys inside the "
                          f"sections {sections} (e.g. [train] steps = 1000), and at most base = \"FILE\" before them")
    base = raw.pop("base", None)
    if not raw and base is None:
        raise ConfigError(f"{source}: empty (no [section] tables); a config states what it trains with "
                          f"some of the sections {sections}; see configs/*.toml or --print-config")
    if base is not None or len(chain) > 1:  # one of a chain of files: each file's names are checked in its name
        _check_section_names(raw, source)
        for name, given in raw.items():
            _check_key_names(name, given, source)
    if base is None:
        return raw, [path]
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{source}: base = {base!r}; expected the path of a base config file, relative to this "
                          "file (e.g. base = \"base/shapes-cpu.toml\")")
    base_path = path.parent / base
    if base_path.resolve() in chain:
        cycle = " -> ".join(repr(str(p)) for p in (*chain, base_path.resolve()))
        raise ConfigError(f"{source}: base = {base!r} makes a cycle of bases: {cycle}")
    parent, files = _load_raw(base_path, f"{source}: base = {base!r}", (*chain, base_path.resolve()))
    merged = {name: {**parent.get(name, {}), **raw.get(name, {})} for name in SCHEMA if name in parent or name in raw}
    return merged, [path, *files]


def load_config(path: str | Path, overrides: list[str] = ()) -> dict[str, dict[str, Any]]:
    """Read, override and validate a TOML config file (ConfigError naming the file and the key). The file
    holds a ``base`` (module docstring) or at least one ``[section]`` table, and no other key outside one: an
    empty file (which would silently train every default) is refused with the list of sections expected."""
    path = Path(path)
    raw, files = _load_raw(path, "CONFIG", (path.resolve(),))
    bases = f" (base {', '.join(repr(str(f)) for f in files[1:])})" if len(files) > 1 else ""
    return validate_config(apply_overrides(raw, list(overrides)), source=f"config {str(path)!r}{bases}")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def format_config(cfg: dict[str, dict[str, Any]], comments: bool = True) -> str:
    """The config as TOML text, every key with its value (and, with ``comments``, its default and meaning)."""
    lines = []
    for name, values in cfg.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            spec = SCHEMA[name][key]
            line = f"{key} = {_toml_value(value)}"
            if comments:
                line = f"{line:<40} # {spec.doc} (default {_toml_value(spec.default)})"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- builders
def build_data(cfg: dict[str, dict[str, Any]]) -> torch.Tensor:
    """The training set: shapes -> uint8 [N, 1, size, size]; cards -> uint8 [N, 1 | 3, size, size] (the first
    n sets of the train split under seed data.seed, vsmlab.data.cards.make_cards); chess -> uint8
    [N, 3, size, size] (n distinct train-split positions from random play, seed data.seed); images are scaled
    to [-1, 1] per batch by the trainer. mixture -> float32 [N, d] drawn with generator seed data.seed."""
    data = cfg["data"]
    if data["kind"] == "shapes":
        from vsmlab.data.shapes import generate

        return torch.from_numpy(generate(data["n"], data["size"], data["seed"]).images).unsqueeze(1)
    if data["kind"] == "cards":
        from vsmlab.data.cards import make_cards

        return make_cards(data["n"], data["seed"], data["rgb"], "train", data["size"])[0]
    if data["kind"] == "chess":
        import numpy as np

        from vsmlab.data.chessboards import lab_tiles, placement_to_classes, random_positions, render_boards

        classes = np.stack([placement_to_classes(f) for f in random_positions(data["n"], data["seed"], "train")])
        return torch.from_numpy(render_boards(classes, lab_tiles(data["size"]))).permute(0, 3, 1, 2).contiguous()
    from vsmlab.data.mixtures import diamond_2d, evenly_spaced_1d, grid_2d

    mixture = {"1d": evenly_spaced_1d, "grid": grid_2d, "diamond": diamond_2d}[data["mixture"]]()
    return mixture.sample(data["n"], generator=torch.Generator().manual_seed(data["seed"])).float()


def build_model(cfg: dict[str, dict[str, Any]], data_shape: tuple[int, ...]) -> nn.Module:
    """The network for data of shape [N, ...]: UNet (images [N, C, H, W]) or MLP ([N, d]); seed train.seed."""
    m, seed = cfg["model"], cfg["train"]["seed"]
    if m["kind"] == "unet":
        from vsmlab.nets.unet import UNet

        return UNet(image_size=data_shape[-1], in_channels=data_shape[1], base_channels=m["base_channels"],
                    channel_mult=tuple(m["channel_mult"]), num_res_blocks=m["num_res_blocks"],
                    attention_resolutions=tuple(m["attention_resolutions"]), num_heads=m["num_heads"],
                    dropout=m["dropout"], learn_variance=m["learn_variance"], seed=seed)
    from vsmlab.nets.mlp import MLP

    keys = ("width", "depth", "time_dim", "norm", "activation", "fourier_features", "fourier_scale", "v_activation")
    return MLP(data_shape[1], learn_variance=m["learn_variance"], seed=seed, **{k: m[k] for k in keys})


def model_from_config(kind: str, model_config: dict[str, Any]) -> nn.Module:
    """Rebuild a net from a checkpoint's ``model_kind`` and ``model_config`` (its ``.config``)."""
    if kind == "unet":
        from vsmlab.nets.unet import UNet

        return UNet.from_config(dict(model_config))
    if kind == "mlp":
        from vsmlab.nets.mlp import MLP

        return MLP(**model_config)
    raise ConfigError(f"model_kind: expected 'unet' or 'mlp', got {kind!r}")


def build_schedule(cfg: dict[str, dict[str, Any]]):
    """cosine(T) or linear(T, beta_start, beta_end)."""
    from vsmlab.core.schedules import cosine, linear

    d = cfg["diffusion"]
    if d["schedule"] == "cosine":
        return cosine(d["T"])
    return linear(d["T"], d["beta_start"], d["beta_end"])


def build_loss(cfg: dict[str, dict[str, Any]]):
    """eps_mse_loss, or vsmlab.diffusion.losses.make_loss("hybrid" | "vsm", ...) with the decoder resolved."""
    from vsmlab.diffusion import losses

    loss = cfg["loss"]
    if loss["name"] == "eps_mse":
        return losses.eps_mse_loss
    decoder = loss["decoder"]
    if decoder == "auto":
        decoder = "discretized" if cfg["data"]["kind"] in IMAGE_KINDS else "gaussian"
    options: dict[str, Any] = {"vb_weight": loss["vb_weight"], "decoder": decoder}
    if loss["name"] == "vsm":
        options.update(rho=loss["rho"], time_weight=loss["time_weight"])
    return losses.make_loss(loss["name"], **options)


def trainer_options(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments of :class:`vsmlab.diffusion.training.Trainer` (besides model, data, schedule, loss)."""
    t = cfg["train"]
    return dict(
        steps=t["steps"], batch_size=t["batch_size"], lr=t["lr"], seed=t["seed"], lr_decay=t["lr_decay"],
        max_grad_norm=t["clip"] if t["clip"] > 0 else None, optimizer=t["optimizer"],
        weight_decay=t["weight_decay"], warmup=t["warmup"], ema_decay=t["ema"] if t["ema"] > 0 else None,
        ema_warmup=t["ema_warmup"], timestep_sampler=t["timestep_sampler"], rng=t["rng"], amp=t["amp"],
        compile=t["compile"], channels_last=t["channels_last"], log_every=t["log_every"],
        cuda_graph=t["cuda_graph"],
    )
