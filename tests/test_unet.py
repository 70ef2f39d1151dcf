"""The image UNet (vsmlab.nets.unet) and the adapter for outside models (vsmlab.nets.adapters)."""

from __future__ import annotations

import pytest
import torch

from vsmlab.core.estimators import jacobian, score_function
from vsmlab.core.prediction import Prediction
from vsmlab.core.schedules import linear
from vsmlab.diffusion.samplers import ddim
from vsmlab.nets import EpsAdapter, UNet, count_parameters, unet_flops

TINY = dict(image_size=8, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,), num_heads=2)


def tiny(**kw) -> UNet:
    return UNet(**{**TINY, **kw})


def randomise_output(model: UNet, seed: int = 0) -> UNet:
    """Give the zero-initialised output layers random weights so the net computes a non-trivial function."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.abs().max() == 0 and "norm" not in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def batch(model: UNet, n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    S, C = model.image_size, model.in_channels
    return torch.randn(n, C, S, S, generator=g), torch.randint(0, 1000, (n,), generator=g)


# ----------------------------------------------------------------------------- shapes and initialisation
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("learn_variance", [False, True])
def test_shapes_and_zero_initial_output(channels: int, learn_variance: bool) -> None:
    model = tiny(in_channels=channels, learn_variance=learn_variance)
    x, t = batch(model, 2)
    pred = model(x, t)
    assert isinstance(pred, Prediction)
    assert pred.eps.shape == x.shape and pred.eps.dtype == x.dtype
    assert torch.equal(pred.eps, torch.zeros_like(x))  # zero-initialised output conv
    if learn_variance:
        assert pred.v is not None and pred.v.shape == x.shape and torch.equal(pred.v, torch.zeros_like(x))
    else:
        assert pred.v is None


def test_variance_output_is_unbounded() -> None:
    """improved DDPM's v is raw (frac = (v + 1) / 2), not squashed by tanh: a bias of 5 gives v = 5."""
    model = tiny(in_channels=3, learn_variance=True)
    with torch.no_grad():
        model.out_conv.bias[3:] = 5.0
        model.out_conv.bias[:3] = -2.0
    pred = model(*batch(model, 2))
    assert torch.equal(pred.v, torch.full_like(pred.v, 5.0))
    assert torch.equal(pred.eps, torch.full_like(pred.eps, -2.0))


def test_init_depends_only_on_seed() -> None:
    torch.manual_seed(123)
    a = tiny(seed=4)
    state_after = torch.randn(3)
    torch.manual_seed(999)
    b = tiny(seed=4)
    c = tiny(seed=5)
    torch.manual_seed(123)
    assert torch.equal(torch.randn(3), state_after)  # construction does not consume the global RNG
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_config_round_trip() -> None:
    model = tiny(in_channels=3, learn_variance=True, dropout=0.1, head_channels=8, seed=3)
    again = UNet.from_config(model.config)
    assert again.config == model.config
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    # lists, as a TOML file or JSON gives them, rebuild the same net
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items()}
    assert UNet.from_config(as_lists).config == model.config
    again.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="config: unknown key.*'width'"):
        UNet.from_config({**model.config, "width": 3})
    with pytest.raises(TypeError, match="config"):
        UNet.from_config([1, 2])


