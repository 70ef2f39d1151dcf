"""Switch models for noise-level studies: one model answers at high noise, another at low noise.

:func:`switch_model` returns a model with the usual contract ``model(x_t, t) -> Prediction`` that answers
each row (example) with ``high`` where t >= tau and with ``low`` where t < tau (t: the original DDPM step the
samplers pass, also under respacing). Sampling "exact score for t >= tau, UNet below" and the reverse, for a
sweep of tau, finds the noise levels where a learned model's hallucinations form (the image version of
notebook 03's smoothing windows)::

    switch_model(high, low, tau=0)   == high everywhere          switch_model(high, low, tau=T) == low everywhere

**Batching and devices.** ``mode="where"`` calls both models on the whole batch and picks rows with
``torch.where`` (no host synchronisation: fit for CUDA loops, at twice the model cost). ``mode="split"``
reads which rows go where (one host sync), calls each model only on its rows (a model with no rows is not
called at all) and scatters the results back. ``mode="auto"`` (default): "split" on the CPU (a sync costs
nothing there and every sampler step has one t for the whole batch, so only one model runs), "where" on other
devices.

**Learned variance (v).** If both models return v, v is switched row by row like eps. If neither does,
v is None. If exactly one does, ``missing_v`` decides: ``"error"`` (default) raises a ValueError naming the
model without v; ``"drop"`` returns v = None (the sampler then uses a fixed variance for every step: pass
``variance="beta"`` or ``"beta_tilde"``); a number in [-1, 1] fills the missing model's v with that
constant (improved DDPM's interpolation: v = 1 gives Sigma = beta_t, v = -1 gives beta_tilde_t), so the
learned model keeps its own variance below / above tau. The rule is applied at every call, also when only
one model answers (so an error does not depend on tau): in split mode, a model not needed yet is called once
on one row to learn whether it returns v, and that answer is remembered.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from vsmlab.core.checks import check_choice, check_int, check_range
from vsmlab.core.prediction import Prediction

__all__ = ["SwitchModel", "switch_model"]

Model = Callable[[torch.Tensor, torch.Tensor], Prediction]


class SwitchModel(nn.Module):
    """``high`` for rows with t >= ``tau``, ``low`` for t < ``tau`` (module docstring). Modules passed as
    ``high`` / ``low`` are registered as submodules (so ``.to()``, ``.eval()`` reach them)."""

    def __init__(self, high: Model, low: Model, tau: int, mode: str = "auto", missing_v: str | float = "error") -> None:
        super().__init__()
        for name, m in (("high", high), ("low", low)):
            if not callable(m):
                raise TypeError(f"{name}: expected a model callable as model(x_t, t) -> Prediction, got {type(m).__name__}")
        self.high, self.low = high, low
        self.tau = check_int("tau", tau, low=0, hint="a DDPM step: high answers t >= tau, low t < tau")
        self.mode = check_choice("mode", mode, ("auto", "where", "split"))
        if isinstance(missing_v, str):
            check_choice("missing_v", missing_v, ("error", "drop"))
        else:
            check_range("missing_v", missing_v, -1, 1, hint="or 'error', 'drop'")
        self.missing_v = missing_v
        self._returns_v: dict[str, bool] = {}

    def _has_v(self, which: str, x_t: torch.Tensor, t: torch.Tensor, pred: Prediction | None = None) -> bool:
        """Whether model ``which`` returns v: read from ``pred`` when given, else from one probe call on one row
        (remembered, so a model that is never needed by a call is probed once)."""
        known = self._returns_v.get(which)
        if known is None:
            if pred is None:
                with torch.no_grad():
                    pred = getattr(self, which)(x_t[:1], t[:1])
            known = self._returns_v[which] = pred.v is not None
        return known

    def _v_policy(self, has_high: bool, has_low: bool) -> str:
        """'both', 'none', 'drop' or 'fill' for this pair of models (raises for missing_v='error')."""
        if has_high and has_low:
            return "both"
        if not has_high and not has_low:
            return "none"
        if self.missing_v == "error":
            has, lacks = ("high", "low") if has_high else ("low", "high")
            raise ValueError(f"missing_v: '{has}' returns v (a learned variance) but '{lacks}' does not; pass "
                             "missing_v='drop' (and sample with variance='beta' or 'beta_tilde') or a fill value in "
                             "[-1, 1] (1: beta_t, -1: beta_tilde_t) for the model without v")
        return "drop" if self.missing_v == "drop" else "fill"

    def _v_of(self, pred: Prediction, policy: str) -> torch.Tensor | None:
        if policy in ("none", "drop"):
            return None
        return pred.v if pred.v is not None else torch.full_like(pred.eps, float(self.missing_v))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        if not isinstance(x_t, torch.Tensor) or x_t.dim() < 1:
            raise TypeError(f"x_t: expected a tensor [B, ...], got {type(x_t).__name__}")
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != x_t.shape[0]:
            raise ValueError(f"t: expected a step tensor of shape [{x_t.shape[0]}], got {t!r}")
        mode = self.mode
        if mode == "auto":
            mode = "split" if x_t.device.type == "cpu" else "where"
        use_high = t >= self.tau  # [B]
        if mode == "where":
            ph, pl = self.high(x_t, t), self.low(x_t, t)
            policy = self._v_policy(self._has_v("high", x_t, t, ph), self._has_v("low", x_t, t, pl))
            rows = use_high.reshape(-1, *([1] * (x_t.dim() - 1)))
            vh, vl = self._v_of(ph, policy), self._v_of(pl, policy)
            return Prediction(eps=torch.where(rows, ph.eps, pl.eps), v=None if vh is None else torch.where(rows, vh, vl))
        n_high = int(use_high.sum())  # the one host read of the split mode
        if n_high in (0, x_t.shape[0]):  # one model answers every row: call it on x_t itself
            which = "high" if n_high else "low"
            p = getattr(self, which)(x_t, t)
            has = self._has_v(which, x_t, t, p)
            other = self._has_v("low" if n_high else "high", x_t, t)
            policy = self._v_policy(has, other) if n_high else self._v_policy(other, has)
            return Prediction(eps=p.eps, v=self._v_of(p, policy))
        idx_h, idx_l = torch.nonzero(use_high).reshape(-1), torch.nonzero(~use_high).reshape(-1)
        ph, pl = self.high(x_t[idx_h], t[idx_h]), self.low(x_t[idx_l], t[idx_l])
        policy = self._v_policy(self._has_v("high", x_t, t, ph), self._has_v("low", x_t, t, pl))
        for name, p, idx in (("high", ph, idx_h), ("low", pl, idx_l)):
            if p.eps.shape != (idx.numel(), *x_t.shape[1:]):
                raise ValueError(f"{name}: returned eps of shape {tuple(p.eps.shape)} for x_t rows of shape "
                                 f"{(idx.numel(), *x_t.shape[1:])}")
        eps = ph.eps.new_empty(x_t.shape).index_copy_(0, idx_h, ph.eps).index_copy_(0, idx_l, pl.eps.to(ph.eps.dtype))
        vh, vl = self._v_of(ph, policy), self._v_of(pl, policy)
        v = None if vh is None else vh.new_empty(x_t.shape).index_copy_(0, idx_h, vh).index_copy_(0, idx_l, vl.to(vh.dtype))
        return Prediction(eps=eps, v=v)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, mode={self.mode!r}, missing_v={self.missing_v!r}"


def switch_model(high: Model, low: Model, tau: int, *, mode: str = "auto", missing_v: str | float = "error") -> SwitchModel:
    """A model that uses ``high`` for rows with t >= tau and ``low`` for t < tau (see the module docstring)."""
    return SwitchModel(high, low, tau, mode, missing_v)
