"""The face stage end to end on small generated videos: outputs, resume, blocks, bad input."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bah.stages.faces.sample import set_rotation, write_video
from bah.stages.faces.settings import FaceConfig
from bah.stages.faces.stage import VideoJob, run_block
from bah.core.layout import video_dir
from bah.core.media import probe
from bah.core.shards import take_block
from bah.core.status import StageStatus

W, H, N = 320, 240, 24
CFG = FaceConfig(size=64, detect_downscale=1.0, detect_every=4)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    v = {
        "plain": write_video(d / "plain.mp4", N, width=W, height=H, face_px=100, talk=False),
        # spaces, quotes and non-ASCII in the name
        "odd": write_video(d / "Visite 1 'q' \"dq\" é-DESKTOP-x.mp4", N, width=W, height=H, face_px=100),
        "late": write_video(d / "late.mp4", N, width=W, height=H, face_px=100, face_frames=range(6, 18)),
        "noface": write_video(d / "noface.mp4", 10, width=W, height=H, face_frames=range(0)),
    }
    sideways = write_video(d / "sideways.mp4", N, width=W, height=H, face_px=100, stored_turns=3)
    v["rot"] = set_rotation(sideways, d / "rot.mp4", 90)
    return v


def _job(vid, path, n=None):
    return VideoJob(vid, Path(path), probe(path).n_frames if n is None else n, "train")


def _arrays(out, vid):
    d = video_dir(out, vid)
    return np.load(d / "video.npy"), dict(np.load(d / "face_record.npz"))


def test_aligns_every_frame_and_writes_the_record(videos, tmp_path):
    counts = run_block([_job("Videos/1/Visite_1/plain.mp4", videos["plain"])], tmp_path, CFG, progress=False)
    assert counts["done"] == 1 and counts["failed"] == 0
    faces, rec = _arrays(tmp_path, "Videos/1/Visite_1/plain.mp4")
    assert faces.shape == (N, 64, 64, 3) and faces.dtype == np.uint8
    assert rec["detected"].all() and rec["tracked"].sum() > N // 2  # the detector ran on few frames
    assert rec["landmarks68"].shape == (N, 68, 2) and rec["affine"].shape == (N, 2, 3)
    # alignment quality against the ground truth: the face moves by a known similarity T_k per frame,
    # so (aligner affine A_k) o T_k must be the same map for every frame; compare where it sends
    # the eye, nose and mouth points of the portrait
    from bah.stages.faces.alignment import five_points, transform_points
    from bah.stages.faces.sample import placement

    def portrait_to_crop(k):
        A, T = rec["affine"][k], placement(k, W, H, 25.0, 100)
        return np.hstack([A[:, :2] @ T[:, :2], (A[:, :2] @ T[:, 2] + A[:, 2])[:, None]])

    T0 = placement(0, W, H, 25.0, 100)
    pts = transform_points(np.linalg.inv(np.vstack([T0, [0, 0, 1]]))[:2], five_points(rec["landmarks68"][0]))
    ref = transform_points(portrait_to_crop(0), pts)
    err = np.array([np.linalg.norm(transform_points(portrait_to_crop(k), pts) - ref, axis=1) for k in range(N)])
    assert err.mean() < 1.0 and err.max() < 2.5, err.max(axis=0)
    st = json.loads((tmp_path / "stages/faces/status/Videos/1/Visite_1/plain.mp4.json").read_text())
    assert st["status"] == "done" and st["n_frames"] == N and "step_seconds" in st
    assert not list(video_dir(tmp_path, "Videos/1/Visite_1/plain.mp4").glob(".*.tmp"))


def test_odd_file_names_and_rotation(videos, tmp_path):
    vid = "Videos/2/Visite_1/Visite 1 'q' \"dq\" é-DESKTOP-x.mp4"
    jobs = [_job(vid, videos["odd"]), _job("Videos/3/Visite_1/rot.mp4", videos["rot"])]
    assert run_block(jobs, tmp_path, CFG, progress=False)["done"] == 2
    faces_rot, rec = _arrays(tmp_path, "Videos/3/Visite_1/rot.mp4")
    faces_odd, rec_odd = _arrays(tmp_path, vid)
    # rotation honoured: frames stored sideways are turned upright before detection, so the
    # faces and boxes match those of the same content recorded upright
    assert probe(videos["rot"]).rotation == 90
    assert rec["detected"].all() and np.abs(rec["box"] - rec_odd["box"]).max() < 4
    assert np.abs(faces_rot.astype(int) - faces_odd).mean() < 8


def test_leading_and_trailing_misses_are_filled_and_recorded(videos, tmp_path):
    vid = "Videos/4/Visite_1/late.mp4"
    run_block([_job(vid, videos["late"])], tmp_path, CFG, progress=False)
    faces, rec = _arrays(tmp_path, vid)
    first = int(np.argmax(rec["detected"]))
    assert 5 <= first <= 7 and not rec["detected"][:first].any()
    assert (rec["source"][:first] == first).all()  # back-filled with the first face
    np.testing.assert_array_equal(faces[0], faces[first])
    last = int(np.nonzero(rec["detected"])[0].max())
    assert last < N - 3 and (rec["source"][last + 1:] == last).all()  # then hold-last
    cfg = FaceConfig(size=64, detect_downscale=1.0, detect_every=4, fill_policy="compat")
    run_block([_job(vid, videos["late"])], tmp_path / "c", cfg, progress=False)
    faces_c, rec_c = _arrays(tmp_path / "c", vid)
    assert (rec_c["source"][:first] == -1).all() and not np.array_equal(faces_c[0], faces_c[first])


def test_bad_inputs_fail_alone_and_are_listed(videos, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(os.urandom(5000))
    # index at the front (faststart), then cut: the file opens and decodes part of the frames
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(videos["plain"]), "-c", "copy", "-movflags", "+faststart",
                    str(d / "whole.mp4")], check=True)
    data = (d / "whole.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    jobs = [
        VideoJob("V/empty.mp4", d / "empty.mp4", 10, "train"),
        VideoJob("V/garbage.mp4", d / "garbage.mp4", 10, "train"),
        VideoJob("V/missing.mp4", d / "missing.mp4", 10, "train"),
        VideoJob("V/zero.mp4", videos["plain"], 0, "train"),
        VideoJob("V/noface.mp4", videos["noface"], 10, "train"),
        VideoJob("V/manifest-error.mp4", videos["plain"], N, "train", error="decoding stopped after 3 frames"),
        _job("V/plain.mp4", videos["plain"]),
    ]
    counts = run_block(jobs, tmp_path, CFG, progress=False)
    assert counts["done"] == 1 and counts["failed"] == 6
    fails = {f["video_id"]: f["reason"] for f in StageStatus(tmp_path, "faces", "x").failures()}
    assert set(fails) == {j.video_id for j in jobs[:6]}
    assert "empty" in fails["V/empty.mp4"] and "garbage.mp4" in fails["V/garbage.mp4"]
    assert "not found" in fails["V/missing.mp4"] and "zero frames" in fails["V/zero.mp4"]
    assert "no face found" in fails["V/noface.mp4"] and "unreadable" in fails["V/manifest-error.mp4"]
    for j in jobs[:6]:  # nothing partial left behind
        vd = video_dir(tmp_path, j.video_id)
        assert not (vd / "video.npy").exists() and not (vd.exists() and any(vd.iterdir()))
    # a truncated file the manifest did not flag: what decodes is aligned, the rest conformed to N
    n_ok = probe(d / "truncated.mp4").n_frames
    assert 0 < n_ok < N
    run_block([VideoJob("V/truncated.mp4", d / "truncated.mp4", n_ok + 3, "train")], tmp_path, CFG, progress=False)
    st = json.loads((tmp_path / "stages/faces/status/V/truncated.mp4.json").read_text())
    assert st["status"] == "done" and st["decoded_frames"] == n_ok and st["n_frames"] == n_ok + 3


def test_variable_frame_rate(tmp_path):
    from bah.core.media import write_video
    from bah.stages.faces.sample import synthetic_frame

    path = tmp_path / "vfr.mp4"
    steps = [40 if k % 2 else 80 for k in range(20)]  # alternating 12.5 and 25 fps
    times = np.concatenate([[0], np.cumsum(steps[:-1])]) / 1000.0
    write_video(path, (synthetic_frame(k, W, H, face_px=100) for k in range(20)), 25, times=times, codec="mpeg4", clock=1000)
    info = probe(path)
    assert info.vfr and info.n_frames == 20
    assert run_block([_job("V/vfr.mp4", path)], tmp_path, CFG, progress=False)["done"] == 1
    faces, _ = _arrays(tmp_path, "V/vfr.mp4")
    assert len(faces) == 20  # one face per decoded frame, no resampling


def test_full_disk_removes_the_partial_file_and_says_so(videos, tmp_path, monkeypatch):
    import bah.stages.faces.writer as writer

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer.os, "posix_fallocate", full)
    counts = run_block([_job("V/plain.mp4", videos["plain"])], tmp_path, CFG, progress=False)
    assert counts["failed"] == 1
    st = json.loads((tmp_path / "stages/faces/status/V/plain.mp4.json").read_text())
    assert st["status"] == "failed" and "disk full" in st["reason"]
    assert not any(video_dir(tmp_path, "V/plain.mp4").iterdir())


def test_blocks_share_one_output_folder_and_resume_skips_done(videos, tmp_path):
    jobs = [_job(f"V/{k}.mp4", videos[k]) for k in ("plain", "late", "noface")]
    assert [len(take_block(jobs, 2, b)) for b in (0, 1)] == [2, 1]
    c0 = run_block(list(take_block(jobs, 2, 0)), tmp_path, CFG, block="0", progress=False)
    c1 = run_block(list(take_block(jobs, 2, 1)), tmp_path, CFG, block="1", progress=False)
    assert (c0["done"], c1["failed"]) == (2, 1)
    assert (tmp_path / "stages/faces/failures-block1.jsonl").exists()
    mtime = (video_dir(tmp_path, "V/plain.mp4") / "video.npy").stat().st_mtime_ns
    again = run_block(list(take_block(jobs, 2, 0)), tmp_path, CFG, block="0", progress=False)
    assert again["skipped"] == 2 and again["done"] == 0
    assert (video_dir(tmp_path, "V/plain.mp4") / "video.npy").stat().st_mtime_ns == mtime
    # a changed setting is a different config hash: the videos are redone
    other = FaceConfig(size=32, detect_downscale=1.0, detect_every=4)
    assert run_block(list(take_block(jobs, 2, 0)), tmp_path, other, block="0", progress=False)["done"] == 2
    assert run_block(list(take_block(jobs, 2, 0)), tmp_path, other, block="0", force=True, progress=False)["done"] == 2


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from bah.stages.faces import aligner as A
    from bah.stages.faces.settings import FaceConfig
    from bah.stages.faces.stage import VideoJob, run_block
    orig = A.FaceAligner.align_video
    def killing(self, frames, n, dest, jpeg_dir=None, on_frame=None):
        seen = [0]
        def hook(k):
            seen[0] += 1
            if dest.name == "second.mp4" and seen[0] == 10:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup runs: like a node going down
            on_frame(k)
        return orig(self, frames, n, dest, jpeg_dir, hook)
    A.FaceAligner.align_video = killing
    out, p1, p2, n1, n2 = sys.argv[1:]
    cfg = FaceConfig(size=64, detect_downscale=1.0, detect_every=4)
    run_block([VideoJob("V/first.mp4", Path(p1), int(n1)), VideoJob("V/second.mp4", Path(p2), int(n2))],
              Path(out), cfg, progress=False)
""")