@pytest.mark.parametrize("kwargs,match", [
    (dict(image_size=10, channel_mult=(1, 2, 2)), r"image_size: 10 is not divisible by 2\*\*\(len\(channel_mult\) - 1\) = 4"),
    (dict(image_size=0), r"image_size: expected an int >= 1, got 0"),
    (dict(image_size=8.0), r"image_size: expected an int >= 1, got 8.0"),
    (dict(in_channels=0), r"in_channels: expected an int >= 1, got 0"),
    (dict(base_channels=-4), r"base_channels: expected an int >= 1, got -4"),
    (dict(channel_mult=()), r"channel_mult: expected a non-empty sequence"),
    (dict(channel_mult=(1, 0)), r"channel_mult: .*got \(1, 0\)"),
    (dict(num_res_blocks=0), r"num_res_blocks: expected an int >= 1, got 0"),
    (dict(attention_resolutions=(16,)), r"attention_resolutions: resolution 16 is never reached; allowed: \[8, 4\]"),
    (dict(attention_resolutions=16), r"attention_resolutions: expected a sequence of ints, got 16"),
    (dict(num_heads=3), r"num_heads: 3 does not divide the 32 channels of an attention block; allowed: .*\[32\]"),
    (dict(head_channels=12), r"head_channels: 12 does not divide the \d+ channels"),
    (dict(head_channels=0), r"head_channels: expected an int >= 1 or None, got 0"),
    (dict(dropout=1.0), r"dropout: expected a probability in \[0, 1\), got 1.0"),
    (dict(learn_variance=1), r"learn_variance: expected a bool, got 1"),
    (dict(seed="0"), r"seed: expected an int, got '0'"),
])
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_bad_inputs() -> None:
    model = tiny()
    x, t = batch(model, 2)
    with pytest.raises(ValueError, match=r"x_t: expected shape \[B, 1, 8, 8\], got \(2, 3, 8, 8\)"):
        model(torch.zeros(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match=r"t: expected an integer tensor of shape \[2\]"):
        model(x, t.float())
    with pytest.raises(ValueError, match=r"t: expected an integer tensor of shape \[2\]"):
        model(x, t[:1])


# ----------------------------------------------------------------------------- FLOPs and parameters
def test_flops_hand_computed_two_level_case() -> None:
    """image 4, base 8, mult (1, 2), one res block, attention at 2x2 (and in the middle)."""
    model = UNet(4, 1, 8, (1, 2), 1, (2,), num_heads=2)

    def conv(side: int, cin: int, cout: int, k: int) -> int:  # output side x side
        return 2 * side * side * cin * cout * k * k

    def lin(rows: int, fin: int, fout: int) -> int:
        return 2 * rows * fin * fout

    def res(side: int, cin: int, cout: int) -> int:
        skip = conv(side, cin, cout, 1) if cin != cout else 0
        return conv(side, cin, cout, 3) + lin(1, 32, 2 * cout) + conv(side, cout, cout, 3) + skip

    def attn(side: int, c: int) -> int:
        L = side * side
        return lin(L, c, 3 * c) + 2 * (2 * L * L * c) + lin(L, c, c)  # qkv, Q K^T and A V, proj

    expected = (
        lin(1, 8, 32) + lin(1, 32, 32)                                  # time MLP
        + conv(4, 1, 8, 3)                                              # input conv
        + res(4, 8, 8) + conv(2, 8, 8, 3)                               # level 0 + stride-2 downsample
        + res(2, 8, 16) + attn(2, 16)                                   # level 1
        + res(2, 16, 16) + attn(2, 16) + res(2, 16, 16)                 # middle
        + res(2, 16 + 16, 16) + attn(2, 16) + res(2, 16 + 8, 16) + attn(2, 16) + conv(4, 16, 16, 3)  # up 1 + upsample
        + res(4, 16 + 8, 8) + res(4, 8 + 8, 8)                          # up 0
        + conv(4, 8, 1, 3)                                              # output conv
    )
    assert unet_flops(model, 4) == expected
    assert unet_flops(model, 4, in_channels=1) == expected
    dropout = UNet(4, 1, 8, (1, 2), 1, (2,), num_heads=2, dropout=0.5)  # dropout adds no FLOPs, draws nothing
    torch.manual_seed(0)
    assert unet_flops(dropout, 4) == expected and dropout.training
    after = torch.randn(2)
    torch.manual_seed(0)
    assert torch.equal(after, torch.randn(2))


def test_parameter_count_and_flops_grow_as_expected() -> None:
    a, b = tiny(base_channels=16), tiny(base_channels=32)
    assert count_parameters(a) == sum(p.numel() for p in a.parameters())
    # doubling the channels about quadruples the conv weights and FLOPs
    assert 3.5 < count_parameters(b) / count_parameters(a) < 4.1
    assert 3.5 < unet_flops(b, 8) / unet_flops(a, 8) < 4.1
    with pytest.raises(ValueError, match="image_size"):
        unet_flops(a, 0)
    with pytest.raises(TypeError, match="model"):
        count_parameters(lambda x: x)


# ----------------------------------------------------------------------------- training behaviour
def test_optimisation_reduces_eps_mse_and_gradients_reach_every_parameter() -> None:
    model = tiny(dropout=0.0)
    schedule = linear(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 1, 8, 8, generator=g).round() * 2 - 1
    t = torch.randint(0, 100, (8,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    x_t = schedule.noise(x0, t, eps)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses, zero_grads = [], []
    for _ in range(25):
        loss = (model(x_t, t).eps - eps).square().mean()
        opt.zero_grad()
        loss.backward()
        zero_grads.append({n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().max() > 0})
        opt.step()
        losses.append(loss.item())
    # step 0: the zero-initialised output conv blocks every gradient but its own
    assert zero_grads[0] == {n for n, _ in model.named_parameters()} - {"out_conv.weight", "out_conv.bias"}
    # the zero-initialised convs open one step at a time; from the third backward on every parameter learns
    assert zero_grads[2] == set() and zero_grads[-1] == set()
    assert abs(losses[0] - float(eps.square().mean())) < 1e-6  # initial output 0
    assert losses[-1] < 0.7 * losses[0]


def test_dropout_only_in_training_mode() -> None:
    model = randomise_output(tiny(dropout=0.5))
    x, t = batch(model)
    model.eval()
    assert torch.equal(model(x, t).eps, model(x, t).eps)
    model.train()
    assert not torch.equal(model(x, t).eps, model(x, t).eps)


def test_bf16_autocast_cpu() -> None:
    model = randomise_output(tiny(in_channels=3, learn_variance=True))
    x, t = batch(model)
    ref = model(x, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t)
        loss = out.eps.square().mean() + out.v.square().mean()
    loss.backward()
    assert out.eps.dtype == torch.float32 and out.v.dtype == torch.float32  # follows x_t's dtype
    scale = ref.eps.detach().abs().max().item()
    assert (out.eps - ref.eps).detach().abs().max().item() < 0.05 * scale
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_channels_last_matches_contiguous() -> None:
    model = randomise_output(tiny(in_channels=3))
    x, t = batch(model)
    ref = model(x, t).eps
    model_cl = model.to(memory_format=torch.channels_last)
    out = model_cl(x.contiguous(memory_format=torch.channels_last), t).eps
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_compiles_without_graph_breaks() -> None:
    """torch.compile traces the whole forward as one graph (eager backend: no C compiler needed)."""
    model = randomise_output(tiny())
    x, t = batch(model)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, t).eps, model(x, t).eps)


# ----------------------------------------------------------------------------- adapter for outside models
def test_adapter_wraps_a_lambda() -> None:
    x, t = torch.randn(2, 1, 4, 4), torch.tensor([3, 7])
    model = EpsAdapter(lambda x, t: 0.5 * x + t[:, None, None, None].float())
    pred = model(x, t)
    torch.testing.assert_close(pred.eps, 0.5 * x + torch.tensor([3.0, 7.0])[:, None, None, None])
    assert pred.v is None
    both = EpsAdapter(lambda x, t: (torch.cat([x, -x], dim=1),), split_variance=True)(x, t)
    assert torch.equal(both.eps, x) and torch.equal(both.v, -x)
    shifted = EpsAdapter(lambda x, t: x * t[:, None, None, None], timestep=lambda t: t.float() / 1000)(x, t)
    torch.testing.assert_close(shifted.eps, x * torch.tensor([0.003, 0.007])[:, None, None, None])


def test_adapter_errors() -> None:
    x, t = torch.randn(2, 1, 4, 4), torch.tensor([3, 7])
    with pytest.raises(TypeError, match="model: expected an nn.Module or a callable"):
        EpsAdapter(3)
    with pytest.raises(ValueError, match=r"model: expected an eps output of x_t's shape \(2, 1, 4, 4\), got \(2, 2, 4, 4\) "
                                         r"\(2C channels: pass split_variance=True\)"):
        EpsAdapter(lambda x, t: torch.cat([x, x], 1))(x, t)
    with pytest.raises(ValueError, match=r"split_variance=True expects an output of shape \(2, 2, 4, 4\)"):
        EpsAdapter(lambda x, t: x, split_variance=True)(x, t)
    with pytest.raises(TypeError, match="model: expected its output to be a tensor"):
        EpsAdapter(lambda x, t: "eps")(x, t)


def tiny_diffusers_unet(channels: int = 1, learned: bool = False):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=channels, out_channels=channels * (2 if learned else 1),
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attention_head_dim=8,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    ).eval()


