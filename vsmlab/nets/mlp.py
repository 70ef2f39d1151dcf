"""The lab's MLP eps-network for flat d-dimensional data, and its Lipschitz upper bound.

x_t [B, d], t [B] -> :class:`~vsmlab.core.prediction.Prediction` (``eps`` and, with ``learn_variance``,
the learned-range value ``v``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vsmlab.core.checks import check_int, check_positive, check_step
from vsmlab.core.prediction import Prediction, timestep_embedding
from vsmlab.core.schedules import Schedule

__all__ = ["MLP", "V_ACTIVATIONS", "ACTIVATION_LIPSCHITZ", "mlp_lipschitz_upper_bound", "activation_lipschitz", "feature_lipschitz"]

#: sup |act'(z)| for the activations the lab's MLP uses (silu and gelu rounded up: 1.09984 at z ~ 2.40; 1.12890 at sqrt(2), tanh form 1.12899).
ACTIVATION_LIPSCHITZ: dict[type, float] = {nn.ReLU: 1.0, nn.SiLU: 1.0999, nn.GELU: 1.1290, nn.Identity: 1.0}


_ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}

#: what the variance head applies to its raw output v: "none" (unbounded, improved DDPM's reference code)
#: or "tanh" (v in (-1, 1), Sigma strictly inside [beta_tilde_t, beta_t])
V_ACTIVATIONS = ("none", "tanh")


class _Block(nn.Module):
    """Pre-activation residual block: h + Linear(act(norm(h)))."""

    def __init__(self, width: int, norm: bool, activation: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if norm else nn.Identity()
        self.act = _ACTIVATIONS[activation]()
        self.linear = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.linear(self.act(self.norm(h)))


class _Scale(nn.Module):
    """Weight parametrization W -> scale * W (used after spectral normalisation)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.scale


