"""The whole training step of a :class:`vsmlab.diffusion.training.Trainer` captured in one CUDA graph.

``Trainer(..., cuda_graph=True)`` (CUDA, ``rng="per_step"``, one process, a tensor data set) captures, at its
first step, everything one step does: the batch draws (indices, t, eps on the device), the forward pass
under autocast, the loss, backward, clipping, the optimizer (fused and ``capturable``), the timestep
sampler's and the EMA's updates and the loss means; every later step is one ``graph.replay()``. What changes
from step to step enters through device tensors and generator states set on the host before each replay:

- the learning rate: the optimizer's lr is a float32 device tensor (the fused kernel reads it), filled;
- the EMA weight 1 - decay_s: a 0-d device tensor the EMA's ``torch._foreach_lerp_`` reads, filled;
- the draws: the trainer's device generator (registered with the graph) is re-seeded with
  ``step_key(seed, step)`` and the default CUDA generator (dropout) with ``step_key(seed, step, rank)``
  (restored afterwards). At replay a registered generator's Philox seed and offset are copied from its
  host state into the graph, so the replay draws the numbers an eager step with the same seeds draws.

Before capture the step runs GRAPH_WARMUP times on a side stream (the optimizer creates its state lazily,
cuDNN / cuBLAS pick their algorithms, ``torch.compile`` compiles), then every tensor of the training state
is put back (weights, buffers, EMA, sampler history, optimizer state: state the warm-up created is zeroed,
as torch creates it) and the gradients dropped, so the run is the eager run up to float rounding (the lr
rounded to float32; tests/test_cuda_train.py compares the two). Loading a checkpoint replaces the
optimizer's state tensors, so the trainer captures again at its next step.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from vsmlab.diffusion.training import Trainer

__all__ = ["StepGraph", "check_graphable", "GRAPH_WARMUP"]

GRAPH_WARMUP = 3  # eager runs of the step (on a side stream, state restored afterwards) before capture


def check_graphable(device: torch.device, rng: str, data: Any, world: int) -> None:
    """cuda_graph=True needs CUDA, rng='per_step', one process and a tensor data set (ValueError naming it)."""
    if device.type != "cuda":
        raise ValueError(f"cuda_graph: True (config key train.cuda_graph) captures the training step in a CUDA graph "
                         f"and needs a CUDA device; got device {str(device)!r}; use cuda_graph = false on the CPU")
    if rng != "per_step":
        raise ValueError(f"cuda_graph: True needs rng='per_step' (draws keyed by (seed, step) on the device), "
                         f"got rng={rng!r}")
    if world > 1:
        raise ValueError(f"cuda_graph: True runs in one process; under torch.distributed (world size {world}) use "
                         "cuda_graph = false")
    if not isinstance(data, torch.Tensor):
        raise ValueError("cuda_graph: True needs a data tensor (indices drawn on the device); a callable data source "
                         "draws on the host")


class StepGraph:
    """The captured step of ``trainer`` (module docstring). :meth:`step` runs one step (capturing first).

    :meth:`prepare` and :meth:`warm_up` also work on a CPU trainer (no graph): they run the same body eagerly,
    which is how the CPU tests check what a graph replays.
    """

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.ema_weight = (torch.zeros((), dtype=torch.float32, device=trainer.device)
                           if trainer.ema is not None else None)
        self.graph: Any = None  # torch.cuda.CUDAGraph once captured
        self.out: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def reset(self) -> None:
        """Forget the graph (the next :meth:`step` captures again): after the optimizer state was replaced."""
        self.graph, self.out = None, None

    def prepare(self, step: int, lr: float) -> None:
        """The step's learning rate (the lr tensor filled, or the groups' float lr without one) and EMA weight."""
        tr = self.trainer
        if tr._lr_tensor is not None:
            tr._lr_tensor.fill_(lr)
        else:
            for group in tr.optimizer.param_groups:
                group["lr"] = lr
        if self.ema_weight is not None:
            self.ema_weight.fill_(1.0 - tr.ema.decay_at(step))

    def body(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step with the generators as seeded: (loss means [4], gradient norm or None)."""
        return self.trainer._graph_body(self.ema_weight)

    def _training_state(self) -> list[torch.Tensor]:
        """Every tensor a step writes besides the optimizer state: weights, buffers, EMA, sampler state."""
        tr = self.trainer
        out = list(tr.model.parameters()) + list(tr.model.buffers())
        if tr.ema is not None:
            out += list(tr.ema.shadow.values())
        return out + [v for v in vars(tr.timestep_sampler).values() if isinstance(v, torch.Tensor)]

    @torch.no_grad()
    def _restore(self, tensors: list[torch.Tensor], saved: list[torch.Tensor],
                 optimizer: dict[torch.Tensor, dict[str, torch.Tensor]]) -> None:
        for dst, src in zip(tensors, saved):
            dst.copy_(src)
        for param, entries in self.trainer.optimizer.state.items():  # state created by the warm-up: zeros
            before = optimizer.get(param)
            for key, value in entries.items():
                if not isinstance(value, torch.Tensor):
                    continue
                if before is not None:
                    value.copy_(before[key])
                else:
                    value.zero_()

    def warm_up(self, step: int) -> None:
        """Run the body GRAPH_WARMUP times with step ``step``'s draws (on a side stream on CUDA), then put every
        state tensor and the default generator back and drop the gradients. Call :meth:`prepare` first."""
        tr = self.trainer
        cuda = tr.device.type == "cuda"
        tensors = self._training_state()
        saved = [v.detach().clone() for v in tensors]
        saved_opt = {p: {k: v.clone() for k, v in st.items() if isinstance(v, torch.Tensor)}
                     for p, st in tr.optimizer.state.items()}
        default_gen = torch.cuda.default_generators[tr.device.index] if cuda else torch.default_generator
        gen_state = default_gen.get_state()
        side = torch.cuda.Stream(tr.device) if cuda else None
        if cuda:
            side.wait_stream(torch.cuda.current_stream(tr.device))
        with torch.cuda.stream(side) if cuda else contextlib.nullcontext():
            for _ in range(GRAPH_WARMUP):
                tr._seed_step(step)
                self.body()
        if cuda:
            torch.cuda.current_stream(tr.device).wait_stream(side)
        self._restore(tensors, saved, saved_opt)
        default_gen.set_state(gen_state)
        tr.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated in the graph's pool

    def capture(self, step: int) -> None:
        """:meth:`warm_up`, then capture the body in a CUDA graph."""
        self.warm_up(step)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.trainer._g_dev)  # the data generator, re-seeded before each replay
        self.trainer._seed_step(step)
        with torch.cuda.graph(graph):
            out = self.body()
        self.graph, self.out = graph, out

    def step(self, step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step ``step`` by replay (capturing first): (loss means [4], gradient norm or None), fresh copies."""
        from vsmlab.diffusion.optim import step_key

        tr = self.trainer
        self.prepare(step, lr)
        if self.graph is None:
            self.capture(step)
        tr._seed_step(step)
        default_gen = torch.cuda.default_generators[tr.device.index]
        saved = default_gen.get_state()
        default_gen.manual_seed(step_key(tr.seed, step, tr.rank))  # the model's own draws (dropout)
        try:
            self.graph.replay()
        finally:
            default_gen.set_state(saved)
        means, norm = self.out
        return means.clone(), (norm.clone() if norm is not None else None)
