"""The training step without host synchronisations (counted with torch.profiler on the CPU),
and --compile_model: the whole model compiled for the training steps."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from bah.models import create_model
from bah.train import engine
from bah.train.options import COMPILE_MODES, parse_options

SMALL = {"vision": [8, 8], "vggish": [8, 8], "bert": [8, 8]}
MODS = [("vision", 16), ("vggish", 12), ("bert", 10)]


def _model(name):
    torch.manual_seed(0)
    return create_model(name, MODS, compat=False, tcn_channels=SMALL, dropout=0.0, window_length=20)


def _batch(b=3, length=20, pad_from=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    if pad_from is not None:
        mask[-1, pad_from:] = False
    return {"inputs": {n: torch.randn(b, length, d, generator=g) for n, d in MODS}, "mask": mask,
            "full": pad_from is None, "target": torch.randint(0, 2, (b, length), generator=g),
            "video_id": [f"v{i}" for i in range(b)]}


def _host_reads(fn):
    """Reads of a tensor's value by the host (``.item()``, ``bool(t)``, ``float(t)``): on a GPU
    each one waits for the device to finish everything queued before it."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name == "aten::_local_scalar_dense")


@pytest.mark.parametrize("name", ["jmt", "mt", "lfan", "can"])
@pytest.mark.parametrize("padded", [True, False])
def test_a_training_step_reads_nothing_back_from_the_device(name, padded):
    m = _model(name).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    b = _batch(pad_from=12 if padded else None)
    assert (engine.model_mask(b) is None) is (not padded)

    def step():
        opt.zero_grad(set_to_none=True)
        out = m(b["inputs"], mask=engine.model_mask(b))
        engine.step(engine.frame_loss(out["logits"], b["target"], b["mask"]), opt)

    assert _host_reads(step) == 0


def test_train_one_epoch_reads_the_loss_only_at_log_points():
    m = _model("can")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    batches = [_batch(seed=s, pad_from=None if s % 2 else 9) for s in range(6)]
    # 6 steps, log_every 4: one read of (loss, first bad batch) at step 4 and one at the end
    reads = _host_reads(lambda: engine.train_one_epoch(m, opt, batches, torch.device("cpu"), 0, progress=False,
                                                       log_every=4))
    assert reads == 4


def test_compile_model_option():
    assert parse_options(["--dataset_path", "x"]).compile_model == "off"
    o = parse_options(["--dataset_path", "x", "--compile_model", "reduce-overhead"])
    assert o.compile_model == "reduce-overhead"
    with pytest.raises(SystemExit):
        parse_options(["--dataset_path", "x", "--compile_model", "fast"])
    assert COMPILE_MODES[0] == "off"
    m = _model("can")
    assert engine.compiled_for_training(m, "off") is m


def test_compiled_model_shares_parameters_and_matches_eager():
    m = _model("can").train()
    cm = engine.compiled_for_training(m, "default")
    assert dict(cm.named_parameters()).keys() == {f"_orig_mod.{k}" for k, _ in m.named_parameters()}
    b = _batch(pad_from=9)
    want = m(b["inputs"], mask=engine.model_mask(b))["logits"].detach()
    got = cm(b["inputs"], mask=engine.model_mask(b))["logits"]
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    assert m.fuse.weights.weight.grad is not None  # gradients land on the eager module's parameters
    assert m.state_dict().keys() == _model("can").state_dict().keys()  # checkpoints unchanged