def test_adapter_puts_a_diffusers_unet_behind_the_contract() -> None:
    unet = tiny_diffusers_unet(channels=3, learned=True)
    model = EpsAdapter(unet, split_variance=True)
    assert count_parameters(model) == count_parameters(unet)  # registered as a submodule
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 500])
    with torch.no_grad():
        pred, raw = model(x, t), unet(x, t).sample
    assert torch.equal(pred.eps, raw[:, :3]) and torch.equal(pred.v, raw[:, 3:])
    assert unet_flops(unet, 8) > 0


def test_lab_tools_run_on_a_diffusers_unet() -> None:
    unet = tiny_diffusers_unet()
    model = EpsAdapter(unet)
    schedule = linear(100)
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = ddim(model, schedule, x_T=x_T, num_steps=5)
    assert out.samples.shape == x_T.shape and torch.isfinite(out.samples).all()
    # Jacobian probe of the implied score at t = 50 equals the one of the raw diffusers call
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    J = jacobian(score_function(model, schedule, 50), x)
    sigma = float(schedule.sigma[50])
    J_ref = torch.autograd.functional.jacobian(lambda z: -unet(z, torch.tensor([50])).sample / sigma, x)
    torch.testing.assert_close(J, J_ref.reshape(1, 64, 64), rtol=1e-5, atol=1e-6)