def test_resume_after_a_killed_run_equals_an_uninterrupted_run(videos, tmp_path):
    jobs = [_job("V/first.mp4", videos["plain"]), _job("V/second.mp4", videos["late"])]
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(killed), str(jobs[0].path), str(jobs[1].path),
                           str(jobs[0].n_frames), str(jobs[1].n_frames)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    d2 = video_dir(killed, "V/second.mp4")
    assert (video_dir(killed, "V/first.mp4") / "video.npy").exists()
    assert not (d2 / "video.npy").exists() and list(d2.glob(".video.npy.*.tmp"))  # only the video in progress lost
    counts = run_block(jobs, killed, CFG, progress=False)
    assert (counts["skipped"], counts["done"]) == (1, 1)
    assert not list(d2.glob(".*.tmp"))  # the killed run's temporary was cleared
    clean = tmp_path / "clean"
    run_block(jobs, clean, CFG, progress=False)
    for j in jobs:
        a, ra = _arrays(killed, j.video_id)
        b, rb = _arrays(clean, j.video_id)
        np.testing.assert_array_equal(a, b)
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])


def test_bah_faces_command_reads_the_manifest_and_the_slurm_block(videos, tmp_path, monkeypatch):
    from bah import cli
    from bah.core.files import write_jsonl
    from bah.stages.manifest import VideoRecord

    rows = []
    for i, (split, key) in enumerate([("train", "plain"), ("val", "odd"), ("val", "late"), ("val", "plain")]):
        rows.append(VideoRecord(video_id=f"Videos/{i}/Visite_1/{key}.mp4", split=split, participant=str(i),
                                question=1, label=0, transcript="", path=str(videos[key]),
                                n_frames=probe(videos[key]).n_frames).to_dict())
    write_jsonl(tmp_path / "manifest.jsonl", rows)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    rc = cli.main(["faces", "--out", str(tmp_path), "--split", "val", "--size", "32", "--no-progress",
                   "--set", "faces.detect_downscale=1.0"])
    assert rc == 0
    done = [(video_dir(tmp_path, r["video_id"]) / "video.npy").exists() for r in rows]
    assert done == [False, False, False, True]  # val has 3 videos; SLURM block 1 of 2 is the last one
    assert np.load(video_dir(tmp_path, rows[3]["video_id"]) / "video.npy").shape[1:] == (32, 32, 3)
    assert "size: 32" in (tmp_path / "stages/faces/config-block1.yaml").read_text()  # one file per block
    assert cli.main(["faces", "--out", str(tmp_path / "nowhere"), "--no-progress"]) == 2  # no manifest


