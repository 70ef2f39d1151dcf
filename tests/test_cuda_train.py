"""The training step on a CUDA GPU (skipped without one): fused optimizer, no synchronisation between log
steps, the CUDA-graph step equal to the eager one, compile, channels_last, K runs on streams, resume.

Tiny configs (tests/test_train_step.py's cases moved to the GPU), seconds each once CUDA is initialised.
"""

from __future__ import annotations

import pytest
import torch

from test_train_step import assert_same, make_trainer

pytestmark = pytest.mark.cuda

CUDA = "cuda"


@pytest.fixture(autouse=True)
def deterministic_convolutions():
    """Deterministic cuDNN algorithms for the comparisons (atomics in a convolution's backward could flip the
    sign of a near-zero gradient, and Adam's first step moves by lr whatever the gradient's size)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def cuda_trainer(case: str, **options):
    """A CPU-built trainer moved to the GPU at construction (device option), fp32 unless amp is given."""
    return make_trainer(case, **{"device": CUDA, "amp": "none", **options})


def losses(trainer) -> torch.Tensor:
    return torch.tensor([[r.floats()[k] for k in ("mse", "vb", "vsm", "total")] for r in trainer.run()])


def close_state(a, b, where: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Every floating tensor of two state dicts equal to tolerance (integers exactly)."""
    if isinstance(a, torch.Tensor):
        if a.is_floating_point():
            torch.testing.assert_close(a.float().cpu(), b.float().cpu(), rtol=rtol, atol=atol,
                                       msg=lambda m: f"{where}: {m}")
        else:
            assert torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            close_state(a[k], b[k], f"{where}.{k}", rtol, atol)
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            close_state(x, y, f"{where}[{i}]", rtol, atol)


def test_fused_optimizer_and_resident_data() -> None:
    trainer = cuda_trainer("shapes_vsm", steps=2)
    assert all(g["fused"] for g in trainer.optimizer.param_groups)
    assert trainer.data.is_cuda and trainer.data.dtype == torch.uint8
    list(trainer.run())
    steps = [st["step"] for st in trainer.optimizer.state.values()]
    assert all(s.is_cuda for s in steps)  # no per-parameter .item() on host step counters


@pytest.mark.parametrize("case,graph", [("shapes_vsm", False), ("shapes_vsm", True), ("shapes_fixed", True)])
def test_no_synchronisation_between_log_steps(case: str, graph: bool) -> None:
    """torch.cuda.set_sync_debug_mode("error") raises on any host synchronisation; it is on for every step
    but the read steps (and the first, which captures the graph / fills caches)."""
    trainer = cuda_trainer(case, log_every=4, steps=8, cuda_graph=graph)
    it = trainer.run()
    next(it)
    try:
        for step in range(2, 9):
            torch.cuda.set_sync_debug_mode("default" if step % 4 == 0 or step == 8 else "error")
            rec = next(it)
            assert rec.step == step
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("case", ["shapes_vsm", "shapes_fixed"])
def test_graph_step_equals_the_eager_step(case: str) -> None:
    """Same draws (generators re-seeded before each replay), same dropout, same lr / EMA schedule: losses and
    final state equal to float tolerance (the graph's lr is a float32 tensor)."""
    eager, graph = cuda_trainer(case), cuda_trainer(case, cuda_graph=True)
    torch.testing.assert_close(losses(graph), losses(eager), rtol=1e-4, atol=1e-5)
    a, b = eager.state_dict(), graph.state_dict()
    for key in ("model", "ema", "optimizer", "timestep_sampler"):
        close_state(a[key], b[key], key)
    assert not graph.model.training


def test_graph_with_bf16_autocast_and_channels_last() -> None:
    eager = cuda_trainer("shapes_fixed", amp="bf16")
    graph = cuda_trainer("shapes_fixed", amp="bf16", cuda_graph=True)
    a, b = losses(eager), losses(graph)
    assert torch.isfinite(b).all()
    torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-3)


def test_graph_resumes_from_an_eager_checkpoint_and_back() -> None:
    full = cuda_trainer("shapes_vsm", cuda_graph=True)
    list(full.run())
    first = cuda_trainer("shapes_vsm")
    for rec in first.run():
        if rec.step == 3:
            break
    state = first.state_dict()
    second = cuda_trainer("shapes_vsm", cuda_graph=True)
    second.load_state_dict(state)
    list(second.run())
    for key in ("model", "ema", "optimizer", "timestep_sampler"):
        close_state(full.state_dict()[key], second.state_dict()[key], key)
    back = cuda_trainer("shapes_vsm")
    back.load_state_dict(second.state_dict())  # a graph run's checkpoint loads into an eager run (float lr)
    assert isinstance(back.optimizer.param_groups[0]["lr"], float)


def test_compile_and_compile_with_graph() -> None:
    eager = losses(cuda_trainer("shapes_fixed", steps=3))
    compiled = losses(cuda_trainer("shapes_fixed", steps=3, compile=True))
    both = losses(cuda_trainer("shapes_fixed", steps=3, compile=True, cuda_graph=True))
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(both, eager, rtol=1e-3, atol=1e-4)


def test_lockstep_on_streams_equals_separate_runs() -> None:
    from vsmlab.diffusion.training import train_many

    def runs():
        return {"fixed": cuda_trainer("shapes_fixed"), "vsm": cuda_trainer("shapes_vsm", cuda_graph=True),
                "vsm-seed1": cuda_trainer("shapes_vsm", seed=1)}

    alone = runs()
    for tr in alone.values():
        list(tr.run())
    together = runs()
    for _ in train_many(together):
        pass
    torch.cuda.synchronize()
    for name in alone:
        for key in ("model", "ema", "optimizer", "timestep_sampler"):
            close_state(alone[name].state_dict()[key], together[name].state_dict()[key], f"{name}.{key}")


def test_cpu_checkpoint_resumes_on_the_gpu() -> None:
    cpu = make_trainer("shapes_vsm")
    for rec in cpu.run():
        if rec.step == 2:
            break
    gpu = cuda_trainer("shapes_vsm")
    gpu.load_state_dict(cpu.state_dict())
    assert all(g["fused"] for g in gpu.optimizer.param_groups)
    assert all(st["step"].is_cuda for st in gpu.optimizer.state.values())
    list(gpu.run())
    assert_same(gpu.step, 8)
