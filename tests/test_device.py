"""Device and dtype behaviour observable on the CPU: dtypes follow the inputs, schedule tables are cached
per (device, dtype), per-step loops hold no host reads, and a CUDA request without CUDA fails clearly."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch

import vsmlab
from vsmlab.analysis import detectors, distances, metrics
from vsmlab.core import estimators
from vsmlab.diffusion import samplers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_keep_the_input_dtype(dtype: torch.dtype, mix1d, aggressive) -> None:
    g = torch.Generator().manual_seed(0)
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.randn(6, 1, generator=g, dtype=dtype)
    for result in (vsmlab.ddpm(model, aggressive, x_T=x_T, generator=g, num_steps=20, record_last=3),
                   vsmlab.ddim(model, aggressive, x_T=x_T, num_steps=20, record=True),
                   vsmlab.ode(model, aggressive, x_T=x_T, num_steps=20, record=True)):
        assert result.samples.dtype == dtype and result.x_t.dtype == dtype and result.x0_hat.dtype == dtype
    assert vsmlab.ddpm(model, aggressive, shape=(3, 1), generator=g, dtype=dtype).samples.dtype == dtype
    t = torch.full((6,), 300)
    assert aggressive.noise(x_T, t).dtype == dtype and aggressive.reverse_mean(x_T, t, x_T).dtype == dtype
    assert mix1d.score(x_T, t, aggressive).dtype == dtype and model(x_T, t).eps.dtype == dtype
    assert mix1d.sample(4, generator=g, dtype=dtype).dtype == dtype
    f = estimators.score_function(model, aggressive, 300)
    assert estimators.jacobian(f, x_T).dtype == dtype
    assert estimators.hutchinson_trace(f, x_T, generator=g).value.dtype == dtype
    assert estimators.jacobian_spectral_norm(f, x_T, generator=g).value.dtype == dtype


def test_schedule_tables_are_cached_not_copied(aggressive) -> None:
    for device in ("cpu", "meta"):
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            first = aggressive.table("reverse_coef_eps", device, dtype)
            assert first is aggressive.table("reverse_coef_eps", device, dtype)
            assert first.device.type == device and first.dtype == dtype
    # the coefficients the sampler uses are the cached tables' values
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    want = aggressive.table("reverse_coef_xt", "cpu", torch.float32)[10] * x \
        - aggressive.table("reverse_coef_eps", "cpu", torch.float32)[10] * eps
    assert torch.equal(aggressive.reverse_mean(x, 10, eps), want)


def test_gather_moves_only_the_picked_values(aggressive) -> None:
    """gather on a meta input indexes the CPU table and moves B values (a whole-table copy would be [T])."""
    values = aggressive.table("sigma")
    like = torch.empty(3, 2, device="meta")
    out = vsmlab.core.schedules.gather(values, torch.tensor([0, 5, 999]), like)
    assert out.device.type == "meta" and out.shape == (3, 1) and out.dtype == torch.float32


def _loops(fn) -> list[ast.For]:
    tree = ast.parse(inspect.getsource(fn).lstrip())
    return [node for node in ast.walk(tree) if isinstance(node, ast.For)]


@pytest.mark.parametrize("fn", [samplers.ddpm, samplers.ddim, samplers.ode, samplers._Recorder.add,
                                samplers._step_tensor])
def test_per_step_code_has_no_host_reads(fn) -> None:
    """No .cpu() / .item() / .tolist() / .numpy() and no float() / int() / bool() on tensors inside the
    per-step loops (the recorder's add and the step tensor run once per step too)."""
    src = inspect.getsource(fn)
    bodies = [fn] if not _loops(fn) else _loops(fn)
    for node in bodies:
        tree = node if isinstance(node, ast.AST) else ast.parse(inspect.getsource(node).lstrip())
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            assert name not in ("cpu", "item", "tolist", "numpy", "float", "bool", "synchronize"), \
                f"{fn.__qualname__}: host read {name}() in a per-step path:\n{src}"
            if name == "int":  # int() only on Python values (the spy-free loops use none)
                pytest.fail(f"{fn.__qualname__}: int() in a per-step path")
    assert ".cpu()" not in inspect.getsource(samplers)


def test_metrics_and_detectors_build_nothing_on_a_fixed_device() -> None:
    """Every tensor factory in these modules names a device: grep (by AST) for bare ones. The mixture's
    constructor and the factories that build mixtures hold CPU float64 parameters by design."""
    for module in (metrics, detectors, distances, vsmlab.data.mixtures, estimators):
        tree = ast.parse(inspect.getsource(module))
        scopes = [tree]
        if module is vsmlab.data.mixtures:
            scopes = [f for c in tree.body if isinstance(c, ast.ClassDef) for f in c.body
                      if isinstance(f, ast.FunctionDef) and f.name != "__init__"]
        for scope in scopes:
            for call in (n for n in ast.walk(scope) if isinstance(n, ast.Call)):
                if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
                        and call.func.value.id == "torch" and call.func.attr in ("zeros", "ones", "full", "tensor", "arange", "eye"):
                    kws = {k.arg for k in call.keywords}
                    assert "device" in kws, f"{module.__name__}:{call.lineno}: torch.{call.func.attr} without device="


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_cuda_names_device(mix1d, aggressive) -> None:
    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    for sampler in (vsmlab.ddpm, vsmlab.ddim, vsmlab.ode):
        with pytest.raises(ValueError, match=r"^device: 'cuda' asked for CUDA, but no CUDA device is available"):
            sampler(model, aggressive, shape=(2, 1), device="cuda")
    with pytest.raises(ValueError, match=r"^device: 'cuda:0' asked for CUDA"):
        mix1d.sample(3, device="cuda:0")
    with pytest.raises(ValueError, match=r"^record_device: 'cuda' asked for CUDA"):
        vsmlab.ddim(model, aggressive, shape=(2, 1), record=True, record_device="cuda")
    with pytest.raises(ValueError, match=r"^device: expected a torch device"):
        vsmlab.ddim(model, aggressive, shape=(2, 1), device="gpu0")


def test_generator_on_another_device_is_refused(mix1d, aggressive) -> None:
    class FakeGenerator(torch.Generator):  # a CPU generator that claims to live elsewhere
        device = torch.device("meta")

    model = vsmlab.ExactScoreModel(mix1d, aggressive)
    x_T = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"^generator: it lives on 'meta' but the draws happen on 'cpu'"):
        vsmlab.ddpm(model, aggressive, x_T=x_T, generator=FakeGenerator())
    with pytest.raises(ValueError, match=r"^generator: it lives on 'meta' but x is on 'cpu'"):
        estimators.hutchinson_trace(estimators.score_function(model, aggressive, 5), x_T, generator=FakeGenerator())
