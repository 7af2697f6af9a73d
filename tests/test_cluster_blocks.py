"""SLURM arrays: the block comes from the array, twin copies of a block share the videos
through lock files, each block records its configuration and its end, `bah status` reports
done / failed / missing per stage and the blocks that never finished."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from bah.cli import main
from bah.core.files import write_jsonl
from bah.core.layout import stage_dir, video_dir
from bah.core.lock import FileLock
from bah.core.shards import resolve_block, take_block

N = 6


def test_nblocks_alone_takes_the_block_from_the_array():
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert resolve_block(4, None, env) == (4, 3)
    assert resolve_block(4, None, {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1"}) == (4, 3)
    assert resolve_block(4, 1, env) == (4, 1)  # an explicit block wins
    assert resolve_block(4, None, {}) == (4, 0)
    with pytest.raises(ValueError, match="--array=0-3"):
        resolve_block(4, None, {"SLURM_ARRAY_TASK_ID": "4"})


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture()
def faces_done(tmp_path):
    """What `bah manifest` + `bah faces` leave for 8 videos (landmarks need only face_record.npz)."""
    out = tmp_path / "out"
    rows = []
    for k in range(8):
        vid = f"Videos/{100 + k}/Visite_1/{100 + k}_Question_1_Video.mp4"
        rows.append({"video_id": vid, "split": "train", "participant": str(100 + k), "question": 1, "label": k % 2,
                     "transcript": "", "path": str(tmp_path / vid), "n_frames": N, "avg_fps": 25.0,
                     "real_fps": 25.0, "duration": N / 25, "has_audio": False, "error": None})
        d = video_dir(out, vid)
        d.mkdir(parents=True)
        lm = np.random.default_rng(k).uniform(10, 40, (N, 68, 2)).astype(np.float32)
        np.savez(d / "face_record.npz", landmarks68=lm, detected=np.ones(N, bool))
    write_jsonl(out / "manifest.jsonl", rows)
    return out, [r["video_id"] for r in rows]


def _features(out, *extra):
    return main(["features", "--out", str(out), "--extractors", "landmarks", *extra])


def test_array_task_3_of_4_processes_block_3(faces_done, monkeypatch, capsys):
    out, ids = faces_done
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert _features(out, "--nblocks", "4") == 0
    done = [v for v in ids if (video_dir(out, v) / "landmarks.npy").is_file()]
    assert done == list(take_block(ids, 4, 3)) == ids[6:8]
    sdir = stage_dir(out, "features")
    assert (sdir / "config-block3.yaml").is_file() and not (sdir / "config.yaml").exists()
    rec = json.loads((stage_dir(out, "features/landmarks") / "blocks" / "block3.json").read_text())
    assert rec["state"] == "finished" and rec["nblocks"] == 4 and rec["counts"]["done"] == 2

    # bah status: block 3 finished, 6 videos missing; a block killed mid-way is reported as such
    (stage_dir(out, "features/landmarks") / "blocks" / "block1.json").write_text(json.dumps(
        {"block": "1", "nblocks": 4, "state": "running", "host": socket.gethostname(), "pid": _dead_pid(),
         "started": "2026-01-01T00:00:00"}))
    capsys.readouterr()
    assert main(["status", str(out)]) == 1
    text = capsys.readouterr().out
    assert "features/landmarks: 2 done, 0 failed, 6 missing" in text
    assert "block 3/4: finished" in text and "done 2" in text
    assert "block 1/4: STARTED, NEVER FINISHED" in text and "process gone" in text
    assert f"missing {ids[0]}" in text


def test_status_lists_failures_with_reasons_and_exits_0_when_complete(faces_done, capsys):
    out, ids = faces_done
    os.remove(video_dir(out, ids[2]) / "face_record.npz")
    assert _features(out) == 1  # one video failed: the exit status says so
    capsys.readouterr()
    assert main(["status", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "features/landmarks: 7 done, 1 failed, 0 missing" in text
    assert f"failed  {ids[2]}:" in text and "no face record" in text
    summary = json.loads(_status_json(out, capsys))
    assert list(summary["stages"][0]["failed"]) == [ids[2]] and summary["videos"] == 8
    np.savez(video_dir(out, ids[2]) / "face_record.npz", landmarks68=np.ones((N, 68, 2), np.float32))
    assert _features(out) == 0
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert main(["status", str(out / "nothing")]) == 2


def _status_json(out, capsys):
    capsys.readouterr()
    main(["status", str(out), "--json"])
    return capsys.readouterr().out


def test_features_before_faces_stops_once_naming_the_command(faces_done, capsys):
    out, ids = faces_done
    for v in ids:
        os.remove(video_dir(out, v) / "face_record.npz")
    assert _features(out) == 2
    err = capsys.readouterr().err
    assert err.count("bah faces --out") == 1 and "none of the 8 videos" in err
    assert not (stage_dir(out, "features/landmarks") / "status").exists()


def test_a_video_locked_by_a_live_twin_is_left_to_it_and_a_dead_owner_lock_is_broken(faces_done, capsys):
    out, ids = faces_done
    locks = stage_dir(out, "features/landmarks") / "locks"
    live = FileLock(locks / (ids[0] + ".lock"))
    assert live.try_acquire()  # this process: alive
    dead = locks / (ids[1] + ".lock")
    dead.parent.mkdir(parents=True)
    dead.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid()}))
    assert _features(out) == 0  # no failure for the twin's video
    assert "1 left to a twin copy" in capsys.readouterr().out
    assert not (video_dir(out, ids[0]) / "landmarks.npy").exists()
    assert (video_dir(out, ids[1]) / "landmarks.npy").is_file() and not dead.exists()
    assert not list(stage_dir(out, "features/landmarks").glob("failures-block*.jsonl")) or \
        not any(p.read_text().strip() for p in stage_dir(out, "features/landmarks").glob("failures-block*.jsonl"))
    live.release()
    assert not (locks / (ids[0] + ".lock")).exists()
    assert _features(out) == 0 and (video_dir(out, ids[0]) / "landmarks.npy").is_file()


def test_lock_is_exclusive_and_released_only_by_its_owner(tmp_path):
    a, b = FileLock(tmp_path / "v.lock"), FileLock(tmp_path / "v.lock")
    assert a.try_acquire() and not b.try_acquire()
    owner = json.loads((tmp_path / "v.lock").read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    b.release()  # never held: must not remove a's lock
    assert (tmp_path / "v.lock").exists()
    a.release()
    assert b.try_acquire()


def test_two_copies_of_one_block_share_the_work(tmp_path):
    out = tmp_path / "out"
    rows = []
    for k in range(40):
        vid = f"Videos/{k}/Visite_1/{k}.mp4"
        rows.append({"video_id": vid, "split": "train", "participant": str(k), "question": 1, "label": 0,
                     "transcript": "", "path": str(tmp_path / vid), "n_frames": N, "avg_fps": 25.0,
                     "real_fps": 25.0, "duration": N / 25, "has_audio": False, "error": None})
        d = video_dir(out, vid)
        d.mkdir(parents=True)
        np.savez(d / "face_record.npz", landmarks68=np.ones((N, 68, 2), np.float32))
    write_jsonl(out / "manifest.jsonl", rows)
    cmd = [sys.executable, "-m", "bah.cli", "features", "--out", str(out), "--extractors", "landmarks",
           "--nblocks", "1", "--process_block", "0"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    sdir = stage_dir(out, "features/landmarks")
    fails = [p for p in sdir.glob("failures-block*.jsonl") if p.read_text().strip()]
    assert not fails
    statuses = [json.loads(p.read_text())["status"] for p in (sdir / "status").rglob("*.json")]
    assert statuses == ["done"] * 40 and not list((sdir / "locks").rglob("*.lock"))
