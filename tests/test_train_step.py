"""The training step: equal to the step the library had before it was made sync-free (golden numbers recorded
from that code on this CPU), determinism per (seed, step), exact resume, no host reads between log steps,
validation of steps at the boundary, the cuda_graph / compile options, and K models in lockstep."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import assert_same
import torch

from vsmlab.diffusion.config import (apply_overrides, build_data, build_loss, build_model, build_schedule,
                                     trainer_options, validate_config)
from vsmlab.diffusion.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "shapes-smoke.toml"
MIXTURE = ROOT / "configs" / "mixture-smoke.toml"

#: the golden cases: (config file, --set overrides; "-section.key" removes a key)
CASES: dict[str, tuple[Path, list[str]]] = {
    # UNet with dropout, VSM + discretized decoder, EMA ramp, loss-second-moment t, per-step rng, warm-up + cosine, clip
    "shapes_vsm": (SMOKE, []),
    # fixed variance, channels_last, uniform t, no dropout, no clipping, adam, no EMA, log every step
    "shapes_fixed": (SMOKE, ["-loss.rho", "-loss.decoder", "model.learn_variance=false", "loss.name=eps_mse",
                             "model.dropout=0.0", "train.channels_last=true", "train.timestep_sampler=uniform",
                             "train.clip=0.0", "train.optimizer=adam", "train.ema=0.0", "train.log_every=1",
                             "train.steps=6"]),
    # toy MLP, hybrid loss (gaussian decoder), loss-second-moment t past its warm-up (T = 10), adamw + decay
    "mixture_hybrid": (MIXTURE, ["model.learn_variance=true", "loss.name=hybrid", "diffusion.T=10",
                                 "train.timestep_sampler=loss_second_moment", "train.rng=per_step",
                                 "train.optimizer=adamw", "train.weight_decay=0.01", "train.clip=1.0",
                                 "train.steps=20", "train.log_every=4", "sample.steps=0"]),
    # the toy loop's sequential rng with EMA and adamw
    "mixture_sequential": (MIXTURE, ["train.optimizer=adamw", "train.steps=12", "train.log_every=3"]),
}


def make_trainer(case: str, **options) -> Trainer:
    path, overrides = CASES[case]
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for item in overrides:
        if item.startswith("-"):
            section, key = item[1:].split(".")
            del raw[section][key]
    cfg = validate_config(apply_overrides(raw, [o for o in overrides if not o.startswith("-")]))
    data = build_data(cfg)
    model = build_model(cfg, tuple(data.shape))
    return Trainer(model, data, build_schedule(cfg), loss_fn=build_loss(cfg),
                   **{"device": "cpu", **trainer_options(cfg), **options})


def checksum(tensors) -> list[float]:
    """[sum, sum |x|, sum x * w] over a list of tensors (float64; w a fixed ramp so permutations show)."""
    flat = torch.cat([t.detach().double().flatten() for t in tensors])
    w = torch.linspace(-1.0, 1.0, flat.numel(), dtype=torch.float64)
    return [float(flat.sum()), float(flat.abs().sum()), float((flat * w).sum())]


def record(trainer: Trainer) -> dict:
    """Per-step losses (every term, every step) and checksums of model, EMA, optimizer and sampler state."""
    steps = [rec.floats() for rec in trainer.run()]
    out = {"terms": [[s[k] for k in ("mse", "vb", "vsm", "total")] for s in steps],
           "model": checksum(trainer.model.parameters())}
    if trainer.ema is not None:
        out["ema"] = checksum(trainer.ema.state_dict().values())
    opt = trainer.optimizer.state_dict()["state"]
    out["optimizer"] = checksum([opt[i][k] for i in sorted(opt) for k in ("exp_avg", "exp_avg_sq")])
    sampler = trainer.timestep_sampler.state_dict()
    if "history" in sampler:
        out["sampler"] = checksum([sampler["history"], sampler["count"]])
    return out


#: recorded from the step before it was made sync-free (one torch thread, CPU): python tests/test_train_step.py
GOLDEN = {'shapes_vsm': {'terms': [[1.0003541707992554, 87.98943328857422, 0.010330261662602425, 89.0001220703125],
                          [0.9710477590560913, 0.5373733639717102, 0.002867356175556779, 1.5112884044647217],
                          [0.9696799516677856, 0.40166157484054565, 0.001981831854209304, 1.3733234405517578],
                          [0.9455115795135498, 0.5239592790603638, 0.005279390141367912, 1.474750280380249],
                          [0.9451426267623901, 0.9401355981826782, 0.014676750637590885, 1.899954915046692],
                          [0.9186740517616272, 0.36635518074035645, 0.005356119945645332, 1.290385365486145],
                          [0.9192027449607849, 0.5024985074996948, 0.004473966080695391, 1.4261751174926758],
                          [0.8964722156524658, 78.85259246826172, 0.012238960713148117, 79.76129150390625]],
                'model': [269.01601331220104, 2098.582872066614, -2.734127399177277],
                'ema': [269.09744851583537, 2097.5880855076007, -2.797561008360975],
                'optimizer': [-0.34105590949664244, 5.387579684812133, -0.32923371700324444],
                'sampler': [1485.8983714580536, 1485.8983714580536, 1023.7811193150474]},
 'shapes_fixed': {'terms': [[0.9896190166473389, 0.0, 0.0, 0.9896190166473389],
                            [1.0023623704910278, 0.0, 0.0, 1.0023623704910278],
                            [0.949444055557251, 0.0, 0.0, 0.949444055557251],
                            [0.9486960172653198, 0.0, 0.0, 0.9486960172653198],
                            [0.9394462704658508, 0.0, 0.0, 0.9394462704658508],
                            [0.9273570775985718, 0.0, 0.0, 0.9273570775985718]],
                  'model': [269.99559217337446, 2092.5522911632925, -2.8976490324485766],
                  'optimizer': [0.16408669146364707, 9.07929575678556, 0.16929378321323074]},
 'mixture_hybrid': {'terms': [[1.0291082859039307, 0.21493321657180786, 0.0, 1.2440414428710938],
                              [0.8853097558021545, 0.011274503543972969, 0.0, 0.8965843319892883],
                              [1.3005026578903198, 0.5029716491699219, 0.0, 1.8034743070602417],
                              [0.9379757046699524, 0.15976518392562866, 0.0, 1.097740888595581],
                              [1.3012511730194092, 0.15537399053573608, 0.0, 1.45662522315979],
                              [1.037655234336853, 0.012356564402580261, 0.0, 1.0500117540359497],
                              [0.9154829978942871, 0.3566950857639313, 0.0, 1.2721779346466064],
                              [0.9862686395645142, 0.3018702268600464, 0.0, 1.2881388664245605],
                              [0.8278384804725647, -0.12058200687170029, 0.0, 0.7072564363479614],
                              [0.7462783455848694, 0.03280562907457352, 0.0, 0.7790839672088623],
                              [0.7390598654747009, -0.15061761438846588, 0.0, 0.5884422063827515],
                              [0.7009961605072021, -0.025698121637105942, 0.0, 0.6752979755401611],
                              [0.6559688448905945, 0.0400630421936512, 0.0, 0.6960318684577942],
                              [0.951831579208374, 0.3909154236316681, 0.0, 1.3427469730377197],
                              [0.8562911748886108, 0.12619873881340027, 0.0, 0.982489824295044],
                              [0.8365533351898193, 0.23160351812839508, 0.0, 1.0681568384170532],
                              [0.9865601658821106, 0.028873741626739502, 0.0, 1.0154337882995605],
                              [0.6555662751197815, -0.13015547394752502, 0.0, 0.5254107117652893],
                              [0.8484700918197632, 0.008391812443733215, 0.0, 0.8568618297576904],
                              [0.8406356573104858, 0.0677526593208313, 0.0, 0.9083881974220276]],
                    'model': [78.79023777411203, 543.098518984596, 57.002233408639064],
                    'ema': [78.8806413942616, 542.6922560501148, 56.912885918993766],
                    'optimizer': [-1.2073508773859438, 10.926754281644026, 0.7221038141723665],
                    'sampler': [1355.2786279795691, 1399.1883340952918, 1156.4364084126942]},
 'mixture_sequential': {'terms': [[0.6599365472793579, 0.0, 0.0, 0.6599365472793579],
                                  [1.1867140531539917, 0.0, 0.0, 1.1867140531539917],
                                  [1.0455437898635864, 0.0, 0.0, 1.0455437898635864],
                                  [0.7869706749916077, 0.0, 0.0, 0.7869706749916077],
                                  [1.0501275062561035, 0.0, 0.0, 1.0501275062561035],
                                  [0.3924114406108856, 0.0, 0.0, 0.3924114406108856],
                                  [0.645494818687439, 0.0, 0.0, 0.645494818687439],
                                  [0.992561936378479, 0.0, 0.0, 0.992561936378479],
                                  [0.7135805487632751, 0.0, 0.0, 0.7135805487632751],
                                  [0.8535489439964294, 0.0, 0.0, 0.8535489439964294],
                                  [0.4702456295490265, 0.0, 0.0, 0.4702456295490265],
                                  [0.5155460238456726, 0.0, 0.0, 0.5155460238456726]],
                        'model': [86.8988128027122, 537.0890457935457, 58.51027641023166],
                        'ema': [86.47727739271795, 536.9188571660707, 58.35683466486999],
                        'optimizer': [-0.976297908774071, 23.691844837491132, 0.5396135837153766]}}




# ------------------------------------------------------------------------------ equal to the recorded step
@pytest.mark.parametrize("case", list(CASES))
def test_step_equals_the_step_before_the_change(case: str) -> None:
    """Losses of every step and checksums of the final state match the golden numbers to float tolerance (the
    goldens were recorded with one torch thread; on one thread the new step reproduces them bit for bit)."""
    got, want = record(make_trainer(case)), GOLDEN[case]
    assert set(got) == set(want)
    torch.testing.assert_close(torch.tensor(got["terms"], dtype=torch.float64),
                               torch.tensor(want["terms"], dtype=torch.float64), rtol=2e-5, atol=1e-6)
    for key in set(want) - {"terms"}:
        scale = abs(want[key][1])  # sum |x|: 1e-5 of the tensors' mass (thread counts change reduction order)
        torch.testing.assert_close(torch.tensor(got[key]), torch.tensor(want[key]), rtol=0, atol=1e-5 * scale + 1e-9,
                                   msg=lambda m: f"{case} {key}: {m}")


def test_per_step_draws_equal_fresh_generators_keyed_by_seed_and_step() -> None:
    """The persistent, re-seeded generators draw what fresh generators seeded with step_key(seed, step) draw
    (indices, then t, then eps), in any order of steps, also with the data set resident on the device."""
    from vsmlab.diffusion.training import step_key

    a, b = make_trainer("shapes_vsm", seed=7), make_trainer("shapes_vsm", seed=7)
    assert a.data.dtype == torch.uint8 and a.data.device == a.device  # resident, still 8-bit
    for s in (5, 1, 3):
        g = torch.Generator().manual_seed(step_key(7, s))
        idx = torch.randint(0, a.data.shape[0], (a.batch_size,), generator=g)
        t = torch.multinomial(torch.full((a.schedule.num_steps,), 1 / a.schedule.num_steps, dtype=torch.float64),
                              a.batch_size, replacement=True, generator=g)  # uniform until the history fills
        eps = torch.randn((a.batch_size, *a.data.shape[1:]), generator=g)
        x0, t1, e1, w1 = a._batch(s)
        torch.testing.assert_close(x0, a.data[idx].float() / 127.5 - 1.0, rtol=0, atol=0)
        assert torch.equal(t1, t) and torch.equal(e1, eps) and torch.equal(w1, torch.ones(a.batch_size))
    for s in (2, 6, 2):
        for x, y in zip(a._batch(s), b._batch(s)):
            assert torch.equal(x, y)
    assert not torch.equal(a._batch(2)[2], make_trainer("shapes_vsm", seed=8)._batch(2)[2])


def test_resumed_per_step_run_equals_the_uninterrupted_run() -> None:
    full = make_trainer("shapes_vsm")
    list(full.run())
    first = make_trainer("shapes_vsm")
    for rec in first.run():
        if rec.step == 3:
            break
    torch.manual_seed(4321)  # the global generator in between must not matter
    second = make_trainer("shapes_vsm")
    second.load_state_dict(first.state_dict())
    list(second.run())
    assert_same(full.state_dict(), second.state_dict())


# ------------------------------------------------------------------------------------ no host reads
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


@pytest.fixture
def host_reads(monkeypatch):
    """A list that collects (file name, method) of every host read of a tensor made directly by the code of a
    training step: vsmlab.core, vsmlab.diffusion and the UNet (the toy MLP reads t once per call, by design)."""
    import sys

    package = Path(__import__("vsmlab").__file__).parent
    scope = (str(package / "core"), str(package / "diffusion"), str(package / "nets" / "unet.py"))
    seen: list[tuple[str, str]] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, __original=original, __name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(scope):
                seen.append((Path(caller).name, __name))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return seen


@pytest.mark.parametrize("case", ["shapes_vsm", "mixture_hybrid"])
def test_no_host_read_between_log_steps(case: str, host_reads) -> None:
    """Between read steps the step reads nothing on the host (on a GPU: no synchronisation); the records then
    hold 0-d tensors. Only the read steps (every log_every, and the last) read, and only in training.py."""
    trainer = make_trainer(case, log_every=4)
    host_reads.clear()  # building the data and the schedule validates them on the host
    by_step = {}
    for rec in trainer.run():
        by_step[rec.step] = list(host_reads)
        host_reads.clear()
    reads = {s for s, r in by_step.items() if r}
    assert reads == {s for s in by_step if s % 4 == 0 or s == trainer.steps}, by_step
    assert {f for r in by_step.values() for f, _ in r} == {"training.py"}


def test_losses_check_their_steps_once(host_reads) -> None:
    """Each loss reads t's range once (it was 3 / 11 / 14 reads), none inside assume_valid_steps."""
    from vsmlab.core.schedules import assume_valid_steps, cosine
    from vsmlab.diffusion.losses import eps_mse_loss, make_loss
    from vsmlab.nets.mlp import MLP

    schedule, x0, eps = cosine(50), torch.randn(8, 2), torch.randn(8, 2)
    t = torch.arange(8) * 6
    fixed, learned = MLP(2, width=8, depth=1), MLP(2, width=8, depth=1, learn_variance=True)
    for model, loss in ((fixed, eps_mse_loss), (learned, make_loss("hybrid")), (learned, make_loss("vsm", rho=0.1))):
        host_reads.clear()
        loss(model, x0, t, eps, schedule)
        assert host_reads == [("schedules.py", "tolist")]
        host_reads.clear()
        with assume_valid_steps():
            loss(model, x0, t, eps, schedule)
        assert host_reads == []


