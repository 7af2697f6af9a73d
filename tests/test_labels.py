"""``bah labels``: frame labels from a hand-written annotation YAML on a fake output tree."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from bah.core.config import ConfigError, load_config
from bah.stages.labels import (
    LABEL_FILE,
    LABEL_SOURCES,
    UNANNOTATED,
    AnnotationSource,
    LabelConfig,
    LabelError,
    conform_labels,
    label_videos,
    resample_nearest,
    write_frame_labels,
)
from bah.core.layout import stage_dir, video_dir

V1 = "Videos/111/Visite_1/111_Question_1_2024-01-01_10-00-00_Video.mp4"
V2 = "Videos/111/Visite_1/111 Question 2 2024-01-01 10-05-00 Video-DESKTOP-NQ55E0P.mp4"
V3 = "Videos/222/Visite_1/222_Question_3_2024-02-01_09-00-00_Video.mp4"
V4 = "Videos/333/Visite_1/333_Question_4_2024-03-01_09-00-00_Video.mp4"


@dataclass
class Rec:
    """The manifest fields the stage reads (bah.stages.manifest.VideoRecord has these and more)."""

    video_id: str
    split: str
    label: Optional[int]
    n_frames: int
    error: Optional[str] = None
    participant: str = ""
    question: Optional[int] = None
    transcript: str = "hello, world"
    avg_fps: float = 10.0


def _ann_yaml(path: Path, entries) -> Path:
    lines = []
    for vid, glob, labels in entries:
        lines.append(f"'{vid}':")
        lines.append(f"  global_ah: {glob}")
        lines.append("  annotator_id: MGG")
        lines.append("  certainty_ah: [3]")
        lines.append("  frame_annotation:")
        for i, lab in enumerate(labels):
            lines.append(f"  - !!python/tuple ['{vid}/frame-{i}.jpg', {lab}]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path):
    """An output tree with the feature stage's video-label broadcast (int64) for 4 videos."""
    out = tmp_path / "out"
    recs = [Rec(V1, "train", 1, 10), Rec(V2, "train", 0, 8), Rec(V3, "val", 1, 12), Rec(V4, "test", 0, 6)]
    for r in recs:
        d = video_dir(out, r.video_id)
        d.mkdir(parents=True)
        np.save(d / LABEL_FILE, np.full(r.n_frames, r.label, dtype=np.int64))
    labels = {
        V1: [0, 0, 1, 1, 1, 0, 0, 1, 0, 0],  # exact length
        V2: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],  # 10 annotated vs 8 decoded: resampled
        V3: [1] * 30,  # 30 vs 12: an error
    }
    ann = _ann_yaml(tmp_path / "video_annotation_transcript.yaml",
                    [(V1, 1, labels[V1]), (V2, 0, labels[V2]), (V3, 1, labels[V3])])
    return out, recs, ann, labels


def _source(ann: Path, **kw) -> AnnotationSource:
    cfg = LabelConfig(annotation=ann, **kw)
    return AnnotationSource(cfg, None), cfg


def test_exact_labels_float32_and_backup(tree):
    out, recs, ann, labels = tree
    source, cfg = _source(ann)
    report = label_videos(out, [recs[0]], source, cfg, progress=False)
    assert [r["video_id"] for r in report.written] == [V1]
    arr = np.load(video_dir(out, V1) / LABEL_FILE)
    assert arr.dtype == np.float32 and arr.shape == (10,)
    np.testing.assert_array_equal(arr, np.array(labels[V1], dtype=np.float32))
    bak = np.load(video_dir(out, V1) / (LABEL_FILE + ".bak"))
    assert bak.dtype == np.int64 and (bak == 1).all()  # the video-label broadcast survives
    row = report.written[0]
    assert row["video_label"] == 1 and row["global_label"] == 1 and row["ah_frames"] == 4


def test_rerun_keeps_original_backup(tree):
    out, recs, ann, labels = tree
    source, cfg = _source(ann)
    label_videos(out, [recs[0]], source, cfg, progress=False)
    # A changed annotation: the second run must back up nothing of its own over the original.
    ann2 = _ann_yaml(ann.parent / "v2.yaml", [(V1, 1, [1] * 10)])
    source2, cfg2 = _source(ann2)
    report = label_videos(out, [recs[0]], source2, cfg2, progress=False)
    assert report.written[0]["backup"] is None
    np.testing.assert_array_equal(np.load(video_dir(out, V1) / LABEL_FILE), np.ones(10, np.float32))
    assert np.load(video_dir(out, V1) / (LABEL_FILE + ".bak")).dtype == np.int64
    # Same labels again: nothing rewritten.
    report = label_videos(out, [recs[0]], source2, cfg2, progress=False)
    assert report.written[0]["unchanged"] is True