class MLP(nn.Module):
    """Eps-network for flat d-dimensional data with a sinusoidal time embedding.

    x_t [B, d], t [B] -> Prediction(eps [B, d], v [B, d] if ``learn_variance``).

    Architecture: h = W_in [x, fourier(x)] + W_t emb(t); ``depth`` residual blocks h += W act(norm(h));
    out = W_out act(norm(h)). ``fourier_features`` > 0 appends sin/cos(2 pi B x) with a fixed Gaussian
    matrix B (std ``fourier_scale``, drawn from ``seed``) so the net can represent sharp score transitions.
    ``learn_variance`` adds a second head v on the shared trunk: the learned-range value of improved DDPM,
    log Sigma = f log beta_t + (1 - f) log beta_tilde_t with f = (v + 1) / 2
    (:meth:`vsmlab.core.schedules.Schedule.learned_log_variance`). ``v_activation`` names what is applied
    to that head: "none" (default, as the reference: v is unbounded, so Sigma may leave
    [beta_tilde_t, beta_t] and extrapolate in log space; v = -1 / +1 are the ends of the range) or "tanh"
    (v = tanh(.) in (-1, 1): Sigma confined strictly inside the range; the lab's earlier choice, kept as
    an option for comparison).

    ``lipschitz_budget`` (needs ``norm=False``) spectrally normalises the Linear layers on the x path
    (``torch.nn.utils.parametrizations.spectral_norm``) and scales each by one common factor c, chosen so
    that the layer-product bound on Lip(x -> eps) (:func:`mlp_lipschitz_upper_bound`)
    equals the budget: Lip(features) c (1 + a c)^depth a c = budget, a = Lip(activation). The time path
    and the biases are not constrained (they do not change Lip in x).
    """

    def __init__(
        self,
        dim: int,
        width: int = 128,
        depth: int = 3,
        time_dim: int = 64,
        norm: bool = True,
        activation: str = "leaky_relu",
        learn_variance: bool = False,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        seed: int = 0,
        lipschitz_budget: float | None = None,
        v_activation: str = "none",
    ) -> None:
        super().__init__()
        dim, width = check_int("dim", dim, low=1), check_int("width", width, low=1)
        depth, fourier_features = check_int("depth", depth, low=0), check_int("fourier_features", fourier_features, low=0)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if v_activation not in V_ACTIVATIONS:
            raise ValueError(f"v_activation: expected one of {sorted(V_ACTIVATIONS)} (what the variance head applies "
                             f"to v), got {v_activation!r}")
        time_dim = check_int("time_dim", time_dim, low=2, noun="an even int")
        if time_dim % 2:
            raise ValueError(f"time_dim: expected an even int >= 2, got {time_dim!r}")
        if lipschitz_budget is not None:
            check_positive("lipschitz_budget", lipschitz_budget, hint="or None")
            if norm:
                raise ValueError("lipschitz_budget: needs norm=False (LayerNorm is not globally Lipschitz), got norm=True")
        self.config = dict(dim=dim, width=width, depth=depth, time_dim=time_dim, norm=norm, activation=activation,
                           learn_variance=learn_variance, fourier_features=fourier_features,
                           fourier_scale=fourier_scale, seed=seed, lipschitz_budget=lipschitz_budget,
                           v_activation=v_activation)
        self.dim, self.time_dim, self.learn_variance = dim, time_dim, learn_variance
        self.v_activation = v_activation
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("fourier_matrix", torch.randn(dim, fourier_features, generator=g) * fourier_scale)
        in_features = dim + 2 * fourier_features
        with torch.random.fork_rng(devices=[]):  # parameter init depends on ``seed`` only
            torch.manual_seed(seed)
            self.in_proj = nn.Linear(in_features, width)
            self.time_proj = nn.Sequential(nn.Linear(time_dim, width), _ACTIVATIONS[activation](), nn.Linear(width, width))
            self.blocks = nn.ModuleList([_Block(width, norm, activation) for _ in range(depth)])
            self.out_norm = nn.LayerNorm(width) if norm else nn.Identity()
            self.out_act = _ACTIVATIONS[activation]()
            self.out = nn.Linear(width, dim * (2 if learn_variance else 1))
            if lipschitz_budget is not None:
                self._constrain_lipschitz(float(lipschitz_budget))

    def _constrain_lipschitz(self, budget: float) -> None:
        """Spectral-normalise the x-path Linears and scale each by c with feat * c (1 + a c)^depth a c = budget."""
        from torch.nn.utils import parametrize
        from torch.nn.utils.parametrizations import spectral_norm

        a, feat, depth = activation_lipschitz(self.out_act), feature_lipschitz(self.fourier_matrix), len(self.blocks)
        lo, hi = -40.0, 40.0  # bisection on log c; the bound is increasing in c
        for _ in range(200):
            mid = (lo + hi) / 2
            c = math.exp(mid)
            if math.log(feat) + 2 * mid + depth * math.log1p(a * c) + math.log(a) > math.log(budget):
                hi = mid
            else:
                lo = mid
        self.lipschitz_scale = math.exp(lo)
        for layer in (self.in_proj, *(b.linear for b in self.blocks), self.out):
            spectral_norm(layer)
            with torch.no_grad():  # in training mode each access runs one power iteration: converge u, v now
                for _ in range(100):
                    _ = layer.weight
            parametrize.register_parametrization(layer, "weight", _Scale(self.lipschitz_scale))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input features [B, d + 2F]: x followed by sin/cos Fourier features."""
        if self.fourier_matrix.shape[1] == 0:
            return x
        proj = 2 * math.pi * x @ self.fourier_matrix
        return torch.cat([x, torch.sin(proj), torch.cos(proj)], dim=1)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Projected time embedding [B, width]; computed once when every t in the batch is equal."""
        if t.numel() > 1 and bool(t.min() == t.max()):
            return self.time_proj(timestep_embedding(t[:1], self.time_dim)).expand(t.shape[0], -1)
        return self.time_proj(timestep_embedding(t, self.time_dim))

    def trunk(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Shared hidden features [B, width] (both heads read these)."""
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t: expected shape [B, {self.dim}], got {tuple(x_t.shape)}")
        if t.shape != (x_t.shape[0],):
            raise ValueError(f"t: expected shape [{x_t.shape[0]}] (one step per example), got {tuple(t.shape)}")
        h = self.in_proj(self.features(x_t)) + self.time_embedding(t)
        for block in self.blocks:
            h = block(h)
        return self.out_act(self.out_norm(h))

    #: rows per piece when evaluating without gradients: [8192, width] activations stay in the CPU caches,
    #: while [100k, width] ones are re-allocated and page-faulted on every op (benchmarks/bench_sampling.py)
    inference_chunk: int = 8192

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        n = self.inference_chunk
        if not torch.is_grad_enabled() and x_t.dim() == 2 and x_t.shape[0] > n:
            parts = [self._forward(x_t[i:i + n], t[i:i + n]) for i in range(0, x_t.shape[0], n)]
            v = None if parts[0].v is None else torch.cat([p.v for p in parts])
            return Prediction(eps=torch.cat([p.eps for p in parts]), v=v)
        return self._forward(x_t, t)

    def _forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        out = self.out(self.trunk(x_t, t))
        if not self.learn_variance:
            return Prediction(eps=out)
        eps, v = out.split(self.dim, dim=1)
        return Prediction(eps=eps, v=torch.tanh(v) if self.v_activation == "tanh" else v)

    def matmul_flops_per_example(self) -> int:
        """Multiply-add FLOPs (2 per MAC) of the Linear layers for one example (time embedding excluded)."""
        lins = [self.in_proj, *(b.linear for b in self.blocks), self.out]
        return sum(2 * m.in_features * m.out_features for m in lins)


def feature_lipschitz(fourier_matrix: torch.Tensor) -> float:
    """Exact Lipschitz constant of the MLP's input features x -> [x, sin(2 pi x B), cos(2 pi x B)]:
    sqrt(1 + (2 pi ||B||_2)^2) (||J v||^2 = ||v||^2 + 4 pi^2 ||B^T v||^2 since sin^2 + cos^2 = 1); 1 without B."""
    B = fourier_matrix.detach().double()
    return math.sqrt(1 + (2 * math.pi * float(torch.linalg.matrix_norm(B, ord=2))) ** 2) if B.numel() else 1.0


def activation_lipschitz(act: nn.Module) -> float:
    """sup |act'| of an activation module (LeakyReLU: max(1, |slope|); others from ACTIVATION_LIPSCHITZ)."""
    if isinstance(act, nn.LeakyReLU):
        return max(1.0, abs(float(act.negative_slope)))
    for kind, value in ACTIVATION_LIPSCHITZ.items():
        if type(act) is kind:
            return value
    raise ValueError(f"model: no Lipschitz constant known for activation {type(act).__name__}; "
                     f"known: LeakyReLU, {', '.join(k.__name__ for k in ACTIVATION_LIPSCHITZ)}")


def mlp_lipschitz_upper_bound(model: MLP, schedule: Schedule | None = None, t: int | None = None) -> float:
    """Upper bound on the global Lipschitz constant in x of the eps-output of a :class:`vsmlab.MLP`
    (at any fixed t), or of its score -eps / sigma_t when ``schedule`` and ``t`` are given::

        Lip(eps) <= Lip(features) ||W_in|| prod_blocks (1 + a ||W_b||) a ||W_out[:d]||

    with a = Lip(activation) (sup of |act'|), ||.|| the spectral norm (exact SVD of the effective, e.g.
    spectrally normalised, weights) and Lip(features) = sqrt(1 + (2 pi ||B||_2)^2) for Fourier features
    [x, sin(2 pi x B), cos(2 pi x B)] (exact), 1 without. The time embedding enters additively and does
    not change the constant in x. Needs ``norm=False``: LayerNorm has no global Lipschitz constant (its
    local one grows like 1 / std of its input, unbounded as the input's spread goes to 0).
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: expected a vsmlab.MLP, got {type(model).__name__}")
    if model.config.get("norm", True):
        raise ValueError("model: the layer-product upper bound needs an MLP built with norm=False; LayerNorm is "
                         "not globally Lipschitz (its local constant scales like 1 / std of its input)")
    if (schedule is None) != (t is None):
        raise ValueError("schedule, t: give both (bound on the score at step t) or neither (bound on eps)")

    def op_norm(layer: nn.Linear, rows: int | None = None) -> float:
        W = layer.weight.detach().double()
        return float(torch.linalg.matrix_norm(W[:rows] if rows else W, ord=2))

    bound = feature_lipschitz(model.fourier_matrix) * op_norm(model.in_proj)
    for block in model.blocks:
        bound *= 1 + activation_lipschitz(block.act) * op_norm(block.linear)
    bound *= activation_lipschitz(model.out_act) * op_norm(model.out, model.dim)
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule: expected a Schedule, got {type(schedule).__name__}")
        t = check_step("t", t, schedule.num_steps)
        bound /= float(schedule.sigma[t])
    return bound
