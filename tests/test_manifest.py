"""The manifest on small real mp4 files written with PyAV (noise frames + a sine tone)."""
import json
import logging
import os

import numpy as np
import pytest

av = pytest.importorskip("av")

from bah.stages import manifest as manifest_mod  # noqa: E402
from bah.core.layout import manifest_path, stage_dir  # noqa: E402
from bah.stages.manifest import VideoRecord, build_manifest, load_manifest  # noqa: E402

A = "Videos/82557/Visite_1/82557 Question 5 2024-08-22 14-48-26 Video.mp4"  # 10 frames
B = "Videos/82557/Visite_1/82557_Question_2_2024-08-22_14-40-00_Video-DESKTOP-NQ55E0P.mp4"  # 7 frames, no audio
MISSING = "Videos/82600/Visite_1/82600_Question_1_2024-10-01_10-00-00_Video.mp4"
CORRUPT = "Videos/82700/Visite_1/82700_Question_3_2024-10-01_10-00-00_Video.mp4"
TRUNCATED = "Videos/82557/Visite_1/82557_Question_4_2024-08-22_14-45-00_Video.mp4"  # participant also in test


def write_video(path, n_frames, fps=25, audio=True, size=(48, 64), seed=0, faststart=False):
    from bah.core.media import write_video as encode

    h, w = size
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n_frames)]
    t = np.arange(int(16000 * n_frames / fps)) / 16000.0
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32) if audio else None
    encode(path, frames, fps, audio=tone, codec="mpeg4", options={"movflags": "faststart"} if faststart else None)


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "BAH"
    write_video(root / A, 10)
    write_video(root / B, 7, audio=False, seed=1)
    (root / CORRUPT).parent.mkdir(parents=True)
    (root / CORRUPT).write_bytes(np.random.default_rng(2).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    # the index at the front survives the cut, so the first frames still decode
    write_video(root / TRUNCATED, 20, seed=3, faststart=True)
    data = (root / TRUNCATED).read_bytes()
    (root / TRUNCATED).write_bytes(data[: len(data) // 2])
    split = root / "split"
    split.mkdir()
    (split / "train.txt").write_text(f"{A},1,Well, I think so.\n{B},0,Café, ça va.\n", encoding="utf-8")
    (split / "val.txt").write_text(f"{MISSING},0,gone\n", encoding="utf-8")
    (split / "test.txt").write_text(f"{CORRUPT},,noise\n{TRUNCATED},,half\n", encoding="utf-8")
    ann = {A: {"global_ah": 1, "frame_annotation": [[f"{A}/frame-{i}.jpg", 1] for i in range(10)]},
           B: {"global_ah": 0, "frame_annotation": [[f"{B}/frame-{i}.jpg", 0] for i in range(8)]}}
    (root / "video_annotation_transcript.yaml").write_text(json.dumps(ann), encoding="utf-8")  # JSON is YAML
    return root


def test_manifest_rows_facts_and_errors(dataset, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="bah.stages.manifest"):
        records = build_manifest(dataset, out)
    by_id = {r.video_id: r for r in records}
    assert [r.video_id for r in records] == [A, B, MISSING, CORRUPT, TRUNCATED]
    a, b = by_id[A], by_id[B]
    assert a.ok and b.ok
    assert (a.split, a.participant, a.question, a.label, a.transcript) == ("train", "82557", 5, 1, "Well, I think so.")
    assert b.transcript == "Café, ça va." and b.question == 2
    assert a.n_frames == 10 and b.n_frames == 7  # decoded counts equal the frames written
    assert a.avg_fps == pytest.approx(25.0, rel=1e-3) and a.real_fps == pytest.approx(25.0)
    assert (a.width, a.height) == (64, 48) and a.rotation == 0 and a.vfr is False
    assert a.has_audio and a.audio_rate == 16000 and a.audio_duration == pytest.approx(0.4, abs=0.1)
    assert b.has_audio is False and b.audio_rate is None
    assert a.path == str(dataset / A) and os.path.isabs(a.path)
    assert a.annotation_frames == 10 and not a.annotation_mismatch
    assert b.annotation_frames == 8 and b.annotation_mismatch
    assert "annotation lists 8 frames, 7 decoded" in caplog.text
    assert by_id[MISSING].error and "not found" in by_id[MISSING].error
    assert by_id[CORRUPT].error and CORRUPT.split("/")[-1] in by_id[CORRUPT].error
    assert "decoded" in by_id[TRUNCATED].error and "of the 20 frames" in by_id[TRUNCATED].error
    assert 0 < by_id[TRUNCATED].n_frames < 20  # what did decode is still recorded
    assert by_id[CORRUPT].label is None and by_id[MISSING].annotation_frames is None
    assert "participants in more than one split (1): 82557: train/test" in caplog.text

    # complete JSON Lines, reloads to the same records
    lines = manifest_path(out).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(json.loads(line)["video_id"] for line in lines)
    assert load_manifest(out) == records


def test_manifest_reuses_unchanged_rows(dataset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = build_manifest(dataset, out)
    calls = []
    real = manifest_mod._probe_one
    monkeypatch.setattr(manifest_mod, "_probe_one", lambda p: calls.append(p) or real(p))
    again = build_manifest(dataset, out)
    # only the rows with errors are looked at again; the good ones are re-used
    assert sorted(calls) == sorted(str(dataset / v) for v in (MISSING, CORRUPT, TRUNCATED))
    assert again == first
    calls.clear()
    write_video(dataset / A, 12)  # the file changes: decoded again
    rows = {r.video_id: r for r in build_manifest(dataset, out)}
    assert str(dataset / A) in calls and str(dataset / B) not in calls
    assert rows[A].n_frames == 12
    calls.clear()
    build_manifest(dataset, out, force=True)
    assert len(calls) == 5


def test_manifest_parallel_matches_serial(dataset, tmp_path):
    serial = build_manifest(dataset, tmp_path / "s", splits=["train", "test"])
    parallel = build_manifest(dataset, tmp_path / "p", splits=["train", "test"], workers=2)
    assert [r.split for r in serial] == ["train", "train", "test", "test"]
    assert serial == parallel


def test_manifest_unknown_split_and_no_splits(dataset, tmp_path):
    (dataset / "split" / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no split file val.txt"):
        build_manifest(dataset, tmp_path / "o", splits=["val"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no split files"):
        build_manifest(empty, tmp_path / "o")


def test_load_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bah manifest"):
        load_manifest(tmp_path)
    manifest_path(tmp_path).write_text('{"video_id": "x", "split": "train", "path": "/x"}\n{broken\n')
    with pytest.raises(ValueError, match=r"manifest.jsonl:2"):
        load_manifest(tmp_path)
    manifest_path(tmp_path).write_text('{"video_id": "x", "split": "train"}\n')
    with pytest.raises(ValueError, match=r"row 1 lacks \['path'\]"):
        load_manifest(tmp_path)


def test_record_keeps_unknown_media_facts():
    row = {"video_id": "v", "split": "train", "participant": "1", "question": 1, "label": 0, "transcript": "",
           "path": "/v", "new_fact": 3}
    rec = VideoRecord.from_dict(row)
    assert rec.extra == {"new_fact": 3} and rec.id == "v"
    assert rec.to_dict()["new_fact"] == 3


def test_cli_manifest(dataset, tmp_path, capsys):
    from bah.cli import main

    out = tmp_path / "out"
    rc = main(["manifest", "--data-root", str(dataset), "--out", str(out), "--splits", "train", "val",
               "--workers", "1"])
    assert rc == 1  # one video cannot be used: listed, and the exit status says so
    text = capsys.readouterr().out
    assert "train" in text and "total" in text and "1 video(s) cannot be used" in text
    cfg = (stage_dir(out, "manifest") / "config.yaml").read_text()
    assert "splits:" in cfg and "- train" in cfg and "workers: 1" in cfg
    assert [r.split for r in load_manifest(out)] == ["train", "train", "val"]
    failures = (stage_dir(out, "manifest") / "failures.jsonl").read_text().splitlines()
    assert len(failures) == 1 and MISSING in failures[0]


@pytest.mark.slow  # generating the synthetic release dominates (session fixture shared with other tests)
def test_manifest_on_synthetic_release(request, tmp_path):
    root = request.getfixturevalue("synth_root")
    from bah.data import Release

    release = Release(root)
    entries = [e for rows in release.entries().values() for e in rows]
    records = build_manifest(root, tmp_path / "out")
    assert [r.video_id for r in records] == [e.video_id for e in entries]
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    assert all(r.n_frames == 100 for r in records)  # 4 s at 25 fps
    if release.annotation_path is not None:
        anns = release.annotations()
        for r in records:
            assert anns[r.video_id].n_frames == r.annotation_frames