def test_no_backup(tree):
    out, recs, ann, _ = tree
    source, cfg = _source(ann, backup=False)
    label_videos(out, [recs[0]], source, cfg, progress=False)
    assert not (video_dir(out, V1) / (LABEL_FILE + ".bak")).exists()


def test_small_mismatch_resampled_with_warning(tree, caplog):
    out, recs, ann, _ = tree
    source, cfg = _source(ann)
    with caplog.at_level(logging.WARNING, logger="bah.stages.labels"):
        report = label_videos(out, [recs[1]], source, cfg, progress=False)
    assert report.resampled == [V2]
    assert any(V2 in m and "resampled" in m for m in caplog.messages)
    arr = np.load(video_dir(out, V2) / LABEL_FILE)
    assert arr.shape == (8,) and arr.dtype == np.float32
    # 10 -> 8 frames: frame i takes source floor((i+0.5)*10/8): 0,1,3,4,5,6,8,9
    np.testing.assert_array_equal(arr, np.array([0, 0, 0, 0, 0, 0, 1, 1], np.float32))


def test_large_mismatch_is_an_error_naming_the_video_and_batch_goes_on(tree):
    out, recs, ann, _ = tree
    source, cfg = _source(ann)
    report = label_videos(out, recs[:3], source, cfg, progress=False)
    assert [r["video_id"] for r in report.failed] == [V3]
    assert V3 in report.failed[0]["reason"] and "30" in report.failed[0]["reason"]
    assert {r["video_id"] for r in report.written} == {V1, V2}
    # the old file of the failed video is untouched; the failure is in the stage's list
    assert np.load(video_dir(out, V3) / LABEL_FILE).dtype == np.int64
    fails = (stage_dir(out, "labels") / "failures-block0.jsonl").read_text()
    assert V3 in fails
    with pytest.raises(LabelError, match=V3):
        conform_labels(np.ones(30), 12, 5, V3)


def test_threshold_is_configurable(tree):
    out, recs, ann, _ = tree
    source, cfg = _source(ann, max_resample_frames=0)  # the original's strict equality
    report = label_videos(out, [recs[1]], source, cfg, progress=False)
    assert [r["video_id"] for r in report.failed] == [V2]


@pytest.mark.parametrize("policy", UNANNOTATED.list())
def test_unannotated_policy(tree, policy):
    out, recs, ann, _ = tree
    source, cfg = _source(ann, unannotated=policy)
    report = label_videos(out, [recs[3]], source, cfg, progress=False)
    path = video_dir(out, V4) / LABEL_FILE
    if policy == "video_label":
        assert [r["video_id"] for r in report.written] == [V4]
        arr = np.load(path)
        assert arr.dtype == np.float32 and arr.shape == (6,) and (arr == 0).all()
    elif policy == "fail":
        assert [r["video_id"] for r in report.failed] == [V4]
        assert np.load(path).dtype == np.int64  # nothing written
    else:
        assert [r["video_id"] for r in report.skipped] == [V4]
        assert np.load(path).dtype == np.int64  # nothing written


def test_unannotated_without_video_label_is_skipped(tree):
    out, _, ann, _ = tree
    source, cfg = _source(ann)
    rec = Rec(V4, "test", None, 6)
    report = label_videos(out, [rec], source, cfg, progress=False)
    assert report.skipped and "no video label" in report.skipped[0]["reason"]


def test_manifest_error_rows_skipped(tree):
    out, recs, ann, _ = tree
    source, cfg = _source(ann)
    bad = Rec(V1, "train", 1, 0, error="cannot decode")
    report = label_videos(out, [bad], source, cfg, progress=False)
    assert report.skipped[0]["reason"].startswith("manifest error")


def test_malformed_annotation_fails_that_video_only(tmp_path):
    out = tmp_path / "out"
    ann = tmp_path / "a.yaml"
    ann.write_text(f"'{V1}':\n  frame_annotation:\n  - ['x/frame-0.jpg', 7]\n"
                   f"'{V2}':\n  frame_annotation:\n  - ['x/frame-0.jpg', 1]\n", encoding="utf-8")
    source, cfg = _source(ann)
    report = label_videos(out, [Rec(V1, "train", 1, 1), Rec(V2, "train", 1, 1)], source, cfg, progress=False)
    assert [r["video_id"] for r in report.failed] == [V1]
    assert [r["video_id"] for r in report.written] == [V2]


