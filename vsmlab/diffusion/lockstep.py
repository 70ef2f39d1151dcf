"""Several models trained in lockstep in one process: step s of every run, then step s + 1, ...

The runs are independent :class:`vsmlab.diffusion.training.Trainer` objects (e.g. fixed, rho0 and VSM x
seeds, sharing one data tensor already on the device); :class:`MultiTrainer` advances their ``run()``
generators round-robin. On CUDA each run's steps are queued on its own stream, so the GPU overlaps the K
models' kernels (one small model's step leaves most of an H100 idle) while the host enqueues the next
run's step; a run with ``cuda_graph=True`` replays its graph on its stream. After each step the current
stream waits (on the device, not the host) for that run's stream, so the records and state a caller
reads on the current stream are complete. On the CPU the streams are absent and the result is K separate
runs: parameters bit-identical (tested) under ``rng="per_step"`` (each step's model draws are keyed
and the global RNG restored); under ``rng="sequential"`` too unless a model draws from torch's global
generator (dropout), whose draws then interleave.

One failing run need not cost the others: with ``errors="collect"`` its exception is kept in
:attr:`MultiTrainer.failures` under its name (its model is left in eval mode at its last step) and the
others go on; ``errors="raise"`` (default) stops everything with the error.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from vsmlab.diffusion.training import StepRecord, Trainer

__all__ = ["MultiTrainer", "train_many", "ERROR_MODES"]

ERROR_MODES = ("raise", "collect")


class MultiTrainer:
    """K trainers stepped in lockstep (module docstring).

    trainers: a mapping name -> Trainer, or a sequence (named "0", "1", ...). errors: "raise" | "collect".
    :meth:`run` yields ``(name, StepRecord)`` in round-robin order until every run has reached its own
    ``steps`` (runs may differ in length; a finished run drops out).
    """

    def __init__(self, trainers: Mapping[str, "Trainer"] | Sequence["Trainer"], errors: str = "raise") -> None:
        named = dict(trainers) if isinstance(trainers, Mapping) else {str(i): tr for i, tr in enumerate(trainers)}
        if not named:
            raise ValueError("trainers: expected at least one Trainer, got none")
        for name, tr in named.items():
            if not callable(getattr(tr, "run", None)):
                raise TypeError(f"trainers: {name!r} is a {type(tr).__name__}, expected a Trainer")
        if len({id(tr) for tr in named.values()}) != len(named):
            raise ValueError("trainers: the same Trainer object appears twice; build one per run")
        if errors not in ERROR_MODES:
            raise ValueError(f"errors: expected one of {list(ERROR_MODES)}, got {errors!r}")
        self.trainers: dict[str, Trainer] = named
        self.errors = errors
        self.failures: dict[str, BaseException] = {}
        self.streams: dict[str, Any] = {
            name: torch.cuda.Stream(tr.device) if tr.device.type == "cuda" else None for name, tr in named.items()}

    def run(self) -> Iterator[tuple[str, "StepRecord"]]:
        """Yield ``(name, record)`` for every step of every run, round-robin (step s of all, then s + 1)."""
        live = {name: tr.run() for name, tr in self.trainers.items()}
        for name, stream in self.streams.items():
            if stream is not None:  # the work queued so far (weights, data upload) before the run's own stream
                stream.wait_stream(torch.cuda.current_stream(self.trainers[name].device))
        try:
            while live:
                for name in list(live):
                    stream = self.streams[name]
                    ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
                    try:
                        with ctx:
                            record = next(live[name])
                    except StopIteration:
                        del live[name]
                        continue
                    except Exception as exc:  # noqa: BLE001 - named and kept, or re-raised
                        live.pop(name).close()
                        if self.errors == "raise":
                            raise
                        self.failures[name] = exc
                        continue
                    if stream is not None:
                        torch.cuda.current_stream(self.trainers[name].device).wait_stream(stream)
                    yield name, record
        finally:
            for gen in live.values():
                gen.close()
            for name, stream in self.streams.items():
                if stream is not None:
                    torch.cuda.current_stream(self.trainers[name].device).wait_stream(stream)


def train_many(trainers: Mapping[str, "Trainer"] | Sequence["Trainer"]) -> Iterator[tuple[str, "StepRecord"]]:
    """``MultiTrainer(trainers).run()``: K runs in lockstep, yielding ``(name, record)`` per step; the first
    error stops all (to keep the other runs going past a failure, use ``MultiTrainer(..., errors="collect")``
    and read its ``failures``)."""
    yield from MultiTrainer(trainers).run()
