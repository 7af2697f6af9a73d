"""The synthetic set's hard cases: variable frame rate, mixed fps, lengths, small faces, rotation,
a long silence, an annotation entry without frame_annotation, overrunning transcript times.

The planted A/H stays aligned to frame *times*: the labels stage, mapping the annotation's
seconds with the manifest's frame times, gets the planted labels back exactly; the i/fps
mapping does not.
"""
from __future__ import annotations

import numpy as np
import pytest

from bah.core.media import read_audio
from bah.data import read_transcription
from bah.stages.labels import AnnotationSource, LabelConfig, interval_labels, label_videos
from bah.stages.manifest import build_manifest, record_times
from bah.synth import generate_dataset, load_truth
from bah.synth.face import FaceAnimator
from bah.synth.plan import make_plan
from bah.synth.settings import SynthConfig

HARD = dict(subjects=4, videos_per_subject=2, fps=15, seconds=5.0, seed=1, width=320, height=240,
            fps_mix=(25, 29.97, 30), seconds_jitter=0.5, long_videos=1, long_seconds=20.0, vfr=0.5,
            small_faces=0.5, rotated=1, silences=1, no_frame_annotation=1, overruns=1)
NTSC = 30000 / 1001


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard") / "BAH"
    generate_dataset(root, progress=False, workers=1, **HARD)
    plan = {v.video_id: v for v in make_plan(SynthConfig(**HARD)).videos}
    out = root.parent / "out"
    recs = {r.video_id: r for r in build_manifest(root, out)}
    return root, out, plan, recs


def test_plan_mixes_rates_lengths_and_keeps_the_total_duration():
    videos = make_plan(SynthConfig(**HARD)).videos
    assert {round(v.fps, 3) for v in videos} == {25.0, round(NTSC, 3), 30.0}
    lengths = sorted(v.duration for v in videos)
    assert lengths[-1] == pytest.approx(20.0, abs=0.05) and lengths[0] >= 2.95
    # the others shrink to keep n * seconds, but not below 3 s (here 20 s of 40 leaves them at the floor)
    assert len(videos) * HARD["seconds"] <= sum(lengths) <= len(videos) * HARD["seconds"] + 3.0
    # without hard cases the plan is what it always was
    plain = make_plan(SynthConfig(subjects=4, videos_per_subject=2, fps=15, seconds=5.0, seed=1))
    assert {(v.fps, v.n_frames, v.vfr, v.rotation) for v in plain.videos} == {(15.0, 75, False, 0)}


def test_vfr_is_really_vfr_per_the_manifest(hard):
    root, out, plan, recs = hard
    vfr = [vid for vid, v in plan.items() if v.vfr]
    assert vfr and len(vfr) < len(plan)
    for vid, v in plan.items():
        rec, truth = recs[vid], load_truth(root, vid)
        assert rec.ok and rec.vfr is v.vfr, vid
        times = record_times(rec, out)
        np.testing.assert_allclose(times, truth["frame_times"], rtol=0, atol=1e-5)
        if v.vfr:  # dropped frames: fewer than the nominal grid, gaps of 2+ frame periods
            assert rec.n_frames < v.n_frames and np.diff(times).max() > 1.9 / v.fps
        else:
            assert rec.n_frames == v.n_frames and rec.real_fps == pytest.approx(v.fps, abs=1e-3)


def test_rotated_video_small_faces_and_silence(hard):
    root, out, plan, recs = hard
    rotated = [vid for vid, v in plan.items() if v.rotation]
    assert len(rotated) == 1
    rec = recs[rotated[0]]
    assert rec.rotation == 90 and (rec.width, rec.height) == (HARD["height"], HARD["width"])
    small = [v for v in plan.values() if v.look.face_frac < 0.25]
    assert small
    for v in small:  # face box 80-115 px tall in a 640x480 frame
        assert 80 <= FaceAnimator(v, 640, 480).sprite.face_width <= 116
    silent = [v for v in plan.values() if v.silence]
    assert len(silent) == 1 and silent[0].silence >= 3.0
    v = silent[0]
    audio = read_audio(root / v.video_id)
    tail = audio[-int((v.silence - 0.2) * 16000):]
    assert np.abs(tail).max() < 0.02 and np.abs(audio).max() > 0.1
    assert all(c["end"] <= v.duration - v.silence + 1e-6 for c in load_truth(root, v.video_id)["chunks"])


def test_labels_from_times_give_back_the_planted_cues_and_i_over_fps_does_not(hard):
    root, out, plan, recs = hard
    gap = [vid for vid, v in plan.items() if not v.frame_annotation]
    assert len(gap) == 1 and plan[gap[0]].vfr  # the seed puts the gap on a VFR video: the hardest case
    cfg = LabelConfig()
    source = AnnotationSource(cfg, root)
    report = label_videos(out, list(recs.values()), source, cfg, progress=False)
    assert not report.failed and report.repaired == gap
    for vid, v in plan.items():
        truth = load_truth(root, vid)
        planted = np.zeros(recs[vid].n_frames, np.float32)
        for a, b in truth["cue_frames"]:
            planted[a:b + 1] = 1
        got = np.load(out / "features" / "compacted_48" / vid / "EXPR_continuous_label.npy")
        np.testing.assert_array_equal(got, planted, err_msg=vid)
    # the old mapping on the same intervals: wrong frames on every VFR video with A/H
    for vid in (vid for vid, v in plan.items() if v.vfr and v.intervals):
        rec = recs[vid]
        secs = plan[vid].seconds_intervals()
        right = interval_labels(record_times(rec, out), secs)
        wrong = interval_labels(np.arange(rec.n_frames) / rec.avg_fps, secs)
        assert (right != wrong).sum() >= 2, vid


def test_overrunning_transcript_is_clipped(hard):
    root, out, plan, recs = hard
    over = [v for v in plan.values() if v.overrun]
    assert len(over) == 1
    v = over[0]
    path = root / "transcription" / v.video_id / f"{v.stem}.yml"
    raw = read_transcription(path)
    assert raw.chunks[0].start == 0.0 and raw.clipped == 1  # the negative start (no duration given)
    clipped = read_transcription(path, duration=v.duration)
    assert clipped.clipped == min(2, len(clipped.chunks))  # the first and the last chunk (one if alone)
    assert clipped.chunks[-1].end == pytest.approx(v.duration)