def test_video_source_broadcasts_the_video_label(tmp_path):
    out = tmp_path / "out"
    cfg = LabelConfig(source="video")
    source = LABEL_SOURCES.create("video", cfg, None)
    report = label_videos(out, [Rec(V1, "train", 1, 5)], source, cfg, progress=False)
    assert report.written
    np.testing.assert_array_equal(np.load(video_dir(out, V1) / LABEL_FILE), np.ones(5, np.float32))


def test_resample_nearest_properties():
    x = np.arange(100)
    assert np.array_equal(resample_nearest(x, 100), x)
    y = resample_nearest(x, 97)
    assert len(y) == 97 and y[0] == 0 and y[-1] == 99 and (np.diff(y) >= 1).all()
    z = resample_nearest(np.array([0, 1]), 5)
    assert z.tolist() == [0, 0, 1, 1, 1]


def test_config_validation_and_overrides():
    with pytest.raises(ConfigError):
        load_config(None, {"labels.unannotated": "zeros"}, sections=["labels"])
    with pytest.raises(ConfigError):
        load_config(None, {"labels.max_resample_frames": -1}, sections=["labels"])
    cfg = load_config(None, {"labels.max_resample_frames": "3", "labels.backup": "false"}, sections=["labels"])
    assert cfg["labels"].max_resample_frames == 3 and cfg["labels"].backup is False
    with pytest.raises(Exception):
        cfg["labels"].backup = True  # read-only after parsing


def test_write_frame_labels_rejects_nan(tmp_path):
    with pytest.raises(ValueError):
        write_frame_labels(tmp_path, np.array([0.0, np.nan]))


def _interval_yaml(path: Path, entries) -> Path:
    """Entries without frame_annotation: (video id, global_ah, time intervals, frame intervals)."""
    lines = []
    for vid, glob, secs, frames in entries:
        lines += [f"'{vid}':", f"  global_ah: {glob}", "  annotator_id: MGG"]
        if secs is not None:
            lines.append(f"  time_detailed_ah: {secs}")
        if frames is not None:
            lines.append(f"  fr_detailed_ah: {frames}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_entry_without_frame_annotation_gets_labels_from_its_intervals(tmp_path):
    """40 frames at 10 fps, intervals [0.8, 1.6) s: 8 A/H frames, not the video label on all 40."""
    from bah.stages.labels import interval_labels

    out = tmp_path / "out"
    ann = _interval_yaml(tmp_path / "a.yaml", [
        (V1, 1, [["00:00:00.800", "00:00:01.600"]], None),
        (V2, 1, None, [[5, 9], [30, 31]]),
    ])
    source, cfg = _source(ann)
    report = label_videos(out, [Rec(V1, "train", 1, 40), Rec(V2, "train", 1, 40)], source, cfg, progress=False)
    assert not report.failed and sorted(report.repaired) == sorted([V1, V2])
    a = np.load(video_dir(out, V1) / LABEL_FILE)  # no frame-times record: i/fps (10 fps) with a warning
    assert a.sum() == 8 and a[8:16].all()
    b = np.load(video_dir(out, V2) / LABEL_FILE)
    assert b.sum() == 7 and b[5:10].all() and b[30:32].all()
    assert "time_detailed_ah" in report.written[0]["repair"]
    # frames on millisecond-rounded edges (29.97 fps) stay on the right side of them
    t = np.arange(100) * 1001 / 30000
    lab = interval_labels(t, [(round(t[20], 3), round(t[40], 3))])
    assert np.flatnonzero(lab).tolist() == list(range(20, 40))


def test_entry_with_neither_frames_nor_intervals_fails_naming_video_and_policy(tmp_path):
    out = tmp_path / "out"
    ann = _interval_yaml(tmp_path / "a.yaml", [(V1, 1, None, None), (V2, 0, [], None)])
    source, cfg = _source(ann)
    report = label_videos(out, [Rec(V1, "train", 1, 10), Rec(V2, "train", 0, 10)], source, cfg, progress=False)
    assert [r["video_id"] for r in report.failed] == [V1, V2]
    reason = report.failed[0]["reason"]
    assert V1 in reason and "neither frame_annotation nor A/H intervals" in reason and "--incomplete" in reason
    source, cfg = _source(ann, incomplete="video_label")
    report = label_videos(out, [Rec(V1, "train", 1, 10), Rec(V2, "train", 0, 10)], source, cfg, progress=False)
    assert not report.failed and len(report.repaired) == 2
    np.testing.assert_array_equal(np.load(video_dir(out, V1) / LABEL_FILE), np.ones(10, np.float32))
    source, cfg = _source(ann, incomplete="skip")
    report = label_videos(out, [Rec(V1, "train", 1, 10)], source, cfg, progress=False)
    assert [r["video_id"] for r in report.skipped] == [V1] and report.repaired == [V1]
