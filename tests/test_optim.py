"""Optimisers and every scheduler: closed forms, the reference fixture, state round trips."""

import numpy as np
import pytest
import torch

from bah.train.optim import OPTIMIZERS, SCHEDULERS, create_optimizer, create_scheduler, optimizer_kwargs, scheduler_kwargs
from bah.train.options import parse_options

BASE = ["--dataset_path", "/tmp/d", "--output_root", "/tmp/r"]


def _model():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))


def _lrs(sched, opt, epochs, metrics=None):
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        sched.step(None if metrics is None else metrics[e])
    return np.array(out)


FIXTURE = {  # name -> (optimizer, scheduler, gamma, step, configured lr)
    "mystep_readme_effective": ("SGD", "MYSTEP", 0.9, 50, 0.008),
    "step_readme_effective": ("SGD", "STEP", 0.9, 50, 0.008),
    "mystep_readme_effective_adam": ("ADAM", "MYSTEP", 0.9, 50, 0.008),
    "mystep_default_config_effective": ("SGD", "MYSTEP", 0.1, 40, 0.001),
    "mystep_floor_demo_effective": ("SGD", "MYSTEP", 0.1, 20, 0.001),
    "step_floor_demo_effective": ("SGD", "STEP", 0.1, 20, 0.001),
}


@pytest.mark.parametrize("name", sorted(FIXTURE))
def test_compat_schedules_match_fixture(reference_dir, name):
    fx = np.load(reference_dir / "fixtures" / "schedulers.npz")
    optn, schn, gamma, step, lr = FIXTURE[name]
    o = parse_options(BASE + ["--compat", "--opt__name_optimizer", optn, "--opt__name_lr_scheduler", schn,
                              "--opt__gamma", str(gamma), "--opt__step_size", str(step), "--opt__lr", str(lr),
                              "--num_epochs", "120"])
    opt = create_optimizer(_model(), **optimizer_kwargs(o))
    assert opt.param_groups[0]["lr"] == fx[f"{name}_base_lr"] == 1e-3  # --opt__lr is ignored in compat
    np.testing.assert_allclose(_lrs(create_scheduler(opt, **scheduler_kwargs(o)), opt, 120), fx[f"{name}_lr"],
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["mystep_readme_nominal_0p008", "step_readme_nominal_0p008"])
def test_default_mode_uses_configured_lr(reference_dir, name):
    fx = np.load(reference_dir / "fixtures" / "schedulers.npz")
    sch = "MYSTEP" if name.startswith("mystep") else "STEP"
    o = parse_options(BASE + ["--opt__lr", "0.008", "--opt__name_lr_scheduler", sch, "--opt__gamma", "0.9",
                              "--opt__step_size", "50"])
    opt = create_optimizer(_model(), **optimizer_kwargs(o))
    np.testing.assert_allclose(_lrs(create_scheduler(opt, **scheduler_kwargs(o)), opt, 120), fx[f"{name}_lr"],
                               rtol=1e-12)


def _opt(lr=0.1):
    return torch.optim.SGD(_model().parameters(), lr=lr)


def test_closed_forms():
    e = np.arange(30)
    o = _opt()
    np.testing.assert_allclose(_lrs(create_scheduler(o, "MULTISTEP", milestones=[5, 12], gamma=0.5), o, 30),
                               0.1 * 0.5 ** ((e >= 5).astype(int) + (e >= 12)), rtol=1e-12)
    o = _opt()
    np.testing.assert_allclose(_lrs(create_scheduler(o, "COSINE", t_max=20, min_lr=0.001), o, 30),
                               0.001 + (0.1 - 0.001) * (1 + np.cos(np.pi * e / 20)) / 2, rtol=1e-12)
    o = _opt()
    np.testing.assert_allclose(_lrs(create_scheduler(o, "MYCOSINE", coef=0.5, max_epochs=30, min_lr=1e-3), o, 30),
                               np.maximum(0.05 * (1 + np.cos(e * np.pi / 30)), 1e-3), rtol=1e-12)
    o = _opt()
    np.testing.assert_allclose(_lrs(create_scheduler(o, "CONSTANT"), o, 5), [0.1] * 5)


def test_plateau_and_warmup():
    o = _opt()
    s = create_scheduler(o, "PLATEAU", factor=0.5, patience=2, min_lr=0.02)
    lrs = _lrs(s, o, 10, metrics=[1, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    with pytest.raises(ValueError):
        s.step()
    o = _opt()
    s = create_scheduler(o, "MYWARMUP", warmup_epochs=2, factor=0.5, patience=0)
    assert o.param_groups[0]["lr"] == pytest.approx(0.001)
    s.step_update(0.5)
    assert o.param_groups[0]["lr"] == pytest.approx(0.1 * (0.01 + 0.99 * 0.25))
    s.step(1.0)
    s.step(1.0)
    assert o.param_groups[0]["lr"] == pytest.approx(0.1)  # warm-up done
    s.step(0.5)  # first plateau observation: sets the best (warm-up metrics are ignored)
    assert o.param_groups[0]["lr"] == pytest.approx(0.1)
    s.step(0.4)  # worse, patience 0 -> halve
    assert o.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize("name", SCHEDULERS.list())
def test_scheduler_state_round_trip(name):
    o1 = _opt()
    s1 = create_scheduler(o1, name, step_size=2, milestones=[2], t_max=5, max_epochs=5, warmup_epochs=1, patience=0)
    for v in (1.0, 0.5, 0.4):
        s1.step(v)
    o2 = _opt()
    s2 = create_scheduler(o2, name, step_size=2, milestones=[2], t_max=5, max_epochs=5, warmup_epochs=1, patience=0)
    s2.load_state_dict(s1.state_dict())
    assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
    s1.step(0.3), s2.step(0.3)
    assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_optimizers_exclude_norm_and_bias_from_weight_decay(name):
    m = _model()
    opt = create_optimizer(m, name, lr=0.01, weight_decay=0.1)
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd[id(m[0].weight)] == 0.1 and wd[id(m[0].bias)] == 0.0 and wd[id(m[1].weight)] == 0.0
    compat = create_optimizer(m, name, lr=0.01, weight_decay=0.1, decay_norm_bias=True)
    assert len(compat.param_groups) == 1 and compat.param_groups[0]["weight_decay"] == 0.1
    loss = m(torch.randn(8, 4)).sum()
    loss.backward()
    opt.step()  # builds and steps
    m[0].weight.requires_grad_(False)
    assert all(p is not m[0].weight for g in create_optimizer(m, name, lr=0.01).param_groups for p in g["params"])