def test_jpeg_output_packs_back_into_the_same_faces(videos, tmp_path):
    from dataclasses import replace

    from bah.stages.faces.packing import pack_folder

    vid = "Videos/9/Visite_1/plain.mp4"
    run_block([_job(vid, videos["plain"])], tmp_path, replace(CFG, jpeg=True), progress=False)
    folder = tmp_path / "cropped_aligned" / vid
    assert sorted(p.name for p in folder.iterdir())[:3] == ["frame-0.jpg", "frame-1.jpg", "frame-10.jpg"]
    res = pack_folder(folder, tmp_path / "packed.npy", 64)
    assert res["first_index"] == 0 and res["n_frames"] == N
    faces, _ = _arrays(tmp_path, vid)
    assert np.abs(np.load(tmp_path / "packed.npy").astype(int) - faces).mean() < 8  # JPEG q75 loss only


def test_writer_memory_stays_flat_whatever_the_length(tmp_path):
    code = textwrap.dedent("""
        import resource, sys, numpy as np
        from bah.stages.faces.writer import FaceArrayWriter
        n = int(sys.argv[2])
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        w = FaceArrayWriter(sys.argv[1], n, 112)
        face = np.full((112, 112, 3), 7, np.uint8)
        for i in range(n):
            w[i] = face
        w.commit()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    growth = {}
    for n in (300, 3000):  # 11 MB and 113 MB of faces
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{n}.npy"), str(n)],
                              capture_output=True, text=True, check=True)
        growth[n] = float(proc.stdout.strip())
        assert np.load(tmp_path / f"{n}.npy", mmap_mode="r")[n - 1, 0, 0, 0] == 7
    assert growth[3000] < growth[300] + 30, growth
