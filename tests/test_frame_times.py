"""One notion of frame time: a variable-frame-rate copy of a clip gets the same audio rows and
labels as its constant-frame-rate original at the same frame times.

The VFR copy keeps a subset of the original's frames (every other frame of the second half
is dropped, as a browser under load does), so every VFR frame has a CFR twin at exactly the
same presentation time; the audio track is the same.
"""
from pathlib import Path

import numpy as np
import pytest

from bah.core.layout import frame_times_path, video_dir
from bah.core.media import frame_times, frames_at, probe_times
from bah.stages.features.settings import FeatureConfig
from bah.stages.features.stage import extract_features
from bah.stages.labels import AnnotationSource, LabelConfig, label_videos
from bah.stages.manifest import build_manifest

FPS = 25
N = 150  # 6 s
CFR = "Videos/201/Visite_1/201_Question_1_2024-01-01_10-00-00_Video.mp4"
VFR = "Videos/202/Visite_1/202_Question_1_2024-01-01_10-00-00_Video.mp4"
INTERVALS = [["00:00:01.200", "00:00:02.000"], ["00:00:04.400", "00:00:05.200"]]


def _kept() -> np.ndarray:
    """CFR frame index of each VFR frame: every other frame of the second half dropped."""
    i = np.arange(N)
    return i[(i < N // 2) | (i % 2 == 0)]


def _audio() -> np.ndarray:
    """A track whose spectrum changes every 0.1 s (so a row taken at the wrong time is visibly wrong)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(16000 * N / FPS)) / 16000
    freq = rng.uniform(200, 4000, int(np.ceil(t[-1] * 10)) + 1)[(t * 10).astype(int)]
    return (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / 16000)).astype(np.float32)


def write_clip(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """Frames at explicit times (index on the 25 fps grid, 90 kHz clock) plus the audio."""
    from bah.core.media import write_video

    images = (np.full((32, 32, 3), int(k) % 255, np.uint8) for k in frames)
    write_video(path, images, FPS, times=np.asarray(frames) * (90000 // FPS) / 90000, audio=audio, codec="libx264")

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A release with the CFR clip and its VFR copy (annotations: intervals only), manifest built."""
    root = tmp_path_factory.mktemp("ft") / "BAH"
    audio = _audio()
    write_clip(root / CFR, np.arange(N), audio)
    write_clip(root / VFR, _kept(), audio)
    (root / "split").mkdir(parents=True)
    (root / "split" / "train.txt").write_text(f"{CFR},1,I am not sure.\n{VFR},1,I am not sure.\n", encoding="utf-8")
    ann = "".join(f"'{v}':\n  global_ah: 1\n  time_detailed_ah: {INTERVALS}\n" for v in (CFR, VFR))
    (root / "video_annotation_transcript.yaml").write_text(ann, encoding="utf-8")
    out = root.parent / "out"
    recs = {r.video_id: r for r in build_manifest(root, out)}
    return root, out, recs


def test_manifest_records_presentation_times(pair):
    root, out, recs = pair
    cfr, vfr = recs[CFR], recs[VFR]
    assert (cfr.vfr, vfr.vfr) == (False, True)
    assert cfr.n_frames == N and vfr.n_frames == len(_kept())
    t_cfr = np.load(frame_times_path(out, CFR))
    t_vfr = np.load(frame_times_path(out, VFR))
    assert t_cfr.dtype == np.float64 and vfr.frame_times == str(frame_times_path(out, VFR).relative_to(out))
    np.testing.assert_allclose(t_cfr, np.arange(N) / FPS, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t_vfr, _kept() / FPS, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(vfr.times(out), t_vfr)
    np.testing.assert_array_equal(vfr.times(out, compat=True), np.arange(vfr.n_frames) / vfr.avg_fps)
    assert np.array_equal(probe_times(root / VFR)[1], t_vfr)
    np.testing.assert_array_equal(frames_at(t_vfr, t_vfr), np.arange(vfr.n_frames))


def test_missing_recording_falls_back_to_i_over_fps_with_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        t = frame_times(4, 25.0, tmp_path / "absent.npy", where="some video")
    np.testing.assert_array_equal(t, np.arange(4) / 25.0)
    assert "some video" in caplog.text and "no recorded frame times" in caplog.text


def _features(out, recs, compat=False):
    settings = FeatureConfig(extractors=("logmel",), compat=compat, device="cpu")
    res = extract_features([recs[CFR], recs[VFR]], out, settings, force=True)
    assert res.failed == 0 and res.repairs == {"vfr": 1}
    return {v: np.load(video_dir(out, v) / "logmel.npy") for v in (CFR, VFR)}


def test_vfr_and_cfr_rows_agree_at_equal_frame_times(pair):
    _, out, recs = pair
    rows = _features(out, recs)
    # Same audio, same times: the rows are the same up to float32 storage (tolerance 1e-5).
    np.testing.assert_allclose(rows[VFR], rows[CFR][_kept()], rtol=0, atol=1e-5)

    source = AnnotationSource(LabelConfig(annotation=out.parent / "BAH" / "video_annotation_transcript.yaml"), None)
    report = label_videos(out, [recs[CFR], recs[VFR]], source, LabelConfig(), progress=False)
    assert not report.failed and sorted(report.repaired) == sorted([CFR, VFR])
    lab = {v: np.load(video_dir(out, v) / "EXPR_continuous_label.npy") for v in (CFR, VFR)}
    expected = np.zeros(N, np.float32)
    expected[30:50] = expected[110:130] = 1  # [1.2, 2.0) s and [4.4, 5.2) s at 25 fps
    np.testing.assert_array_equal(lab[CFR], expected)
    np.testing.assert_array_equal(lab[VFR], expected[_kept()])  # exact at equal times


def test_i_over_fps_mapping_gives_measurably_wrong_rows(pair):
    """What the old mapping (kept for --compat) does to the VFR copy: frames drift by up to 1 s."""
    _, out, recs = pair
    vfr = recs[VFR]
    drift = np.arange(vfr.n_frames) / vfr.avg_fps - vfr.times(out)
    assert 0.9 < np.abs(drift).max() < 1.1  # mid-video frames are put a second too late
    rows = _features(out, recs, compat=True)
    truth = _features(out, recs)
    np.testing.assert_array_equal(rows[CFR], truth[CFR])  # constant frame rate: compat changes nothing
    wrong = np.abs(rows[VFR] - truth[CFR][_kept()]).max(axis=1)
    assert wrong[0] < 1e-5  # frame 0 is at 0 s on both clocks
    assert wrong.max() > 1.0 and (wrong > 0.1).mean() > 0.5


def test_predict_segments_use_frame_times():
    from bah.apps.predict import find_segments

    p = np.array([0.1, 0.9, 0.9, 0.1, 0.9])
    times = np.array([0.0, 0.04, 0.16, 0.2, 0.32])  # frames dropped after 0.04 s and 0.2 s
    segs = find_segments(p, 25.0, 0.5, times=times)
    assert [(s.start_frame, s.end_frame, s.start_s, s.end_s) for s in segs] == [(1, 2, 0.04, 0.2), (4, 4, 0.32, 0.36)]
    # at least 0.1 s long: the first run lasts 0.16 s by its times (2 frames = 0.08 s at 25 fps)
    assert [s.start_frame for s in find_segments(p, 25.0, 0.5, min_segment=0.1, times=times)] == [1]
