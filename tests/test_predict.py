"""`bah predict`: a trained run's preprocessing + model on a video it never saw, and bad input."""
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from bah.cli import main as bah_main
from bah.apps.predict import PredictError, Predictor, find_segments, load_run, predict_video
from bah.train.run_folder import NORMALISATION, PREPROCESSING, PREPROCESSING_FORMAT, preprocessing_record


# --------------------------------------------------------------------------- fast: no run needed
def test_segments_threshold_min_length_and_times():
    p = np.array([0.1, 0.6, 0.7, 0.2, 0.9, 0.95, 0.99, 0.5, 0.1, 0.8])
    segs = find_segments(p, fps=10.0, threshold=0.5)
    assert [(s.start_frame, s.end_frame) for s in segs] == [(1, 2), (4, 7), (9, 9)]
    assert segs[1].start_s == pytest.approx(0.4) and segs[1].end_s == pytest.approx(0.8)  # end of frame 7
    assert segs[1].mean_p == pytest.approx(np.mean(p[4:8]))
    # 0.3 s minimum keeps only the 4-frame run (0.4 s)
    assert [(s.start_frame, s.end_frame) for s in find_segments(p, 10.0, 0.5, min_segment=0.3)] == [(4, 7)]
    assert find_segments(p, 10.0, threshold=0.999) == []


def _fake_run(tmp_path, record):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text("model_name: can\n")
    if record is not None:
        (run / PREPROCESSING).write_text(yaml.safe_dump(record))
    return run


@pytest.mark.parametrize("record, message", [
    (None, "no preprocessing.yaml"),
    ({"format_version": PREPROCESSING_FORMAT + 41, "bah_version": "9.9"}, f"format {PREPROCESSING_FORMAT + 41}"),
    ({"bah_version": "0.0.1"}, "format None"),
])
def test_run_from_another_version_is_refused_clearly(tmp_path, record, message):
    run = _fake_run(tmp_path, record)
    with pytest.raises(PredictError, match=message):
        load_run(run)


def test_not_a_run_folder(tmp_path):
    with pytest.raises(PredictError, match="no such run folder"):
        load_run(tmp_path / "absent")
    with pytest.raises(PredictError, match="no config.yml"):
        load_run(tmp_path)


def test_cli_refuses_old_run_with_exit_2(tmp_path, capsys):
    run = _fake_run(tmp_path, None)
    assert bah_main(["predict", str(tmp_path / "v.mp4"), "--run", str(run), "--no-progress"]) == 2
    assert "no preprocessing.yaml" in capsys.readouterr().err


def test_preprocessing_record_reads_the_stage_configs(tmp_path):
    (tmp_path / "stages" / "faces").mkdir(parents=True)
    (tmp_path / "stages" / "features").mkdir(parents=True)
    (tmp_path / "stages" / "faces" / "config.yaml").write_text(yaml.safe_dump({"out": "x", "faces": {"size": 64}}))
    (tmp_path / "stages" / "features" / "config.yaml").write_text(
        yaml.safe_dump({"out": "x", "features": {"text_model": "minilm"}}))
    (tmp_path / "stages" / "features" / "meta-block0.json").write_text(json.dumps(
        {"version": 1, "extractors": {"logmel": {"name": "logmel", "stem": "logmel", "dim": 64}}}))
    rec = preprocessing_record(tmp_path, {"video": (64, 64, 3), "logmel": 64}, {"logmel": object()}, False, ["train"])
    assert rec["format_version"] == PREPROCESSING_FORMAT
    assert rec["faces"] == {"size": 64} and rec["features"] == {"text_model": "minilm"}
    assert rec["modality_dims"] == {"video": [64, 64, 3], "logmel": 64}
    assert rec["extractors"]["logmel"]["dim"] == 64 and rec["features_version"] == 1
    assert rec["normalisation"] == {"file": NORMALISATION, "modalities": ["logmel"], "compat": False,
                                    "splits": ["train"]}


