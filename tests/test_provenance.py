"""Provenance of a run (config.yml) and a cmd.sh that really reruns it; outputs get the
permissions the umask gives any new file (group-readable under the usual 022/027)."""
import os
import shutil
import socket
import stat
import subprocess

import numpy as np
import yaml

from bah.core import files
from bah.core.provenance import provenance
from bah.stages.faces.writer import FaceArrayWriter
from bah.train.cli import main
from bah.train.dataset import write_synthetic_arrays


def test_config_records_provenance_and_cmd_sh_reruns_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "991")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    monkeypatch.chdir(tmp_path)
    data = write_synthetic_arrays(tmp_path / "d", {"train": [30, 40], "val": [30], "test": [30]}, {"vggish": 4})
    argv = ["--dataset_path", str(data), "--output_root", "runs", "--exp_id", "p", "--model_name", "can",
            "--modality", "vggish+EXPR_continuous_label", "--num_workers", "0", "--num_epochs", "2",
            "--window_length", "16", "--hop_length", "8", "--verbose", "False", "--save_plot", "False"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "BAH_DB" / "fold-0" / "id_p"
    prov = yaml.safe_load((run / "config.yml").read_text())["provenance"]
    assert prov["host"] == socket.gethostname() and prov["slurm"] == {"job_id": "991", "array_task_id": "4"}
    assert prov["packages"]["torch"] and prov["packages"]["numpy"] == np.__version__ and "bah" in prov["packages"]
    assert prov["cwd"] == str(tmp_path)
    first = (run / "metrics.csv").read_text()

    # cmd.sh reruns the same command from the same folder: moved away, the run comes back identical
    shutil.move(run, tmp_path / "first")
    monkeypatch.chdir("/")
    r = subprocess.run(["bash", str(tmp_path / "first" / "cmd.sh")], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    again = (run / "metrics.csv").read_text()
    cols = first.splitlines()[0].split(",")
    keep = [i for i, c in enumerate(cols) if "seconds" not in c and "per_s" not in c]  # timings differ
    rows = [[[line.split(",")[i] for i in keep] for line in text.splitlines()] for text in (first, again)]
    assert rows[0] == rows[1]
    assert os.access(tmp_path / "first" / "cmd.sh", os.X_OK)


def test_provenance_has_no_slurm_outside_a_job(monkeypatch):
    for k in list(os.environ):
        if k.startswith("SLURM_"):
            monkeypatch.delenv(k)
    assert "slurm" not in provenance()


def test_outputs_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_UMASK", 0o027)
    files.write_json(tmp_path / "a.json", {"x": 1})
    files.save_npy(tmp_path / "b.npy", np.zeros(3, np.float32))
    with FaceArrayWriter(tmp_path / "video.npy", 2, 4) as w:
        w[0] = w[1] = np.zeros((4, 4, 3), np.uint8)
    for name in ("a.json", "b.npy", "video.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
