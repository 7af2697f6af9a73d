"""DDP: torchrun with 2 CPU processes on gloo trains, gathers metrics, and only rank 0 writes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bah.train.dataset import write_synthetic_arrays

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