def test_bad_steps_are_still_refused_by_name() -> None:
    from vsmlab.core.schedules import assume_valid_steps, check_t, cosine
    from vsmlab.diffusion.losses import eps_mse_loss, make_loss
    from vsmlab.diffusion.variance import vb_bits
    from vsmlab.nets.mlp import MLP

    schedule, x0, eps = cosine(50), torch.randn(4, 2), torch.randn(4, 2)
    bad = torch.tensor([0, 3, 50, 1])
    fixed, learned = MLP(2, width=8, depth=1), MLP(2, width=8, depth=1, learn_variance=True)
    for loss, model in ((eps_mse_loss, fixed), (make_loss("vsm"), learned)):
        with pytest.raises(ValueError, match=r"t: step 50 is out of range; allowed 0\.\.49"):
            loss(model, x0, bad, eps, schedule)
        with pytest.raises(ValueError, match=r"t: step -2 is out of range"):
            loss(model, x0, torch.tensor([0, -2, 1, 1]), eps, schedule)
    with pytest.raises(ValueError, match=r"t: step 50 is out of range"):
        vb_bits(x0, x0, bad, eps, eps, schedule)
    for method, args in ((schedule.noise, (x0, bad, eps)), (schedule.posterior_mean, (x0, x0, bad)),
                         (schedule.reverse_mean, (x0, bad, eps)), (schedule.x0_from_eps, (x0, bad, eps)),
                         (schedule.eps_from_x0, (x0, bad, x0)), (schedule.learned_log_variance, (x0, bad))):
        with pytest.raises(ValueError, match=r"t: step 50 is out of range"):
            method(*args)
    with assume_valid_steps():  # values trusted, dtype and shape still checked
        with pytest.raises(TypeError, match="t: expected an integer tensor"):
            schedule.noise(x0, torch.zeros(4), eps)
        with pytest.raises(ValueError, match=r"t: expected 4 steps"):
            schedule.noise(x0, torch.zeros(3, dtype=torch.long), eps)
        assert check_t(torch.tensor([7]), 5).tolist() == [7]  # not read: the caller vouches for the range
    with pytest.raises(ValueError, match="t: step 7 is out of range"):
        check_t(torch.tensor([7]), 5)  # the scope ended
    assert check_t(torch.tensor([7]), 5, validate=False).tolist() == [7]


