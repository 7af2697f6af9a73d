"""Pre-emption: a kill at any instant of a checkpoint save leaves a resumable run; SIGTERM stops
training at a safe point with the requeue exit code and the same command continues to the
same result; a resume with changed options stops with a diff before anything is written."""
import json
import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch
import yaml

from bah.train import checkpoint, engine, preemption
from bah.train.checkpoint import load_checkpoint, save_checkpoint
from bah.train.cli import main
from bah.train.dataset import write_synthetic_arrays

SAVE_STEPS = ("written", "sidecar-both", "renamed", "done")


def _die_at(path, step):
    def die(name):
        if name == step:
            os._exit(137)  # as SIGKILL: no cleanup, no finally

    checkpoint._step = die
    save_checkpoint(path, {"epoch": 2, "w": torch.full((3,), 2.0)})
    os._exit(0)


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_kill_between_any_two_steps_of_a_save_leaves_a_loadable_checkpoint(tmp_path, step):
    path = tmp_path / "last.pth"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    child = multiprocessing.get_context("fork").Process(target=_die_at, args=(path, step))
    child.start()
    child.join()
    assert child.exitcode == 137
    ck = load_checkpoint(path)
    # the rename is the commit point: before it the previous checkpoint, after it the new one
    assert ck["epoch"] == (1 if step in ("written", "sidecar-both") else 2)
    assert torch.equal(ck["w"], torch.full((3,), float(ck["epoch"])))
    save_checkpoint(path, {"epoch": 3, "w": torch.ones(3)})  # the next save clears what the kill left
    assert load_checkpoint(path)["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth", "last.pth.sha256"]
    assert (tmp_path / "last.pth.sha256").read_text().count("\n") == 1


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    return write_synthetic_arrays(tmp_path_factory.mktemp("arrays"), {"train": [40, 70, 55, 33], "val": [50, 45],
                                                                      "test": [60, 38]}, {"vggish": 8}, seed=3)


def _argv(data, runs, *extra):
    return ["--dataset_path", str(data), "--output_root", str(runs), "--exp_id", "r", "--model_name", "can",
            "--modality", "vggish+EXPR_continuous_label", "--window_length", "16", "--hop_length", "8",
            "--train_batch_size", "4", "--num_workers", "0", "--num_epochs", "4", "--verbose", "False",
            "--save_plot", "False", "--opt__lr", "0.01", "--early_stopping", "0", *extra]


def _results(runs):
    run = runs / "BAH_DB" / "fold-0" / "id_r"
    perf = yaml.safe_load((run / "perf-test.yml").read_text())
    return (run / "metrics.csv").read_text().splitlines()[0], perf["metrics"], run