# --------------------------------------------------------------------------- a real tiny run
def _write_video(dest, frames, fps, audio=None, rate=16000):
    """RGB frames (+ optional mono float audio) -> H.264 mp4 (no audio stream when audio is None)."""
    from bah.core.media import write_video

    write_video(dest, frames, fps, audio=audio, audio_rate=rate, codec="libx264")
    return dest

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """synth (6 videos, 3 s, 15 fps) -> manifest -> faces -> logmel+bert(MiniLM)+landmarks -> labels ->
    index -> one epoch of CAN: the run folder, the manifest and a spare folder."""
    from bah.stages.manifest import load_manifest
    from bah.synth import generate_dataset
    from bah.train.cli import main as train_main

    base = tmp_path_factory.mktemp("predict")
    root, out, runs = base / "data", base / "out", base / "runs"
    generate_dataset(root, subjects=3, videos_per_subject=2, fps=15, seconds=3.0, seed=0, width=320, height=240,
                     progress=False)
    common = ["--data-root", str(root), "--out", str(out)]
    for cmd in (["manifest"], ["faces", "--size", "48", "--set", "faces.detect_downscale=1.0"],
                ["features", "--extractors", "logmel,bert,landmarks", "--text-model", "minilm"],
                ["labels", "--no-progress"], ["index", "--no-progress"]):
        assert bah_main(cmd + common) == 0, cmd
    assert train_main(["--dataset_path", str(out), "--output_root", str(runs), "--exp_id", "p", "--model_name", "can",
                       "--modality", "landmarks+logmel+bert+EXPR_continuous_label", "--window_length", "32",
                       "--hop_length", "16", "--train_batch_size", "4", "--num_workers", "0", "--num_epochs", "1",
                       "--opt__lr", "0.01", "--verbose", "False", "--save_plot", "False"]) == 0
    assert train_main(["--dataset_path", str(out), "--output_root", str(runs), "--exp_id", "av", "--model_name",
                       "can", "--modality", "logmel+bert+EXPR_continuous_label", "--window_length", "32",
                       "--hop_length", "16", "--num_workers", "0", "--num_epochs", "1", "--verbose", "False",
                       "--save_plot", "False"]) == 0
    # compat evaluation pads the 45-frame videos to the 64-frame window
    assert train_main(["--dataset_path", str(out), "--output_root", str(runs), "--exp_id", "c", "--model_name", "can",
                       "--modality", "landmarks+logmel+bert+EXPR_continuous_label", "--window_length", "64",
                       "--hop_length", "16", "--compat", "--num_workers", "0", "--num_epochs", "1", "--verbose",
                       "False", "--save_plot", "False"]) == 0
    return {"run": runs / "BAH_DB" / "fold-0" / "id_p", "run_av": runs / "BAH_DB" / "fold-0" / "id_av",
            "run_compat": runs / "BAH_DB" / "fold-0" / "id_c",
            "manifest": {r.video_id: r for r in load_manifest(out)}, "base": base}


@pytest.fixture(scope="module")
def predictor(trained):
    return Predictor(trained["run"], device="cpu", progress=False)


@pytest.mark.slow
def test_training_run_records_its_preprocessing(trained):
    rec = yaml.safe_load((trained["run"] / PREPROCESSING).read_text())
    assert rec["format_version"] == PREPROCESSING_FORMAT
    assert rec["modalities"] == ["landmarks", "logmel", "bert"]
    assert rec["modality_dims"] == {"landmarks": 136, "logmel": 64, "bert": 384}
    assert rec["faces"]["size"] == 48 and rec["faces"]["detect_downscale"] == 1.0
    assert rec["features"]["text_model"] == "minilm"
    with np.load(trained["run"] / NORMALISATION) as z:
        assert z["logmel.mean"].shape == (64,) and int(z["bert.count"]) == 90  # the 2 training videos' frames