# ------------------------------------------------------------------------------------ pieces of the step
def test_second_moment_update_does_not_use_bincount(monkeypatch) -> None:
    from vsmlab.diffusion.timesteps import LossSecondMomentSampler

    def refuse(*args, **kwargs):
        raise AssertionError("torch.bincount reads the maximum on the host")

    monkeypatch.setattr(torch, "bincount", refuse)
    s = LossSecondMomentSampler(4, history_per_term=3)
    s.update(torch.tensor([0, 1, 0, 0, 2, 3, 0, 0, 1, 1, 2, 2, 3, 3]),
             torch.tensor([9.0, 1, 9, 1, 2, 3, 2, 3, 1, 1, 2, 2, 3, 3]))
    assert s.count.tolist() == [5, 3, 3, 3]
    assert sorted(s.state_dict()["history"][0].tolist()) == [1.0, 2.0, 3.0]


def test_ema_with_a_tensor_weight_equals_the_float_weight() -> None:
    from vsmlab.diffusion.training import EMA
    from vsmlab.nets.mlp import MLP

    model = MLP(1, width=8, depth=1, seed=0)
    a, b = EMA(model, 0.99), EMA(model, 0.99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    a.update(model, 7)
    b.update(model, None, torch.tensor(1.0 - a.decay_at(7)))
    assert_same(a.state_dict(), b.state_dict())
    moved = MLP(1, width=8, depth=1, seed=1)  # another model: the cache follows it
    a.update(moved, 7)
    assert not torch.equal(a.state_dict()["out.weight"], b.state_dict()["out.weight"])


def test_optimizer_state_keeps_this_runs_implementation_flags() -> None:
    from vsmlab.diffusion.optim import load_optimizer_state

    trainer = make_trainer("mixture_hybrid", steps=3)
    list(trainer.run())
    state = trainer.state_dict()
    foreign = {**state["optimizer"], "param_groups": [{**g, "fused": True, "capturable": True, "lr": torch.tensor(0.5)}
                                                      for g in state["optimizer"]["param_groups"]]}
    other = make_trainer("mixture_hybrid", steps=3)
    load_optimizer_state(other.optimizer, foreign)
    group = other.optimizer.param_groups[0]
    assert group["fused"] is None and group["capturable"] is False
    assert other.state_dict()["optimizer"]["param_groups"][0]["lr"] == 0.5


def test_graph_body_with_warm_up_and_restore_equals_the_eager_step() -> None:
    """What a CUDA graph replays, run eagerly on the CPU (vsmlab.diffusion.step_graph): warm-up runs of step 1
    followed by the restore leave no trace, and the body seeded per step (data generator, then the default
    generator for dropout) with the EMA weight from a tensor gives the eager step's weights, EMA, optimizer and
    sampler state bit for bit."""
    from vsmlab.diffusion.step_graph import StepGraph
    from vsmlab.diffusion.training import lr_at, step_key

    eager = make_trainer("shapes_vsm")
    list(eager.run())
    body = make_trainer("shapes_vsm")
    graph = StepGraph(body)
    body.model.train()

    def lr(step: int) -> float:
        return lr_at(step, body.lr, body.steps, body.lr_decay, body.warmup)

    before = make_trainer("shapes_vsm").state_dict()
    graph.prepare(1, lr(1))
    graph.warm_up(1)
    after = body.state_dict()
    for key in ("model", "ema", "timestep_sampler"):
        assert_same(before[key], after[key], key)
    assert body.optimizer.state and all(bool((v == 0).all()) for st in body.optimizer.state.values() for v in st.values())
    assert all(p.grad is None for p in body.model.parameters())
    for step in range(1, body.steps + 1):
        graph.prepare(step, lr(step))
        body._seed_step(step)
        torch.manual_seed(step_key(body.seed, step, 0))
        graph.body()
        body.step = step
    result = body.state_dict()
    for key in ("model", "ema", "optimizer", "timestep_sampler", "step"):
        assert_same(eager.state_dict()[key], result[key], key)


# ------------------------------------------------------------------------------------ options
def test_cuda_graph_on_the_cpu_is_refused_by_name(tmp_path, capsys) -> None:
    from vsmlab.cli import main
    from vsmlab.diffusion.config import ConfigError, load_config

    with pytest.raises(ValueError, match=r"cuda_graph: .*train\.cuda_graph.*needs a CUDA device; got device 'cpu'"):
        make_trainer("shapes_vsm", cuda_graph=True)
    with pytest.raises(ValueError, match=r"cuda_graph: expected a bool"):
        make_trainer("shapes_vsm", cuda_graph=1)
    assert load_config(SMOKE)["train"]["cuda_graph"] is False
    with pytest.raises(ConfigError, match=r"train\.cuda_graph = 'yes' is invalid; expected true or false"):
        load_config(SMOKE, ["train.cuda_graph='yes'"])
    code = main(["train", str(SMOKE), "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet",
                 "--set", "train.cuda_graph=true"])
    err = capsys.readouterr().err
    assert code == 2 and "cuda_graph" in err and "CUDA" in err, err
    assert not (tmp_path / "run" / "latest.pt").exists()


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one() -> None:
    """compile=True (Inductor on the CPU: builds C++ kernels, tens of seconds) with the new step."""
    eager, compiled = make_trainer("mixture_hybrid", steps=4), make_trainer("mixture_hybrid", steps=4, compile=True)
    a = [r.floats()["total"] for r in eager.run()]
    b = [r.floats()["total"] for r in compiled.run()]
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ K runs in lockstep
def lockstep_runs() -> dict:
    """Fixed and VSM x 2 seeds (UNet) and a toy run, of different lengths."""
    return {"fixed": make_trainer("shapes_fixed", steps=4), "vsm-seed0": make_trainer("shapes_vsm", steps=3),
            "vsm-seed1": make_trainer("shapes_vsm", steps=3, seed=1), "toy": make_trainer("mixture_hybrid")}


def test_lockstep_runs_equal_separate_runs() -> None:
    from vsmlab.diffusion.training import MultiTrainer, train_many

    separate = lockstep_runs()
    alone = {name: [r.floats() for r in tr.run()] for name, tr in separate.items()}
    together = lockstep_runs()
    order, records = [], {name: [] for name in together}
    for name, rec in train_many(together):
        order.append((name, rec.step))
        records[name].append(rec.floats())
    assert order[:4] == [("fixed", 1), ("vsm-seed0", 1), ("vsm-seed1", 1), ("toy", 1)]  # round-robin
    assert len(order) == 4 + 3 + 3 + 20 and order[-1] == ("toy", 20)
    for name, tr in together.items():
        assert records[name] == alone[name], name
        for key in ("model", "ema", "optimizer", "timestep_sampler", "step"):
            assert_same(separate[name].state_dict()[key], tr.state_dict()[key], f"{name}.{key}")
        assert not tr.model.training
    with pytest.raises(ValueError, match="errors"):
        MultiTrainer(lockstep_runs(), errors="ignore")
    with pytest.raises(ValueError, match="trainers"):
        MultiTrainer({})


def test_a_failing_run_is_named_and_the_others_finish() -> None:
    from vsmlab.diffusion.training import MultiTrainer, TrainingDiverged

    runs = lockstep_runs()
    runs["toy"].data[:] = float("nan")
    multi = MultiTrainer(runs, errors="collect")
    last = {}
    for name, rec in multi.run():
        last[name] = rec.step
    assert set(multi.failures) == {"toy"} and isinstance(multi.failures["toy"], TrainingDiverged)
    assert "at step 1 (checked steps 1-4)" in str(multi.failures["toy"])  # found at its first read (log_every 4)
    assert last == {"fixed": 4, "vsm-seed0": 3, "vsm-seed1": 3, "toy": 3}
    assert not runs["toy"].model.training
    runs = lockstep_runs()
    runs["toy"].data[:] = float("nan")
    with pytest.raises(TrainingDiverged):
        list(MultiTrainer(runs).run())


if __name__ == "__main__":  # prints the golden numbers of the current code (one torch thread)
    torch.set_num_threads(1)
    for name in CASES:
        print(f"    {name!r}: {record(make_trainer(name))!r},")