@pytest.mark.parametrize("where", ["between-steps", "end-of-epoch"])
def test_sigterm_then_same_command_equals_an_uninterrupted_run(arrays, tmp_path, monkeypatch, where):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # --resume defaults to auto inside a SLURM job
    assert main(_argv(arrays, tmp_path / "full")) == 0
    real = engine.train_one_epoch

    def signalled(model, optimizer, loader, device, epoch, *a, **kw):
        if epoch == 2 and where == "between-steps":
            os.kill(os.getpid(), signal.SIGTERM)
        out = real(model, optimizer, loader, device, epoch, *a, **kw)
        if epoch == 2 and where == "end-of-epoch":
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(engine, "train_one_epoch", signalled)
    cut = tmp_path / "cut"
    assert main(_argv(arrays, cut)) == preemption.REQUEUE_EXIT_CODE
    run = cut / "BAH_DB" / "fold-0" / "id_r"
    saved_epoch = load_checkpoint(run / "checkpoints" / "last.pth")["epoch"]
    assert saved_epoch == (1 if where == "between-steps" else 2)
    assert not (run / "passed.txt").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    monkeypatch.setattr(engine, "train_one_epoch", real)
    assert main(_argv(arrays, cut)) == 0  # the same command, re-submitted
    header_full, full, _ = _results(tmp_path / "full")
    header_cut, resumed, run = _results(cut)
    assert resumed == pytest.approx(full, abs=1e-6, nan_ok=True)
    a = np.genfromtxt(run / "metrics.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "full" / "BAH_DB" / "fold-0" / "id_r" / "metrics.csv", delimiter=",", names=True)
    assert len(a) == 4 and np.allclose(a["train_loss"], b["train_loss"], atol=1e-6)
    assert np.allclose(a["val_frame_avgf1"], b["val_frame_avgf1"], atol=1e-6)


def test_resume_with_a_changed_option_stops_with_a_diff_and_writes_nothing(arrays, tmp_path, monkeypatch, capsys):
    real = engine.train_one_epoch

    def killed(model, optimizer, loader, device, epoch, *a, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(model, optimizer, loader, device, epoch, *a, **kw)

    monkeypatch.setattr(engine, "train_one_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(arrays, tmp_path))
    monkeypatch.setattr(engine, "train_one_epoch", real)
    run = tmp_path / "BAH_DB" / "fold-0" / "id_r"
    before = {p: p.read_bytes() for p in (run / "config.yml", run / "cmd.sh", run / "checkpoints" / "last.pth")}
    capsys.readouterr()
    assert main(_argv(arrays, tmp_path, "--resume", "auto", "--opt__lr", "0.02", "--window_length", "32")) == 2
    err = capsys.readouterr().err
    assert "--opt__lr: 0.01 -> 0.02" in err and "--window_length: 16 -> 32" in err and "--num_epochs" in err
    assert {p: p.read_bytes() for p in before} == before
    # the documented set may change: more epochs, another worker count
    assert main(_argv(arrays, tmp_path, "--resume", "true", "--num_epochs", "3", "--eval_batch_size", "2",
                      "--face_cache", str(tmp_path / "faces"))) == 0
    assert yaml.safe_load((run / "config.yml").read_text())["num_epochs"] == 3


def test_resume_auto_starts_when_there_is_nothing_to_resume(arrays, tmp_path):
    assert main(_argv(arrays, tmp_path, "--resume", "auto", "--num_epochs", "1")) == 0
    assert (tmp_path / "BAH_DB" / "fold-0" / "id_r" / "passed.txt").exists()


def test_resume_flag_values_and_slurm_defaults(monkeypatch):
    assert [preemption.parse_resume(v) for v in ("True", "false", "AUTO", "1")] == [True, False, "auto", True]
    with pytest.raises(ValueError, match="auto"):
        preemption.parse_resume("maybe")
    for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    assert preemption.default_resume() is False and preemption.default_exp_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert preemption.default_resume() == "auto" and preemption.default_exp_id() == "slurm-77"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert preemption.default_exp_id() == "slurm-70_3"


@pytest.mark.slow
def test_ddp_sigterm_to_torchrun_then_same_command_equals_an_uninterrupted_run(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = write_synthetic_arrays(tmp_path / "d", {"train": [60, 70, 55, 63, 58, 66], "val": [50, 45],
                                                   "test": [60, 38, 41]}, {"vggish": 8}, seed=5)

    def cmd(runs):
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                str(root / "main.py"), *_argv(data, runs, "--num_epochs", "6", "--train_batch_size", "2")]

    flag = tmp_path / "preempted.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root), BAH_PREEMPTED_FILE=str(flag))
    env.pop("SLURM_JOB_ID", None)
    assert subprocess.run(cmd(tmp_path / "full"), env=env, capture_output=True, timeout=600).returncode == 0
    cut = tmp_path / "cut"
    last = cut / "BAH_DB" / "fold-0" / "id_r" / "checkpoints" / "last.pth"
    p = subprocess.Popen(cmd(cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not last.exists() and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)  # as SLURM does at the time limit: torchrun passes it to the workers
    err = p.communicate(timeout=300)[1]
    assert p.returncode != 0 and flag.is_file(), err[-3000:]
    assert json.loads(flag.read_text())["exit"] == preemption.REQUEUE_EXIT_CODE
    r = subprocess.run(cmd(cut) + ["--resume", "auto"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a = np.genfromtxt(cut / "BAH_DB" / "fold-0" / "id_r" / "metrics.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "full" / "BAH_DB" / "fold-0" / "id_r" / "metrics.csv", delimiter=",", names=True)
    assert len(a) == 6 and np.allclose(a["train_loss"], b["train_loss"], atol=1e-6)
    assert _results(cut)[1] == pytest.approx(_results(tmp_path / "full")[1], abs=1e-6, nan_ok=True)


def test_a_kill_after_the_early_stopping_epoch_resumes_to_the_test_only(arrays, tmp_path, monkeypatch):
    extra = ("--num_epochs", "20", "--early_stopping", "1", "--min_num_epochs", "2", "--opt__lr", "1e-9")
    assert main(_argv(arrays, tmp_path / "full", *extra)) == 0
    full = np.genfromtxt(tmp_path / "full" / "BAH_DB" / "fold-0" / "id_r" / "metrics.csv", delimiter=",", names=True)
    real = engine.predict

    def killed_at_test(*a, **kw):
        if kw.get("desc") == "test":
            raise KeyboardInterrupt  # after the last checkpoint, before the test
        return real(*a, **kw)

    monkeypatch.setattr(engine, "predict", killed_at_test)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(arrays, tmp_path / "cut", *extra))
    monkeypatch.setattr(engine, "predict", real)
    assert main(_argv(arrays, tmp_path / "cut", *extra, "--resume", "auto")) == 0
    cut = np.genfromtxt(tmp_path / "cut" / "BAH_DB" / "fold-0" / "id_r" / "metrics.csv", delimiter=",", names=True)
    assert len(full) < 20 and len(cut) == len(full)  # no epoch trained after the early stop
    assert _results(tmp_path / "cut")[1] == pytest.approx(_results(tmp_path / "full")[1], abs=1e-6, nan_ok=True)
