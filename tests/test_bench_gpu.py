"""bench/gpu.py --tiny: the GPU benchmark runs end to end on a CPU, without PyAV/dlib/opensmile
(the GPU machine has none of them), writes its JSON and Markdown, and its correctness checks pass."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Run the script with the optional media/face packages made unimportable, as on the GPU machine.
RUNNER = ("import sys, runpy; sys.modules.update(av=None, dlib=None, opensmile=None); "
          "sys.argv = ['bench/gpu.py'] + sys.argv[1:]; runpy.run_path('bench/gpu.py', run_name='__main__')")


@pytest.mark.slow
def test_gpu_bench_tiny_runs_and_checks_pass(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", RUNNER, "--tiny", "--models", "jmt,lfan,can", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert {"meta", "original", "dataset", "correctness", "measurements", "goals", "elapsed_s"} <= set(res)
    assert "fatal" not in res
    checks = res["correctness"]["checks"]
    assert res["correctness"]["passed"] is True
    assert {(c["check"], c["model"], c["path"]) for c in checks} == {
        *(("logits fp32 vs cpu fp64", m, p) for m in ("jmt", "lfan", "can") for p in ("video", "vision")),
        ("checkpoint saved on device resumes on cpu", "jmt", "video")}
    assert all(c["max_abs_err"] <= c["tol"] for c in checks)
    rows = res["measurements"]
    sections = {(r["section"], r["path"]) for r in rows if r["status"] == "ok"}
    assert {("loader", "video"), ("loader", "vision"), ("backbone", ""), ("train_step", "video"),
            ("train_step", "vision"), ("train_e2e", "video"), ("train_e2e", "vision"), ("eval", "video"),
            ("eval", "vision")} <= sections
    failed = [r for r in rows if r["status"] == "error"]
    assert not failed, failed
    ev = [r for r in rows if r["section"] == "eval" and r["status"] == "ok"]
    assert all(r["frames"] == res["dataset"]["val_frames"] for r in ev)
    # the compile rows are skipped on --tiny, and say so
    assert any(r["status"] == "skipped" and "tiny" in r["error"] for r in rows)
    # operator counts per step, every model and path; the model reads nothing back from the
    # device: the only host reads are the loss and non-finite check at the end of the epoch (2 over 4 steps)
    ops = {(r["model"], r["path"], r["variant"].endswith("padded batch")): r for r in rows if r["section"] == "ops"}
    assert set(ops) == {(m, p, pad) for m in ("jmt", "lfan", "can") for p in ("video", "vision") for pad in (False, True)}
    for (m, p, pad), r in ops.items():
        assert r["status"] == "ok" and r["steps"] == 4 and r["host_reads_per_step"] == 0.5, r
        if pad:  # the masked BatchNorm / key-padding work only when frames are padded
            assert r["aten_ops_per_step"] > ops[(m, p, False)]["aten_ops_per_step"], (m, p)
    md = (tmp_path / "gpu-bench.md").read_text()
    assert "## Operators per training step" in md
    assert "| train, end to end | jmt | video |" in md and "21.3 win/s" in md and "## Correctness" in md