@pytest.mark.slow
def test_predict_reproduces_the_trainers_test_predictions(trained, predictor, tmp_path):
    """Same preprocessing as training: on the test videos (with their transcripts) predict gives the
    probabilities the trainer's own evaluation stored in prediction-test.pkl."""
    from bah.metrics import softmax

    with open(trained["run"] / "prediction-test.pkl", "rb") as fh:
        ref = pickle.load(fh)
    for vid, p in ref.items():
        rec = trained["manifest"][vid]
        res = predictor.predict(Path(rec.path), rec.transcript, tmp_path)
        np.testing.assert_allclose(res.logits, p["logits"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(res.probs, softmax(p["logits"].astype(np.float64))[:, 1], atol=1e-6)


@pytest.mark.slow
def test_predict_gives_the_evaluations_video_decision(trained, predictor, tmp_path):
    from bah.train.cli import main as train_main

    run = trained["run"]
    assert train_main(["--mode", "EVALUATION", "--fd_exp", str(run), "--eval_set", "test", "--num_workers", "0",
                       "--verbose", "False"]) == 0
    perf = yaml.safe_load((run / "eval-test" / "perf-test.yml").read_text())
    assert perf["video_decision"] == json.loads((run / "video-decision.json").read_text())
    assert len(perf["video_decisions"]) == len(trained["manifest"]) // 3  # the test videos
    for vid, ev in perf["video_decisions"].items():
        rec = trained["manifest"][vid]
        res = predictor.predict(Path(rec.path), rec.transcript, tmp_path)
        assert res.aggregation == perf["video_decision"]["case_best_model"]
        assert res.probability == pytest.approx(ev["score"], abs=1e-6) and res.decision == ev["ah"]


@pytest.mark.slow
def test_compat_run_is_padded_to_its_window_like_its_evaluation(trained, tmp_path):
    with open(trained["run_compat"] / "prediction-test.pkl", "rb") as fh:
        ref = pickle.load(fh)
    pr = Predictor(trained["run_compat"], device="cpu", progress=False)
    for vid, p in ref.items():
        rec = trained["manifest"][vid]
        res = pr.predict(Path(rec.path), rec.transcript, tmp_path)
        assert len(p["logits"]) == 64 and res.n_frames == 45  # compat scored the padding; predict does not
        np.testing.assert_allclose(res.logits, p["logits"][:45], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_predict_outputs_on_an_unseen_video(trained, tmp_path):
    rec = next(iter(trained["manifest"].values()))
    video = shutil.copy(rec.path, tmp_path / "new clip.mp4")  # a name the run never saw
    transcript = tmp_path / "words.txt"
    transcript.write_text(rec.transcript)
    out = tmp_path / "out"
    code = bah_main(["predict", str(video), "--run", str(trained["run"]), "--transcript", str(transcript),
                     "--out-dir", str(out), "--threshold", "0.4", "--min-segment", "0.2", "--device", "cpu",
                     "--no-progress"])
    assert code == 0
    frames = np.genfromtxt(out / "new clip.frames.csv", delimiter=",", names=True)
    assert len(frames) == rec.n_frames == 45
    assert list(frames.dtype.names) == ["frame", "time_s", "p_ah", "face_detected"]
    assert ((frames["p_ah"] >= 0) & (frames["p_ah"] <= 1)).all()
    np.testing.assert_allclose(frames["time_s"], np.arange(45) / 15.0, atol=1e-4)
    assert frames["face_detected"].sum() > 40
    doc = json.loads((out / "new clip.segments.json").read_text())
    assert doc["n_frames"] == 45 and doc["threshold"] == 0.4 and doc["min_segment_s"] == 0.2
    d = doc["video_decision"]
    stored = json.loads((trained["run"] / "video-decision.json").read_text())
    # the video decision is the run's stored rule, not --threshold
    assert d["aggregation"] == stored["case_best_model"] and d["rule"] == f"score >= {stored['threshold']} (fitted on val)"
    assert d["label"] == ("With A-H" if d["ah"] else "No A-H")
    for s in doc["segments"]:
        assert 0 <= s["start_s"] < s["end_s"] <= 3.0 + 1e-6 and s["end_s"] - s["start_s"] >= 0.2 - 1e-6
        assert (frames["p_ah"][s["start_frame"]:s["end_frame"] + 1] >= 0.4).all()
    assert not doc["visual_masked"] and doc["has_audio"] and doc["notes"] == []
    png = (out / "new clip.timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_long_video_runs_in_stitched_chunks(trained, tmp_path):
    rec = next(iter(trained["manifest"].values()))
    whole = Predictor(trained["run"], device="cpu", progress=False, chunk_frames=4096).predict(
        Path(rec.path), rec.transcript, tmp_path / "a")
    chunked = Predictor(trained["run"], device="cpu", progress=False, chunk_frames=16).predict(
        Path(rec.path), rec.transcript, tmp_path / "b")
    assert chunked.probs.shape == whole.probs.shape == (45,)
    assert np.isfinite(chunked.probs).all() and not np.array_equal(chunked.probs, whole.probs)
    # far from chunk edges the temporal model sees similar context
    assert np.abs(chunked.probs - whole.probs).mean() < 0.2


@pytest.mark.slow
def test_no_face_video_masks_the_visual_modality(predictor, tmp_path):
    t = np.arange(16000 * 2) / 16000.0
    frames = [np.full((120, 160, 3), (40, 120, 200), np.uint8)] * 30
    video = _write_video(tmp_path / "wall.mp4", frames, 15, audio=0.3 * np.sin(2 * np.pi * 220 * t))
    res = predictor.predict(video, "nothing to see here.", tmp_path)
    assert res.n_frames == 30 and not res.face_detected.any()
    doc = json.loads((tmp_path / "wall.segments.json").read_text())
    assert doc["visual_masked"] and doc["frames_with_face"] == 0
    assert any("no face" in n for n in doc["notes"])
    assert np.isfinite(res.probs).all()


@pytest.mark.slow
def test_no_audio_and_no_transcript_give_zeros_and_notes(trained, predictor, tmp_path):
    from bah.core.media import iter_frames, probe

    rec = next(iter(trained["manifest"].values()))
    video = _write_video(tmp_path / "mute.mp4", list(iter_frames(rec.path)), 15)
    assert not probe(video).has_audio
    res = predictor.predict(video, None, tmp_path)
    assert res.n_frames == 45
    doc = json.loads((tmp_path / "mute.segments.json").read_text())
    assert not doc["has_audio"]
    assert any("no audio track" in n for n in doc["notes"]) and any("transcript" in n for n in doc["notes"])


@pytest.mark.slow
def test_video_without_transcript_uses_recognised_speech(trained, tmp_path):
    """espeak-ng speech, no transcript: the run's text features come from offline ASR, and at least
    80 % of the spoken words (lower case, letters only) are among the recognised ones."""
    from bah.core.media import iter_frames
    from bah.synth.speech import speak

    sentence = "I take the bus to the office and I call my sister every week."
    audio = np.concatenate([np.zeros(4000, np.float32), speak(sentence, "en-us", 170, 50, 16000) * 0.8,
                            np.zeros(4000, np.float32)])
    rec = next(iter(trained["manifest"].values()))
    frames = list(iter_frames(rec.path))
    n = int(audio.size / 16000 * 15)
    video = _write_video(tmp_path / "talk.mp4", [frames[i % len(frames)] for i in range(n)], 15, audio)
    res = Predictor(trained["run_av"], device="cpu", progress=False).predict(video, None, tmp_path)
    note = next(x for x in res.notes if x.startswith("no transcript: recognised speech (tiny.en"))
    words = lambda t: "".join(c.lower() if c.isalpha() else " " for c in t).split()  # noqa: E731
    heard = set(words(note.split("used:", 1)[1]))
    assert sum(w in heard for w in words(sentence)) >= 0.8 * len(words(sentence)), note
    assert not any("empty transcript" in x for x in res.notes)


@pytest.mark.slow
def test_missing_and_junk_videos_fail_clearly_and_the_batch_goes_on(trained, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    good = next(iter(trained["manifest"].values())).path
    code = bah_main(["predict", str(tmp_path / "absent.mp4"), str(junk), str(good), "--run", str(trained["run"]),
                     "--out", str(tmp_path / "o"), "--no-progress"])  # --out, shared by every command
    err = capsys.readouterr().err
    assert code == 1
    assert "absent.mp4: no such video file" in err
    assert "junk.mp4: unreadable video" in err
    assert "2 of 3 video(s) failed" in err
    assert (tmp_path / "o" / (Path(good).stem + ".segments.json")).is_file()
    with pytest.raises(PredictError, match="no such video"):
        predict_video(tmp_path / "absent.mp4", trained["run"], progress=False)


@pytest.mark.slow
def test_run_with_a_changed_record_version_is_refused(trained, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(trained["run"], run)
    rec = yaml.safe_load((run / PREPROCESSING).read_text())
    rec["features_version"] = 0
    (run / PREPROCESSING).write_text(yaml.safe_dump(rec))
    with pytest.raises(PredictError, match="feature-stage version 0"):
        load_run(run)


@pytest.mark.slow
def test_run_without_visual_modality_skips_faces(trained, tmp_path):
    rec = next(iter(trained["manifest"].values()))
    pr = Predictor(trained["run_av"], device="cpu", progress=False)
    res = pr.predict(Path(rec.path), rec.transcript, tmp_path)
    assert res.face_detected is None and pr._aligner is None  # no face detector was even built
    stem = Path(rec.path).stem
    doc = json.loads((tmp_path / f"{stem}.segments.json").read_text())
    assert doc["frames_with_face"] is None and not doc["visual_masked"] and doc["modalities"] == ["logmel", "bert"]
    rows = (tmp_path / f"{stem}.frames.csv").read_text().splitlines()
    assert len(rows) == 46 and rows[1].endswith(",")  # face_detected left empty: not looked for


@pytest.mark.slow
def test_machine_local_overrides_are_checked(trained):
    pr = Predictor(trained["run"], device="cpu", progress=False, overrides={"features.batch_size": 8})
    assert pr._feat_cfg.batch_size == 8 and pr._feat_cfg.text_model == "minilm"
    with pytest.raises(PredictError, match="no setting 'bogus'"):
        Predictor(trained["run"], device="cpu", progress=False, overrides={"faces.bogus": 1})
