"""DDP: torchrun with 2 CPU processes on gloo trains, gathers metrics, and only rank 0 writes; with
gradual backbone release 2 gloo ranks equal 1 process with the same global batch.

The toy model has a frozen ``backbone`` released in two groups at epochs 1 and 2 by the trainer's
own ``release_backbone``; the trainer's ``wrap_ddp`` is rebuilt at each release, as in
``bah.train.trainer.train``. Each rank takes every other sample of a global batch of 4 and DDP
averages the ranks' gradients, which is the 1-process gradient of the whole batch, so the weights
agree to float32 rounding (stated tolerance: 1e-6 absolute). Without the rebuild, released
layers are never all-reduced and the ranks drift apart, which the last test shows.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from bah.train.dataset import write_synthetic_arrays
from bah.train.distributed import DistInfo
from bah.train.options import parse_options
from bah.train.trainer import release_backbone, wrap_ddp

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    data = write_synthetic_arrays(tmp_path / "d", {"train": [40, 70, 55, 33], "val": [50, 45], "test": [60, 38, 41]},
                                  {"vggish": 8, "bert": 12}, seed=2)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(ROOT / "main.py"), "--dataset_path", str(data), "--output_root", str(tmp_path / "runs"),
           "--exp_id", "ddp", "--model_name", "CAN", "--modality", "vggish+bert+EXPR_continuous_label",
           "--window_length", "32", "--hop_length", "16", "--train_batch_size", "2", "--num_workers", "0",
           "--num_epochs", "2", "--verbose", "False", "--save_plot", "False"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs" / "BAH_DB" / "fold-0" / "id_ddp"
    cfg = yaml.safe_load((run / "config.yml").read_text())
    assert cfg["world_size"] == 2
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    head = rows[0].split(",")
    first = dict(zip(head, rows[1].split(",")))
    assert int(first["train_windows"]) >= cfg["n_train_windows"]  # both ranks' windows counted
    perf = yaml.safe_load((run / "perf-test.yml").read_text())
    import pickle

    preds = pickle.load(open(run / "prediction-test.pkl", "rb"))
    assert len(preds) == 3  # videos split across ranks, gathered on rank 0
    assert (run / "passed.txt").exists() and perf["split"] == "test"
    assert len(list(run.glob("log*.txt"))) == 1

TOL = 1e-6
EPOCHS, STEPS, GLOBAL_BATCH = 3, 2, 4


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                            torch.nn.Tanh())
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.backbone(x))


def _train(rank: int, world: int, rewrap: bool) -> dict:
    torch.manual_seed(0)
    base = Toy()
    o = parse_options(["--dataset_path", "d", "--output_root", "r", "--opt__milestone", "1,2",
                       "--opt__release_count", "2", "--opt__weight_decay", "0"])
    opt = torch.optim.SGD([p for p in base.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    info = DistInfo(rank, world, rank, torch.device("cpu"))
    model, released = wrap_ddp(base, info), 0
    data = torch.Generator().manual_seed(1)
    for epoch in range(EPOCHS):
        now = release_backbone(base, opt, o, epoch, released)
        if now != released and rewrap:
            model = wrap_ddp(base, info)
        released = now
        for _ in range(STEPS):
            x = torch.randn(GLOBAL_BATCH, 4, generator=data)
            y = (x[:, 0] > 0).long()
            loss = torch.nn.functional.cross_entropy(model(x[rank::world]), y[rank::world])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert released == 2
    return {k: v.detach().clone() for k, v in base.state_dict().items()}


def _worker(rank, world, store, rewrap, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(_train(rank, world, rewrap), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _two_ranks(tmp_path, rewrap):
    mp.spawn(_worker, args=(2, tmp_path / f"store{rewrap}", rewrap, tmp_path / f"sd{rewrap}"), nprocs=2, join=True)
    return [torch.load(tmp_path / f"sd{rewrap}.{r}", weights_only=True) for r in (0, 1)]


def test_two_gloo_ranks_with_gradual_release_equal_one_process(tmp_path):
    one = _train(0, 1, rewrap=True)
    r0, r1 = _two_ranks(tmp_path, rewrap=True)
    for k in one:
        torch.testing.assert_close(r0[k], one[k], rtol=0, atol=TOL)
        torch.testing.assert_close(r1[k], one[k], rtol=0, atol=TOL)
    # the released backbone layers did train
    torch.manual_seed(0)
    start = Toy().state_dict()
    assert not torch.equal(one["backbone.0.weight"], start["backbone.0.weight"])


def test_without_a_new_wrapper_the_released_layers_drift_between_ranks(tmp_path):
    r0, r1 = _two_ranks(tmp_path, rewrap=False)
    assert torch.equal(r0["head.weight"], r1["head.weight"])  # registered at wrapping: all-reduced
    assert (r0["backbone.2.weight"] - r1["backbone.2.weight"]).abs().max() > 1e-3


def _train_can(rank: int, world: int) -> dict:
    """CAN (whose conv_c never gets a gradient) under the trainer's DDP wrapper, padded and
    unpadded batches alternating; eval mode, so BatchNorm uses running statistics and the ranks'
    halves of a batch add up to the whole batch."""
    from bah.models.factory import build_model, model_kwargs

    o = parse_options(["--dataset_path", "d", "--output_root", "r", "--model_name", "CAN",
                       "--modality", "vggish+bert+EXPR_continuous_label", "--window_length", "16"])
    torch.manual_seed(0)
    base = build_model(o.model_name, [("vggish", 8), ("bert", 12)], False, **model_kwargs(o)).eval()
    opt = torch.optim.SGD(base.parameters(), lr=0.1, momentum=0.9)
    model = wrap_ddp(base, DistInfo(rank, world, rank, torch.device("cpu")))
    g = torch.Generator().manual_seed(3)
    for step in range(4):
        x = {"vggish": torch.randn(4, 16, 8, generator=g), "bert": torch.randn(4, 16, 12, generator=g)}
        y = torch.randint(0, 2, (4, 16), generator=g)
        mask = torch.ones(4, 16, dtype=torch.bool)
        if step % 2:
            mask[1, 11:] = mask[3, 9:] = False
        logits = model({k: v[rank::world] for k, v in x.items()},
                       mask=mask[rank::world] if step % 2 else None)["logits"]
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[rank::world].flatten(), reduction="none")
        loss = torch.where(mask[rank::world].flatten(), ce, 0.0).sum() / mask.sum() * world
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert base.conv_c.weight.grad is None  # the unused parameter DDP had to find
    return {k: v.detach().clone() for k, v in base.state_dict().items()}


def _can_worker(rank, world, store, out):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(_train_can(rank, world), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_train_can_with_an_unused_parameter_as_one_process(tmp_path):
    one = _train_can(0, 1)
    mp.spawn(_can_worker, args=(2, tmp_path / "store", tmp_path / "sd"), nprocs=2, join=True)
    for r in (0, 1):
        got = torch.load(tmp_path / f"sd.{r}", weights_only=True)
        for k in one:
            torch.testing.assert_close(got[k], one[k], rtol=0, atol=TOL)
