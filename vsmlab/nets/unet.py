"""The lab's image eps-network: a small ADM-style UNet (Dhariwal & Nichol 2021, improved DDPM).

x_t [B, C, H, W] (H = W = ``image_size``), t [B] int -> :class:`~vsmlab.core.prediction.Prediction` with
``eps`` [B, C, H, W] and, with ``learn_variance``, the raw (unbounded) learned-range value ``v`` [B, C, H, W]
(improved DDPM: frac = (v + 1) / 2; the net outputs 2C channels split into eps and v).

Layout, with L = len(channel_mult) levels at resolutions image_size / 2**level::

    emb = MLP(sinusoid(t))                                   [B, 4 base]
    h = conv3x3(x_t)                                         down path: per level, ``num_res_blocks`` x
    [ResBlock (+ Attention if the resolution is in attention_resolutions)], then a stride-2 conv (not after
    the last level); every output is kept as a skip. Middle: ResBlock, Attention, ResBlock. Up path: per
    level (reversed), num_res_blocks + 1 x [ResBlock(cat(h, skip)) (+ Attention)], then nearest x2 + conv3x3.
    out = conv3x3(SiLU(GroupNorm(h)))                        zero-initialised: the initial eps is exactly 0

    ResBlock(h, emb) = skip(h) + conv3x3_0(Dropout(SiLU(GN(conv3x3(SiLU(GN(h)))) * (1 + scale) + shift)))
    with (scale, shift) = Linear(SiLU(emb)) (adaptive GroupNorm) and conv3x3_0 zero-initialised.
    Attention(h) = h + proj_0(SDPA(q, k, v)) with q, k, v = Linear(GN(h)) over the H W positions.

GroupNorm uses gcd(32, channels) groups (32 as in ADM; fewer when the channels are few).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsmlab.core.checks import check_bool, check_int, check_ints, check_optional_int, check_range
from vsmlab.core.prediction import Prediction, timestep_embedding

__all__ = ["UNet", "count_parameters", "unet_flops"]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with adaptive GroupNorm (scale-shift from the time embedding). [B, Cin, H, W] -> [B, Cout, H, W]."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: [B, Cin, H, W]; emb: [B, E], already passed through SiLU."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(self.dropout(h))


class Attention(nn.Module):
    """Multi-head self-attention over the H W positions with a residual connection. [B, C, H, W] -> same."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = _norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = _zero(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, L, C]; a free view for channels_last input
        q, k, v = self.qkv(h).unflatten(-1, (3, self.num_heads, C // self.num_heads)).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, L, C / heads]
        h = self.proj(h.transpose(1, 2).flatten(2))  # [B, L, C]
        return x + h.transpose(1, 2).unflatten(2, (H, W))


class _Level(nn.Module):
    """The res blocks (+ attention) of one resolution on one path."""

    def __init__(self, blocks: list[ResBlock], attention: list[Attention | None]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleList([a if a is not None else nn.Identity() for a in attention])


class UNet(nn.Module):
    """ADM-style UNet eps-network for images (see the module docstring for the layout and equations).

    Args:
        image_size: H = W of the inputs; divisible by 2**(len(channel_mult) - 1).
        in_channels: C of the images (1 grey, 3 RGB).
        base_channels: channels of the first level; level i has base_channels * channel_mult[i].
        channel_mult: one multiplier per resolution level.
        num_res_blocks: res blocks per level on the down path (one more on the up path).
        attention_resolutions: resolutions (in pixels, e.g. 16 for 16x16) that get self-attention; each
            must be one of image_size / 2**i, i < len(channel_mult). The middle block always has attention.
        num_heads: attention heads (used when ``head_channels`` is None).
        head_channels: channels per head (overrides ``num_heads``: heads = channels // head_channels).
        dropout: dropout probability inside the res blocks.
        learn_variance: output 2C channels, the second half the improved-DDPM range value v (unbounded).
        seed: parameter initialisation depends on this only.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int = 1,
        base_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16,),
        num_heads: int = 4,
        head_channels: int | None = None,
        dropout: float = 0.0,
        learn_variance: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = _validate(
            image_size, in_channels, base_channels, channel_mult, num_res_blocks, attention_resolutions,
            num_heads, head_channels, dropout, learn_variance, seed)
        # the checked values (numpy ints become Python ints, the tuples tuples)
        (image_size, in_channels, base_channels, channel_mult, num_res_blocks, attention_resolutions, num_heads,
         head_channels, seed) = (self.config[k] for k in ("image_size", "in_channels", "base_channels", "channel_mult",
                                                          "num_res_blocks", "attention_resolutions", "num_heads",
                                                          "head_channels", "seed"))
        self.image_size, self.in_channels, self.learn_variance = image_size, in_channels, learn_variance
        self.base_channels = base_channels
        emb = 4 * base_channels

        def heads(ch: int) -> int:
            return ch // head_channels if head_channels is not None else num_heads

        def level(n: int, ins: list[int], out: int, attn: bool) -> _Level:
            return _Level([ResBlock(i, out, emb, dropout) for i in ins[:n]],
                          [Attention(out, heads(out)) if attn else None for _ in range(n)])

        with torch.random.fork_rng(devices=[]):  # parameter init depends on ``seed`` only
            torch.manual_seed(seed)
            self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
            self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
            ch, skips, res = base_channels, [base_channels], image_size
            self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
            for i, mult in enumerate(channel_mult):
                out = base_channels * mult
                self.down.append(level(num_res_blocks, [ch] + [out] * num_res_blocks, out, res in attention_resolutions))
                ch = out
                skips += [ch] * num_res_blocks
                if i < len(channel_mult) - 1:
                    self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                    skips.append(ch)
                    res //= 2
            self.mid1 = ResBlock(ch, ch, emb, dropout)
            self.mid_attn = Attention(ch, heads(ch))
            self.mid2 = ResBlock(ch, ch, emb, dropout)
            self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
            for i, mult in reversed(list(enumerate(channel_mult))):
                out = base_channels * mult
                ins = [(ch if j == 0 else out) + skips.pop() for j in range(num_res_blocks + 1)]
                self.up.append(level(num_res_blocks + 1, ins, out, res in attention_resolutions))
                ch = out
                if i > 0:
                    self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
                    res *= 2
            self.out_norm = _norm(ch)
            self.out_conv = _zero(nn.Conv2d(ch, in_channels * (2 if learn_variance else 1), 3, padding=1))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "UNet":
        """Rebuild a UNet from its ``config`` dict (e.g. read from a checkpoint); unknown keys are refused."""
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict of UNet arguments, got {type(config).__name__}")
        allowed = ("image_size", "in_channels", "base_channels", "channel_mult", "num_res_blocks",
                   "attention_resolutions", "num_heads", "head_channels", "dropout", "learn_variance", "seed")
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown}; allowed: {list(allowed)}")
        return cls(**config)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """SiLU(MLP(sinusoid(t))) [B, 4 base_channels], the input of every res block's scale-shift."""
        return F.silu(self.time_mlp(timestep_embedding(t, self.base_channels)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> Prediction:
        """x_t: [B, C, H, W] float; t: [B] int steps. Returns Prediction(eps, v) in x_t's dtype."""
        C, S = self.in_channels, self.image_size
        if x_t.dim() != 4 or x_t.shape[1] != C or x_t.shape[2] != S or x_t.shape[3] != S:
            raise ValueError(f"x_t: expected shape [B, {C}, {S}, {S}], got {tuple(x_t.shape)}")
        if t.shape != (x_t.shape[0],) or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"t: expected an integer tensor of shape [{x_t.shape[0]}], got {t.dtype} {tuple(t.shape)}")
        emb = self.time_embedding(t)
        h = self.input_conv(x_t)
        skips = [h]
        for i, lvl in enumerate(self.down):
            for block, attn in zip(lvl.blocks, lvl.attention):
                h = attn(block(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, lvl in enumerate(self.up):
            for block, attn in zip(lvl.blocks, lvl.attention):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out_conv(F.silu(self.out_norm(h))).to(x_t.dtype)
        if not self.learn_variance:
            return Prediction(eps=out)
        eps, v = out.split(C, dim=1)
        return Prediction(eps=eps, v=v)


def _validate(image_size, in_channels, base_channels, channel_mult, num_res_blocks, attention_resolutions,
              num_heads, head_channels, dropout, learn_variance, seed) -> dict[str, Any]:
    """Check every constructor argument; return them as the model's config (ints as Python ints,
    channel_mult and attention_resolutions as int tuples, dropout as a float)."""
    image_size, in_channels, base_channels, num_res_blocks, num_heads = (
        check_int(name, val, low=1) for name, val in (
            ("image_size", image_size), ("in_channels", in_channels), ("base_channels", base_channels),
            ("num_res_blocks", num_res_blocks), ("num_heads", num_heads)))
    head_channels = check_optional_int("head_channels", head_channels, low=1)
    seed = check_int("seed", seed)
    check_bool("learn_variance", learn_variance)
    dropout = check_range("dropout", dropout, 0, 1, high_open=True, noun="a probability")
    channel_mult = tuple(check_ints("channel_mult", channel_mult, low=1, nonempty=True))
    factor = 2 ** (len(channel_mult) - 1)
    if image_size % factor:
        raise ValueError(f"image_size: {image_size} is not divisible by 2**(len(channel_mult) - 1) = {factor} "
                         f"(channel_mult={channel_mult} downsamples {len(channel_mult) - 1} times)")
    reached = [image_size // 2**i for i in range(len(channel_mult))]
    attention_resolutions = tuple(check_ints("attention_resolutions", attention_resolutions))
    for r in attention_resolutions:
        if r not in reached:
            raise ValueError(f"attention_resolutions: resolution {r} is never reached; allowed: {reached} "
                             f"(image_size={image_size}, channel_mult={channel_mult})")
    attn_channels = [base_channels * m for m, r in zip(channel_mult, reached) if r in attention_resolutions]
    attn_channels.append(base_channels * channel_mult[-1])  # the middle block's attention
    for ch in attn_channels:
        if head_channels is not None and ch % head_channels:
            raise ValueError(f"head_channels: {head_channels} does not divide the {ch} channels of an attention "
                             f"block; allowed: a divisor of every attention block's channels {sorted(set(attn_channels))}")
        if head_channels is None and ch % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide the {ch} channels of an attention block; "
                             f"allowed: a divisor of every attention block's channels {sorted(set(attn_channels))}")
    return dict(image_size=image_size, in_channels=in_channels, base_channels=base_channels, channel_mult=channel_mult,
                num_res_blocks=num_res_blocks, attention_resolutions=attention_resolutions, num_heads=num_heads,
                head_channels=head_channels, dropout=dropout, learn_variance=learn_variance, seed=seed)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (trainable and frozen)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def unet_flops(model: nn.Module, image_size: int, in_channels: int | None = None) -> int:
    """FLOPs (2 per multiply-add) of one forward pass for one image of ``image_size`` x ``image_size``.

    Counts convolutions, linear layers (time MLP included) and the attention matmuls (Q K^T and A V:
    4 L^2 C per attention block over L = H W positions); norms, activations and additions are not counted.
    Measured with ``torch.utils.flop_counter.FlopCounterMode`` on a batch of one, so it works for any
    ``model(x, t)`` (a :class:`UNet` or a diffusers ``UNet2DModel``). ``in_channels`` defaults to the
    model's config (``model.config["in_channels"]`` or ``model.config.in_channels``).
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    image_size = check_int("image_size", image_size, low=1)
    if in_channels is None:
        config = getattr(model, "config", None)
        in_channels = config.get("in_channels") if isinstance(config, dict) else getattr(config, "in_channels", None)
        if in_channels is None:
            raise ValueError("in_channels: the model has no config with in_channels; pass in_channels explicitly")
    param = next(model.parameters())
    x = torch.zeros(1, in_channels, image_size, image_size, device=param.device, dtype=param.dtype)
    t = torch.zeros(1, dtype=torch.long, device=param.device)
    # CPU's fused attention kernel has no formula in FlopCounterMode: give it the generic SDPA one
    def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    training = model.training
    model.eval()  # no dropout draws: the global RNG is left alone (dropout does not change the FLOPs)
    try:
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.no_grad():
            model(x, t)
    finally:
        model.train(training)
    return int(counter.get_total_flops())
