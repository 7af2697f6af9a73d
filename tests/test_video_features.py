"""Video-level features: windows, Silero VAD, ASR-erased time, pauses, prosody, text, lexical
markers, face dynamics, Hugging Face encoders, and the `bah video-features` stage contract."""
import json

import numpy as np
import pytest

from bah.cli import main
from bah.core.files import write_jsonl
from bah.core.layout import stage_dir, transcript_path, video_dir, video_features_dir, video_key
from bah.stages.speech import Recogniser, SileroVad, VadSettings, speech_segments
from bah.stages.speech.vad import FRAME, SAMPLE_RATE
from bah.stages.video_features import VIDEO_EXTRACTORS, Clip, VideoFeatureConfig, window_times
from bah.stages.video_features.lexical import lexical_vector, marker_counts
from bah.stages.video_features.timing import NAMES as TIMING, erased_spans, pauses_between, timing_vector
from speech_clips import clip, manifest_row, write_video

SETTINGS = VideoFeatureConfig()


@pytest.fixture(scope="module")
def vad():
    return SileroVad()


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser()


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize("duration, window, hop, expected", [
    (8.0, 5.0, 2.5, [[0, 5], [2.5, 7.5], [5, 8]]),
    (10.0, 5.0, 2.5, [[0, 5], [2.5, 7.5], [5, 10]]),
    (3.0, 5.0, 2.5, [[0, 3]]),
    (5.0, 5.0, 2.5, [[0, 5]]),
    (4.5, 2.0, 1.0, [[0, 2], [1, 3], [2, 4], [3, 4.5]]),
    (6.0, 2.0, 3.0, [[0, 2], [3, 5]]),  # hop > window: gaps stay gaps, no window starts at the end
])
def test_windows_follow_the_settings_exactly(duration, window, hop, expected):
    t = window_times(duration, window, hop)
    assert t.dtype == np.float64
    np.testing.assert_allclose(t, np.asarray(expected, float), atol=0)


# --------------------------------------------------------------------------- VAD
def test_vad_finds_the_speech_and_silence_boundaries_within_0_15_s(vad):
    audio, spans = clip([("pause", 1.0), ("say", "I take the bus to the office."), ("pause", 1.5),
                         ("say", "Then I call my sister every week."), ("pause", 1.0)])
    segs = vad.segments(audio)
    assert len(segs) == 2
    for (s, e), (_, ts, te) in zip(segs, spans):
        assert abs(s - ts) <= 0.15 and abs(e - te) <= 0.15, (segs, spans)
    assert vad.segments(np.zeros(SAMPLE_RATE * 2, np.float32)) == []


def test_vad_segments_follow_the_silero_package_rule():
    """The numpy hysteresis equals silero-vad's own get_speech_timestamps_from_probs."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    rng = np.random.default_rng(3)
    probs = np.repeat(rng.uniform(0, 1, 60) ** 0.7, rng.integers(1, 12, 60))
    n = probs.size * FRAME - 100
    ours = speech_segments(probs, n, VadSettings())
    theirs = get_speech_timestamps_from_probs(list(map(float, probs)), audio_length_samples=n)
    assert len(ours) > 2
    assert ours == [(d["start"] / SAMPLE_RATE, d["end"] / SAMPLE_RATE) for d in theirs]


# --------------------------------------------------------------------------- timing
def test_erased_spans_rule_on_constructed_spans():
    speech = np.array([[0.0, 2.0], [2.5, 3.0], [3.5, 6.0]])
    words = np.array([[0.0, 0.9], [1.2, 2.0], [3.5, 4.0], [4.7, 6.0]])
    # [2.5, 3.0] holds no word: erased whole; [0.9, 1.2] is 0.3 s of jitter; [4.0, 4.7] is 0.7 s uncovered
    np.testing.assert_allclose(erased_spans(speech, words, 0.5), [[2.5, 3.0], [4.0, 4.7]])
    np.testing.assert_allclose(pauses_between(speech, 0.2), [[2.0, 2.5], [3.0, 3.5]])


def test_timing_vector_on_constructed_spans():
    speech = np.array([[0.0, 2.0], [2.5, 3.0], [3.5, 6.0]])
    erased = np.array([[2.5, 3.0]])
    pauses = pauses_between(speech, 0.2)
    mid = np.array([0.5, 1.5, 3.8, 5.5])
    v = dict(zip(TIMING, timing_vector(speech, erased, pauses, mid, 0.0, 5.0)))
    assert v["speech_ratio"] == pytest.approx(4.0 / 5.0)
    assert v["erased_s"] == pytest.approx(0.5) and v["erased_ratio"] == pytest.approx(0.5 / 4.0)
    assert v["pause_count"] == 2 and v["pause_mean_s"] == pytest.approx(0.5) and v["pause_max_s"] == pytest.approx(0.5)
    assert v["pause_ratio"] == pytest.approx(1.0 / 5.0)
    assert v["word_count"] == 3 and v["speech_rate_wps"] == pytest.approx(3 / 4.0)


def _timing(vad, recogniser, parts):
    audio, spans = clip(parts)
    c = Clip(video_id="v.mp4", path=None, duration=audio.size / SAMPLE_RATE)
    c.set_audio(audio)
    c.set_words(recogniser.recognise(audio).words)
    ex = VIDEO_EXTRACTORS.create("timing", SETTINGS, vad=vad)
    times = window_times(c.duration, 5.0, 2.5)
    win, vec = ex.check(c, times, ex.extract(c, times))
    return dict(zip(TIMING, vec)), win, spans


def test_erased_time_where_a_filler_was_spoken_and_none_without(vad, recogniser):
    before = [("pause", 0.5), ("say", "I take the bus to the office."), ("pause", 0.4)]
    after = [("say", "Then I walk the dog."), ("pause", 0.5)]
    with_filler, win, spans = _timing(vad, recogniser, before + [("filler", "Um"), ("pause", 0.6)] + after)
    filler = spans[1][2] - spans[1][1]
    # Whisper drops the "um"; its VAD segment (the filler +- 0.1 s of VAD padding and frames) is erased
    assert abs(with_filler["erased_s"] - filler) <= 0.15, (with_filler, filler)
    assert win.shape == (2, len(TIMING))  # 5.7 s: windows [0, 5] and [2.5, 5.7]
    assert win[0, 1] == pytest.approx(with_filler["erased_s"])  # the filler (about 2.4-3.0 s) is in the first
    without, _, _ = _timing(vad, recogniser, before + [("pause", 0.3)] + after)
    assert without["erased_s"] <= 0.05
    assert with_filler["pause_count"] == without["pause_count"] + 1


# --------------------------------------------------------------------------- lexical
def test_lexical_markers_are_counted_per_word():
    words = "Um, maybe I I think it is, I mean, kind of, kind of hard.".split()
    c = marker_counts(words)  # repetitions: "I I" and "kind of, kind of"
    assert c == {"words": 14, "hedge": 4, "filler": 1, "correction": 1, "repetition": 2}
    v = lexical_vector(words)
    assert v == [14.0, 4 / 14, 1 / 14, 1 / 14, 2 / 14, 1.0, 1.0, 1.0, 1.0]
    assert lexical_vector([]) == [0.0] * 9
    assert marker_counts("I wake up at seven and make coffee.".split())["hedge"] == 0


# --------------------------------------------------------------------------- prosody
def test_prosody_gives_the_88_egemaps_functionals_per_window(vad):
    audio, _ = clip([("say", "I take the bus to the office and I call my sister."), ("pause", 4.0)])
    c = Clip(video_id="v.mp4", path=None, duration=audio.size / SAMPLE_RATE)
    c.set_audio(audio)
    ex = VIDEO_EXTRACTORS.create("prosody", SETTINGS)
    times = window_times(c.duration, 3.0, 3.0)
    win, vec = ex.check(c, times, ex.extract(c, times))
    names = ex.names()
    assert len(names) == 88 and vec.shape == (88,) and win.shape == (times.shape[0], 88)
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in names and "loudness_sma3_amean" in names
    assert np.isfinite(win).all() and np.isfinite(vec).all()
    loud = names.index("loudness_sma3_amean")
    assert win[0, loud] > 10 * max(win[-1, loud], 1e-6)  # speech in the first window, silence in the last


# --------------------------------------------------------------------------- text
def test_text_embedding_per_window_with_the_packaged_minilm():
    from bah.stages.speech import Word

    ex = VIDEO_EXTRACTORS.create("text-embed", SETTINGS)
    c = Clip(video_id="v.mp4", path=None, duration=8.0)
    c.set_words([Word("Maybe", 0.5, 0.9), Word("I", 1.0, 1.1), Word("guess.", 1.1, 1.5),
                 Word("Sure.", 6.5, 7.0)])
    times = window_times(8.0, 2.0, 2.0)  # [0,2] [2,4] [4,6] [6,8]
    win, vec = ex.check(c, times, ex.extract(c, times))
    assert win.shape == (4, 384) and len(ex.names()) == 384
    assert not win[1].any() and not win[2].any()  # no words there
    np.testing.assert_allclose(np.linalg.norm(win[[0, 3]], axis=1), 1.0, atol=1e-5)
    enc = ex.encoder().encode(["Maybe I guess.", "Maybe I guess. Sure."])
    np.testing.assert_allclose(win[0], enc[0], atol=1e-5)
    np.testing.assert_allclose(vec, enc[1], atol=1e-5)


# --------------------------------------------------------------------------- face
def _face(n):
    """(n, 68, 2) landmarks of a face whose eyes are 40 px apart."""
    lm = np.zeros((n, 68, 2))
    lm[:] = np.random.default_rng(0).uniform(-30, 30, (68, 2))
    eye = np.array([[-10, 0], [-5, -4], [5, -4], [10, 0], [5, 4], [-5, 4]], float)
    lm[:, 36:42] = eye + [-20, 0]
    lm[:, 42:48] = eye + [20, 0]
    lm[:, 30] = [0, 15]
    lm[:, 60:68] = [[-15, 40], [-5, 38], [0, 38], [5, 38], [15, 40], [5, 42], [0, 42], [-5, 42]]
    return lm + 200


def test_face_dynamics_from_the_face_record(tmp_path):
    from bah.stages.video_features.face import NAMES

    n, fps = 50, 10.0
    lm = _face(n)
    lm[:, :, 0] += 2.0 * np.arange(n)[:, None]  # the head moves 2 px per frame = 0.05 inter-ocular units
    for b in (10, 30):  # two blinks of two frames: eyelids closed to 10 % of the height
        lm[b:b + 2, [37, 38, 43, 44], 1] += 3.6
        lm[b:b + 2, [40, 41, 46, 47], 1] -= 3.6
    detected = np.ones(n, bool)
    detected[45:] = False
    np.savez(tmp_path / "face_record.npz", landmarks68=lm.astype(np.float32), detected=detected)
    c = Clip(video_id="v.mp4", path=None, duration=n / fps, fps=fps, n_frames=n, face_dir=tmp_path)
    ex = VIDEO_EXTRACTORS.create("face-dynamics", SETTINGS)
    times = window_times(c.duration, 2.5, 2.5)
    win, vec = ex.check(c, times, ex.extract(c, times))
    v = dict(zip(NAMES, vec))
    assert v["face_ratio"] == pytest.approx(45 / 50)
    assert v["motion_mean"] == pytest.approx(2.0 / 40 * fps) and v["motion_std"] == pytest.approx(0, abs=1e-6)
    assert v["blink_rate"] == pytest.approx(2 / 5.0)
    assert v["roll_std"] == pytest.approx(0, abs=1e-6)
    w = [dict(zip(NAMES, row)) for row in win]
    assert [r["blink_rate"] for r in w] == pytest.approx([1 / 2.5, 1 / 2.5])  # frames 0-24 and 25-49: one each
    assert w[1]["face_ratio"] == pytest.approx(20 / 25)


def test_face_dynamics_needs_the_face_stage(tmp_path):
    c = Clip(video_id="v.mp4", path=None, duration=2.0, fps=10, n_frames=20, face_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="bah faces"):
        VIDEO_EXTRACTORS.create("face-dynamics", SETTINGS).extract(c, window_times(2.0, 1.0, 1.0))


# --------------------------------------------------------------------------- hf-encoder
def test_hf_encoder_with_tiny_random_image_and_audio_models(tmp_path):
    from transformers import ViTConfig, ViTModel, Wav2Vec2Config, Wav2Vec2Model

    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32)).save_pretrained(tmp_path / "vit")
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=4,
                                 num_conv_pos_embedding_groups=2)).save_pretrained(tmp_path / "w2v")
    audio, _ = clip([("say", "Maybe I will."), ("pause", 2.0)])
    path = write_video(tmp_path / "v.mp4", audio, fps=10)
    dur = audio.size / SAMPLE_RATE
    for folder, kind in (("vit", "image"), ("w2v", "audio")):
        settings = VideoFeatureConfig(extractors=("hf-encoder",), encoder_path=str(tmp_path / folder))
        ex = VIDEO_EXTRACTORS.create("hf-encoder", settings)
        c = Clip(video_id="v.mp4", path=path, duration=dur, fps=10, n_frames=int(round(dur * 10)))
        times = window_times(dur, 1.5, 1.0)
        win, vec = ex.check(c, times, ex.extract(c, times))
        assert ex.meta()["input"] == kind and win.shape == (times.shape[0], 16) and len(ex.names()) == 16
        np.testing.assert_allclose(vec, win.mean(0), atol=1e-6)
        assert np.abs(win[0] - win[-1]).max() > 0  # speech/frames differ from the silent end
    with pytest.raises(ValueError, match="encoder_path"):
        VIDEO_EXTRACTORS.create("hf-encoder", VideoFeatureConfig(extractors=("hf-encoder",)))


# --------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("vf")
    root, out = base / "BAH", base / "out"
    ids = ["Videos/301/Visite_1/301_Question_1_Video.mp4", "Videos/302/Visite_1/302 Question 2 Video.mp4",
           "Videos/303/Visite_1/303_Question_3_Video.mp4"]
    a1, _ = clip([("pause", 0.5), ("say", "I take the bus to the office."), ("pause", 0.4), ("filler", "Um"),
                  ("pause", 0.6), ("say", "Maybe I will, I guess."), ("pause", 1.5)])
    a2, _ = clip([("say", "I call my sister every week."), ("pause", 0.3)])
    write_video(root / ids[0], a1, fps=10)
    write_video(root / ids[1], a2, fps=10)
    rows = [manifest_row(ids[0], root / ids[0]), manifest_row(ids[1], root / ids[1]),
            manifest_row(ids[2], root / ids[2], error="cannot open the file")]
    for r in rows[:2]:
        d = video_dir(out, r["video_id"])
        d.mkdir(parents=True)
        np.savez(d / "face_record.npz", landmarks68=_face(r["n_frames"]).astype(np.float32),
                 detected=np.ones(r["n_frames"], bool))
    write_jsonl(out / "manifest.jsonl", rows)
    return root, out, ids, rows


def test_stage_writes_the_npz_contract_lists_failures_and_exits_1(tiny, capsys):
    root, out, ids, rows = tiny
    names = ["timing", "lexical", "prosody", "face-dynamics"]
    assert main(["video-features", "--out", str(out), "--extractors", ",".join(names), "--window", "2",
                 "--hop", "1"]) == 1
    err = capsys.readouterr().err
    assert ids[2] in err and "cannot open the file" in err
    for name in names:
        meta = json.loads((video_features_dir(out, name) / "meta.json").read_text())
        assert meta["window_s"] == 2.0 and meta["hop_s"] == 1.0 and meta["dim"] == len(meta["names"])
        fails = [json.loads(x) for x in (stage_dir(out, f"video_features/{name}") / "failures-block0.jsonl").open()]
        assert [f["video_id"] for f in fails] == [ids[2]]
        assert not (video_features_dir(out, name) / f"{video_key(ids[2])}.npz").exists()
        for row in rows[:2]:
            with np.load(video_features_dir(out, name) / f"{video_key(row['video_id'])}.npz",
                         allow_pickle=False) as z:
                assert sorted(z.files) == ["names", "video", "window_times", "windows"]
                expect = window_times(row["audio_duration"] or row["duration"], 2.0, 1.0)
                assert z["windows"].dtype == np.float32 and z["windows"].shape == (expect.shape[0], meta["dim"])
                assert z["window_times"].dtype == np.float64
                np.testing.assert_array_equal(z["window_times"], expect)
                assert z["video"].dtype == np.float32 and z["video"].shape == (meta["dim"],)
                assert z["names"].dtype.kind == "U" and list(z["names"]) == meta["names"]
    # timing ran ASR on demand and kept the transcript; the filler video has erased time, the other none
    assert transcript_path(out, ids[0]).is_file()
    erased = [np.load(video_features_dir(out, "timing") / f"{video_key(r['video_id'])}.npz")["video"][1]
              for r in rows[:2]]
    assert erased[0] > 0.3 and erased[1] <= 0.05
    lex = np.load(video_features_dir(out, "lexical") / f"{video_key(ids[0])}.npz")["video"]
    assert lex[1] > 0  # "maybe", "I guess" per word


def test_stage_rerun_skips_what_is_done(tiny, capsys):
    root, out, ids, rows = tiny
    assert main(["video-features", "--out", str(out), "--extractors", "timing,lexical", "--window", "2",
                 "--hop", "1", "--nblocks", "3", "--process_block", "0"]) == 0
    assert "0 videos done, 1 already up to date" in capsys.readouterr().out
    # other windows: a different status hash, so the video is done again
    assert main(["video-features", "--out", str(out), "--extractors", "lexical", "--nblocks", "3",
                 "--process_block", "0"]) == 0
    assert "1 videos done" in capsys.readouterr().out


def test_unknown_extractor_is_refused():
    with pytest.raises(ValueError, match="registered: face-dynamics, hf-encoder, lexical, prosody, text-embed, timing"):
        VideoFeatureConfig(extractors=("nope",))


# --------------------------------------------------------------------------- the synthetic cues
def test_synthetic_speech_plants_fillers_asr_drops_and_long_pauses(vad):
    """Hesitant chunks: a hedge in the text, fillers only in what was said, and VAD pauses of at least
    0.4 s inside the A/H interval; fluent speech has no pause of 0.4 s or more."""
    from bah.synth.lexicon import FILLERS, has_hedge
    from bah.synth.plan import make_plan
    from bah.synth.settings import SynthConfig
    from bah.synth.speech import build_speech

    plan = make_plan(SynthConfig(subjects=2, videos_per_subject=2, seconds=8.0, seed=1))
    pos = next(v for v in plan.videos if v.label == 1)
    neg = next(v for v in plan.videos if v.label == 0)
    fillers = {f.lower() for f in FILLERS}
    track = build_speech(pos, SAMPLE_RATE)
    hes = [c for c in track.chunks if c.hesitant]
    assert hes and all(has_hedge(c.text) for c in hes)
    assert not any(w.strip(",.").lower() in fillers for c in track.chunks for w in c.text.split())
    assert any(w.strip(",.").lower() in fillers for c in hes for w in c.spoken.split())
    speech = np.asarray(vad.segments(track.audio)).reshape(-1, 2)
    pauses = pauses_between(speech, 0.4)
    inside = [(s, e) for s, e in pauses for a, b in pos.intervals if s >= a / pos.fps - 0.1 and e <= (b + 1) / pos.fps + 0.1]
    assert len(inside) >= 1, (pauses, pos.intervals)
    fluent = build_speech(neg, SAMPLE_RATE)
    assert pauses_between(np.asarray(vad.segments(fluent.audio)).reshape(-1, 2), 0.4).shape[0] == 0
